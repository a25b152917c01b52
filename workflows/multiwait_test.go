package workflows_test

import (
	"encoding/json"
	"testing"
	"time"

	"github.com/stretchr/testify/mock"
	"github.com/stretchr/testify/require"
	"go.temporal.io/sdk/temporal"
	"go.temporal.io/sdk/workflow"

	"github.com/signalbox/signalbox/activities"
	"github.com/signalbox/signalbox/event"
	"github.com/signalbox/signalbox/workflows"
)

// multiSteps wait for both an order's payment and its shipment (or, with
// mode any, either), then post both; a wait on one event follows.
func multiSteps(mode string) string {
	return `[
  {"id": "both", "type": "wait_for_event", "events": ["order.paid", "order.shipped"], "mode": "` + mode + `", "timeout": "2d",
   "yes": [{"id": "post", "type": "webhook", "url": "https://hooks.example.com/x",
            "body": {"amount": "events[\"order.paid\"].properties.amount"}}],
   "no":  [{"id": "nudge", "type": "emit_event", "name": "nudged"}]},
  {"id": "after", "type": "wait_for_event", "event": "review.submitted", "timeout": "1h"}
]`
}

// awaited is a test event of one of the awaited names, received d after
// the start.
func awaited(name string, d time.Duration) event.Event {
	return event.Event{ID: evID(name), Name: name, Properties: json.RawMessage(`{"amount":80}`),
		OccurredAt: testStart.Add(d), ReceivedAt: testStart.Add(d)}
}

// mockMultiWait mocks the wait activities (the one-event wait after it
// times out) and the path actions.
func (h *harness) mockMultiWait(registered, cleared activities.WaitResult) {
	h.env.OnActivity(a.RegisterWait, mock.Anything, mock.MatchedBy(func(in activities.WaitInput) bool {
		return in.StepID == "both"
	})).Return(registered, nil)
	h.env.OnActivity(a.ClearWait, mock.Anything, mock.MatchedBy(func(in activities.WaitInput) bool {
		return in.StepID == "both"
	})).Return(cleared, nil)
	h.env.OnActivity(a.RegisterWait, mock.Anything, mock.Anything).Return(activities.WaitResult{}, nil)
	h.env.OnActivity(a.ClearWait, mock.Anything, mock.Anything).Return(activities.WaitResult{}, nil)
	h.env.OnActivity(a.SendWebhook, mock.Anything, mock.Anything).Return(activities.WebhookResult{Status: 200}, nil)
	h.env.OnActivity(a.EmitEvent, mock.Anything, mock.Anything).Return(activities.EmitEventResult{}, nil)
}

func TestEnrollmentMultiWaitAnySignal(t *testing.T) {
	t.Parallel()
	h := newHarness(t)
	h.mockMultiWait(activities.WaitResult{}, activities.WaitResult{})
	shipped := awaited("order.shipped", 2*time.Hour)
	h.env.RegisterDelayedCallback(func() {
		h.env.SignalWorkflow(workflows.EventSignal, workflows.EventSignalInput{EnrollmentID: testEnrollment, StepID: "both",
			Event: shipped, Events: []event.Event{shipped}})
	}, 2*time.Hour)

	h.run(multiSteps("any"))

	h.completed()
	require.Equal(t, []string{"both waiting", "both yes", "post done", "after waiting", "after no"}, h.outcomes(nil))
	require.Equal(t, map[string]any{"events": []any{"order.paid", "order.shipped"}, "mode": "any", "timeout": "2d",
		"from": "2026-03-02T09:00:00Z", "until": "2026-03-04T09:00:00Z", "matched": map[string]any{}},
		h.line("both", "waiting").detail(t))
	require.Equal(t, map[string]any{"branch": "yes", "event_id": shipped.ID.String(),
		"events": map[string]any{"order.shipped": shipped.ID.String()}}, h.line("both", "yes").detail(t))

	regs := inputs[activities.WaitInput](h, "RegisterWait")
	require.Len(t, regs, 2)
	require.Equal(t, []string{"order.paid", "order.shipped"}, regs[0].Events)
	require.Equal(t, "any", regs[0].Mode)
	require.Empty(t, regs[0].Event)
	// The yes steps see the matched event as events; the wait after the
	// step does not, and its window opens at the event.
	hooks := inputs[activities.WebhookInput](h, "SendWebhook")
	require.Equal(t, map[string]event.Event{"order.shipped": shipped}, hooks[0].Scope.Events)
	require.Nil(t, regs[1].Scope.Events)
	require.True(t, regs[1].BeganAt.Equal(shipped.ReceivedAt))
	require.Equal(t, shipped.ID, regs[1].After)
}

