package e2e

import (
	"context"
	"errors"
	"fmt"
	"net/http"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/stretchr/testify/require"
	commonpb "go.temporal.io/api/common/v1"
	"go.temporal.io/api/workflowservice/v1"
	"go.temporal.io/sdk/activity"
	"go.temporal.io/sdk/worker"

	"github.com/signalbox/signalbox/activities"
	"github.com/signalbox/signalbox/temporaltest"
	"github.com/signalbox/signalbox/workflows"
)

// TestBookkeepingFailureEndsEnrollment makes a wait's registration fail on
// every attempt: the workflow retries it within its bound (2s here), then
// the enrollment ends failed, the reason in its step log, instead of
// retrying forever.
func TestBookkeepingFailureEndsEnrollment(t *testing.T) {
	t.Parallel()
	s := newSystem(t, systemOptions{workflow: workflows.Config{BookkeepingLimit: 2 * time.Second},
		register: func(w worker.Worker, a *activities.Activities) {
			registerExcept(w, a, "RegisterWait")
			w.RegisterActivityWithOptions(func(context.Context, activities.WaitInput) (activities.WaitResult, error) {
				return activities.WaitResult{}, errors.New("wait index unavailable")
			}, activity.RegisterOptions{Name: "RegisterWait"})
		}})
	tn := s.tenant()
	tn.automation(fmt.Sprintf(waitAutomation, "1h"))
	r := tn.event(map[string]any{"name": "purchase.completed", "email": "a@example.com", "create_if_missing": true,
		"properties": map[string]any{"orderId": "o-1"}})
	enr := tn.enrollments("contact_id=" + r["contact_id"].(string))[0]["id"].(string)

	done := tn.waitEnrollment(enr, 30*time.Second)
	require.Equal(t, "failed", done["status"])
	require.Contains(t, done["reason"], "wait index unavailable")
	require.Equal(t, []string{"review:failed"}, outcomes(done))
	detail := done["steps"].([]any)[0].(map[string]any)["detail"].(map[string]any)
	require.Equal(t, "RegisterWait", detail["activity"])
	require.Contains(t, detail["error"], "wait index unavailable")
}

// TestReconcilerRecordsWorkflowsClosedOutside terminates an enrollment's
// workflow from Temporal, as an operator does in the Web UI, and removes
// another one's from Temporal's view: the reconciler records how each
// really ended instead of leaving them active.
func TestReconcilerRecordsWorkflowsClosedOutside(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	s := newSystem(t, systemOptions{})
	tn := s.tenant()
	tn.automation(fmt.Sprintf(waitAutomation, "1h"))

	r := tn.event(map[string]any{"name": "purchase.completed", "email": "a@example.com", "create_if_missing": true,
		"properties": map[string]any{"orderId": "o-1"}})
	enr := tn.enrollments("contact_id=" + r["contact_id"].(string))[0]
	tn.waitStep(enr["id"].(string), "review", "waiting", 15*time.Second)
	require.NoError(t, s.temporal.TerminateWorkflow(ctx, enr["workflow_id"].(string), "", "stopped by an operator"))
	done := tn.waitEnrollment(enr["id"].(string), 20*time.Second)
	require.Equal(t, "exited", done["status"])
	require.Equal(t, "terminated in Temporal: stopped by an operator", done["reason"])

	// An active enrollment whose workflow Temporal does not know (its
	// start was delivered to another cluster, say) ends failed.
	gone := tn.event(map[string]any{"name": "purchase.completed", "email": "b@example.com", "create_if_missing": true,
		"properties": map[string]any{"orderId": "o-2"}})
	goneEnr := tn.enrollments("contact_id=" + gone["contact_id"].(string))[0]
	tn.waitStep(goneEnr["id"].(string), "review", "waiting", 15*time.Second)
	_, err := s.temporal.WorkflowService().DeleteWorkflowExecution(ctx, &workflowservice.DeleteWorkflowExecutionRequest{
		Namespace: "default", WorkflowExecution: &commonpb.WorkflowExecution{WorkflowId: goneEnr["workflow_id"].(string)}})
	require.NoError(t, err)
	done = tn.waitEnrollment(goneEnr["id"].(string), 30*time.Second)
	require.Equal(t, "failed", done["status"])
	require.Equal(t, "workflow not found in Temporal", done["reason"])
}

