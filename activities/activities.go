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
	"go.temporal.io/sdk/activity"
	"go.temporal.io/sdk/temporal"

	"github.com/signalbox/signalbox/conditions"
	"github.com/signalbox/signalbox/event"
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

// Scope identifies an enrollment for activities that act on its contact.
type Scope struct {
	WorkspaceID  uuid.UUID   `json:"workspace_id"`
	EnrollmentID uuid.UUID   `json:"enrollment_id"`
	ContactID    uuid.UUID   `json:"contact_id"`
	WorkflowID   string      `json:"workflow_id"`
	Trigger      event.Event `json:"trigger"`
	// Events are, in the yes steps of a wait on several events, the events
	// it matched by name (CEL's events); nil elsewhere.
	Events map[string]event.Event `json:"events,omitempty"`
}

// vars loads the contact fresh and binds the CEL variables of a step.
func (a *Activities) vars(ctx context.Context, s Scope) (conditions.Vars, error) {
	ws, contactID := s.WorkspaceID, s.ContactID
	c, err := a.Store.GetContact(ctx, ws, contactID)
	if errors.Is(err, store.ErrNotFound) {
		return conditions.Vars{}, permanent(ErrTypeNotFound, fmt.Errorf("contact %s no longer exists", contactID))
	}
	if err != nil {
		return conditions.Vars{}, err
	}
	return a.stepVars(s, c), nil
}

// stepVars binds the CEL variables of a step to a contact already loaded.
func (a *Activities) stepVars(s Scope, c store.Contact) conditions.Vars {
	trigger := conditions.EventMap(s.Trigger)
	vars := conditions.Vars{Event: trigger, Trigger: trigger, Contact: contactMap(c), Now: time.Now().UTC()}
	if len(s.Events) > 0 {
		vars.Events = make(map[string]map[string]any, len(s.Events))
		for name, e := range s.Events {
			vars.Events[name] = conditions.EventMap(e)
		}
	}
	return vars
}

// contactMap is the CEL view of a stored contact.
func contactMap(c store.Contact) map[string]any {
	return conditions.ContactMap(c.ID.String(), c.Email, c.FirstName, c.LastName, c.Properties)
}

// permanent wraps an error Temporal must not retry.
func permanent(kind string, err error) error {
	return temporal.NewNonRetryableApplicationError(err.Error(), kind, err)
}

// RecordStepInput is one line of an enrollment's log.
type RecordStepInput struct {
	EnrollmentID uuid.UUID       `json:"enrollment_id"`
	Seq          int             `json:"seq"`
	StepID       string          `json:"step_id"`
	Type         string          `json:"type"`
	Outcome      string          `json:"outcome"`
	Detail       json.RawMessage `json:"detail,omitempty"`
}

// RecordStep writes a line of the enrollment's log and sets its current
// step. Each (enrollment, seq) is written once.
func (a *Activities) RecordStep(ctx context.Context, in RecordStepInput) error {
	return a.Store.RecordStep(ctx, in.EnrollmentID, store.StepRecord{Seq: in.Seq, StepID: in.StepID, Type: in.Type,
		Outcome: in.Outcome, Detail: in.Detail})
}

// FinishInput ends an enrollment.
type FinishInput struct {
	EnrollmentID uuid.UUID `json:"enrollment_id"`
	Status       string    `json:"status"`
	Reason       string    `json:"reason,omitempty"`
}

// FinishResult says how the enrollment ended; completed can become exited
// when an exit event was recorded first.
type FinishResult struct {
	Status string `json:"status"`
}

// FinishEnrollment records the end of an enrollment and drops its index rows.
func (a *Activities) FinishEnrollment(ctx context.Context, in FinishInput) (FinishResult, error) {
	status, err := a.Store.FinishEnrollment(ctx, in.EnrollmentID, in.Status, in.Reason)
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
	// in_segment reads the segments now, when the step runs.
	if ids := prog.Segments(); len(ids) > 0 {
		if vars.Segments, err = a.Store.InSegments(ctx, a.Env, in.Scope.WorkspaceID, in.Scope.ContactID, ids); err != nil {
			return ConditionResult{}, err
		}
	}
	ok, err := prog.EvalBool(ctx, vars)
	if err != nil {
		return ConditionResult{Value: false, Error: err.Error()}, nil
	}
	return ConditionResult{Value: ok}, nil
}

// WaitInput registers or clears a wait_for_event step.
type WaitInput struct {
	Scope  Scope  `json:"scope"`
	StepID string `json:"step_id"`
	Event  string `json:"event"`
	// Events and Mode are set instead of Event for a wait on several
	// events.
	Events    []string `json:"events,omitempty"`
	Mode      string   `json:"mode,omitempty"`
	Condition string   `json:"condition,omitempty"`
	// BeganAt and After are where the wait's window opens: events recorded
	// after BeganAt, or at BeganAt with an id above After (when set),
	// count. ExpiresAt is where it closes.
	BeganAt   time.Time `json:"began_at"`
	After     uuid.UUID `json:"after,omitzero"`
	ExpiresAt time.Time `json:"expires_at"`
	// Strict says the window's bounds are on PostgreSQL's clock, which then
	// alone decides when the wait times out (enrollments since the wait
	// windows change; earlier ones timed waits on the workflow's clock).
	Strict bool `json:"strict,omitempty"`
}

