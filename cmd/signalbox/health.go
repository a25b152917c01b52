package main

import (
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/http"
	"time"

	"github.com/signalbox/signalbox/api"
)

// serveHealth serves a worker's /healthz, /readyz and /metrics on addr
// until ctx ends, so that an orchestrator can probe a process that has no
// API. It returns once it listens (or failed to).
func serveHealth(ctx context.Context, addr string, srv *api.Server, log *slog.Logger, goRun func(func()), errs chan<- error) error {
	ln, err := net.Listen("tcp", addr)
	if err != nil {
		return fmt.Errorf("listen on HEALTH_ADDR %s: %w", addr, err)
	}
	httpSrv := api.NewHTTPServer(addr, srv.HealthHandler())
	log.InfoContext(ctx, "health endpoints listening", "addr", ln.Addr().String())
	goRun(func() {
		if err := httpSrv.Serve(ln); err != nil && !errors.Is(err, http.ErrServerClosed) {
			errs <- err
		}
	})
	goRun(func() {
		<-ctx.Done()
		sctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), 5*time.Second)
		defer cancel()
		_ = httpSrv.Shutdown(sctx)
	})
	return nil
}

// runProbe is `signalbox probe URL`: it GETs URL and succeeds on a 2xx
// answer, for container health checks in an image that has no curl.
func runProbe(ctx context.Context, args []string, stdout, stderr io.Writer) error {
	if len(args) != 1 {
		fmt.Fprintln(stderr, "usage: signalbox probe URL")
		return errUsage
	}
	ctx, cancel := context.WithTimeout(ctx, 5*time.Second)
	defer cancel()
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, args[0], nil)
	if err != nil {
		return fmt.Errorf("probe: %w", err)
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		return fmt.Errorf("probe: %w", err)
	}
	defer resp.Body.Close()
	body, _ := io.ReadAll(io.LimitReader(resp.Body, 4<<10))
	if resp.StatusCode/100 != 2 {
		return fmt.Errorf("probe: %s answered %s: %s", args[0], resp.Status, body)
	}
	_, _ = stdout.Write(body)
	if len(body) > 0 && body[len(body)-1] != '\n' {
		fmt.Fprintln(stdout)
	}
	return nil
}
