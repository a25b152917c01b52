package workflows_test

import (
	"context"
	"testing"

	"github.com/stretchr/testify/mock"
	"github.com/stretchr/testify/require"

	"github.com/signalbox/signalbox/activities"
	"github.com/signalbox/signalbox/workflows"
)

// bookAs makes the action mocks do their bookkeeping as the real
// activities do: the line goes into the harness's log, and a finish
// answers status. A nil *activities.Booked (the activity could not write)
// is what failing does.
func (h *harness) bookAs(status string, failing bool) func(*activities.Bookkeeping) *activities.Booked {
	return func(b *activities.Bookkeeping) *activities.Booked {
		if b == nil || failing {
			return nil
		}
		h.mu.Lock()
		h.lines = append(h.lines, line{RecordStepInput: activities.RecordStepInput{EnrollmentID: b.EnrollmentID, Seq: b.Seq,
			StepID: b.StepID, Type: b.Type, Outcome: "done"}, At: h.env.Now()})
		h.mu.Unlock()
		if b.Finish {
			return &activities.Booked{Status: status}
		}
		return &activities.Booked{}
	}
}

// mockActions answers every action step, booking with book.
func (h *harness) mockActions(book func(*activities.Bookkeeping) *activities.Booked) {
	h.env.OnActivity(a.SendWebhook, mock.Anything, mock.Anything).Return(
		func(_ context.Context, in activities.WebhookInput) (activities.WebhookResult, error) {
			res := activities.WebhookResult{Status: 204, WebhookID: "msg_1"}
			res.Booked = book(in.Book)
			return res, nil
		})
	h.env.OnActivity(a.UpdateContact, mock.Anything, mock.Anything).Return(
		func(_ context.Context, in activities.UpdateContactInput) (activities.UpdateContactResult, error) {
			res := activities.UpdateContactResult{Properties: map[string]any{"stage": "welcomed"}}
			res.Booked = book(in.Book)
			return res, nil
		})
	h.env.OnActivity(a.EmitEvent, mock.Anything, mock.Anything).Return(
		func(_ context.Context, in activities.EmitEventInput) (activities.EmitEventResult, error) {
			res := activities.EmitEventResult{EventID: "e-1"}
			res.Booked = book(in.Book)
			return res, nil
		})
	h.env.OnActivity(a.EvaluateCondition, mock.Anything, mock.Anything).Return(activities.ConditionResult{Value: true}, nil)
}

const bookedSteps = `[
	{"id": "hook", "type": "webhook", "url": "https://crm.example/hooks"},
	{"id": "pause", "type": "delay", "duration": "1h"},
	{"id": "is_pro", "type": "branch", "condition": "true",
	 "yes": [{"id": "tag", "type": "update_contact", "properties": {"stage": "'welcomed'"}}],
	 "no": []},
	{"id": "last", "type": "branch", "condition": "true",
	 "yes": [{"id": "tag_again", "type": "update_contact", "properties": {"stage": "'welcomed'"}},
	         {"id": "emit", "type": "emit_event", "name": "onboarding.finished"}],
	 "no": []}
]`

var bookedTypes = map[string]string{"hook": "webhook", "pause": "delay", "is_pro": "branch", "tag": "update_contact",
	"last": "branch", "tag_again": "update_contact", "emit": "emit_event"}

// TestActionsDoTheirBookkeeping runs EnrollmentWorkflow: each action's
// activity writes the step's line itself, with the seq the workflow gives
// it, and the last one, nested in a branch, ends the enrollment, with the
// status it reports (exited: an exit event was recorded first). No
// RecordStep follows an action and no FinishEnrollment runs.
func TestActionsDoTheirBookkeeping(t *testing.T) {
	t.Parallel()
	h := newHarness(t)
	h.mockActions(h.bookAs("exited", false))
	h.run(bookedSteps)

	require.NoError(t, h.env.GetWorkflowError())
	var res workflows.EnrollmentResult
	require.NoError(t, h.env.GetWorkflowResult(&res))
	require.Equal(t, workflows.EnrollmentResult{Status: "exited", Steps: 8}, res)
	require.Equal(t, []string{"hook done", "pause waiting", "pause done", "is_pro yes", "tag done", "last yes",
		"tag_again done", "emit done"}, h.outcomes(bookedTypes))
	require.Equal(t, []string{"SendWebhook", "RecordStep", "RecordStep", "EvaluateCondition", "RecordStep",
		"UpdateContact", "EvaluateCondition", "RecordStep", "UpdateContact", "EmitEvent"}, h.callNames())
	require.Empty(t, h.finish)

	finishes := map[string]bool{}
	for _, name := range []string{"SendWebhook", "UpdateContact", "EmitEvent"} {
		for _, b := range bookOf(h, name) {
			require.NotNil(t, b, name)
			require.Equal(t, testEnrollment, b.EnrollmentID)
			require.Equal(t, bookedTypes[b.StepID], b.Type)
			finishes[b.StepID] = b.Finish
		}
	}
	require.Equal(t, map[string]bool{"hook": false, "tag": false, "tag_again": false, "emit": true}, finishes)
}

// TestActionBookkeepingFallsBack runs EnrollmentWorkflow with activities
// that could not write their bookkeeping: the workflow writes each line
// and the end itself, as EnrollmentV1Workflow does.
func TestActionBookkeepingFallsBack(t *testing.T) {
	t.Parallel()
	h := newHarness(t)
	h.mockActions(h.bookAs("completed", true))
	h.run(bookedSteps)

	res := h.completed()
	require.Equal(t, 8, res.Steps)
	require.Equal(t, []string{"hook done", "pause waiting", "pause done", "is_pro yes", "tag done", "last yes",
		"tag_again done", "emit done"}, h.outcomes(bookedTypes))
	require.Equal(t, map[string]any{"status": float64(204), "webhook_id": "msg_1"}, h.line("hook", "done").detail(t),
		"the line the workflow writes shows the result without the bookkeeping")
}

// TestEnrollmentV1AsksNoBookkeeping runs the EnrollmentV1Workflow type, as
// enrollments started before EnrollmentWorkflow still do: no action is
// asked to book, the workflow writes every line and the end itself.
func TestEnrollmentV1AsksNoBookkeeping(t *testing.T) {
	t.Parallel()
	h := newHarness(t)
	h.mockActions(h.bookAs("exited", false))
	h.env.ExecuteWorkflow(workflows.EnrollmentV1Workflow, enrollmentInput(t, bookedSteps))

	res := h.completed()
	require.Equal(t, 8, res.Steps)
	require.Equal(t, []string{"hook done", "pause waiting", "pause done", "is_pro yes", "tag done", "last yes",
		"tag_again done", "emit done"}, h.outcomes(bookedTypes))
	for _, name := range []string{"SendWebhook", "UpdateContact", "EmitEvent"} {
		for _, b := range bookOf(h, name) {
			require.Nil(t, b, name)
		}
	}
}

// bookOf returns the Bookkeeping each attempt of an action was asked for.
func bookOf(h *harness, name string) []*activities.Bookkeeping {
	var out []*activities.Bookkeeping
	switch name {
	case "SendWebhook":
		for _, in := range inputs[activities.WebhookInput](h, name) {
			out = append(out, in.Book)
		}
	case "UpdateContact":
		for _, in := range inputs[activities.UpdateContactInput](h, name) {
			out = append(out, in.Book)
		}
	case "EmitEvent":
		for _, in := range inputs[activities.EmitEventInput](h, name) {
			out = append(out, in.Book)
		}
	}
	return out
}