// WaitResult carries the event that resumed the wait, if one did.
type WaitResult struct {
	Event *event.Event `json:"event,omitempty"`
	// Events are, for a wait on several events, the events it matched (all
	// of them once Event is set, those so far otherwise).
	Events []event.Event `json:"events,omitempty"`
	// Closed says the window closed with no event inside it.
	Closed bool `json:"closed,omitempty"`
	// Remaining is how long the window stays open by PostgreSQL's clock
	// when ClearWait was called before its end.
	Remaining time.Duration `json:"remaining,omitempty"`
}

func waitResult(o store.WaitOutcome) WaitResult {
	return WaitResult{Event: o.Event, Events: o.Events, Closed: o.Closed, Remaining: o.Remaining}
}

// RegisterWait writes the wait to the index the record path reads, and
// returns at once with a matching event recorded inside the wait's window
// (the look-back that covers events recorded before the workflow reached
// the step, during an outage say), or says the window already closed.
func (a *Activities) RegisterWait(ctx context.Context, in WaitInput) (WaitResult, error) {
	ws, enrollment, contactID := in.Scope.WorkspaceID, in.Scope.EnrollmentID, in.Scope.ContactID
	trigger, err := json.Marshal(in.Scope.Trigger)
	if err != nil {
		return WaitResult{}, permanent(ErrTypeInvalid, err)
	}
	w := store.Wait{EnrollmentID: enrollment, StepID: in.StepID, WorkflowID: in.Scope.WorkflowID, WorkspaceID: ws,
		ContactID: contactID, EventName: in.Event, Mode: in.Mode, Condition: in.Condition, Trigger: trigger,
		BeganAt: in.BeganAt, AfterEventID: in.After, ExpiresAt: in.ExpiresAt}
	var contact *store.Contact
	if in.Condition != "" {
		c, err := a.Store.GetContact(ctx, ws, contactID)
		if err != nil && !errors.Is(err, store.ErrNotFound) {
			return WaitResult{}, err
		}
		contact = &c
	}
	match := func(ev event.Event) bool { return a.waitMatches(ctx, &w, &ev, contact) }
	var out store.WaitOutcome
	if len(in.Events) > 0 {
		if w.Mode == "" {
			w.Mode = "any" // definition.ModeAny, the default
		}
		out, err = a.Store.RegisterMultiWait(ctx, w, in.Events, match)
	} else {
		out, err = a.Store.RegisterWait(ctx, w, match)
	}
	if errors.Is(err, store.ErrNotFound) {
		return WaitResult{}, permanent(ErrTypeNotFound, fmt.Errorf("enrollment %s no longer exists", enrollment))
	}
	if err != nil {
		return WaitResult{}, err
	}
	return waitResult(out), nil
}

// ClearWait ends a wait whose timer fired: an event that claimed it just
// before resumes it after all; otherwise it times out, unless (Strict)
// PostgreSQL's clock says the window is still open, in which case Remaining
// says for how long.
func (a *Activities) ClearWait(ctx context.Context, in WaitInput) (WaitResult, error) {
	clear := a.Store.ClearWait
	if len(in.Events) > 0 {
		clear = a.Store.ClearMultiWait
	}
	out, err := clear(ctx, in.Scope.ContactID, in.Scope.EnrollmentID, in.StepID, in.Strict)
	if err != nil {
		return WaitResult{}, err
	}
	return waitResult(out), nil
}

// waitMatches evaluates a wait's condition for a candidate event; a
// condition that fails to evaluate does not match, and the failure is
// logged.
func (a *Activities) waitMatches(ctx context.Context, w *store.Wait, ev *event.Event, contact *store.Contact) bool {
	var trigger event.Event
	_ = json.Unmarshal(w.Trigger, &trigger)
	var cm map[string]any
	if contact != nil {
		cm = contactMap(*contact)
	}
	var segments []string
	if prog, err := a.Env.Compile(w.Condition, conditions.KindCondition); err == nil && len(prog.Segments()) > 0 {
		if segments, err = a.Store.InSegments(ctx, a.Env, w.WorkspaceID, w.ContactID, prog.Segments()); err != nil {
			a.Log.WarnContext(ctx, "read segments for a wait condition", "workflow_id", w.WorkflowID, "error", err.Error())
			return false
		}
	}
	ok, err := a.Env.WaitConditionIn(ctx, w.Condition, trigger, *ev, cm, segments, time.Now().UTC())
	if err != nil {
		a.Log.InfoContext(ctx, "wait condition did not hold", "workflow_id", w.WorkflowID, "error", err.Error())
	}
	return ok
}

