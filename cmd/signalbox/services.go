package main

import (
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/http"
	"os"
	"sync"
	"time"

	"go.temporal.io/sdk/client"
	temporalotel "go.temporal.io/sdk/contrib/opentelemetry"
	"go.temporal.io/sdk/interceptor"
	tlog "go.temporal.io/sdk/log"
	"go.temporal.io/sdk/worker"
	"go.temporal.io/sdk/workflow"

	"github.com/signalbox/signalbox/activities"
	"github.com/signalbox/signalbox/api"
	"github.com/signalbox/signalbox/backlog"
	"github.com/signalbox/signalbox/catalog"
	"github.com/signalbox/signalbox/conditions"
	"github.com/signalbox/signalbox/config"
	"github.com/signalbox/signalbox/dispatch"
	"github.com/signalbox/signalbox/flowcontrol"
	"github.com/signalbox/signalbox/ingest"
	"github.com/signalbox/signalbox/reconcile"
	"github.com/signalbox/signalbox/retention"
	"github.com/signalbox/signalbox/store"
	"github.com/signalbox/signalbox/telemetry"
	"github.com/signalbox/signalbox/triggers"
	"github.com/signalbox/signalbox/workflows"
)

// roles says which parts of Signalbox a process runs.
type roles struct {
	api, worker bool
	// ready is called with the API's address once it listens.
	ready func(addr string)
}

