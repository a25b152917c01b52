// Package workflows is the deterministic interpreter of automations: one
// Temporal workflow per enrollment walks the definition snapshotted when the
// enrollment started, calling activities for every side effect. Names,
// signals, queries and workflow-ID builders live here beside the workflow.
package workflows

import (
	"encoding/json"
	"errors"
	"fmt"
	"time"

	"go.temporal.io/sdk/temporal"
	"go.temporal.io/sdk/workflow"

	"github.com/signalbox/signalbox/activities"
	"github.com/signalbox/signalbox/definition"
)

// Names that clients and workers share.
const (
	// TaskQueue is the one queue every worker polls.
	TaskQueue = "signalbox-enrollments"
	// EnrollmentWorkflow is the registered workflow type.
	EnrollmentWorkflow = "Enrollment"
	// EventSignal carries an event that resumes a wait_for_event step.
	EventSignal = "event"
	// CurrentStepQuery returns the step an enrollment is on.
	CurrentStepQuery = "current_step"
)

// Search attributes that let the Web UI and `temporal workflow list` filter
// enrollments.
var (
	WorkspaceAttribute  = temporal.NewSearchAttributeKeyKeyword("SignalboxWorkspace")
	AutomationAttribute = temporal.NewSearchAttributeKeyKeyword("SignalboxAutomation")
	ContactAttribute    = temporal.NewSearchAttributeKeyKeyword("SignalboxContact")
)

// WorkflowID is the deterministic id of an enrollment's workflow; delivering
// a start twice finds the first.
func WorkflowID(enrollmentID string) string { return "enrollment-" + enrollmentID }

// EnrollmentInput is everything an enrollment needs, fixed when it starts.
type EnrollmentInput struct {
	EnrollmentID string `json:"enrollment_id"`
	WorkspaceID  string `json:"workspace_id"`
	AutomationID string `json:"automation_id"`
	Version      int    `json:"version"`
	ContactID    string `json:"contact_id"`
	// Definition is the automation at Version; edits make new versions and
	// never reach a running enrollment.
	Definition definition.Automation `json:"definition"`
	Trigger    activities.Event      `json:"trigger"`
}

// EnrollmentResult is how an enrollment ended.
type EnrollmentResult struct {
	Status string `json:"status"`
	// Steps counts the lines the enrollment wrote to its step log.
	Steps int `json:"steps"`
}

// EventSignalInput is the payload of EventSignal.
type EventSignalInput struct {
	EnrollmentID string           `json:"enrollment_id"`
	StepID       string           `json:"step_id"`
	Event        activities.Event `json:"event"`
}

// StepState answers CurrentStepQuery.
type StepState struct {
	StepID string    `json:"step_id"`
	Type   string    `json:"type"`
	Since  time.Time `json:"since"`
	// Waiting names the awaited event on a wait_for_event step.
	Waiting string `json:"waiting,omitempty"`
}

// Behaviour changes to this workflow go behind workflow.GetVersion with a
// change id declared here, and a history recorded with the new code joins
// testdata/histories, where every saved history must keep replaying. There
// are none yet: the first release folded in the changes made before it.

// a is only used for its method values: the SDK takes activity names from
// them, and the worker registers the real instance.
var a *activities.Activities

// run is the state of one enrollment's interpretation.
type run struct {
	in      EnrollmentInput
	scope   activities.Scope
	signals workflow.ReceiveChannel
	seen    map[string]bool
	seq     int
	state   StepState
}