// TestDeletingContactsWhileEnrollmentsStart deletes contacts while events
// for them are still starting enrollments: afterwards no workflow runs for
// any of them, and nothing is left undelivered.
func TestDeletingContactsWhileEnrollmentsStart(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	s := newSystem(t, systemOptions{})
	tn := s.tenant()
	tn.automation(`{"name":"linger","trigger":{"event":"signed.up"},"steps":[{"id":"pause","type":"delay","duration":"1h"}]}`)

	const contacts = 12
	var wg sync.WaitGroup
	for i := range contacts {
		email := fmt.Sprintf("c%d@example.com", i)
		first := tn.event(map[string]any{"name": "signed.up", "email": email, "create_if_missing": true})
		id := first["contact_id"].(string)
		wg.Add(2)
		go func() {
			defer wg.Done()
			for range 3 {
				// Some of these find the contact, some arrive after it is gone.
				_ = tn.try("POST", "/v1/events", map[string]any{"name": "signed.up", "contact_id": id})
			}
		}()
		go func() {
			defer wg.Done()
			_ = tn.try("DELETE", "/v1/contacts/"+id, nil)
		}()
	}
	wg.Wait()
	require.Eventually(t, func() bool {
		n, err := s.store.PendingIntents(ctx)
		require.NoError(t, err)
		return n == 0
	}, 30*time.Second, 100*time.Millisecond, "every intent delivered or settled")
	require.Eventually(t, func() bool {
		resp, err := s.temporal.ListWorkflow(ctx, listRequest(fmt.Sprintf(
			"SignalboxWorkspace = '%s' AND ExecutionStatus = 'Running'", tn.ws.ID)))
		require.NoError(t, err)
		return len(resp.Executions) == 0
	}, 30*time.Second, 200*time.Millisecond, "no workflow runs for a deleted contact")
	require.Empty(t, tn.enrollments("status=active"))
}

// TestRefusedStartEndsEnrollment runs against a Temporal server whose blob
// size limit is lower than one enrollment's input: that start is refused
// for good, so the enrollment ends failed with Temporal's reason at once,
// while the other enrollments start and finish.
func TestRefusedStartEndsEnrollment(t *testing.T) {
	t.Parallel()
	srv, err := temporaltest.Start(context.Background(), temporaltest.Options{Logger: quietTemporalLogger(),
		Args: []string{"--dynamic-config-value", "limit.blobSize.error=20000",
			"--dynamic-config-value", "limit.blobSize.warn=10000"}})
	require.NoError(t, err)
	t.Cleanup(func() { _ = srv.Stop() })
	s := newSystem(t, systemOptions{hostPort: srv.FrontendHostPort()})
	tn := s.tenant()
	tn.automation(`{"name":"tag","trigger":{"event":"x"},"steps":[{"id":"t","type":"update_contact","properties":{"seen":"true"}}]}`)

	big := tn.event(map[string]any{"name": "x", "email": "big@example.com", "create_if_missing": true,
		"properties": map[string]any{"blob": strings.Repeat("x", 25000)}})
	small := tn.event(map[string]any{"name": "x", "email": "small@example.com", "create_if_missing": true})
	bigEnr := tn.enrollments("contact_id=" + big["contact_id"].(string))[0]["id"].(string)
	smallEnr := tn.enrollments("contact_id=" + small["contact_id"].(string))[0]["id"].(string)

	done := tn.waitEnrollment(bigEnr, 30*time.Second)
	require.Equal(t, "failed", done["status"])
	require.Contains(t, done["reason"], "temporal refused the intent")
	require.Contains(t, done["reason"], "size exceeds limit")
	require.Equal(t, "completed", tn.waitEnrollment(smallEnr, 30*time.Second)["status"])
	var failed int
	require.NoError(t, s.store.Pool().QueryRow(context.Background(),
		`SELECT count(*) FROM outbox WHERE failed_at IS NOT NULL`).Scan(&failed))
	require.Equal(t, 1, failed)
}

