package e2e

import (
	"context"
	"fmt"
	"net/http"
	"sync"
	"testing"
	"time"

	"github.com/stretchr/testify/require"
	enumspb "go.temporal.io/api/enums/v1"
	"go.temporal.io/api/workflowservice/v1"
	"go.temporal.io/sdk/activity"
	"go.temporal.io/sdk/worker"

	"github.com/signalbox/signalbox/activities"
	"github.com/signalbox/signalbox/workflows"
)

func TestTriggersStartEnrollments(t *testing.T) {
	t.Parallel()
	s := newSystem(t, systemOptions{})
	tn := s.tenant()
	h := newHook(t)
	tn.automation(fmt.Sprintf(`{"name":"big orders",
		"trigger":{"event":"purchase.completed","condition":"event.properties.amount >= 50.0"},
		"steps":[{"id":"thanks","type":"webhook","url":%q,
		          "body":{"email":"contact.email","order":"trigger.properties.orderId"}}]}`, h.url("/thanks")))

	first := tn.event(map[string]any{"name": "purchase.completed", "email": "a@example.com", "create_if_missing": true,
		"external_id": "o-1", "properties": map[string]any{"amount": 60, "orderId": "o-1"}})
	require.EqualValues(t, 1, first["workflows_triggered"])
	// The condition does not hold; another name matches nothing.
	require.EqualValues(t, 0, tn.event(map[string]any{"name": "purchase.completed", "email": "a@example.com",
		"properties": map[string]any{"amount": 10}})["workflows_triggered"])
	require.EqualValues(t, 0, tn.event(map[string]any{"name": "page.viewed", "email": "a@example.com"})["workflows_triggered"])
	// A repeat of an external_id enrolls nobody.
	dup := tn.event(map[string]any{"name": "purchase.completed", "email": "a@example.com", "external_id": "o-1",
		"properties": map[string]any{"amount": 70, "orderId": "o-1"}})
	require.Equal(t, true, dup["duplicate"])
	require.EqualValues(t, 0, dup["workflows_triggered"])
	// Batch events trigger exactly as single ones do.
	batch := tn.call(http.StatusOK, "POST", "/v1/events/batch", map[string]any{"events": []any{
		map[string]any{"name": "purchase.completed", "email": "b@example.com", "create_if_missing": true,
			"properties": map[string]any{"amount": 99, "orderId": "o-2"}},
		map[string]any{"name": "purchase.completed", "email": "b@example.com", "properties": map[string]any{"amount": 1}},
		map[string]any{"name": "purchase.completed", "email": "c@example.com", "create_if_missing": true,
			"properties": map[string]any{"amount": 50, "orderId": "o-3"}},
	}})
	require.EqualValues(t, 2, batch["workflows_triggered"])

	list := tn.enrollments("")
	require.Len(t, list, 3)
	for _, e := range list {
		done := tn.waitEnrollment(e["id"].(string), 30*time.Second)
		require.Equal(t, "completed", done["status"])
		require.Equal(t, []string{"thanks:done"}, outcomes(done))
		require.Equal(t, workflows.WorkflowID(e["id"].(string)), e["workflow_id"])
	}
	require.EqualValues(t, 3, h.hits.Load())
	got := map[string]bool{}
	for _, b := range h.bodies {
		got[jsonText(b)] = true
	}
	require.True(t, got[`{"email":"a@example.com","order":"o-1"}`], "%v", got)

	// A disabled automation enrolls nobody new.
	id := list[0]["automation_id"].(string)
	tn.call(http.StatusOK, "POST", "/v1/automations/"+id+"/disable", nil)
	require.EqualValues(t, 0, tn.event(map[string]any{"name": "purchase.completed", "email": "a@example.com",
		"properties": map[string]any{"amount": 500}})["workflows_triggered"])
}

func TestOnceEnrollsOnlyOnceUnderConcurrency(t *testing.T) {
	t.Parallel()
	s := newSystem(t, systemOptions{})
	tn := s.tenant()
	tn.automation(`{"name":"welcome","trigger":{"event":"signed.up","frequency":"once"},
		"steps":[{"id":"hello","type":"update_contact","properties":{"welcomed":"true"}}]}`)
	tn.event(map[string]any{"name": "warmup", "email": "a@example.com", "create_if_missing": true})
	var (
		wg    sync.WaitGroup
		mu    sync.Mutex
		total int
	)
	for range 12 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			r := tn.event(map[string]any{"name": "signed.up", "email": "a@example.com"})
			mu.Lock()
			total += int(r["workflows_triggered"].(float64))
			mu.Unlock()
		}()
	}
	wg.Wait()
	require.Equal(t, 1, total)
	require.Len(t, tn.enrollments(""), 1)
	// Later events never enroll again.
	require.EqualValues(t, 0, tn.event(map[string]any{"name": "signed.up", "email": "a@example.com"})["workflows_triggered"])
}

