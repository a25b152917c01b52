package dispatch_test

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"log/slog"
	"net"
	"os"
	"testing"
	"time"

	"github.com/google/uuid"
	"github.com/stretchr/testify/require"
	enumspb "go.temporal.io/api/enums/v1"
	"go.temporal.io/sdk/client"
	"go.temporal.io/sdk/testsuite"
	"go.temporal.io/sdk/worker"
	"go.temporal.io/sdk/workflow"

	"github.com/signalbox/signalbox/dispatch"
	"github.com/signalbox/signalbox/store"
	"github.com/signalbox/signalbox/store/storetest"
	"github.com/signalbox/signalbox/temporaltest"
	"github.com/signalbox/signalbox/workflows"
)

// devServer is the Temporal dev server shared by the package's tests.
var devServer *testsuite.DevServer

func TestMain(m *testing.M) {
	code := func() int {
		srv, err := temporaltest.Start(context.Background(), temporaltest.Options{Logger: quiet()})
		if err != nil {
			fmt.Fprintln(os.Stderr, "dispatch: start Temporal dev server:", err)
			return 1
		}
		defer func() { _ = srv.Stop() }()
		devServer = srv
		return m.Run()
	}()
	os.Exit(code)
}

func quiet() *slog.Logger { return slog.New(slog.NewTextHandler(io.Discard, nil)) }

// stubEnrollment stands in for the enrollment workflow: it waits for one
// event signal and returns it.
func stubEnrollment(ctx workflow.Context, _ workflows.EnrollmentInput) (workflows.EventSignalInput, error) {
	var sig workflows.EventSignalInput
	workflow.GetSignalChannel(ctx, workflows.EventSignal).Receive(ctx, &sig)
	return sig, nil
}

// harness is an isolated outbox, a Temporal client and a worker running
// stubEnrollment on a task queue of its own.
type harness struct {
	t      *testing.T
	store  *store.Store
	client client.Client
	queue  string
}

func newHarness(t *testing.T) *harness {
	t.Helper()
	c, err := client.Dial(client.Options{HostPort: devServer.FrontendHostPort(), Logger: quiet()})
	require.NoError(t, err)
	t.Cleanup(c.Close)
	queue := "dispatch-test-" + uuid.NewString()
	w := worker.New(c, queue, worker.Options{})
	w.RegisterWorkflowWithOptions(stubEnrollment, workflow.RegisterOptions{Name: workflows.EnrollmentWorkflow})
	require.NoError(t, w.Start())
	t.Cleanup(w.Stop)
	return &harness{t: t, store: storetest.Isolated(t, store.Config{}), client: c, queue: queue}
}

// dispatcher makes a Dispatcher over the harness's outbox with c.
func (h *harness) dispatcher(c client.Client) *dispatch.Dispatcher {
	return dispatch.New(h.store, c, dispatch.Config{TaskQueue: h.queue, Lease: time.Minute}, quiet())
}

// add writes an intent as the record path would and returns its id.
func (h *harness) add(workflowID, kind string, payload any) uuid.UUID {
	h.t.Helper()
	raw, err := json.Marshal(payload)
	require.NoError(h.t, err)
	id := store.NewID()
	_, err = h.store.Pool().Exec(context.Background(), `INSERT INTO outbox (id, workspace_id, workflow_id, kind, payload)
		VALUES ($1, $2, $3, $4, $5)`, id, uuid.New(), workflowID, kind, raw)
	require.NoError(h.t, err)
	return id
}

// row is an intent's delivery state.
type row struct {
	Delivered bool
	Outcome   string
	Attempts  int
	LastError string
}

func (h *harness) row(id uuid.UUID) row {
	h.t.Helper()
	var r row
	require.NoError(h.t, h.store.Pool().QueryRow(context.Background(), `SELECT delivered_at IS NOT NULL,
		coalesce(outcome, ''), attempts, coalesce(last_error, '') FROM outbox WHERE id = $1`, id).
		Scan(&r.Delivered, &r.Outcome, &r.Attempts, &r.LastError))
	return r
}

// round runs one delivery round and requires it to claim n intents.
func round(t *testing.T, d *dispatch.Dispatcher, n int) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	got, err := d.Round(ctx)
	require.NoError(t, err)
	require.Equal(t, n, got)
}

// startIntent is the payload of a start for a new enrollment.
func startIntent() store.StartIntent {
	return store.StartIntent{EnrollmentID: store.NewID(), WorkspaceID: uuid.New(), AutomationID: uuid.New(), Version: 1,
		ContactID: uuid.New(), Definition: json.RawMessage(`{"name": "welcome", "trigger": {"event": "signed.up"},
			"steps": [{"id": "activated", "type": "wait_for_event", "event": "project.created", "timeout": "1d"}]}`),
		Trigger: store.TriggerEvent{ID: store.NewID(), Name: "signed.up", Properties: json.RawMessage(`{}`),
			OccurredAt: time.Now().UTC()}}
}