// TestEnrollmentMultiWaitAllLookBack: the registration finds both events
// (recorded before the workflow reached the step); the next window opens at
// the later of them, whichever completed the wait.
func TestEnrollmentMultiWaitAllLookBack(t *testing.T) {
	t.Parallel()
	h := newHarness(t)
	paid, shipped := awaited("order.paid", 3*time.Minute), awaited("order.shipped", time.Minute)
	h.mockMultiWait(activities.WaitResult{Event: &shipped, Events: []event.Event{paid, shipped}}, activities.WaitResult{})

	h.run(multiSteps("all"))

	h.completed()
	require.Equal(t, []string{"both yes", "post done", "after waiting", "after no"}, h.outcomes(nil))
	hooks := inputs[activities.WebhookInput](h, "SendWebhook")
	require.Equal(t, map[string]event.Event{"order.paid": paid, "order.shipped": shipped}, hooks[0].Scope.Events)
	regs := inputs[activities.WaitInput](h, "RegisterWait")
	require.Equal(t, "all", regs[0].Mode)
	require.True(t, regs[1].BeganAt.Equal(paid.ReceivedAt), "the later event")
	require.Equal(t, paid.ID, regs[1].After)
}

// TestEnrollmentMultiWaitAllTimesOut: one of two events matched when the
// timer fires: no, with what it had matched; the next window opens at the
// timeout.
func TestEnrollmentMultiWaitAllTimesOut(t *testing.T) {
	t.Parallel()
	h := newHarness(t)
	paid := awaited("order.paid", time.Hour)
	h.mockMultiWait(activities.WaitResult{Events: []event.Event{paid}}, activities.WaitResult{Events: []event.Event{paid}})

	h.run(multiSteps("all"))

	h.completed()
	require.Equal(t, []string{"both waiting", "both no", "nudge done", "after waiting", "after no"}, h.outcomes(nil))
	require.Equal(t, map[string]any{"branch": "no", "reason": "timeout",
		"matched": map[string]any{"order.paid": paid.ID.String()}}, h.line("both", "no").detail(t))
	require.Equal(t, 48*time.Hour+time.Hour, h.elapsed())
	clears := inputs[activities.WaitInput](h, "ClearWait")
	require.Equal(t, []string{"order.paid", "order.shipped"}, clears[0].Events)
	regs := inputs[activities.WaitInput](h, "RegisterWait")
	require.True(t, regs[1].BeganAt.Equal(testStart.Add(48*time.Hour)))
}

// TestEnrollmentMultiWaitNeedsItsChange: replaying a history without the
// change's marker at such a step cannot happen; if it did, the enrollment
// fails instead of guessing.
func TestEnrollmentMultiWaitNeedsItsChange(t *testing.T) {
	t.Parallel()
	h := newHarness(t)
	h.mockMultiWait(activities.WaitResult{}, activities.WaitResult{})
	h.env.OnGetVersion(workflows.MultiEventWaitsChange, workflow.DefaultVersion, 1).Return(workflow.DefaultVersion)

	h.env.ExecuteWorkflow(workflows.EnrollmentWorkflow, enrollmentInput(t, multiSteps("all")))

	var app *temporal.ApplicationError
	require.ErrorAs(t, h.env.GetWorkflowError(), &app)
	require.Equal(t, "InvalidDefinition", app.Type())
	require.Equal(t, "failed", h.finished().Status)
}
