// Package e2e tests Signalbox whole: the HTTP API on real PostgreSQL, the
// outbox dispatcher, and enrollment workflows on a real Temporal dev server
// run by real workers. Time is made short by the automations themselves
// (delays of a second), never by sleeping in the test.
package e2e

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/http"
	"net/http/httptest"
	"os"
	"slices"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/google/uuid"
	"github.com/stretchr/testify/require"
	sdktrace "go.opentelemetry.io/otel/sdk/trace"
	"go.temporal.io/api/workflowservice/v1"
	"go.temporal.io/sdk/activity"
	"go.temporal.io/sdk/client"
	temporalotel "go.temporal.io/sdk/contrib/opentelemetry"
	"go.temporal.io/sdk/interceptor"
	tlog "go.temporal.io/sdk/log"
	"go.temporal.io/sdk/testsuite"
	"go.temporal.io/sdk/worker"
	"go.temporal.io/sdk/workflow"

	"github.com/signalbox/signalbox/activities"
	"github.com/signalbox/signalbox/api"
	"github.com/signalbox/signalbox/catalog"
	"github.com/signalbox/signalbox/conditions"
	"github.com/signalbox/signalbox/dispatch"
	"github.com/signalbox/signalbox/flowcontrol"
	"github.com/signalbox/signalbox/ingest"
	"github.com/signalbox/signalbox/reconcile"
	"github.com/signalbox/signalbox/store"
	"github.com/signalbox/signalbox/store/storetest"
	"github.com/signalbox/signalbox/temporaltest"
	"github.com/signalbox/signalbox/triggers"
	"github.com/signalbox/signalbox/workflows"
)

// devServer is the Temporal dev server shared by the package's tests.
var devServer *testsuite.DevServer

func TestMain(m *testing.M) {
	code := func() int {
		srv, err := startDevServer("", "")
		if err != nil {
			fmt.Fprintln(os.Stderr, "e2e:", err)
			return 1
		}
		devServer = srv
		defer func() { _ = srv.Stop() }()
		return m.Run()
	}()
	storetest.Cleanup()
	os.Exit(code)
}

// startDevServer starts a dev server with `make run`'s settings; hostPort
// and dbFile may be empty.
func startDevServer(hostPort, dbFile string) (*testsuite.DevServer, error) {
	return temporaltest.Start(context.Background(), temporaltest.Options{HostPort: hostPort, DBFile: dbFile, Logger: quietLogger()})
}

func quietLogger() *slog.Logger {
	if os.Getenv("E2E_LOG") != "" {
		return slog.New(slog.NewTextHandler(os.Stderr, &slog.HandlerOptions{Level: slog.LevelDebug}))
	}
	return slog.New(slog.NewTextHandler(io.Discard, nil))
}

// system is one Signalbox deployment for one test: API over HTTP,
// dispatcher and a worker on a task queue of its own.
type system struct {
	t        *testing.T
	url      string
	store    *store.Store
	temporal client.Client
	queue    string
	disp     *dispatch.Dispatcher
	acts     *activities.Activities
	rec      *ingest.Recorder
	env      *conditions.Env
}

type systemOptions struct {
	hostPort string
	// wrap lets a test replace activities on its worker.
	register func(w worker.Worker, a *activities.Activities)
	// workers is how many worker instances to run (default 1).
	workers int
	// tracing, when set, traces the API and Temporal calls.
	tracing *sdktrace.TracerProvider
	// workflow configures the enrollment workflow of the workers.
	workflow workflows.Config
}

