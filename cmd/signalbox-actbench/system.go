package main

import (
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/http"
	"net/netip"
	"os"
	"path/filepath"
	"sync"
	"time"

	"go.temporal.io/sdk/activity"
	"go.temporal.io/sdk/client"
	"go.temporal.io/sdk/interceptor"
	"go.temporal.io/sdk/testsuite"
	"go.temporal.io/sdk/worker"
	"go.temporal.io/sdk/workflow"
	"google.golang.org/grpc"

	"github.com/signalbox/signalbox/activities"
	"github.com/signalbox/signalbox/api"
	"github.com/signalbox/signalbox/conditions"
	"github.com/signalbox/signalbox/config"
	"github.com/signalbox/signalbox/dispatch"
	"github.com/signalbox/signalbox/ingest"
	"github.com/signalbox/signalbox/procstat"
	"github.com/signalbox/signalbox/store"
	"github.com/signalbox/signalbox/temporaltest"
	"github.com/signalbox/signalbox/triggers"
	"github.com/signalbox/signalbox/workflows"
)

// system is everything one run measures, in this process except the two
// servers: a throwaway PostgreSQL database, a Temporal dev server of its own,
// and Signalbox wired as `signalbox dev` wires it (cmd/signalbox/services.go)
// and as e2e/harness_test.go does: store, trigger matcher, outbox
// dispatcher, group-commit recorder and the API over real HTTP. Workers are
// started per phase, so the baseline and Signalbox never poll at once.
type system struct {
	cfg   config.Config
	opts  options
	log   *slog.Logger
	probe *probe

	serverURL, dbName, dbURL string
	dev                      *testsuite.DevServer
	devPID                   int
	pgVersion                string

	store   *store.Store
	env     *conditions.Env
	matcher *triggers.Matcher
	tc      client.Client
	disp    *dispatch.Dispatcher
	rec     *ingest.Recorder
	acts    *activities.Activities
	url     string
	http    *http.Client

	closers []func()
}

