package dispatch_test

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"log/slog"
	"net"
	"os"
	"sync/atomic"
	"testing"
	"time"

	"github.com/google/uuid"
	"github.com/stretchr/testify/require"
	sdkmetric "go.opentelemetry.io/otel/sdk/metric"
	"go.opentelemetry.io/otel/sdk/metric/metricdata"
	enumspb "go.temporal.io/api/enums/v1"
	"go.temporal.io/api/workflowservice/v1"
	"go.temporal.io/sdk/client"
	"go.temporal.io/sdk/converter"
	"go.temporal.io/sdk/testsuite"
	"go.temporal.io/sdk/worker"
	"go.temporal.io/sdk/workflow"
	"google.golang.org/grpc"

	"github.com/signalbox/signalbox/definition"
	"github.com/signalbox/signalbox/dispatch"
	"github.com/signalbox/signalbox/event"
	"github.com/signalbox/signalbox/intent"
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
	return newHarnessWith(t, client.ConnectionOptions{})
}

// newHarnessWith is newHarness with the client's connection options.
func newHarnessWith(t *testing.T, conn client.ConnectionOptions) *harness {
	t.Helper()
	c, err := client.Dial(client.Options{HostPort: devServer.FrontendHostPort(), Logger: quiet(), ConnectionOptions: conn})
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
func startIntent() intent.Start {
	def, problems := definition.Load([]byte(`{"name": "welcome", "trigger": {"event": "signed.up"},
		"steps": [{"id": "activated", "type": "wait_for_event", "event": "project.created", "timeout": "1d"}]}`), nil)
	if len(problems) > 0 {
		panic(problems)
	}
	return intent.Start{EnrollmentID: store.NewID(), WorkspaceID: uuid.New(), AutomationID: uuid.New(), Version: 1,
		ContactID: uuid.New(), Definition: *def,
		Trigger: event.Event{ID: store.NewID(), Name: "signed.up", Properties: json.RawMessage(`{}`),
			OccurredAt: time.Now().UTC()}}
}

// undecodable is a start payload whose definition no longer decodes.
func undecodable(p intent.Start) map[string]any {
	raw, _ := json.Marshal(p)
	var m map[string]any
	_ = json.Unmarshal(raw, &m)
	m["definition"] = json.RawMessage(`{"name": "no steps", "trigger": {"event": "signed.up"}, "unknown": 1}`)
	return m
}

func TestStartDeliveredTwiceStartsOnce(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	h := newHarness(t)
	d := h.dispatcher(h.client)
	p := startIntent()
	wfID := workflows.WorkflowID(p.EnrollmentID.String())
	id := h.add(wfID, intent.KindStart, p)

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
	ev := event.Event{ID: store.NewID(), Name: "project.created", Properties: json.RawMessage(`{"n":1}`),
		OccurredAt: time.Now().UTC()}
	sig := h.add(wfID, intent.KindSignal, intent.Signal{EnrollmentID: p.EnrollmentID, StepID: "activated", Event: ev})
	round(t, d, 1)
	require.Equal(t, "signalled", h.row(sig).Outcome)
	var got workflows.EventSignalInput
	wctx, cancel := context.WithTimeout(ctx, 10*time.Second)
	defer cancel()
	require.NoError(t, h.client.GetWorkflow(wctx, wfID, runID).Get(wctx, &got))
	require.Equal(t, p.EnrollmentID, got.EnrollmentID)
	require.Equal(t, "activated", got.StepID)
	require.Equal(t, ev.ID, got.Event.ID)
	require.Equal(t, "project.created", got.Event.Name)

	// The enrollment has ended: a later signal has nothing to reach.
	late := h.add(wfID, intent.KindSignal, intent.Signal{EnrollmentID: p.EnrollmentID, StepID: "activated", Event: ev})
	round(t, d, 1)
	require.Equal(t, row{Delivered: true, Outcome: "not_running", Attempts: 1}, h.row(late))
}

func TestFinalOutcomes(t *testing.T) {
	t.Parallel()
	h := newHarness(t)
	missing := workflows.WorkflowID(uuid.NewString())
	cases := []struct {
		name    string
		kind    string
		payload any
		outcome string
	}{
		{"signal to a missing workflow", intent.KindSignal, intent.Signal{EnrollmentID: uuid.New(), StepID: "w",
			Event: event.Event{ID: store.NewID(), Name: "x", Properties: json.RawMessage(`{}`)}}, "not_running"},
		{"cancel of a missing workflow", intent.KindCancel, intent.Cancel{EnrollmentID: uuid.New(), EventID: ptr(store.NewID())},
			"not_running"},
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

// failedRow is an intent's failure state.
func (h *harness) failed(id uuid.UUID) (bool, string) {
	h.t.Helper()
	var (
		failed bool
		cause  string
	)
	require.NoError(h.t, h.store.Pool().QueryRow(context.Background(), `SELECT failed_at IS NOT NULL AND delivered_at IS NULL,
		coalesce(last_error, '') FROM outbox WHERE id = $1`, id).Scan(&failed, &cause))
	return failed, cause
}

// TestPermanentFailures settles intents Temporal can never take as failed,
// counts them, and goes on with the intents behind them: a start that does
// not decode, and starts in a namespace that does not exist.
func TestPermanentFailures(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	h := newHarness(t)
	reader := sdkmetric.NewManualReader()
	meter := sdkmetric.NewMeterProvider(sdkmetric.WithReader(reader))
	d := dispatch.New(h.store, h.client, dispatch.Config{TaskQueue: h.queue, Lease: time.Minute, Meter: meter}, quiet())

	bad := startIntent()
	badID := workflows.WorkflowID(bad.EnrollmentID.String())
	badStart := h.add(badID, intent.KindStart, undecodable(bad))
	// Queued behind the failed start: delivered, not held back for ever.
	cancel := h.add(badID, intent.KindCancel, intent.Cancel{EnrollmentID: bad.EnrollmentID, EventID: ptr(store.NewID())})
	good := startIntent()
	goodStart := h.add(workflows.WorkflowID(good.EnrollmentID.String()), intent.KindStart, good)

	round(t, d, 2)
	failed, cause := h.failed(badStart)
	require.True(t, failed)
	require.Contains(t, cause, "does not decode")
	require.Equal(t, "started", h.row(goodStart).Outcome)
	round(t, d, 1)
	require.Equal(t, "not_running", h.row(cancel).Outcome)
	pending, err := h.store.PendingIntents(ctx)
	require.NoError(t, err)
	require.Zero(t, pending)

	// A namespace that does not exist refuses every start for good.
	lost, err := client.Dial(client.Options{HostPort: devServer.FrontendHostPort(), Namespace: "no-such-namespace", Logger: quiet()})
	require.NoError(t, err)
	t.Cleanup(lost.Close)
	nowhere := startIntent()
	nowhereStart := h.add(workflows.WorkflowID(nowhere.EnrollmentID.String()), intent.KindStart, nowhere)
	round(t, dispatch.New(h.store, lost, dispatch.Config{TaskQueue: h.queue, Meter: meter}, quiet()), 1)
	failed, cause = h.failed(nowhereStart)
	require.True(t, failed)
	require.Contains(t, cause, "no-such-namespace")

	var rm metricdata.ResourceMetrics
	require.NoError(t, reader.Collect(ctx, &rm))
	counts := map[string]int64{}
	for _, sm := range rm.ScopeMetrics {
		for _, m := range sm.Metrics {
			if m.Name != "signalbox.outbox.failed" {
				continue
			}
			for _, dp := range m.Data.(metricdata.Sum[int64]).DataPoints {
				c, _ := dp.Attributes.Value("cause")
				counts[c.AsString()] += dp.Value
			}
		}
	}
	require.Equal(t, map[string]int64{"invalid_payload": 1, "namespace_not_found": 1}, counts)
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
	id := h.add(wfID, intent.KindStart, p)
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

func ptr[T any](v T) *T { return &v }

// TestStartHandsTheStoredInput starts two enrollments of one automation
// version (the second is not decoded whole) and requires each workflow's
// input, read back from its history, to equal the intent it came from, and
// its search attributes to name the workspace, automation and contact.
func TestStartHandsTheStoredInput(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	h := newHarness(t)
	d := h.dispatcher(h.client)
	first := startIntent()
	second := startIntent()
	second.AutomationID, second.Version, second.Definition = first.AutomationID, first.Version, first.Definition
	second.Trigger.Properties = json.RawMessage(`{"plan": "pro", "seats": 12}`)
	for _, in := range []intent.Start{first, second} {
		id := workflows.WorkflowID(in.EnrollmentID.String())
		added := h.add(id, intent.KindStart, in)
		round(t, d, 1)
		require.Equal(t, "started", h.row(added).Outcome)

		ev, err := h.client.GetWorkflowHistory(ctx, id, "", false, enumspb.HISTORY_EVENT_FILTER_TYPE_ALL_EVENT).Next()
		require.NoError(t, err)
		started := ev.GetWorkflowExecutionStartedEventAttributes()
		var got intent.Start
		require.NoError(t, converter.GetDefaultDataConverter().FromPayloads(started.GetInput(), &got))
		want, err := json.Marshal(in)
		require.NoError(t, err)
		have, err := json.Marshal(got)
		require.NoError(t, err)
		require.JSONEq(t, string(want), string(have))

		attrs := started.GetSearchAttributes().GetIndexedFields()
		for name, value := range map[string]uuid.UUID{workflows.WorkspaceAttribute.GetName(): in.WorkspaceID,
			workflows.AutomationAttribute.GetName(): in.AutomationID, workflows.ContactAttribute.GetName(): in.ContactID} {
			var s string
			require.NoError(t, converter.GetDefaultDataConverter().FromPayload(attrs[name], &s), name)
			require.Equal(t, value.String(), s, name)
		}
	}
}

// TestStartIsEagerBesideAWorker starts enrollments through a client that
// also runs a worker of their task queue, as `signalbox worker` and
// `signalbox dev` do: the server hands each workflow's first task back in
// the start's answer (eager start), skipping a trip through its matching
// service, and the workflows run.
func TestStartIsEagerBesideAWorker(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	var starts, eager atomic.Int64
	count := func(ctx context.Context, method string, req, reply any, cc *grpc.ClientConn,
		invoker grpc.UnaryInvoker, opts ...grpc.CallOption) error {
		err := invoker(ctx, method, req, reply, cc, opts...)
		if r, ok := reply.(*workflowservice.StartWorkflowExecutionResponse); ok && err == nil {
			starts.Add(1)
			if r.GetEagerWorkflowTask() != nil {
				eager.Add(1)
			}
		}
		return err
	}
	// The harness's worker runs on the harness's client, as a `signalbox
	// worker` process's does beside its dispatcher.
	h := newHarnessWith(t, client.ConnectionOptions{DialOptions: []grpc.DialOption{grpc.WithChainUnaryInterceptor(count)}})
	c := h.client
	d := h.dispatcher(c)
	var ids []string
	for range 3 {
		in := startIntent()
		id := workflows.WorkflowID(in.EnrollmentID.String())
		ids = append(ids, id)
		added := h.add(id, intent.KindStart, in)
		round(t, d, 1)
		require.Equal(t, "started", h.row(added).Outcome)
	}
	require.EqualValues(t, 3, starts.Load())
	require.EqualValues(t, 3, eager.Load(), "every start came back with its first workflow task")
	// Each ran its first task (stubEnrollment now waits for a signal).
	for _, id := range ids {
		require.Eventually(t, func() bool {
			it := c.GetWorkflowHistory(ctx, id, "", false, enumspb.HISTORY_EVENT_FILTER_TYPE_ALL_EVENT)
			for it.HasNext() {
				ev, err := it.Next()
				if err != nil {
					return false
				}
				if ev.GetEventType() == enumspb.EVENT_TYPE_WORKFLOW_TASK_COMPLETED {
					return true
				}
			}
			return false
		}, 10*time.Second, 50*time.Millisecond, id)
	}
}