// Enrollment interprets an automation for one contact. An exit event
// cancels it: it then records the enrollment as exited in a disconnected
// context and ends as cancelled. A step that fails for good ends it as
// failed.
func Enrollment(ctx workflow.Context, in EnrollmentInput) (EnrollmentResult, error) {
	r := &run{
		in: in,
		scope: activities.Scope{WorkspaceID: in.WorkspaceID, EnrollmentID: in.EnrollmentID, ContactID: in.ContactID,
			WorkflowID: workflow.GetInfo(ctx).WorkflowExecution.ID, Trigger: in.Trigger},
		signals: workflow.GetSignalChannel(ctx, EventSignal),
		seen:    map[string]bool{},
	}
	if err := workflow.SetQueryHandler(ctx, CurrentStepQuery, func() (StepState, error) { return r.state, nil }); err != nil {
		return EnrollmentResult{}, err
	}
	err := r.steps(ctx, in.Definition.Steps)
	r.drain(ctx)

	done, cancel := workflow.NewDisconnectedContext(ctx)
	defer cancel()
	var res activities.FinishResult
	switch {
	case temporal.IsCanceledError(err) || errors.Is(ctx.Err(), workflow.ErrCanceled):
		ferr := r.book(done, a.FinishEnrollment,
			activities.FinishInput{EnrollmentID: in.EnrollmentID, Status: "exited", Reason: "cancelled"}, &res)
		if ferr != nil {
			return EnrollmentResult{}, ferr
		}
		return EnrollmentResult{Status: res.Status, Steps: r.seq}, temporal.NewCanceledError("exit event")
	case err != nil:
		ferr := r.book(done, a.FinishEnrollment,
			activities.FinishInput{EnrollmentID: in.EnrollmentID, Status: "failed", Reason: failureReason(err)}, &res)
		if ferr != nil {
			return EnrollmentResult{}, ferr
		}
		return EnrollmentResult{Status: res.Status, Steps: r.seq}, err
	}
	if ferr := r.book(done, a.FinishEnrollment,
		activities.FinishInput{EnrollmentID: in.EnrollmentID, Status: "completed"}, &res); ferr != nil {
		return EnrollmentResult{}, ferr
	}
	return EnrollmentResult{Status: res.Status, Steps: r.seq}, nil
}

// steps runs a list of steps in order.
func (r *run) steps(ctx workflow.Context, steps []definition.Step) error {
	for i := range steps {
		if err := r.step(ctx, &steps[i]); err != nil {
			return err
		}
	}
	return nil
}

// step runs one step and logs what it did.
func (r *run) step(ctx workflow.Context, s *definition.Step) error {
	r.state = StepState{StepID: s.ID, Type: string(s.Type), Since: workflow.Now(ctx)}
	switch s.Type {
	case definition.TypeDelay:
		r.log(ctx, s, "waiting", map[string]any{"duration": s.Delay.Duration.String()})
		if err := workflow.Sleep(ctx, s.Delay.Duration.Std()); err != nil {
			return err
		}
		r.log(ctx, s, "done", nil)
		return nil
	case definition.TypeWaitForEvent:
		return r.wait(ctx, s)
	case definition.TypeBranch:
		var res activities.ConditionResult
		err := r.book(ctx, a.EvaluateCondition, activities.ConditionInput{Scope: r.scope, Expr: s.Branch.Condition}, &res)
		if err != nil {
			return err
		}
		branch, next := "no", s.Branch.No
		if res.Value {
			branch, next = "yes", s.Branch.Yes
		}
		detail := map[string]any{"branch": branch}
		if res.Error != "" {
			detail["error"] = res.Error
		}
		r.log(ctx, s, branch, detail)
		return r.steps(ctx, next)
	case definition.TypeWebhook:
		var res activities.WebhookResult
		return r.act(ctx, s, a.SendWebhook, activities.WebhookInput{Scope: r.scope, StepID: s.ID, Step: *s.Webhook}, &res)
	case definition.TypeSendEmail:
		var res activities.EmailResult
		return r.act(ctx, s, a.SendEmail, activities.EmailInput{Scope: r.scope, StepID: s.ID, Step: *s.SendEmail}, &res)
	case definition.TypeUpdateContact:
		var res activities.UpdateContactResult
		return r.act(ctx, s, a.UpdateContact, activities.UpdateContactInput{Scope: r.scope, StepID: s.ID, Step: *s.UpdateContact}, &res)
	case definition.TypeEmitEvent:
		var res activities.EmitEventResult
		return r.act(ctx, s, a.EmitEvent, activities.EmitEventInput{Scope: r.scope, StepID: s.ID, Step: *s.EmitEvent}, &res)
	}
	return temporal.NewNonRetryableApplicationError(fmt.Sprintf("step %s: unknown type %q", s.ID, s.Type), "InvalidDefinition", nil)
}

// act runs an action activity with the action retry policy and logs its
// result.
func (r *run) act(ctx workflow.Context, s *definition.Step, fn, in, out any) error {
	err := workflow.ExecuteActivity(workflow.WithActivityOptions(ctx, actions), fn, in).Get(ctx, out)
	if err != nil {
		if !temporal.IsCanceledError(err) {
			r.log(ctx, s, "failed", map[string]any{"error": failureReason(err)})
		}
		return err
	}
	r.log(ctx, s, "done", out)
	return nil
}

