package e2e

import (
	"context"
	"fmt"
	"net/http"
	"path/filepath"
	"sync"
	"testing"
	"time"

	"github.com/stretchr/testify/require"
	"go.opentelemetry.io/otel"
	"go.opentelemetry.io/otel/propagation"
	sdktrace "go.opentelemetry.io/otel/sdk/trace"
	"go.opentelemetry.io/otel/sdk/trace/tracetest"
	"go.temporal.io/sdk/activity"
	"go.temporal.io/sdk/client"
	"go.temporal.io/sdk/worker"

	"github.com/signalbox/signalbox/activities"
	"github.com/signalbox/signalbox/workflows"
)

// TestIngestWhileTemporalIsDown stops the Temporal server, records events
// that start, resume and exit enrollments, then starts it again: every
// intent is delivered once, nothing is lost and nothing doubles.
func TestIngestWhileTemporalIsDown(t *testing.T) {
	t.Parallel()
	hostPort := freePort(t)
	dbFile := filepath.Join(t.TempDir(), "temporal.db")
	srv, err := startDevServer(hostPort, dbFile)
	require.NoError(t, err)
	stopped := false
	t.Cleanup(func() {
		if !stopped {
			_ = srv.Stop()
		}
	})
	s := newSystem(t, systemOptions{hostPort: hostPort})
	tn := s.tenant()
	tn.automation(fmt.Sprintf(waitAutomation, "1h"))
	tn.automation(`{"name":"exits","trigger":{"event":"trial.started"},"exit_on":["trial.ended"],
		"steps":[{"id":"pause","type":"delay","duration":"1h"}]}`)

	// One enrollment waits and one sleeps before the outage.
	waiting := tn.event(map[string]any{"name": "purchase.completed", "email": "a@example.com", "create_if_missing": true,
		"properties": map[string]any{"orderId": "o-1"}})
	sleeping := tn.event(map[string]any{"name": "trial.started", "email": "a@example.com"})
	var waitID, sleepID string
	for _, e := range tn.enrollments("") {
		if e["trigger_event_id"] == waiting["event_id"] {
			waitID = e["id"].(string)
		}
		if e["trigger_event_id"] == sleeping["event_id"] {
			sleepID = e["id"].(string)
		}
	}
	tn.waitStep(waitID, "review", "waiting", 15*time.Second)
	tn.waitStep(sleepID, "pause", "waiting", 15*time.Second)

	require.NoError(t, srv.Stop())
	stopped = true

	// Ingest keeps answering 202 with exact counts.
	require.EqualValues(t, 1, tn.event(map[string]any{"name": "review.submitted", "email": "a@example.com",
		"properties": map[string]any{"orderId": "o-1"}})["executions_resumed"])
	require.EqualValues(t, 1, tn.event(map[string]any{"name": "trial.ended", "email": "a@example.com"})["executions_exited"])
	fresh := tn.event(map[string]any{"name": "purchase.completed", "email": "b@example.com", "create_if_missing": true,
		"properties": map[string]any{"orderId": "o-2"}})
	require.EqualValues(t, 1, fresh["workflows_triggered"])
	// Give the dispatcher time to fail against the dead server a few times.
	require.Eventually(t, func() bool {
		var failing int
		require.NoError(t, s.store.Pool().QueryRow(context.Background(),
			`SELECT count(*) FROM outbox WHERE delivered_at IS NULL AND attempts >= 2`).Scan(&failing))
		return failing == 3
	}, 30*time.Second, 100*time.Millisecond)

	srv, err = startDevServer(hostPort, dbFile)
	require.NoError(t, err)
	stopped = false
	t.Cleanup(func() { _ = srv.Stop() })

	require.Equal(t, "completed", tn.waitEnrollment(waitID, 60*time.Second)["status"])
	require.Equal(t, "exited", tn.waitEnrollment(sleepID, 60*time.Second)["status"])
	var freshID string
	for _, e := range tn.enrollments("contact_id=" + fresh["contact_id"].(string)) {
		freshID = e["id"].(string)
	}
	tn.waitStep(freshID, "review", "waiting", 60*time.Second)
	require.Len(t, tn.enrollments(""), 3, "no duplicate enrollment")
	done := tn.call(http.StatusOK, "GET", "/v1/enrollments/"+waitID, nil)
	require.Equal(t, []string{"review:waiting", "review:yes", "tag:done"}, outcomes(done), "resumed once")
	var pending int
	require.NoError(t, s.store.Pool().QueryRow(context.Background(),
		`SELECT count(*) FROM outbox WHERE delivered_at IS NULL`).Scan(&pending))
	require.Zero(t, pending)
	// Exactly one run per workflow id: starting again would have failed.
	c := srv.Client()
	for _, id := range []string{waitID, sleepID, freshID} {
		resp, err := c.ListWorkflow(context.Background(), listRequest(fmt.Sprintf("WorkflowId = '%s'", workflows.WorkflowID(id))))
		require.NoError(t, err)
		require.Len(t, resp.Executions, 1)
	}
}