func TestStartDeliveredTwiceStartsOnce(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	h := newHarness(t)
	d := h.dispatcher(h.client)
	p := startIntent()
	wfID := workflows.WorkflowID(p.EnrollmentID.String())
	id := h.add(wfID, store.IntentStart, p)

	round(t, d, 1)
	require.Equal(t, row{Delivered: true, Outcome: "started", Attempts: 1}, h.row(id))
	desc, err := h.client.DescribeWorkflowExecution(ctx, wfID, "")
	require.NoError(t, err)
	info := desc.GetWorkflowExecutionInfo()
	require.Equal(t, enumspb.WORKFLOW_EXECUTION_STATUS_RUNNING, info.GetStatus())
	require.Equal(t, workflows.EnrollmentWorkflow, info.GetType().GetName())
	require.Equal(t, h.queue, info.GetTaskQueue())
	runID := info.GetExecution().GetRunId()

	// A dispatcher that died after starting it but before recording so
	// delivers it again.
	_, err = h.store.Pool().Exec(ctx, `UPDATE outbox SET delivered_at = NULL, outcome = NULL WHERE id = $1`, id)
	require.NoError(t, err)
	round(t, d, 1)
	require.Equal(t, row{Delivered: true, Outcome: "already_started", Attempts: 2}, h.row(id))
	desc, err = h.client.DescribeWorkflowExecution(ctx, wfID, "")
	require.NoError(t, err)
	require.Equal(t, runID, desc.GetWorkflowExecutionInfo().GetExecution().GetRunId())

	// A signal reaches the running enrollment with its event.
	ev := store.TriggerEvent{ID: store.NewID(), Name: "project.created", Properties: json.RawMessage(`{"n":1}`),
		OccurredAt: time.Now().UTC()}
	sig := h.add(wfID, store.IntentSignal, store.SignalIntent{EnrollmentID: p.EnrollmentID, StepID: "activated", Event: ev})
	round(t, d, 1)
	require.Equal(t, "signalled", h.row(sig).Outcome)
	var got workflows.EventSignalInput
	wctx, cancel := context.WithTimeout(ctx, 10*time.Second)
	defer cancel()
	require.NoError(t, h.client.GetWorkflow(wctx, wfID, runID).Get(wctx, &got))
	require.Equal(t, p.EnrollmentID.String(), got.EnrollmentID)
	require.Equal(t, "activated", got.StepID)
	require.Equal(t, ev.ID.String(), got.Event.ID)
	require.Equal(t, "project.created", got.Event.Name)

	// The enrollment has ended: a later signal has nothing to reach.
	late := h.add(wfID, store.IntentSignal, store.SignalIntent{EnrollmentID: p.EnrollmentID, StepID: "activated", Event: ev})
	round(t, d, 1)
	require.Equal(t, row{Delivered: true, Outcome: "not_running", Attempts: 1}, h.row(late))
}

func TestFinalOutcomes(t *testing.T) {
	t.Parallel()
	h := newHarness(t)
	missing := workflows.WorkflowID(uuid.NewString())
	bad := startIntent()
	bad.Definition = json.RawMessage(`{"name": "no steps", "trigger": {"event": "signed.up"}, "unknown": 1}`)
	cases := []struct {
		name    string
		kind    string
		payload any
		outcome string
	}{
		{"signal to a missing workflow", store.IntentSignal, store.SignalIntent{EnrollmentID: uuid.New(), StepID: "w",
			Event: store.TriggerEvent{ID: store.NewID(), Name: "x", Properties: json.RawMessage(`{}`)}}, "not_running"},
		{"cancel of a missing workflow", store.IntentCancel, store.CancelIntent{EnrollmentID: uuid.New(), EventID: store.NewID()},
			"not_running"},
		{"start that does not decode", store.IntentStart, bad, "invalid_payload"},
	}
	ids := make([]uuid.UUID, len(cases))
	for i, tc := range cases {
		ids[i] = h.add(missing+"-"+fmt.Sprint(i), tc.kind, tc.payload)
	}
	round(t, h.dispatcher(h.client), len(cases))
	for i, tc := range cases {
		require.Equal(t, row{Delivered: true, Outcome: tc.outcome, Attempts: 1}, h.row(ids[i]), tc.name)
	}
}

func TestTemporalDown(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	h := newHarness(t)
	l, err := net.Listen("tcp", "127.0.0.1:0")
	require.NoError(t, err)
	dead := l.Addr().String()
	require.NoError(t, l.Close())
	down, err := client.NewLazyClient(client.Options{HostPort: dead, Logger: quiet()})
	require.NoError(t, err)
	t.Cleanup(down.Close)

	p := startIntent()
	wfID := workflows.WorkflowID(p.EnrollmentID.String())
	id := h.add(wfID, store.IntentStart, p)
	rctx, cancel := context.WithTimeout(ctx, 2*time.Second)
	defer cancel()
	n, err := h.dispatcher(down).Round(rctx)
	require.NoError(t, err)
	require.Equal(t, 1, n)
	r := h.row(id)
	require.False(t, r.Delivered)
	require.Equal(t, 1, r.Attempts)
	require.NotEmpty(t, r.LastError)
	pending, err := h.store.PendingIntents(ctx)
	require.NoError(t, err)
	require.EqualValues(t, 1, pending)

	// Another dispatcher, with Temporal reachable, delivers it once the
	// backoff has passed.
	live := h.dispatcher(h.client)
	require.Eventually(t, func() bool {
		_, err := live.Round(ctx)
		return err == nil && h.row(id).Delivered
	}, 10*time.Second, 50*time.Millisecond)
	r = h.row(id)
	require.Equal(t, "started", r.Outcome)
	require.Equal(t, 2, r.Attempts)
	desc, err := h.client.DescribeWorkflowExecution(ctx, wfID, "")
	require.NoError(t, err)
	require.Equal(t, enumspb.WORKFLOW_EXECUTION_STATUS_RUNNING, desc.GetWorkflowExecutionInfo().GetStatus())
}