const waitAutomation = `{"name":"review",
	"trigger":{"event":"purchase.completed"},
	"steps":[{"id":"review","type":"wait_for_event","event":"review.submitted","timeout":%q,
	          "condition":"event.properties.orderId == trigger.properties.orderId",
	          "yes":[{"id":"tag","type":"update_contact","properties":{"reviewer":"true"}}],
	          "no":[{"id":"nudge","type":"update_contact","properties":{"nudged":"true"}}]}]}`

func TestWaitForEventResumesOrTimesOut(t *testing.T) {
	t.Parallel()
	s := newSystem(t, systemOptions{})
	tn := s.tenant()
	tn.automation(fmt.Sprintf(waitAutomation, "3s"))
	tn.event(map[string]any{"name": "x", "email": "b@example.com", "create_if_missing": true})

	// Yes: the matching event of the same contact resumes the wait.
	yes := tn.event(map[string]any{"name": "purchase.completed", "email": "a@example.com", "create_if_missing": true,
		"properties": map[string]any{"orderId": "o-1"}})
	enr := tn.enrollments("contact_id=" + yes["contact_id"].(string))[0]["id"].(string)
	tn.waitStep(enr, "review", "waiting", 10*time.Second)
	// Another contact's event, and a non-matching one, do not.
	require.EqualValues(t, 0, tn.event(map[string]any{"name": "review.submitted", "email": "b@example.com",
		"properties": map[string]any{"orderId": "o-1"}})["executions_resumed"])
	require.EqualValues(t, 0, tn.event(map[string]any{"name": "review.submitted", "email": "a@example.com",
		"properties": map[string]any{"orderId": "other"}})["executions_resumed"])
	require.EqualValues(t, 1, tn.event(map[string]any{"name": "review.submitted", "email": "a@example.com",
		"properties": map[string]any{"orderId": "o-1"}})["executions_resumed"])
	// A second matching event finds nothing waiting any more.
	require.EqualValues(t, 0, tn.event(map[string]any{"name": "review.submitted", "email": "a@example.com",
		"properties": map[string]any{"orderId": "o-1"}})["executions_resumed"])
	done := tn.waitEnrollment(enr, 10*time.Second)
	require.Equal(t, "completed", done["status"])
	require.Equal(t, []string{"review:waiting", "review:yes", "tag:done"}, outcomes(done))

	// No: nothing arrives before the timeout.
	no := tn.event(map[string]any{"name": "purchase.completed", "email": "c@example.com", "create_if_missing": true,
		"properties": map[string]any{"orderId": "o-9"}})
	enr = tn.enrollments("contact_id=" + no["contact_id"].(string))[0]["id"].(string)
	done = tn.waitEnrollment(enr, 15*time.Second)
	require.Equal(t, []string{"review:waiting", "review:no", "nudge:done"}, outcomes(done))
	c := tn.call(http.StatusOK, "GET", "/v1/contacts/"+no["contact_id"].(string), nil)
	require.Equal(t, map[string]any{"nudged": true}, c["properties"])
}

// TestWaitLookBackCatchesRacingEvent sends the awaited event after the
// workflow reached the wait step but before its wait is registered: the
// registration's look-back must still take the yes path.
func TestWaitLookBackCatchesRacingEvent(t *testing.T) {
	t.Parallel()
	var tn *tenant
	var once sync.Once
	s := newSystem(t, systemOptions{register: func(w worker.Worker, a *activities.Activities) {
		// Every activity but RegisterWait as usual; RegisterWait first
		// lets the awaited event arrive, then registers.
		registerExcept(w, a, "RegisterWait")
		w.RegisterActivityWithOptions(func(ctx context.Context, in activities.WaitInput) (activities.WaitResult, error) {
			once.Do(func() {
				tn.event(map[string]any{"name": "review.submitted", "contact_id": in.Scope.ContactID,
					"properties": map[string]any{"orderId": "o-1"}})
			})
			return a.RegisterWait(ctx, in)
		}, activity.RegisterOptions{Name: "RegisterWait"})
	}})
	tn = s.tenant()
	tn.automation(fmt.Sprintf(waitAutomation, "1h"))
	r := tn.event(map[string]any{"name": "purchase.completed", "email": "a@example.com", "create_if_missing": true,
		"properties": map[string]any{"orderId": "o-1"}})
	enr := tn.enrollments("contact_id=" + r["contact_id"].(string))[0]["id"].(string)
	done := tn.waitEnrollment(enr, 20*time.Second)
	require.Equal(t, []string{"review:yes", "tag:done"}, outcomes(done))
}

