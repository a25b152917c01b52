package main

import (
	"context"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"sync"
	"time"

	"github.com/signalbox/signalbox/api"
	"github.com/signalbox/signalbox/config"
	"github.com/signalbox/signalbox/ingest"
	"github.com/signalbox/signalbox/retention"
	"github.com/signalbox/signalbox/store"
	"github.com/signalbox/signalbox/telemetry"
)

// roles says which parts of Signalbox a process runs.
type roles struct {
	api, worker bool
	// ready is called with the API's address once it listens.
	ready func(addr string)
}

// runServices runs the chosen roles until ctx ends, then shuts down
// gracefully: the HTTP server stops taking requests and finishes those in
// flight, the recorder commits what it holds, background loops stop.
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
		MaxConns: cfg.DBMaxConns, Tracing: cfg.Tracing, Retention: cfg.EventRetention,
	})
	if err != nil {
		return err
	}
	defer st.Close()
	if warnings, err := st.DurabilityWarnings(ctx); err != nil {
		log.WarnContext(ctx, "could not check durability settings", "error", err.Error())
	} else {
		for _, w := range warnings {
			log.WarnContext(ctx, "durability", "warning", w)
		}
	}

	var wg sync.WaitGroup
	errs := make(chan error, 2)
	ctx, cancel := context.WithCancel(ctx)
	defer cancel()

	if r.worker {
		sweeper := &retention.Sweeper{Store: st, Interval: cfg.RetentionInterval, Log: log}
		wg.Add(1)
		go func() {
			defer wg.Done()
			sweeper.Run(ctx)
		}()
		log.InfoContext(ctx, "worker started", "retention", cfg.EventRetention.String())
	}

	if r.api {
		rec := ingest.NewRecorder(st, ingest.RecorderConfig{Committers: cfg.Committers})
		defer rec.Close()
		srv := api.New(api.Config{
			Store: st, Recorder: rec, Logger: log, AuthCacheTTL: cfg.AuthCacheTTL,
			Metrics: tel.Metrics, Tracer: tel.Tracer, Meter: tel.Meter,
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
		wg.Add(1)
		go func() {
			defer wg.Done()
			if err := httpSrv.Serve(ln); err != nil && !errors.Is(err, http.ErrServerClosed) {
				errs <- err
				cancel()
			}
		}()
		wg.Add(1)
		go func() {
			defer wg.Done()
			<-ctx.Done()
			sctx, scancel := context.WithTimeout(context.WithoutCancel(ctx), 20*time.Second)
			defer scancel()
			if err := httpSrv.Shutdown(sctx); err != nil {
				log.Warn("http shutdown", "error", err.Error())
			}
		}()
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