func newSystem(t *testing.T, o systemOptions) *system {
	t.Helper()
	if o.hostPort == "" {
		o.hostPort = devServer.FrontendHostPort()
	}
	if o.workers == 0 {
		o.workers = 1
	}
	log := quietLogger()
	st := storetest.Isolated(t, store.Config{})
	env, err := conditions.NewEnv(conditions.Config{})
	require.NoError(t, err)
	matcher := triggers.New(st, env, time.Minute, log)
	st.SetAutomator(matcher)
	copts := client.Options{HostPort: o.hostPort, Logger: log}
	if o.tracing != nil {
		ti, err := temporalotel.NewTracingInterceptor(temporalotel.TracerOptions{Tracer: o.tracing.Tracer("temporal-sdk")})
		require.NoError(t, err)
		copts.Interceptors = []interceptor.ClientInterceptor{ti}
	}
	tc, err := client.NewLazyClient(copts)
	require.NoError(t, err)
	t.Cleanup(tc.Close)

	queue := "test-" + uuid.NewString()
	disp := dispatch.New(st, tc, dispatch.Config{Poll: 100 * time.Millisecond, TaskQueue: queue}, log)
	cat := catalog.New(st, time.Minute, log)
	rec := ingest.NewRecorder(st, ingest.RecorderConfig{OnIntents: disp.Wake, Catalog: cat})
	t.Cleanup(rec.Close)
	ctx, cancel := context.WithCancel(context.Background())
	var wg sync.WaitGroup
	wg.Add(1)
	go func() {
		defer wg.Done()
		disp.Run(ctx)
	}()
	t.Cleanup(func() { cancel(); wg.Wait() })

	releaser := &flowcontrol.Releaser{Store: st, Every: 200 * time.Millisecond, Wake: disp.Wake, Log: log}
	wg.Add(1)
	go func() {
		defer wg.Done()
		releaser.Run(ctx)
	}()

	recon := reconcile.New(st, tc, reconcile.Config{Every: 300 * time.Millisecond}, log)
	wg.Add(1)
	go func() {
		defer wg.Done()
		recon.Run(ctx)
	}()

	acts := &activities.Activities{Store: st, Recorder: rec, Env: env, Log: log,
		HTTP: activities.NewWebhookClient(activities.WebhookConfig{AllowPrivate: true, Timeout: 5 * time.Second})}
	for range o.workers {
		w := worker.New(tc, queue, worker.Options{StickyScheduleToStartTimeout: time.Minute})
		o.workflow.Register(w)
		w.RegisterWorkflowWithOptions(workflows.Backfill, workflow.RegisterOptions{Name: workflows.BackfillWorkflow})
		if o.register != nil {
			o.register(w, acts)
		} else {
			w.RegisterActivity(acts)
		}
		require.NoError(t, w.Start())
		t.Cleanup(w.Stop)
	}

	acfg := api.Config{Store: st, Recorder: rec, Logger: log, Conditions: env, Triggers: matcher, OnIntents: disp.Wake,
		Temporal: tc, Catalog: cat}
	if o.tracing != nil {
		acfg.Tracer = o.tracing
	}
	srv := httptest.NewServer(api.New(acfg).Handler())
	t.Cleanup(srv.Close)
	return &system{t: t, url: srv.URL, store: st, temporal: tc, queue: queue, disp: disp, acts: acts, rec: rec, env: env}
}

// tenant is a workspace of the system, with its key.
type tenant struct {
	s   *system
	key string
	ws  store.Workspace
}

func (s *system) tenant() *tenant {
	ws, key := storetest.Workspace(s.t, s.store, store.PlanEnterprise)
	return &tenant{s: s, key: key, ws: ws}
}

// call sends a request and decodes the JSON answer, requiring the status.
func (tn *tenant) call(status int, method, path string, body any) map[string]any {
	t := tn.s.t
	t.Helper()
	var rd io.Reader
	if body != nil {
		raw, err := json.Marshal(body)
		require.NoError(t, err)
		rd = bytes.NewReader(raw)
	}
	req, err := http.NewRequest(method, tn.s.url+path, rd)
	require.NoError(t, err)
	req.Header.Set("Authorization", "Bearer "+tn.key)
	resp, err := http.DefaultClient.Do(req)
	require.NoError(t, err)
	defer resp.Body.Close()
	raw, err := io.ReadAll(resp.Body)
	require.NoError(t, err)
	require.Equal(t, status, resp.StatusCode, "%s %s: %s", method, path, raw)
	var out map[string]any
	if len(raw) > 0 {
		require.NoError(t, json.Unmarshal(raw, &out))
	}
	return out
}

// automation saves and enables an automation from JSON text.
func (tn *tenant) automation(def string) string {
	tn.s.t.Helper()
	var body map[string]any
	require.NoError(tn.s.t, json.Unmarshal([]byte(def), &body))
	a := tn.call(http.StatusCreated, "POST", "/v1/automations", body)
	id := a["id"].(string)
	tn.call(http.StatusOK, "POST", "/v1/automations/"+id+"/enable", nil)
	return id
}

// try sends a request and returns its status, whatever it is.
func (tn *tenant) try(method, path string, body any) int {
	var rd io.Reader
	if body != nil {
		raw, _ := json.Marshal(body)
		rd = bytes.NewReader(raw)
	}
	req, err := http.NewRequest(method, tn.s.url+path, rd)
	if err != nil {
		return 0
	}
	req.Header.Set("Authorization", "Bearer "+tn.key)
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		return 0
	}
	_, _ = io.Copy(io.Discard, resp.Body)
	_ = resp.Body.Close()
	return resp.StatusCode
}