func TestExitOnEndsEnrollments(t *testing.T) {
	t.Parallel()
	s := newSystem(t, systemOptions{})
	tn := s.tenant()
	tn.automation(`{"name":"trial","trigger":{"event":"trial.started"},"exit_on":["subscription.cancelled","trial.started"],
		"steps":[{"id":"pause","type":"delay","duration":"1h"},
		         {"id":"review","type":"wait_for_event","event":"never","timeout":"1h"}]}`)
	first := tn.event(map[string]any{"name": "trial.started", "email": "a@example.com", "create_if_missing": true})
	// An event never exits the enrollment it starts itself.
	require.EqualValues(t, 1, first["workflows_triggered"])
	require.EqualValues(t, 0, first["executions_exited"])
	enr := tn.enrollments("")[0]["id"].(string)
	tn.waitStep(enr, "pause", "waiting", 10*time.Second)

	// Mid-delay: the exit event ends it as exited, recording the event.
	exit := tn.event(map[string]any{"name": "subscription.cancelled", "email": "a@example.com"})
	require.EqualValues(t, 1, exit["executions_exited"])
	done := tn.waitEnrollment(enr, 15*time.Second)
	require.Equal(t, "exited", done["status"])
	require.Equal(t, exit["event_id"], done["exit_event_id"])

	// A second trial.started starts a new enrollment and exits nothing
	// active; a third exits the second's enrollment and starts another.
	second := tn.event(map[string]any{"name": "trial.started", "email": "a@example.com"})
	require.EqualValues(t, 1, second["workflows_triggered"])
	require.EqualValues(t, 0, second["executions_exited"])
	third := tn.event(map[string]any{"name": "trial.started", "email": "a@example.com"})
	require.EqualValues(t, 1, third["workflows_triggered"])
	require.EqualValues(t, 1, third["executions_exited"])

	// Mid-wait, with an automation that waits at once.
	waiter := tn.automation(`{"name":"waiter","trigger":{"event":"cart.abandoned"},"exit_on":["order.placed"],
		"steps":[{"id":"w","type":"wait_for_event","event":"never","timeout":"1h"}]}`)
	tn.event(map[string]any{"name": "cart.abandoned", "email": "b@example.com", "create_if_missing": true})
	waiting := tn.enrollments("automation_id=" + waiter)
	require.Len(t, waiting, 1)
	wid := waiting[0]["id"].(string)
	tn.waitStep(wid, "w", "waiting", 10*time.Second)
	ex := tn.event(map[string]any{"name": "order.placed", "email": "b@example.com"})
	require.EqualValues(t, 1, ex["executions_exited"])
	require.Equal(t, "exited", tn.waitEnrollment(wid, 15*time.Second)["status"])
	// Another contact's exit event touches nobody else.
	require.EqualValues(t, 0, tn.event(map[string]any{"name": "subscription.cancelled", "email": "b@example.com"})["executions_exited"])
}

func TestFailedActionFailsEnrollment(t *testing.T) {
	t.Parallel()
	s := newSystem(t, systemOptions{})
	tn := s.tenant()
	h := newHook(t)
	h.status.Store(http.StatusBadRequest)
	tn.automation(fmt.Sprintf(`{"name":"hook","trigger":{"event":"x"},
		"steps":[{"id":"call","type":"webhook","url":%q},{"id":"after","type":"update_contact","properties":{"a":"1"}}]}`,
		h.url("/")))
	tn.event(map[string]any{"name": "x", "email": "a@example.com", "create_if_missing": true})
	done := tn.waitEnrollment(tn.enrollments("")[0]["id"].(string), 20*time.Second)
	require.Equal(t, "failed", done["status"])
	require.Contains(t, done["reason"], "400")
	require.Equal(t, []string{"call:failed"}, outcomes(done))
	require.EqualValues(t, 1, h.hits.Load(), "a 4xx is not retried")
}

