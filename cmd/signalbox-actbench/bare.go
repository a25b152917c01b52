package main

import (
	"context"
	"encoding/json"
	"time"

	"github.com/google/uuid"
	"go.temporal.io/sdk/workflow"

	"github.com/signalbox/signalbox/activities"
	"github.com/signalbox/signalbox/definition"
	"github.com/signalbox/signalbox/event"
	"github.com/signalbox/signalbox/workflows"
)

// The baseline: what an application would run with the bare SDK to get the
// same effect as a one-step enrollment, and as a wait-then-step enrollment.
// Its activities do nothing, so the baseline measures the Temporal server
// and the SDK alone.

// Names of the baseline's workflows, activities and signal.
const (
	bareStepWorkflow   = "BareStep"
	bareWaitWorkflow   = "BareWait"
	bareShapedWorkflow = "BareShaped"
	bareStep           = "BareStepActivity"
	bareRegister       = "BareRegisterActivity"
	bareShapedStep     = "BareShapedStepActivity"
	bareSignal         = "event"
	bareQueue          = "actbench-bare"
)

// bareInput is the input of both baseline workflows.
type bareInput struct {
	Key string `json:"key"`
}

// bareActivityOptions are the action options of an enrollment's step
// (workflows.actions): a minute per attempt.
var bareActivityOptions = workflow.ActivityOptions{StartToCloseTimeout: time.Minute}

// bareStepFlow runs one activity that does nothing, then completes: the
// smallest workflow that does what a one-step enrollment does for the
// contact (run its step once). It drains the start signal first, as
// workflows must.
func bareStepFlow(ctx workflow.Context, in bareInput) error {
	ctx = workflow.WithActivityOptions(ctx, bareActivityOptions)
	if err := workflow.ExecuteActivity(ctx, bareStep, in).Get(ctx, nil); err != nil {
		return err
	}
	var s bareInput
	for workflow.GetSignalChannel(ctx, bareSignal).ReceiveAsync(&s) {
	}
	return nil
}

// bareWaitFlow runs an activity (where an enrollment registers its wait),
// waits for a signal or an hour, then runs the step's activity: the bare
// form of wait_for_event then update_contact.
func bareWaitFlow(ctx workflow.Context, in bareInput) error {
	ctx = workflow.WithActivityOptions(ctx, bareActivityOptions)
	if err := workflow.ExecuteActivity(ctx, bareRegister, in).Get(ctx, nil); err != nil {
		return err
	}
	tctx, cancel := workflow.WithCancel(ctx)
	defer cancel()
	got := false
	sel := workflow.NewSelector(ctx)
	sel.AddReceive(workflow.GetSignalChannel(ctx, bareSignal), func(c workflow.ReceiveChannel, _ bool) {
		var s bareInput
		c.Receive(ctx, &s)
		got = true
	})
	sel.AddFuture(workflow.NewTimer(tctx, time.Hour), func(workflow.Future) {})
	sel.Select(ctx)
	cancel()
	if !got {
		return nil
	}
	return workflow.ExecuteActivity(ctx, bareStep, in).Get(ctx, nil)
}

// bareShapedFlow has an enrollment's shape in Temporal without any of its
// work: the input of a one-step enrollment, the step as one activity with
// the step's input and result (whose activity, for the enrollment's last
// step, also writes its log line and ends it), and the enrollment's
// result; the dispatcher's start options and search attributes. Its
// history has the enrollment's events and about its bytes. Set beside the
// start phase's Signalbox figure it splits what the enrollment's shape
// costs Temporal from what Signalbox's own plumbing costs (HTTP, record
// path, outbox, dispatcher, the activities' database work).
func bareShapedFlow(ctx workflow.Context, in workflows.EnrollmentInput) (workflows.EnrollmentResult, error) {
	ctx = workflow.WithActivityOptions(ctx, bareActivityOptions)
	step := in.Definition.Steps[0]
	act := activities.UpdateContactInput{Scope: activities.Scope{WorkspaceID: in.WorkspaceID, EnrollmentID: in.EnrollmentID,
		ContactID: in.ContactID, WorkflowID: workflow.GetInfo(ctx).WorkflowExecution.ID, Trigger: in.Trigger},
		StepID: step.ID, Step: *step.UpdateContact, Book: &activities.Bookkeeping{EnrollmentID: in.EnrollmentID,
			Seq: 1, StepID: step.ID, Type: string(step.Type), Finish: true}}
	var res activities.UpdateContactResult
	if err := workflow.ExecuteActivity(ctx, bareShapedStep, act).Get(ctx, &res); err != nil {
		return workflows.EnrollmentResult{}, err
	}
	return workflows.EnrollmentResult{Status: res.Booked.Status, Steps: 1}, nil
}

// bareShapedStepActivity answers as update_contact does, doing nothing.
func bareShapedStepActivity(_ context.Context, in activities.UpdateContactInput) (activities.UpdateContactResult, error) {
	props := map[string]any{}
	for k := range in.Step.Properties {
		props[k] = "true"
	}
	res := activities.UpdateContactResult{Properties: props}
	res.Booked = &activities.Booked{Status: "completed"}
	return res, nil
}

// bareShapedInput is the input the dispatcher would give an enrollment of
// the start phase's automation, with fresh ids.
func bareShapedInput(def *definition.Automation) workflows.EnrollmentInput {
	return workflows.EnrollmentInput{EnrollmentID: uuid.New(), WorkspaceID: uuid.New(),
		AutomationID: uuid.New(), Version: 1, ContactID: uuid.New(), Definition: *def,
		Trigger: event.Event{ID: uuid.New(), Name: startEvent, Properties: json.RawMessage(`{}`),
			OccurredAt: time.Now().UTC()}}
}

// bareNoop is every baseline activity: it does nothing.
func bareNoop(context.Context, bareInput) error { return nil }

// bareActivityNames are the names bareNoop is registered under.
var bareActivityNames = []string{bareStep, bareRegister}