// wait runs a wait_for_event step: register the wait (which looks back for
// an event that arrived since the step began), then take the first matching
// signal or the timeout.
func (r *run) wait(ctx workflow.Context, s *definition.Step) error {
	w := s.WaitForEvent
	began := workflow.Now(ctx)
	r.state.Waiting = w.Event
	in := activities.WaitInput{Scope: r.scope, StepID: s.ID, Event: w.Event, Condition: w.Condition,
		BeganAt: began, ExpiresAt: began.Add(w.Timeout.Std())}
	var reg activities.WaitResult
	if err := r.book(ctx, a.RegisterWait, in, &reg); err != nil {
		return err
	}
	got := reg.Event
	if got == nil {
		// Logged once the wait is in the index, so "waiting" means an event
		// recorded from now on resumes it through the record path.
		r.log(ctx, s, "waiting", map[string]any{"event": w.Event, "timeout": w.Timeout.String()})
		tctx, cancelTimer := workflow.WithCancel(ctx)
		// The wait is timed from when the step began, as the index row's
		// expires_at is, not from after registration.
		timer := workflow.NewTimer(tctx, max(in.ExpiresAt.Sub(workflow.Now(ctx)), time.Millisecond))
		timedOut := false
		for got == nil && !timedOut {
			sel := workflow.NewSelector(ctx)
			sel.AddReceive(r.signals, func(c workflow.ReceiveChannel, _ bool) {
				var sig EventSignalInput
				c.Receive(ctx, &sig)
				if sig.StepID == s.ID && !r.seen[sig.Event.ID] {
					r.seen[sig.Event.ID] = true
					got = &sig.Event
				}
			})
			sel.AddFuture(timer, func(f workflow.Future) {
				if err := f.Get(ctx, nil); err == nil {
					timedOut = true
				}
			})
			sel.Select(ctx)
			if err := ctx.Err(); err != nil {
				cancelTimer()
				return err
			}
		}
		cancelTimer()
		// Drop the wait from the index; an event may have claimed it in the
		// instant the timer fired, in which case it still resumes the wait.
		var cleared activities.WaitResult
		if err := r.book(ctx, a.ClearWait, in, &cleared); err != nil {
			return err
		}
		if got == nil {
			got = cleared.Event
		}
	}
	if got == nil {
		r.log(ctx, s, "no", map[string]any{"branch": "no", "reason": "timeout"})
		return r.steps(ctx, w.No)
	}
	r.seen[got.ID] = true
	r.log(ctx, s, "yes", map[string]any{"branch": "yes", "event_id": got.ID})
	return r.steps(ctx, w.Yes)
}

// book runs a bookkeeping activity, a quick write or read of the
// enrollment's own records, as a local activity in the worker that runs the
// workflow: no task round trip through the server for each.
func (r *run) book(ctx workflow.Context, fn, in, out any) error {
	return workflow.ExecuteLocalActivity(workflow.WithLocalActivityOptions(ctx, localBookkeeping), fn, in).Get(ctx, out)
}

// log appends a line to the enrollment's step log.
func (r *run) log(ctx workflow.Context, s *definition.Step, outcome string, detail any) {
	r.seq++
	raw, _ := json.Marshal(detail)
	if string(raw) == "null" {
		raw = nil
	}
	// The log is bookkeeping: a failure to write it must not fail the
	// enrollment, and retries make it durable in practice.
	_ = r.book(ctx, a.RecordStep, activities.RecordStepInput{
		EnrollmentID: r.in.EnrollmentID, Seq: r.seq, StepID: s.ID, Type: string(s.Type), Outcome: outcome, Detail: raw,
	}, nil)
}

// drain empties the signal channel: signals left unread when a workflow
// ends are lost, and these are stale by now (for waits already resolved).
func (r *run) drain(ctx workflow.Context) {
	for {
		var sig EventSignalInput
		if !r.signals.ReceiveAsync(&sig) {
			return
		}
		workflow.GetLogger(ctx).Info("dropping stale event signal", "event_id", sig.Event.ID, "step_id", sig.StepID)
	}
}

func failureReason(err error) string {
	var app *temporal.ApplicationError
	if errors.As(err, &app) {
		return app.Error()
	}
	return err.Error()
}