// loseFirstAnswer registers every activity, the one called name through
// run so that its first attempt does its work and then reports a failure
// (calling lost first, when set), as when the worker's answer never
// reaches Temporal; attempts counts its attempts.
func loseFirstAnswer[In, Out any](name string, run func(*activities.Activities, context.Context, In) (Out, error),
	attempts *atomic.Int64, lost func()) func(worker.Worker, *activities.Activities) {
	return func(w worker.Worker, a *activities.Activities) {
		registerExcept(w, a, name)
		w.RegisterActivityWithOptions(func(ctx context.Context, in In) (Out, error) {
			res, err := run(a, ctx, in)
			if attempts.Add(1) == 1 {
				if lost != nil {
					lost()
				}
				return res, errors.New("result lost on the way back")
			}
			return res, err
		}, activity.RegisterOptions{Name: name})
	}
}

// TestWebhookOnceWhenResultIsLost loses the answer of a webhook's first
// attempt after the activity delivered it, booked the step and ended the
// enrollment (its last step), as when the worker dies right after. The
// receiver now refuses for good, so delivering again would fail the
// workflow while the enrollment says completed. The retry finds the step
// booked and answers what the first attempt did: one delivery, and
// Temporal agrees with the database.
func TestWebhookOnceWhenResultIsLost(t *testing.T) {
	t.Parallel()
	h := newHook(t)
	var attempts atomic.Int64
	s := newSystem(t, systemOptions{register: loseFirstAnswer("SendWebhook", (*activities.Activities).SendWebhook, &attempts,
		func() { h.status.Store(http.StatusGone) })})
	tn := s.tenant()
	tn.automation(fmt.Sprintf(`{"name":"hook","trigger":{"event":"x"},
		"steps":[{"id":"notify","type":"webhook","url":%q}]}`, h.url("/once")))
	r := tn.event(map[string]any{"name": "x", "email": "a@example.com", "create_if_missing": true})
	enr := tn.enrollments("contact_id=" + r["contact_id"].(string))[0]
	require.Equal(t, "completed", tn.waitEnrollment(enr["id"].(string), 30*time.Second)["status"])

	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	require.NoError(t, s.temporal.GetWorkflow(ctx, enr["workflow_id"].(string), "").Get(ctx, nil),
		"the workflow completes as the enrollment did")
	require.EqualValues(t, 2, attempts.Load())
	require.EqualValues(t, 1, h.hits.Load(), "delivered once")
	done := tn.call(http.StatusOK, "GET", "/v1/enrollments/"+enr["id"].(string), nil)
	require.Equal(t, []string{"notify:done"}, outcomes(done))
}

// TestUpdateContactOnceWhenResultIsLost loses the first attempt's result of
// an update_contact step (the activity did its work, then the worker's
// answer never reached Temporal), so Temporal runs it again: the visit is
// counted once.
func TestUpdateContactOnceWhenResultIsLost(t *testing.T) {
	t.Parallel()
	var attempts atomic.Int64
	s := newSystem(t, systemOptions{register: loseFirstAnswer("UpdateContact", (*activities.Activities).UpdateContact, &attempts, nil)})
	tn := s.tenant()
	tn.automation(`{"name":"visits","trigger":{"event":"page.viewed"},
		"steps":[{"id":"count","type":"update_contact","properties":{"visits":"contact.properties.?visits.orValue(0.0) + 1.0"}}]}`)
	r := tn.event(map[string]any{"name": "page.viewed", "email": "a@example.com", "create_if_missing": true,
		"contact_properties": map[string]any{"visits": 41}})
	enr := tn.enrollments("contact_id=" + r["contact_id"].(string))[0]["id"].(string)
	require.Equal(t, "completed", tn.waitEnrollment(enr, 30*time.Second)["status"])
	// The first attempt's activity also ended the enrollment (its last
	// step); the retry may still be on its way.
	require.Eventually(t, func() bool { return attempts.Load() == 2 }, 30*time.Second, 20*time.Millisecond)
	c := tn.call(http.StatusOK, "GET", "/v1/contacts/"+r["contact_id"].(string), nil)
	require.Equal(t, 42.0, c["properties"].(map[string]any)["visits"])
}