func TestEmitEventChainsAndStopsLoops(t *testing.T) {
	t.Parallel()
	s := newSystem(t, systemOptions{})
	tn := s.tenant()
	tn.automation(`{"name":"ping","trigger":{"event":"ping"},
		"steps":[{"id":"p","type":"emit_event","name":"pong","properties":{"n":"has(trigger.properties.n) ? trigger.properties.n + 1.0 : 1.0"}}]}`)
	tn.automation(`{"name":"pong","trigger":{"event":"pong"},
		"steps":[{"id":"q","type":"emit_event","name":"ping","properties":{"n":"trigger.properties.n + 1.0"}}]}`)
	tn.event(map[string]any{"name": "ping", "email": "a@example.com", "create_if_missing": true})
	// Depth 0 (ping) .. depth MaxEmitDepth-1 each start one enrollment;
	// the event at MaxEmitDepth is recorded but triggers nothing.
	require.Eventually(t, func() bool {
		events := tn.call(http.StatusOK, "GET", "/v1/events?limit=100", nil)["data"].([]any)
		return len(events) == 6
	}, 30*time.Second, 100*time.Millisecond, "events: %v\nenrollments: %v",
		tn.call(http.StatusOK, "GET", "/v1/events?limit=100", nil), tn.enrollments(""))
	all := tn.enrollments("")
	require.Len(t, all, 5)
	for _, e := range all {
		require.Equal(t, "completed", tn.waitEnrollment(e["id"].(string), 20*time.Second)["status"])
	}
	require.Len(t, tn.call(http.StatusOK, "GET", "/v1/events?limit=100", nil)["data"], 6)
}

// TestExitMidRetry ends an enrollment whose webhook is failing and being
// retried: the exit cancels the retries.
func TestExitMidRetry(t *testing.T) {
	t.Parallel()
	s := newSystem(t, systemOptions{})
	tn := s.tenant()
	h := newHook(t)
	h.status.Store(http.StatusServiceUnavailable)
	tn.automation(fmt.Sprintf(`{"name":"flaky","trigger":{"event":"x"},"exit_on":["stop"],
		"steps":[{"id":"call","type":"webhook","url":%q}]}`, h.url("/")))
	tn.event(map[string]any{"name": "x", "email": "a@example.com", "create_if_missing": true})
	require.Eventually(t, func() bool { return h.hits.Load() >= 2 }, 20*time.Second, 50*time.Millisecond,
		"the webhook is retried")
	require.EqualValues(t, 1, tn.event(map[string]any{"name": "stop", "email": "a@example.com"})["executions_exited"])
	done := tn.waitEnrollment(tn.enrollments("")[0]["id"].(string), 20*time.Second)
	require.Equal(t, "exited", done["status"])
	// The workflow is closed as cancelled, so no attempt is scheduled again.
	// It records the exit just before it closes, so the close may trail the
	// record by a workflow task.
	var desc *workflowservice.DescribeWorkflowExecutionResponse
	require.Eventually(t, func() bool {
		d, err := devServer.Client().DescribeWorkflowExecution(context.Background(), done["workflow_id"].(string), "")
		if err != nil || d.WorkflowExecutionInfo.Status == enumspb.WORKFLOW_EXECUTION_STATUS_RUNNING {
			return false
		}
		desc = d
		return true
	}, 10*time.Second, 50*time.Millisecond, "the workflow closes")
	require.Equal(t, enumspb.WORKFLOW_EXECUTION_STATUS_CANCELED, desc.WorkflowExecutionInfo.Status)
	require.Empty(t, desc.PendingActivities)
}

// TestDeletingAContactCancelsItsEnrollments deletes a contact mid-delay:
// its workflow is cancelled rather than left to fail on its next step.
func TestDeletingAContactCancelsItsEnrollments(t *testing.T) {
	t.Parallel()
	s := newSystem(t, systemOptions{})
	tn := s.tenant()
	tn.automation(`{"name":"slow","trigger":{"event":"x"},"steps":[{"id":"pause","type":"delay","duration":"1h"}]}`)
	r := tn.event(map[string]any{"name": "x", "email": "a@example.com", "create_if_missing": true})
	e := tn.enrollments("")[0]
	tn.waitStep(e["id"].(string), "pause", "waiting", 15*time.Second)
	tn.call(http.StatusNoContent, "DELETE", "/v1/contacts/"+r["contact_id"].(string), nil)
	require.Empty(t, tn.enrollments(""))
	require.Eventually(t, func() bool {
		desc, err := devServer.Client().DescribeWorkflowExecution(context.Background(), e["workflow_id"].(string), "")
		return err == nil && desc.WorkflowExecutionInfo.Status == enumspb.WORKFLOW_EXECUTION_STATUS_CANCELED
	}, 15*time.Second, 50*time.Millisecond)
}
