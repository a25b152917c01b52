package main

import (
	"context"
	"time"

	"go.temporal.io/sdk/workflow"
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
	bareLog            = "BareLogActivity"
	bareFinish         = "BareFinishActivity"
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

// bareShapedFlow has the shape of a one-step enrollment in Temporal: three
// activities in turn where the enrollment runs its step, logs it and
// records its end. It does none of the work, so set beside the start
// phase's Signalbox figure it shows what the enrollment's plumbing (HTTP,
// record path, outbox, dispatcher, the activities' database work) costs
// apart from its shape.
func bareShapedFlow(ctx workflow.Context, in bareInput) error {
	ctx = workflow.WithActivityOptions(ctx, bareActivityOptions)
	for _, name := range []string{bareStep, bareLog, bareFinish} {
		if err := workflow.ExecuteActivity(ctx, name, in).Get(ctx, nil); err != nil {
			return err
		}
	}
	return nil
}

// bareNoop is every baseline activity: it does nothing.
func bareNoop(context.Context, bareInput) error { return nil }

// bareActivityNames are the names bareNoop is registered under.
var bareActivityNames = []string{bareStep, bareRegister, bareLog, bareFinish}