// Bookkeeping asks an action step's activity to write, once its action is
// done, the step's "done" line of the enrollment's log, the line the
// workflow would otherwise write with RecordStep, and, with Finish (nothing
// follows the step), to end the enrollment as completed, as
// FinishEnrollment would: one round trip in the activity instead of one
// or two local activities in the workflow. Enrollments of the
// workflows.EnrollmentV1Workflow type never ask.
type Bookkeeping struct {
	EnrollmentID uuid.UUID `json:"enrollment_id"`
	Seq          int       `json:"seq"`
	StepID       string    `json:"step_id"`
	Type         string    `json:"type"`
	Finish       bool      `json:"finish,omitempty"`
}

// Booked is the bookkeeping an action's activity did.
type Booked struct {
	// Status is how the enrollment ended, when it was asked to finish it:
	// completed, or exited when an exit event was recorded first.
	Status string `json:"status,omitempty"`
}

// Booking is embedded in every action's result. Booked is nil when the
// activity was not asked to do the bookkeeping or could not: the workflow
// then does it itself. The step's log line never shows it.
type Booking struct {
	Booked *Booked `json:"booked,omitempty"`
}

// BookedOutcome returns Booked, for the workflow.
func (b Booking) BookedOutcome() *Booked { return b.Booked }

func (b *Booking) setBooked(x *Booked) { b.Booked = x }

// step is b for the store.
func (b *Bookkeeping) step() store.StepBook {
	return store.StepBook{EnrollmentID: b.EnrollmentID, Seq: b.Seq, StepID: b.StepID, Type: b.Type, Finish: b.Finish}
}

// book does an action's bookkeeping, if asked; result is the action's
// result, which the step's line shows. A failure is logged and left to the
// workflow: the action is done, and must not run again for its
// bookkeeping's sake.
func (a *Activities) book(ctx context.Context, b *Bookkeeping, result any) *Booked {
	if b == nil {
		return nil
	}
	detail, err := json.Marshal(result)
	if err != nil {
		return nil
	}
	status, err := a.Store.BookStep(ctx, b.step(), detail)
	if err != nil {
		if a.Log != nil {
			a.Log.WarnContext(ctx, "step bookkeeping failed in the action's activity; the workflow does it",
				"enrollment_id", b.EnrollmentID.String(), "step_id", b.StepID, "error", err.Error())
		}
		return nil
	}
	return &Booked{Status: status}
}

// thenBook runs an action, then its bookkeeping if asked and not already
// done by the action itself (update_contact does it in its own statement).
func thenBook[In any, R any, PR interface {
	*R
	BookedOutcome() *Booked
	setBooked(*Booked)
}](ctx context.Context, a *Activities, in In, book *Bookkeeping, run func(context.Context, In) (R, error)) (R, error) {
	if book != nil && retried(ctx) {
		if res, ok := booked[R, PR](ctx, a, book); ok {
			return res, nil
		}
	}
	res, err := run(ctx, in)
	if err == nil && PR(&res).BookedOutcome() == nil {
		PR(&res).setBooked(a.book(ctx, book, res))
	}
	return res, err
}

// retried says this is an activity attempt after the first.
func retried(ctx context.Context) bool {
	return activity.IsActivity(ctx) && activity.GetInfo(ctx).Attempt > 1
}

// booked returns, on an attempt after the first, the result an earlier
// attempt booked: that attempt did the action and its bookkeeping (the
// line, and with Finish the enrollment's end), and only its answer to
// Temporal was lost. Running the action again would repeat it (a webhook
// is delivered at least once) and could fail where it had succeeded, the
// enrollment already ended as completed. When nothing was booked, or the
// store cannot say, the action runs again.
func booked[R any, PR interface {
	*R
	setBooked(*Booked)
}](ctx context.Context, a *Activities, b *Bookkeeping) (R, bool) {
	var res R
	detail, status, ok, err := a.Store.BookedStep(ctx, b.step())
	if err != nil || !ok {
		return res, false
	}
	if len(detail) > 0 {
		if err := json.Unmarshal(detail, &res); err != nil {
			return res, false
		}
	}
	PR(&res).setBooked(&Booked{Status: status})
	return res, true
}

// SendWebhook delivers a webhook step (see sendWebhook) and does its
// bookkeeping if asked.
func (a *Activities) SendWebhook(ctx context.Context, in WebhookInput) (WebhookResult, error) {
	return thenBook(ctx, a, in, in.Book, a.sendWebhook)
}

// SendEmail sends a send_email step (see sendEmail) and does its
// bookkeeping if asked.
func (a *Activities) SendEmail(ctx context.Context, in EmailInput) (EmailResult, error) {
	return thenBook(ctx, a, in, in.Book, a.sendEmail)
}

// UpdateContact runs an update_contact step (see updateContact), whose
// statement does the bookkeeping asked for too, unless it was a repeat.
func (a *Activities) UpdateContact(ctx context.Context, in UpdateContactInput) (UpdateContactResult, error) {
	return thenBook(ctx, a, in, in.Book, a.updateContact)
}

// EmitEvent runs an emit_event step (see emitEvent) and does its
// bookkeeping if asked.
func (a *Activities) EmitEvent(ctx context.Context, in EmitEventInput) (EmitEventResult, error) {
	return thenBook(ctx, a, in, in.Book, a.emitEvent)
}