// runServices runs the chosen roles until ctx ends, then shuts down
// gracefully: the HTTP server stops taking requests and finishes those in
// flight, the recorder commits what it holds, the worker finishes its
// tasks, background loops stop.
func runServices(ctx context.Context, getenv func(string) string, stdout, stderr io.Writer, r roles) error {
	cfg, err := config.FromEnv(getenv)
	if err != nil {
		return err
	}
	log := telemetry.NewLogger(stderr, cfg.LogLevel, cfg.LogFormat)
	tel, err := telemetry.Setup(ctx, "signalbox", cfg.Tracing)
	if err != nil {
		return fmt.Errorf("telemetry: %w", err)
	}
	defer func() {
		sctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), 5*time.Second)
		defer cancel()
		_ = tel.Shutdown(sctx)
	}()

	st, err := store.Open(ctx, cfg.DatabaseURL, store.Config{
		SkipDecisions:  cfg.DecisionRetention == 0,
		SkipNameCounts: cfg.BenchSkipNameCounts,
		MaxConns:       cfg.DBMaxConns, Tracing: cfg.Tracing, Retention: cfg.EventRetention,
		StatementTimeout: cfg.DBStatementTimeout, LockTimeout: cfg.DBLockTimeout,
	})
	if err != nil {
		return err
	}
	defer st.Close()
	if have, want, err := st.SchemaVersion(ctx); err != nil {
		return fmt.Errorf("read schema version: %w", err)
	} else if have < want {
		return fmt.Errorf("the database schema is at version %d and this binary needs %d: run `signalbox migrate` first", have, want)
	}
	if warnings, err := st.DurabilityWarnings(ctx); err != nil {
		log.WarnContext(ctx, "could not check durability settings", "error", err.Error())
	} else {
		for _, w := range warnings {
			log.WarnContext(ctx, "durability", "warning", w)
		}
	}

	env, err := conditions.NewEnv(conditions.Config{})
	if err != nil {
		return err
	}
	matcher := triggers.New(st, env, cfg.TriggerCacheTTL, log)
	st.SetAutomator(matcher)

	// A lazy client: the API keeps accepting events while Temporal is down;
	// the outbox holds the intents until it is back.
	tc, err := client.NewLazyClient(client.Options{
		HostPort:          cfg.TemporalAddress,
		Namespace:         cfg.TemporalNamespace,
		Logger:            tlog.NewStructuredLogger(log),
		MetricsHandler:    temporalotel.NewMetricsHandler(temporalotel.MetricsHandlerOptions{Meter: tel.Meter.Meter("temporal-sdk")}),
		Interceptors:      []interceptor.ClientInterceptor{tracingInterceptor(tel)},
		ConnectionOptions: client.ConnectionOptions{GrpcCompression: cfg.GrpcCompression()},
	})
	if err != nil {
		return fmt.Errorf("temporal client: %w", err)
	}
	defer tc.Close()

	host, _ := os.Hostname()
	disp := dispatch.New(st, tc, dispatch.Config{Poll: cfg.OutboxPoll, Namespace: cfg.TemporalNamespace,
		Identity: fmt.Sprintf("signalbox-dispatcher@%s/%d", host, os.Getpid())}, log)
	cat := catalog.New(st, cfg.CatalogCacheTTL, log)
	rec := ingest.NewRecorder(st, ingest.RecorderConfig{Committers: cfg.Committers, OnIntents: disp.Wake, Catalog: cat})
	defer rec.Close()

	ctx, cancel := context.WithCancel(ctx)
	defer cancel()
	var wg sync.WaitGroup
	errs := make(chan error, 4)
	goRun := func(f func()) {
		wg.Add(1)
		go func() {
			defer wg.Done()
			f()
		}()
	}
	goRun(func() { disp.Run(ctx) })
	mon, err := backlog.New(st, cfg.BacklogEvery, tel.Meter, log)
	if err != nil {
		return fmt.Errorf("backlog gauges: %w", err)
	}
	goRun(func() { mon.Run(ctx) })

	if r.worker {
		// Build once so that a bad setting fails at start; then start it,
		// waiting for Temporal if it is not up yet.
		if _, err := newWorker(tc, st, rec, env, cfg, log); err != nil {
			return err
		}
		goRun(func() { runWorker(ctx, tc, st, rec, env, cfg, log) })
		sweeper := &retention.Sweeper{Store: st, Interval: cfg.RetentionInterval, Log: log}
		goRun(func() { sweeper.Run(ctx) })
		// Delivered intents are kept a day, Idempotency-Key answers their TTL.
		goRun(func() {
			purge(ctx, cfg.RetentionInterval, "outbox", log, func(ctx context.Context, limit int) (int64, error) {
				return st.PurgeDelivered(ctx, 24*time.Hour, limit)
			})
		})
		goRun(func() {
			purge(ctx, cfg.RetentionInterval, "idempotency key", log, func(ctx context.Context, limit int) (int64, error) {
				return st.PurgeIdempotencyKeys(ctx, cfg.IdempotencyKeyTTL, limit)
			})
		})
		goRun(func() {
			purge(ctx, cfg.RetentionInterval, "ended enrollment", log, func(ctx context.Context, limit int) (int64, error) {
				return st.PurgeEnded(ctx, cfg.EnrollmentRetention, limit)
			})
		})
		// The catalog's hourly counters older than a day fold into one row
		// per name.
		goRun(func() {
			purge(ctx, cfg.RetentionInterval, "event name counter", log, st.FoldNameCounts)
		})
		// Charts' distinct-contact cache entries nobody recomputed for a
		// month (store.ContactBucketMaxAge).
		goRun(func() {
			purge(ctx, cfg.RetentionInterval, "chart contact count", log, st.PurgeContactBuckets)
		})
		if cfg.DecisionRetention > 0 {
			goRun(func() {
				purge(ctx, cfg.RetentionInterval, "decision", log, func(ctx context.Context, limit int) (int64, error) {
					return st.PurgeDecisions(ctx, cfg.DecisionRetention, limit)
				})
			})
		}
		goRun(func() {
			purge(ctx, cfg.RetentionInterval, "source delivery", log, func(ctx context.Context, limit int) (int64, error) {
				return st.PurgeDeliveries(ctx, cfg.DeliveryRetention, cfg.DeliveryMaxPerSource, limit)
			})
		})
		recon := reconcile.New(st, tc, reconcile.Config{Every: cfg.ReconcileEvery}, log)
		goRun(func() { recon.Run(ctx) })
		releaser := &flowcontrol.Releaser{Store: st, Every: cfg.QueueReleaseEvery, Wake: disp.Wake, Log: log}
		goRun(func() { releaser.Run(ctx) })
		if cfg.HealthAddr != "" && !r.api {
			health := api.New(api.Config{Store: st, Logger: log, Metrics: tel.Metrics, Meter: tel.Meter, Backlog: mon})
			if err := serveHealth(ctx, cfg.HealthAddr, health, log, goRun, errs); err != nil {
				return err
			}
		}
		log.InfoContext(ctx, "worker started", "task_queue", workflows.TaskQueue, "retention", cfg.EventRetention.String())
	}

	if r.api {
		srv := api.New(api.Config{
			Store: st, Recorder: rec, Logger: log, AuthCacheTTL: cfg.AuthCacheTTL,
			Metrics: tel.Metrics, Tracer: tel.Tracer, Meter: tel.Meter, Conditions: env, Triggers: matcher,
			OnIntents: disp.Wake, Temporal: tc, Catalog: cat, Backlog: mon,
			PublicURL: cfg.PublicURL, SourceCacheTTL: cfg.SourceCacheTTL, DeliveryRetention: cfg.DeliveryRetention,
		})
		httpSrv := api.NewHTTPServer(cfg.HTTPAddr, srv.Handler())
		ln, err := net.Listen("tcp", cfg.HTTPAddr)
		if err != nil {
			return fmt.Errorf("listen on %s: %w", cfg.HTTPAddr, err)
		}
		log.InfoContext(ctx, "api listening", "addr", ln.Addr().String())
		if r.ready != nil {
			r.ready(ln.Addr().String())
		}
		goRun(func() {
			if err := httpSrv.Serve(ln); err != nil && !errors.Is(err, http.ErrServerClosed) {
				errs <- err
				cancel()
			}
		})
		goRun(func() {
			<-ctx.Done()
			sctx, scancel := context.WithTimeout(context.WithoutCancel(ctx), 20*time.Second)
			defer scancel()
			if err := httpSrv.Shutdown(sctx); err != nil {
				log.Warn("http shutdown", "error", err.Error())
			}
		})
	}

	<-ctx.Done()
	wg.Wait()
	log.Info("stopped")
	select {
	case err := <-errs:
		return err
	default:
		return nil
	}
}