// quietTemporalLogger is quietLogger for the SDK.
func quietTemporalLogger() tlog.Logger { return tlog.NewStructuredLogger(quietLogger()) }

// event sends one event and returns the answer.
func (tn *tenant) event(body map[string]any) map[string]any {
	tn.s.t.Helper()
	return tn.call(http.StatusAccepted, "POST", "/v1/events", body)
}

// enrollments lists enrollments matching the query string.
func (tn *tenant) enrollments(q string) []map[string]any {
	tn.s.t.Helper()
	page := tn.call(http.StatusOK, "GET", "/v1/enrollments?limit=1000&"+q, nil)
	var out []map[string]any
	for _, e := range page["data"].([]any) {
		out = append(out, e.(map[string]any))
	}
	return out
}

// waitEnrollment waits until the enrollment reaches a final status.
func (tn *tenant) waitEnrollment(id string, timeout time.Duration) map[string]any {
	tn.s.t.Helper()
	var e map[string]any
	require.Eventually(tn.s.t, func() bool {
		e = tn.call(http.StatusOK, "GET", "/v1/enrollments/"+id, nil)
		return e["status"] != "active"
	}, timeout, 50*time.Millisecond, "enrollment %s never ended", id)
	return e
}

// waitStep waits until the enrollment's log has a line for step with outcome.
func (tn *tenant) waitStep(id, step, outcome string, timeout time.Duration) {
	tn.s.t.Helper()
	require.Eventually(tn.s.t, func() bool {
		e := tn.call(http.StatusOK, "GET", "/v1/enrollments/"+id, nil)
		for _, s := range e["steps"].([]any) {
			m := s.(map[string]any)
			if m["step_id"] == step && m["outcome"] == outcome {
				return true
			}
		}
		return false
	}, timeout, 50*time.Millisecond, "enrollment %s never logged %s %s", id, step, outcome)
}

// outcomes lists "step:outcome" of an enrollment's log.
func outcomes(e map[string]any) []string {
	var out []string
	for _, s := range e["steps"].([]any) {
		m := s.(map[string]any)
		out = append(out, fmt.Sprintf("%s:%s", m["step_id"], m["outcome"]))
	}
	return out
}

// hook is a webhook receiver that counts and keeps what it got.
type hook struct {
	srv    *httptest.Server
	mu     sync.Mutex
	bodies []map[string]any
	hits   atomic.Int64
	status atomic.Int64
}

func newHook(t *testing.T) *hook {
	h := &hook{}
	h.status.Store(http.StatusOK)
	h.srv = httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		var body map[string]any
		_ = json.NewDecoder(r.Body).Decode(&body)
		h.mu.Lock()
		h.bodies = append(h.bodies, body)
		h.mu.Unlock()
		h.hits.Add(1)
		w.WriteHeader(int(h.status.Load()))
	}))
	t.Cleanup(h.srv.Close)
	return h
}

func (h *hook) url(path string) string { return h.srv.URL + path }

// freePort returns a loopback address nothing listens on.
func freePort(t *testing.T) string {
	l, err := net.Listen("tcp", "127.0.0.1:0")
	require.NoError(t, err)
	addr := l.Addr().String()
	require.NoError(t, l.Close())
	return addr
}

// registerExcept registers every activity of a except the named ones,
// which a test then registers in its own way.
func registerExcept(w worker.Worker, a *activities.Activities, skip ...string) {
	for name, fn := range map[string]any{"RecordStep": a.RecordStep, "FinishEnrollment": a.FinishEnrollment,
		"EvaluateCondition": a.EvaluateCondition, "RegisterWait": a.RegisterWait, "ClearWait": a.ClearWait,
		"SendWebhook": a.SendWebhook, "SendEmail": a.SendEmail, "UpdateContact": a.UpdateContact, "EmitEvent": a.EmitEvent,
		"BackfillPage": a.BackfillPage, "FinishBackfill": a.FinishBackfill} {
		if !slices.Contains(skip, name) {
			w.RegisterActivityWithOptions(fn, activity.RegisterOptions{Name: name})
		}
	}
}

func listRequest(q string) *workflowservice.ListWorkflowExecutionsRequest {
	return &workflowservice.ListWorkflowExecutionsRequest{Namespace: "default", Query: q}
}

func jsonText(v any) string {
	b, _ := json.Marshal(v)
	return string(b)
}