// TestSearchAttributesAndCurrentStep finds enrollments the way an operator
// does in the Web UI, and asks a running one where it is.
func TestSearchAttributesAndCurrentStep(t *testing.T) {
	t.Parallel()
	s := newSystem(t, systemOptions{})
	tn := s.tenant()
	automation := tn.automation(fmt.Sprintf(waitAutomation, "1h"))
	r := tn.event(map[string]any{"name": "purchase.completed", "email": "a@example.com", "create_if_missing": true,
		"properties": map[string]any{"orderId": "o-1"}})
	e := tn.enrollments("")[0]
	tn.waitStep(e["id"].(string), "review", "waiting", 15*time.Second)

	c := devServer.Client()
	for _, q := range []string{
		fmt.Sprintf("SignalboxContact = '%s'", r["contact_id"]),
		fmt.Sprintf("SignalboxAutomation = '%s'", automation),
		fmt.Sprintf("SignalboxWorkspace = '%s' AND ExecutionStatus = 'Running'", tn.ws.ID),
	} {
		require.Eventually(t, func() bool {
			resp, err := c.ListWorkflow(context.Background(), listRequest(q))
			return err == nil && len(resp.Executions) == 1 &&
				resp.Executions[0].Execution.WorkflowId == e["workflow_id"]
		}, 15*time.Second, 100*time.Millisecond, q)
	}

	v, err := c.QueryWorkflow(context.Background(), e["workflow_id"].(string), "", workflows.CurrentStepQuery)
	require.NoError(t, err)
	var st workflows.StepState
	require.NoError(t, v.Get(&st))
	require.Equal(t, "review", st.StepID)
	require.Equal(t, "wait_for_event", st.Type)
	require.Equal(t, "review.submitted", st.Waiting)
	require.Equal(t, "review", tn.call(http.StatusOK, "GET", "/v1/enrollments/"+e["id"].(string), nil)["current_step"])
}

// TestWorkersShareTheQueue runs two workers on one task queue and checks
// that both execute enrollments.
func TestWorkersShareTheQueue(t *testing.T) {
	t.Parallel()
	var (
		mu   sync.Mutex
		runs = map[string]int{}
	)
	s := newSystem(t, systemOptions{})
	// Two more workers, as separate processes would be, on the same queue
	// and each with its own client, counting the activities they run.
	for i := range 2 {
		tc, err := client.Dial(client.Options{HostPort: devServer.FrontendHostPort(), Logger: quietLogger(),
			Identity: fmt.Sprintf("extra-%d", i)})
		require.NoError(t, err)
		t.Cleanup(tc.Close)
		w := worker.New(tc, s.queue, worker.Options{})
		workflows.Config{}.Register(w)
		registerExcept(w, s.acts, "UpdateContact")
		w.RegisterActivityWithOptions(func(ctx context.Context, in activities.UpdateContactInput) (activities.UpdateContactResult, error) {
			mu.Lock()
			runs[fmt.Sprintf("extra-%d", i)]++
			mu.Unlock()
			return s.acts.UpdateContact(ctx, in)
		}, activity.RegisterOptions{Name: "UpdateContact"})
		require.NoError(t, w.Start())
		t.Cleanup(w.Stop)
	}
	tn := s.tenant()
	tn.automation(`{"name":"tag","trigger":{"event":"x"},"steps":[{"id":"t","type":"update_contact","properties":{"seen":"true"}}]}`)
	const n = 40
	events := make([]any, n)
	for i := range events {
		events[i] = map[string]any{"name": "x", "email": fmt.Sprintf("u%d@example.com", i), "create_if_missing": true}
	}
	require.EqualValues(t, n, tn.call(http.StatusOK, "POST", "/v1/events/batch", map[string]any{"events": events})["workflows_triggered"])
	require.Eventually(t, func() bool { return len(tn.enrollments("status=completed")) == n }, 60*time.Second, 100*time.Millisecond)
	mu.Lock()
	defer mu.Unlock()
	require.Len(t, runs, 2, "both extra workers ran activities: %v", runs)
}

// TestTraceFollowsEventIntoWorkflow checks that the spans of the HTTP
// request, the dispatch and the workflow's activities share one trace.
func TestTraceFollowsEventIntoWorkflow(t *testing.T) {
	exp := tracetest.NewInMemoryExporter()
	tp := sdktrace.NewTracerProvider(sdktrace.WithSyncer(exp))
	prevTP, prevProp := otel.GetTracerProvider(), otel.GetTextMapPropagator()
	otel.SetTracerProvider(tp)
	otel.SetTextMapPropagator(propagation.TraceContext{})
	t.Cleanup(func() { otel.SetTracerProvider(prevTP); otel.SetTextMapPropagator(prevProp) })

	s := newSystem(t, systemOptions{tracing: tp})
	tn := s.tenant()
	tn.automation(`{"name":"tag","trigger":{"event":"x"},"steps":[{"id":"t","type":"update_contact","properties":{"seen":"true"}}]}`)
	tn.event(map[string]any{"name": "x", "email": "a@example.com", "create_if_missing": true})
	require.Equal(t, "completed", tn.waitEnrollment(tn.enrollments("")[0]["id"].(string), 30*time.Second)["status"])

	require.Eventually(t, func() bool {
		var httpTrace, actTrace string
		for _, sp := range exp.GetSpans() {
			switch {
			case sp.Name == "POST /v1/events":
				httpTrace = sp.SpanContext.TraceID().String()
			case sp.Name == "RunActivity:UpdateContact":
				actTrace = sp.SpanContext.TraceID().String()
			}
		}
		return httpTrace != "" && httpTrace == actTrace
	}, 10*time.Second, 100*time.Millisecond, "spans: %v", spanNames(exp))
}

func spanNames(exp *tracetest.InMemoryExporter) []string {
	var out []string
	for _, sp := range exp.GetSpans() {
		out = append(out, sp.Name+"@"+sp.SpanContext.TraceID().String()[:8])
	}
	return out
}