// newWorker builds the Temporal worker that runs enrollments. Any number of
// processes may run one on the same task queue; Temporal spreads the work.
func newWorker(tc client.Client, st *store.Store, rec *ingest.Recorder, env *conditions.Env, cfg config.Config, log *slog.Logger) (worker.Worker, error) {
	allow, err := activities.ParseAllowlist(cfg.WebhookAllowlist)
	if err != nil {
		return nil, fmt.Errorf("WEBHOOK_ALLOWLIST: %w", err)
	}
	acts := &activities.Activities{
		Store:     st,
		Recorder:  rec,
		Env:       env,
		HTTP:      activities.NewWebhookClient(activities.WebhookConfig{AllowPrivate: cfg.WebhookAllowPrivate, Allow: allow}),
		EmailFrom: cfg.EmailFrom,
		Log:       log,
	}
	if cfg.SMTPURL != "" {
		if acts.Mailer, err = activities.NewSMTPMailer(cfg.SMTPURL); err != nil {
			return nil, fmt.Errorf("SMTP_URL: %w", err)
		}
	}
	w := worker.New(tc, workflows.TaskQueue, worker.Options{
		MaxConcurrentActivityExecutionSize: cfg.WorkerConcurrency,
		MaxConcurrentWorkflowTaskPollers:   cfg.WorkerPollers,
		MaxConcurrentActivityTaskPollers:   cfg.WorkerPollers,
		// A longer sticky timeout avoids slow fallbacks to the normal queue
		// on a busy dev server.
		StickyScheduleToStartTimeout: time.Minute,
	})
	wf := workflows.Config{BookkeepingLimit: cfg.BookkeepingRetryLimit}
	wf.Register(w)
	w.RegisterWorkflowWithOptions(workflows.Backfill, workflow.RegisterOptions{Name: workflows.BackfillWorkflow})
	w.RegisterActivity(acts)
	return w, nil
}

// runWorker starts the Temporal worker, retrying with backoff while
// Temporal cannot be reached, and stops it when ctx ends.
func runWorker(ctx context.Context, tc client.Client, st *store.Store, rec *ingest.Recorder, env *conditions.Env, cfg config.Config, log *slog.Logger) {
	backoff := time.Second
	for ctx.Err() == nil {
		w, err := newWorker(tc, st, rec, env, cfg, log)
		if err == nil {
			if err = w.Start(); err == nil {
				log.InfoContext(ctx, "temporal worker polling", "task_queue", workflows.TaskQueue)
				<-ctx.Done()
				w.Stop()
				return
			}
		}
		log.WarnContext(ctx, "temporal worker not started; retrying", "error", err.Error(), "retry_in", backoff.String())
		select {
		case <-ctx.Done():
			return
		case <-time.After(backoff):
		}
		backoff = min(2*backoff, 30*time.Second)
	}
}

func tracingInterceptor(tel *telemetry.Telemetry) interceptor.ClientInterceptor {
	ti, err := temporalotel.NewTracingInterceptor(temporalotel.TracerOptions{Tracer: tel.Tracer.Tracer("temporal-sdk")})
	if err != nil {
		// Only a bad option set fails; fall back to no tracing.
		return &interceptor.ClientInterceptorBase{}
	}
	return ti
}

// purge runs a bounded delete (of at most 1000 rows) every interval, and
// again at once while it finds full batches, until ctx ends.
func purge(ctx context.Context, every time.Duration, what string, log *slog.Logger,
	batch func(ctx context.Context, limit int) (int64, error)) {
	t := time.NewTicker(every)
	defer t.Stop()
	for {
		for ctx.Err() == nil {
			n, err := batch(ctx, 1000)
			if err != nil && ctx.Err() == nil {
				log.WarnContext(ctx, what+" purge failed", "error", err.Error())
			}
			if err != nil || n < 1000 {
				break
			}
		}
		select {
		case <-ctx.Done():
			return
		case <-t.C:
		}
	}
}
