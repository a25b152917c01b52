// Package workflows is the deterministic interpreter of automations: one
// Temporal workflow per enrollment walks the definition snapshotted when the
// enrollment started, calling activities for every side effect. Names,
// signals, queries and workflow-ID builders live here beside the workflow.
package workflows

import (
	"encoding/json"
	"errors"
	"fmt"
	"reflect"
	"runtime"
	"strings"
	"time"

	"github.com/google/uuid"
	"go.temporal.io/sdk/temporal"
	"go.temporal.io/sdk/workflow"

	"github.com/signalbox/signalbox/activities"
	"github.com/signalbox/signalbox/definition"
	"github.com/signalbox/signalbox/event"
	"github.com/signalbox/signalbox/intent"
)

// Names that clients and workers share.
const (
	// TaskQueue is the one queue every worker polls.
	TaskQueue = "signalbox-enrollments"
	// EnrollmentWorkflow is the workflow type enrollments start as.
	EnrollmentWorkflow = "EnrollmentV2"
	// EnrollmentV1Workflow is the type enrollments started before
	// EnrollmentWorkflow ran as. Workers keep running it for those still
	// running (a delay or wait can last a year); it writes every step's
	// log line and the enrollment's end with local activities of its own,
	// where EnrollmentWorkflow asks an action step's activity to do both
	// (activities.Bookkeeping). A new workflow type rather than a
	// workflow.GetVersion gate, which would cost every new enrollment a
	// marker and a search attribute upsert.
	EnrollmentV1Workflow = "Enrollment"
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
func WorkflowID(enrollmentID string) string { return intent.WorkflowIDPrefix + enrollmentID }

// EnrollmentInput is everything an enrollment needs, fixed when it starts:
// the outbox's start intent itself.
type EnrollmentInput = intent.Start

// EnrollmentResult is how an enrollment ended.
type EnrollmentResult struct {
	Status string `json:"status"`
	// Steps counts the lines the enrollment wrote to its step log.
	Steps int `json:"steps"`
}

// EventSignalInput is the payload of EventSignal: the outbox's signal
// intent itself.
type EventSignalInput = intent.Signal

// StepState answers CurrentStepQuery.
type StepState struct {
	StepID string    `json:"step_id"`
	Type   string    `json:"type"`
	Since  time.Time `json:"since"`
	// Waiting names the awaited event on a wait_for_event step (the
	// names, joined by ", ", on a wait on several events).
	Waiting string `json:"waiting,omitempty"`
}

// Behaviour changes to this workflow go behind workflow.GetVersion with a
// change id declared here, and a history recorded with the new code joins
// testdata/histories, where every saved history must keep replaying.

// WaitWindowsChange is the change that put delays and waits on the
// enrollment's logical clock (see run.opened): version 1 opens a wait's
// window where the enrollment logically reached the step and lets
// PostgreSQL's clock decide its timeout; DefaultVersion (enrollments that
// reached their first delay or wait on earlier code) opens it when the
// workflow ran the step. The gate is taken at the first delay or wait, so
// an enrollment without either pays nothing for it.
const WaitWindowsChange = "wait-windows"

// BookkeepingFailureChange is the change that logs a step whose
// bookkeeping failed for good (retries bounded by Config.BookkeepingLimit,
// or a permanent error) as "failed" before the enrollment ends failed.
// The gate is taken only when that happens.
const BookkeepingFailureChange = "bookkeeping-failure"

// a is only used for its method values: the SDK takes activity names from
// them, and the worker registers the real instance.
var a *activities.Activities

// run is the state of one enrollment's interpretation.
type run struct {
	cfg     Config
	in      EnrollmentInput
	scope   activities.Scope
	signals workflow.ReceiveChannel
	seen    map[uuid.UUID]bool
	seq     int
	state   StepState
	// version is WaitWindowsChange's version, read at the first delay or
	// wait; -2 until then.
	version workflow.Version
	// opened and after are the enrollment's logical clock, on PostgreSQL's
	// time: where it reached the current step. It starts at the trigger's
	// receipt (after the trigger event itself); steps that act take no
	// logical time, a delay moves it on by its duration, and a wait to the
	// receipt of the event that resumed it (after that event) or to its
	// timeout. A wait's window opens there, whenever the workflow itself
	// gets to run the step.
	opened time.Time
	after  uuid.UUID
	// fold says the action steps' activities do their own bookkeeping
	// (EnrollmentWorkflow); tail says nothing follows the step running now;
	// ended is the status an action's activity ended the enrollment with.
	fold  bool
	tail  bool
	ended string
}

const versionUnread workflow.Version = -2

// logical reports whether this enrollment keeps the logical clock,
// reading the version gate on first use.
func (r *run) logical(ctx workflow.Context) bool {
	if r.version == versionUnread {
		r.version = workflow.GetVersion(ctx, WaitWindowsChange, workflow.DefaultVersion, 1)
	}
	return r.version >= 1
}

// Enrollment interprets an automation for one contact with the default
// Config. An exit event cancels it: it then records the enrollment as
// exited in a disconnected context and ends as cancelled. A step that
// fails for good ends it as failed.
func Enrollment(ctx workflow.Context, in EnrollmentInput) (EnrollmentResult, error) {
	return Config{}.Enrollment(ctx, in)
}

// Enrollment is the enrollment workflow under c, the EnrollmentWorkflow
// type. Every worker of a task queue should use the same Config.
func (c Config) Enrollment(ctx workflow.Context, in EnrollmentInput) (EnrollmentResult, error) {
	return c.enroll(ctx, in, true)
}

// EnrollmentV1 is the EnrollmentV1Workflow type under c.
func (c Config) EnrollmentV1(ctx workflow.Context, in EnrollmentInput) (EnrollmentResult, error) {
	return c.enroll(ctx, in, false)
}

// Registry is where workflows are registered: a worker, a replayer, a test
// environment.
type Registry interface {
	RegisterWorkflowWithOptions(w any, options workflow.RegisterOptions)
}

// Register registers both enrollment workflow types under c.
func (c Config) Register(r Registry) {
	r.RegisterWorkflowWithOptions(c.Enrollment, workflow.RegisterOptions{Name: EnrollmentWorkflow})
	r.RegisterWorkflowWithOptions(c.EnrollmentV1, workflow.RegisterOptions{Name: EnrollmentV1Workflow})
}

func (c Config) enroll(ctx workflow.Context, in EnrollmentInput, fold bool) (EnrollmentResult, error) {
	r := &run{
		fold: fold,
		tail: true,
		cfg:  c,
		in:   in,
		scope: activities.Scope{WorkspaceID: in.WorkspaceID, EnrollmentID: in.EnrollmentID, ContactID: in.ContactID,
			WorkflowID: workflow.GetInfo(ctx).WorkflowExecution.ID, Trigger: in.Trigger},
		signals: workflow.GetSignalChannel(ctx, EventSignal),
		seen:    map[uuid.UUID]bool{},
		version: versionUnread,
		opened:  in.Trigger.ReceivedAt,
		after:   in.Trigger.ID,
	}
	if r.opened.IsZero() {
		// Started before triggers carried their receipt: the workflow's
		// start is the closest time after it.
		r.opened, r.after = workflow.GetInfo(ctx).WorkflowStartTime, uuid.Nil
	}
	if err := workflow.SetQueryHandler(ctx, CurrentStepQuery, func() (StepState, error) { return r.state, nil }); err != nil {
		return EnrollmentResult{}, err
	}
	err := r.steps(ctx, in.Definition.Steps)
	r.drain(ctx)
	if err == nil && r.ended != "" && ctx.Err() == nil {
		// The last step's activity ended the enrollment.
		return EnrollmentResult{Status: r.ended, Steps: r.seq}, nil
	}
	var bf *bookkeepingError
	if errors.As(err, &bf) {
		err = bf.err
	}

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

// steps runs a list of steps in order; the last is the enrollment's last
// when the list is.
func (r *run) steps(ctx workflow.Context, steps []definition.Step) error {
	tail := r.tail
	defer func() { r.tail = tail }()
	for i := range steps {
		r.tail = tail && i == len(steps)-1
		if err := r.step(ctx, &steps[i]); err != nil {
			return err
		}
	}
	return nil
}

// step runs one step and logs what it did. A step whose bookkeeping
// failed for good is logged as failed, with the reason, once.
func (r *run) step(ctx workflow.Context, s *definition.Step) error {
	err := r.stepOnce(ctx, s)
	var bf *bookkeepingError
	if errors.As(err, &bf) && !bf.logged && ctx.Err() == nil &&
		workflow.GetVersion(ctx, BookkeepingFailureChange, workflow.DefaultVersion, 1) >= 1 {
		bf.logged = true
		r.log(ctx, s, "failed", map[string]any{"error": failureReason(bf.err), "activity": bf.activity})
	}
	return err
}

// bookkeepingError is a bookkeeping activity that failed for good.
type bookkeepingError struct {
	activity string
	err      error
	logged   bool
}

func (e *bookkeepingError) Error() string { return e.activity + ": " + e.err.Error() }
func (e *bookkeepingError) Unwrap() error { return e.err }

func (r *run) stepOnce(ctx workflow.Context, s *definition.Step) error {
	r.state = StepState{StepID: s.ID, Type: string(s.Type), Since: workflow.Now(ctx)}
	switch s.Type {
	case definition.TypeDelay:
		if r.logical(ctx) {
			return r.delay(ctx, s)
		}
		r.log(ctx, s, "waiting", map[string]any{"duration": s.Delay.Duration.String()})
		if err := workflow.Sleep(ctx, s.Delay.Duration.Std()); err != nil {
			return err
		}
		r.log(ctx, s, "done", nil)
		return nil
	case definition.TypeWaitForEvent:
		if s.WaitForEvent.Multi() {
			return r.multiWait(ctx, s)
		}
		if r.logical(ctx) {
			return r.waitWindow(ctx, s)
		}
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
		book := r.bookkeeping(s)
		return r.act(ctx, s, a.SendWebhook, activities.WebhookInput{Scope: r.scope, StepID: s.ID, Step: *s.Webhook, Book: book}, &res, book)
	case definition.TypeSendEmail:
		var res activities.EmailResult
		book := r.bookkeeping(s)
		return r.act(ctx, s, a.SendEmail, activities.EmailInput{Scope: r.scope, StepID: s.ID, Step: *s.SendEmail, Book: book}, &res, book)
	case definition.TypeUpdateContact:
		var res activities.UpdateContactResult
		book := r.bookkeeping(s)
		return r.act(ctx, s, a.UpdateContact, activities.UpdateContactInput{Scope: r.scope, StepID: s.ID, Step: *s.UpdateContact, Book: book}, &res, book)
	case definition.TypeEmitEvent:
		var res activities.EmitEventResult
		book := r.bookkeeping(s)
		return r.act(ctx, s, a.EmitEvent, activities.EmitEventInput{Scope: r.scope, StepID: s.ID, Step: *s.EmitEvent, Book: book}, &res, book)
	}
	return temporal.NewNonRetryableApplicationError(fmt.Sprintf("step %s: unknown type %q", s.ID, s.Type), "InvalidDefinition", nil)
}

// bookkeeping is what an action step's activity is asked to write itself:
// the step's "done" line, and the enrollment's end when nothing follows
// the step. None on EnrollmentV1Workflow.
func (r *run) bookkeeping(s *definition.Step) *activities.Bookkeeping {
	if !r.fold {
		return nil
	}
	return &activities.Bookkeeping{EnrollmentID: r.in.EnrollmentID, Seq: r.seq + 1, StepID: s.ID, Type: string(s.Type),
		Finish: r.tail}
}

// booker is an action's result, which says what bookkeeping its activity did.
type booker interface{ BookedOutcome() *activities.Booked }

// act runs an action activity with the action retry policy and logs its
// result, unless the activity did (book).
func (r *run) act(ctx workflow.Context, s *definition.Step, fn, in, out any, book *activities.Bookkeeping) error {
	err := workflow.ExecuteActivity(workflow.WithActivityOptions(ctx, actions), fn, in).Get(ctx, out)
	if err != nil {
		if !temporal.IsCanceledError(err) {
			r.log(ctx, s, "failed", map[string]any{"error": failureReason(err)})
		}
		return err
	}
	if b, ok := out.(booker); ok && book != nil {
		if done := b.BookedOutcome(); done != nil {
			r.seq++
			if book.Finish && done.Status != "" {
				r.ended = done.Status
			}
			return nil
		}
	}
	r.log(ctx, s, "done", out)
	return nil
}

// delay runs a delay step on the logical clock: it ends its duration after
// the enrollment reached it, so a workflow that runs late (Temporal was
// down) keeps the schedule instead of pushing it back.
func (r *run) delay(ctx workflow.Context, s *definition.Step) error {
	end := r.opened.Add(s.Delay.Duration.Std())
	r.log(ctx, s, "waiting", map[string]any{"duration": s.Delay.Duration.String(), "until": end})
	if err := workflow.Sleep(ctx, max(end.Sub(workflow.Now(ctx)), 0)); err != nil {
		return err
	}
	r.opened, r.after = end, uuid.Nil
	r.log(ctx, s, "done", nil)
	return nil
}

// await waits, for a wait registered and not yet resumed, for the step's
// resuming signal (with the events it matched, for a wait on several) or
// the window's end by this worker's clock; then ClearWait asks PostgreSQL's
// clock, and a window still open (this worker's clock ran ahead) is waited
// out. A nil event means the wait timed out; matched is then what a wait on
// several events had matched.
func (r *run) await(ctx workflow.Context, s *definition.Step, in activities.WaitInput) (*event.Event, []event.Event, error) {
	var (
		got     *event.Event
		matched []event.Event
	)
	tctx, cancelTimer := workflow.WithCancel(ctx)
	defer cancelTimer()
	timer := workflow.NewTimer(tctx, max(in.ExpiresAt.Sub(workflow.Now(ctx)), time.Millisecond))
	for got == nil {
		fired := false
		sel := workflow.NewSelector(ctx)
		sel.AddReceive(r.signals, func(c workflow.ReceiveChannel, _ bool) {
			var sig EventSignalInput
			c.Receive(ctx, &sig)
			if sig.StepID == s.ID && !r.seen[sig.Event.ID] {
				got, matched = &sig.Event, sig.Events
			}
		})
		sel.AddFuture(timer, func(f workflow.Future) { fired = f.Get(ctx, nil) == nil })
		sel.Select(ctx)
		if err := ctx.Err(); err != nil {
			return nil, nil, err
		}
		if !fired {
			continue
		}
		var cleared activities.WaitResult
		if err := r.book(ctx, a.ClearWait, in, &cleared); err != nil {
			return nil, nil, err
		}
		matched = cleared.Events
		if cleared.Event != nil || cleared.Remaining <= 0 {
			return cleared.Event, matched, nil
		}
		timer = workflow.NewTimer(tctx, cleared.Remaining)
	}
	return got, matched, nil
}

// waitWindow runs a wait_for_event step whose window opens on the logical
// clock and closes its timeout later. Registering the wait looks back over
// the window so far, so an event recorded before the workflow got here
// (right after the trigger, or while Temporal was down) resumes it; a
// workflow that arrives after the window closed learns its outcome at once.
// Otherwise it takes the first matching signal, or the timer; at the timer
// PostgreSQL's clock, which stamped every event, decides whether the window
// has really closed.
func (r *run) waitWindow(ctx workflow.Context, s *definition.Step) error {
	w := s.WaitForEvent
	r.state.Waiting = w.Event
	in := activities.WaitInput{Scope: r.scope, StepID: s.ID, Event: w.Event, Condition: w.Condition,
		BeganAt: r.opened, After: r.after, ExpiresAt: r.opened.Add(w.Timeout.Std()), Strict: true}
	var reg activities.WaitResult
	if err := r.book(ctx, a.RegisterWait, in, &reg); err != nil {
		return err
	}
	got, reason := reg.Event, "window closed"
	if got == nil && !reg.Closed {
		reason = "timeout"
		// Logged once the wait is in the index, so "waiting" means an event
		// recorded from now on resumes it through the record path.
		r.log(ctx, s, "waiting", map[string]any{"event": w.Event, "timeout": w.Timeout.String(),
			"from": in.BeganAt, "until": in.ExpiresAt})
		var err error
		if got, _, err = r.await(ctx, s, in); err != nil {
			return err
		}
	}
	if got == nil {
		r.opened, r.after = in.ExpiresAt, uuid.Nil
		r.log(ctx, s, "no", map[string]any{"branch": "no", "reason": reason})
		return r.steps(ctx, w.No)
	}
	r.seen[got.ID] = true
	r.opened, r.after = got.ReceivedAt, got.ID
	if r.opened.IsZero() {
		r.opened, r.after = workflow.Now(ctx), uuid.Nil
	}
	r.log(ctx, s, "yes", map[string]any{"branch": "yes", "event_id": got.ID})
	return r.steps(ctx, w.Yes)
}

// wait runs a wait_for_event step the way enrollments that reached their
// first delay or wait before WaitWindowsChange do: register the wait (which
// looks back for an event that arrived since the workflow ran the step),
// then take the first matching signal or the timeout.
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
// workflow: no task round trip through the server for each. Its retries
// are bounded; a failure for good comes back as a *bookkeepingError.
func (r *run) book(ctx workflow.Context, fn, in, out any) error {
	err := workflow.ExecuteLocalActivity(workflow.WithLocalActivityOptions(ctx, r.cfg.bookkeeping()), fn, in).Get(ctx, out)
	if err == nil || temporal.IsCanceledError(err) || ctx.Err() != nil {
		return err
	}
	return &bookkeepingError{activity: activityName(fn), err: err}
}

// activityName names an activity method value the way the SDK does.
func activityName(fn any) string {
	name := runtime.FuncForPC(reflect.ValueOf(fn).Pointer()).Name()
	name = strings.TrimSuffix(name, "-fm")
	return name[strings.LastIndexByte(name, '.')+1:]
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
