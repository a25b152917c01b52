// Package activities holds every side effect an enrollment's steps
// perform: writing its log and wait index, evaluating conditions against
// fresh contact data, and the actions (webhook, email, contact update,
// emitted event). Each is idempotent per (workflow id, step id), so
// Temporal's retries never do a thing twice where that matters.
package activities

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"net/http"
	"time"

	"github.com/google/uuid"
	"go.temporal.io/sdk/temporal"

	"github.com/signalbox/signalbox/conditions"
	"github.com/signalbox/signalbox/store"
)

// Error types of permanent failures, for Temporal's non-retryable errors.
const (
	ErrTypeInvalid  = "InvalidInput"
	ErrTypeRefused  = "DestinationRefused"
	ErrTypeRejected = "Rejected"
	ErrTypeNotFound = "NotFound"
)

// Recorder records events the way the API does (emit_event uses it, so an
// emitted event can trigger automations like any other).
type Recorder interface {
	Record(ctx context.Context, req *store.RecordRequest) (store.RecordOutcome, error)
}

// Activities carries the dependencies of every activity; the worker
// registers its methods.
type Activities struct {
	Store    *store.Store
	Recorder Recorder
	Env      *conditions.Env
	// HTTP posts webhooks; NewWebhookClient builds a safe one.
	HTTP *http.Client
	// Mailer sends send_email steps; NewSMTPMailer builds one from SMTP_URL.
	// Without one, email steps fail permanently.
	Mailer Mailer
	// EmailFrom is the From of every email; empty means DefaultEmailFrom.
	EmailFrom string
	Log       *slog.Logger
}

// Event is an event as an enrollment carries it.
type Event struct {
	ID         string          `json:"id"`
	Name       string          `json:"name"`
	Properties json.RawMessage `json:"properties"`
	OccurredAt time.Time       `json:"occurred_at"`
	Depth      int             `json:"depth,omitempty"`
}

// EventFrom converts the store's form.
func EventFrom(e store.TriggerEvent) Event {
	return Event{ID: e.ID.String(), Name: e.Name, Properties: e.Properties, OccurredAt: e.OccurredAt, Depth: e.Depth}
}

// CELMap is the CEL view of an event: name, properties, occurred_at.
func (e Event) CELMap() map[string]any {
	var props map[string]any
	_ = json.Unmarshal(e.Properties, &props)
	if props == nil {
		props = map[string]any{}
	}
	return map[string]any{"id": e.ID, "name": e.Name, "properties": props, "occurred_at": e.OccurredAt}
}

// Scope identifies an enrollment for activities that act on its contact.
type Scope struct {
	WorkspaceID  string `json:"workspace_id"`
	EnrollmentID string `json:"enrollment_id"`
	ContactID    string `json:"contact_id"`
	WorkflowID   string `json:"workflow_id"`
	Trigger      Event  `json:"trigger"`
}

func (s Scope) ids() (ws, enrollment, contact uuid.UUID, err error) {
	if ws, err = uuid.Parse(s.WorkspaceID); err != nil {
		return
	}
	if enrollment, err = uuid.Parse(s.EnrollmentID); err != nil {
		return
	}
	contact, err = uuid.Parse(s.ContactID)
	return
}

// vars loads the contact fresh and binds the CEL variables of a step.
func (a *Activities) vars(ctx context.Context, s Scope) (conditions.Vars, error) {
	ws, _, contactID, err := s.ids()
	if err != nil {
		return conditions.Vars{}, permanent(ErrTypeInvalid, err)
	}
	c, err := a.Store.GetContact(ctx, ws, contactID)
	if errors.Is(err, store.ErrNotFound) {
		return conditions.Vars{}, permanent(ErrTypeNotFound, fmt.Errorf("contact %s no longer exists", contactID))
	}
	if err != nil {
		return conditions.Vars{}, err
	}
	trigger := s.Trigger.CELMap()
	return conditions.Vars{Event: trigger, Trigger: trigger, Contact: ContactMap(c), Now: time.Now().UTC()}, nil
}

// ContactMap is the CEL view of a contact.
func ContactMap(c store.Contact) map[string]any {
	var props map[string]any
	_ = json.Unmarshal(c.Properties, &props)
	if props == nil {
		props = map[string]any{}
	}
	str := func(p *string) string {
		if p == nil {
			return ""
		}
		return *p
	}
	return map[string]any{"id": c.ID.String(), "email": c.Email, "first_name": str(c.FirstName),
		"last_name": str(c.LastName), "properties": props}
}

// permanent wraps an error Temporal must not retry.
func permanent(kind string, err error) error {
	return temporal.NewNonRetryableApplicationError(err.Error(), kind, err)
}

// RecordStepInput is one line of an enrollment's log.
type RecordStepInput struct {
	EnrollmentID string          `json:"enrollment_id"`
	Seq          int             `json:"seq"`
	StepID       string          `json:"step_id"`
	Type         string          `json:"type"`
	Outcome      string          `json:"outcome"`
	Detail       json.RawMessage `json:"detail,omitempty"`
}

// RecordStep writes a line of the enrollment's log and sets its current
// step. Each (enrollment, seq) is written once.
func (a *Activities) RecordStep(ctx context.Context, in RecordStepInput) error {
	id, err := uuid.Parse(in.EnrollmentID)
	if err != nil {
		return permanent(ErrTypeInvalid, err)
	}
	return a.Store.RecordStep(ctx, id, store.StepRecord{Seq: in.Seq, StepID: in.StepID, Type: in.Type,
		Outcome: in.Outcome, Detail: in.Detail})
}

// FinishInput ends an enrollment.
type FinishInput struct {
	EnrollmentID string `json:"enrollment_id"`
	Status       string `json:"status"`
	Reason       string `json:"reason,omitempty"`
}