// startSystem brings everything up; close tears it down, also after an
// error part-way.
func startSystem(ctx context.Context, o options, getenv func(string) string, progress io.Writer) (s *system, err error) {
	s = &system{opts: o, probe: newProbe(),
		log: slog.New(slog.NewTextHandler(progress, &slog.HandlerOptions{Level: slog.LevelWarn}))}
	defer func() {
		if err != nil {
			s.close()
			s = nil
		}
	}()

	// The throwaway database.
	s.serverURL = o.databaseURL
	if s.dbName, s.dbURL, err = store.CreateScratchDatabase(ctx, s.serverURL, "signalbox_actbench_"); err != nil {
		return s, err
	}
	s.onClose(func() {
		if err := store.DropDatabase(s.serverURL, s.dbName); err != nil {
			fmt.Fprintf(progress, "drop database %s: %v\n", s.dbName, err)
		}
	})

	// Production's settings, from the environment like `signalbox dev`,
	// pointed at the throwaway servers.
	devAddr, namespace := o.temporalAddress, o.temporalNamespace
	if devAddr == "" {
		if devAddr, err = freeAddr(); err != nil {
			return s, err
		}
		namespace = "default"
	}
	s.cfg, err = config.FromEnv(func(k string) string {
		switch k {
		case "DATABASE_URL":
			return s.dbURL
		case "TEMPORAL_ADDRESS":
			return devAddr
		case "TEMPORAL_NAMESPACE":
			return namespace
		case "HTTP_ADDR":
			return "127.0.0.1:0"
		}
		return getenv(k)
	})
	if err != nil {
		return s, err
	}
	if o.temporalAddress == "" {
		if err := s.startDevServer(ctx, getenv, devAddr); err != nil {
			return s, err
		}
	} else {
		s.devPID = o.temporalPID
	}

	if s.store, err = store.Open(ctx, s.dbURL, store.Config{MaxConns: s.cfg.DBMaxConns, Retention: s.cfg.EventRetention,
		StatementTimeout: s.cfg.DBStatementTimeout, LockTimeout: s.cfg.DBLockTimeout}); err != nil {
		return s, err
	}
	s.onClose(s.store.Close)
	s.pgVersion = serverVersion(ctx, s.store)
	if s.env, err = conditions.NewEnv(conditions.Config{}); err != nil {
		return s, err
	}
	s.matcher = triggers.New(s.store, s.env, s.cfg.TriggerCacheTTL, s.log)
	s.store.SetAutomator(s.matcher)

	// One client for the dispatcher, the workers and the baseline, with the
	// probe on it.
	if s.tc, err = client.NewLazyClient(client.Options{HostPort: s.cfg.TemporalAddress, Namespace: s.cfg.TemporalNamespace,
		Logger: errorLogger(progress), Interceptors: []interceptor.ClientInterceptor{s.probe},
		ConnectionOptions: client.ConnectionOptions{GrpcCompression: s.cfg.GrpcCompression(),
			DialOptions: []grpc.DialOption{grpc.WithChainUnaryInterceptor(s.probe.unary)}},
	}); err != nil {
		return s, fmt.Errorf("temporal client: %w", err)
	}
	s.onClose(s.tc.Close)

	s.disp = dispatch.New(s.store, s.tc, dispatch.Config{Poll: s.cfg.OutboxPoll, Namespace: s.cfg.TemporalNamespace,
		Identity: fmt.Sprintf("actbench-dispatcher/%d", os.Getpid())}, s.log)
	s.rec = ingest.NewRecorder(s.store, ingest.RecorderConfig{Committers: s.cfg.Committers, OnIntents: s.disp.Wake})
	s.onClose(s.rec.Close)
	dctx, cancel := context.WithCancel(context.WithoutCancel(ctx))
	var wg sync.WaitGroup
	wg.Add(1)
	go func() {
		defer wg.Done()
		s.disp.Run(dctx)
	}()
	s.onClose(func() { cancel(); wg.Wait() })

	// The drain phase's slow actions are webhooks to a receiver of this
	// process.
	hooks := activities.WebhookConfig{}
	if o.actionLatency > 0 {
		hooks.Allow = []netip.Prefix{netip.MustParsePrefix("127.0.0.0/8")}
	}
	s.acts = &activities.Activities{Store: s.store, Recorder: s.rec, Env: s.env, Log: s.log,
		HTTP: activities.NewWebhookClient(hooks)}

	srv := api.New(api.Config{Store: s.store, Recorder: s.rec, Logger: s.log, AuthCacheTTL: s.cfg.AuthCacheTTL,
		Conditions: s.env, Triggers: s.matcher})
	httpSrv := api.NewHTTPServer(s.cfg.HTTPAddr, srv.Handler())
	ln, err := net.Listen("tcp", s.cfg.HTTPAddr)
	if err != nil {
		return s, fmt.Errorf("listen: %w", err)
	}
	s.url = "http://" + ln.Addr().String()
	go func() {
		if err := httpSrv.Serve(ln); err != nil && !errors.Is(err, http.ErrServerClosed) {
			s.log.Error("api server", "error", err.Error())
		}
	}()
	s.onClose(func() {
		sctx, scancel := context.WithTimeout(context.Background(), 10*time.Second)
		defer scancel()
		_ = httpSrv.Shutdown(sctx)
	})
	// Keep-alive connections for every client, so that no phase measures
	// dialling.
	tr := &http.Transport{MaxIdleConns: 1024, MaxIdleConnsPerHost: 1024, IdleConnTimeout: 90 * time.Second}
	s.http = &http.Client{Transport: tr, Timeout: 60 * time.Second}
	s.onClose(tr.CloseIdleConnections)
	return s, nil
}

// onClose registers a teardown step; close runs them in reverse.
func (s *system) onClose(f func()) { s.closers = append(s.closers, f) }

// close tears everything down in reverse order of start.
func (s *system) close() {
	for i := len(s.closers) - 1; i >= 0; i-- {
		s.closers[i]()
	}
	s.closers = nil
}