// FinishResult says how the enrollment ended; completed can become exited
// when an exit event was recorded first.
type FinishResult struct {
	Status string `json:"status"`
}

// FinishEnrollment records the end of an enrollment and drops its index rows.
func (a *Activities) FinishEnrollment(ctx context.Context, in FinishInput) (FinishResult, error) {
	id, err := uuid.Parse(in.EnrollmentID)
	if err != nil {
		return FinishResult{}, permanent(ErrTypeInvalid, err)
	}
	status, err := a.Store.FinishEnrollment(ctx, id, in.Status, in.Reason)
	if errors.Is(err, store.ErrNotFound) {
		// The contact (and with it the enrollment) was deleted: nothing to record.
		return FinishResult{Status: in.Status}, nil
	}
	return FinishResult{Status: status}, err
}

// ConditionInput is a branch condition to evaluate for an enrollment.
type ConditionInput struct {
	Scope Scope  `json:"scope"`
	Expr  string `json:"expr"`
}

// ConditionResult is its value; Error explains a condition that failed to
// evaluate and so counts as false.
type ConditionResult struct {
	Value bool   `json:"value"`
	Error string `json:"error,omitempty"`
}

// EvaluateCondition evaluates a branch condition against the contact as it
// is now. Running it as an activity keeps the workflow deterministic: the
// answer is recorded in history and replayed, never recomputed.
func (a *Activities) EvaluateCondition(ctx context.Context, in ConditionInput) (ConditionResult, error) {
	prog, err := a.Env.Compile(in.Expr, conditions.KindCondition)
	if err != nil {
		return ConditionResult{}, permanent(ErrTypeInvalid, err)
	}
	vars, err := a.vars(ctx, in.Scope)
	if err != nil {
		return ConditionResult{}, err
	}
	ok, err := prog.EvalBool(ctx, vars)
	if err != nil {
		return ConditionResult{Value: false, Error: err.Error()}, nil
	}
	return ConditionResult{Value: ok}, nil
}

// WaitInput registers or clears a wait_for_event step.
type WaitInput struct {
	Scope     Scope     `json:"scope"`
	StepID    string    `json:"step_id"`
	Event     string    `json:"event"`
	Condition string    `json:"condition,omitempty"`
	BeganAt   time.Time `json:"began_at"`
	ExpiresAt time.Time `json:"expires_at"`
}

// WaitResult carries the event that resumed the wait, if one did.
type WaitResult struct {
	Event *Event `json:"event,omitempty"`
}

// RegisterWait writes the wait to the index the record path reads, and
// returns at once with a matching event that arrived since the step began
// (the look-back that closes the race between arriving and registering).
func (a *Activities) RegisterWait(ctx context.Context, in WaitInput) (WaitResult, error) {
	ws, enrollment, contactID, err := in.Scope.ids()
	if err != nil {
		return WaitResult{}, permanent(ErrTypeInvalid, err)
	}
	trigger, err := json.Marshal(in.Scope.Trigger)
	if err != nil {
		return WaitResult{}, permanent(ErrTypeInvalid, err)
	}
	w := store.Wait{EnrollmentID: enrollment, StepID: in.StepID, WorkflowID: in.Scope.WorkflowID, WorkspaceID: ws,
		ContactID: contactID, EventName: in.Event, Condition: in.Condition, Trigger: trigger,
		BeganAt: in.BeganAt, ExpiresAt: in.ExpiresAt}
	var contact *store.Contact
	if in.Condition != "" {
		c, err := a.Store.GetContact(ctx, ws, contactID)
		if err != nil && !errors.Is(err, store.ErrNotFound) {
			return WaitResult{}, err
		}
		contact = &c
	}
	found, err := a.Store.RegisterWait(ctx, w, func(ev store.TriggerEvent) bool {
		return WaitMatches(ctx, a.Env, &w, &ev, contact, a.Log)
	})
	if err != nil || found == nil {
		return WaitResult{}, err
	}
	e := EventFrom(*found)
	return WaitResult{Event: &e}, nil
}

// ClearWait removes a timed-out wait; if an event claimed it just before,
// that event is returned and the wait resumes after all.
func (a *Activities) ClearWait(ctx context.Context, in WaitInput) (WaitResult, error) {
	_, enrollment, _, err := in.Scope.ids()
	if err != nil {
		return WaitResult{}, permanent(ErrTypeInvalid, err)
	}
	found, err := a.Store.ClearWait(ctx, enrollment, in.StepID)
	if err != nil || found == nil {
		return WaitResult{}, err
	}
	e := EventFrom(*found)
	return WaitResult{Event: &e}, nil
}

// WaitMatches evaluates a wait's condition for a candidate event; an empty
// condition matches every event of the awaited name. A condition that fails
// to evaluate does not match, and the failure is logged.
func WaitMatches(ctx context.Context, env *conditions.Env, w *store.Wait, ev *store.TriggerEvent, contact *store.Contact, log *slog.Logger) bool {
	if w.Condition == "" {
		return true
	}
	prog, err := env.Compile(w.Condition, conditions.KindCondition)
	if err != nil {
		log.WarnContext(ctx, "wait condition does not compile", "workflow_id", w.WorkflowID, "error", err.Error())
		return false
	}
	var trigger Event
	_ = json.Unmarshal(w.Trigger, &trigger)
	vars := conditions.Vars{Event: EventFrom(*ev).CELMap(), Trigger: trigger.CELMap(), Now: time.Now().UTC()}
	if contact != nil {
		vars.Contact = ContactMap(*contact)
	}
	ok, err := prog.EvalBool(ctx, vars)
	if err != nil {
		log.InfoContext(ctx, "wait condition failed to evaluate", "workflow_id", w.WorkflowID, "error", err.Error())
	}
	return ok
}