// startDevServer starts the Temporal CLI's dev server with the flags of
// e2e and `make run` (kept in step with temporaltest.Start, which cannot be
// used here: it reads the process environment and has no bin/temporal
// fallback): search attributes registered, the transfer processor's poll
// rate raised, one task-queue partition, and SQLite in WAL mode with
// synchronous=normal. The database is a file in a temporary directory, as
// `make run` keeps one, unless -temporal-db memory asks for SQLite in
// memory.
func (s *system) startDevServer(ctx context.Context, getenv func(string) string, addr string) error {
	cli := getenv("SIGNALBOX_TEMPORAL_CLI")
	if cli == "" {
		cli = filepath.Join("bin", "temporal")
	}
	if _, err := os.Stat(cli); err != nil {
		return fmt.Errorf("temporal CLI: %w (set SIGNALBOX_TEMPORAL_CLI, or build it with `make test` into bin/temporal)", err)
	}
	dbFile := ""
	if s.opts.temporalDB == "file" {
		dir, err := os.MkdirTemp("", "signalbox-actbench-")
		if err != nil {
			return err
		}
		s.onClose(func() { _ = os.RemoveAll(dir) })
		dbFile = filepath.Join(dir, "temporal.db")
	}
	dev, err := temporaltest.Start(ctx, temporaltest.Options{CLI: cli, HostPort: addr, DBFile: dbFile,
		Logger: slog.New(slog.NewTextHandler(io.Discard, nil))})
	if err != nil {
		return fmt.Errorf("start temporal dev server: %w", err)
	}
	s.dev = dev
	s.onClose(func() { _ = dev.Stop() })
	s.devPID = procstat.ChildPID("temporal")
	return nil
}

// errorLogger is the SDK's logger: errors only, as its warnings at worker
// stop are expected.
func errorLogger(w io.Writer) *slog.Logger {
	return slog.New(slog.NewTextHandler(w, &slog.HandlerOptions{Level: slog.LevelError}))
}

// workerKind says which workflows a worker runs.
type workerKind int

const (
	enrollmentWorker workerKind = iota
	bareWorker
)

// startWorker starts one worker of the kind, with the options
// cmd/signalbox's newWorker uses, on its own task queue. Both kinds get the
// same options and the same (default) pollers. The caller stops it.
func (s *system) startWorker(kind workerKind) (worker.Worker, error) {
	opts := worker.Options{
		MaxConcurrentActivityExecutionSize: s.cfg.WorkerConcurrency,
		MaxConcurrentWorkflowTaskPollers:   s.cfg.WorkerPollers,
		MaxConcurrentActivityTaskPollers:   s.cfg.WorkerPollers,
		StickyScheduleToStartTimeout:       time.Minute,
		Interceptors:                       []interceptor.WorkerInterceptor{s.probe},
	}
	var w worker.Worker
	switch kind {
	case enrollmentWorker:
		w = worker.New(s.tc, workflows.TaskQueue, opts)
		workflows.Config{}.Register(w)
		w.RegisterActivity(s.acts)
	case bareWorker:
		w = worker.New(s.tc, bareQueue, opts)
		w.RegisterWorkflowWithOptions(bareStepFlow, workflow.RegisterOptions{Name: bareStepWorkflow})
		w.RegisterWorkflowWithOptions(bareWaitFlow, workflow.RegisterOptions{Name: bareWaitWorkflow})
		w.RegisterWorkflowWithOptions(bareShapedFlow, workflow.RegisterOptions{Name: bareShapedWorkflow})
		w.RegisterActivityWithOptions(bareShapedStepActivity, activity.RegisterOptions{Name: bareShapedStep})
		for _, name := range bareActivityNames {
			w.RegisterActivityWithOptions(bareNoop, activity.RegisterOptions{Name: name})
		}
	}
	if err := w.Start(); err != nil {
		return nil, fmt.Errorf("start worker: %w", err)
	}
	return w, nil
}

// freeAddr returns a loopback address nothing listens on, for the dev
// server.
func freeAddr() (string, error) {
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return "", err
	}
	defer l.Close()
	return l.Addr().String(), nil
}
