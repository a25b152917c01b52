package main

import (
	"bytes"
	"context"
	"io"
	"net"
	"net/http"
	"net/http/httptest"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/signalbox/signalbox/store/storetest"
)

func TestProbe(t *testing.T) {
	t.Parallel()
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.URL.Path == "/down" {
			http.Error(w, "down", http.StatusServiceUnavailable)
			return
		}
		_, _ = w.Write([]byte(`{"status":"ok"}`))
	}))
	defer srv.Close()
	var out, errOut bytes.Buffer
	ctx := context.Background()
	require.NoError(t, runProbe(ctx, []string{srv.URL + "/up"}, &out, &errOut))
	require.Equal(t, "{\"status\":\"ok\"}\n", out.String())
	require.ErrorContains(t, runProbe(ctx, []string{srv.URL + "/down"}, &out, &errOut), "503")
	require.Error(t, runProbe(ctx, []string{"http://127.0.0.1:1/"}, &out, &errOut))
	require.ErrorIs(t, runProbe(ctx, nil, &out, &errOut), errUsage)
}

// TestWorkerHealthEndpoints runs a worker with HEALTH_ADDR while Temporal
// cannot be reached (it keeps retrying) and probes its endpoints: alive,
// ready with the backlog, metrics with the backlog gauges.
func TestWorkerHealthEndpoints(t *testing.T) {
	t.Parallel()
	url := storetest.URL(t)
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	require.NoError(t, err)
	addr := ln.Addr().String()
	require.NoError(t, ln.Close())
	getenv := env(map[string]string{"DATABASE_URL": url, "HEALTH_ADDR": addr, "TEMPORAL_ADDRESS": "127.0.0.1:1",
		"OUTBOX_BACKLOG_EVERY": "100ms", "LOG_LEVEL": "error"})
	var out, errOut bytes.Buffer
	ctx := context.Background()
	require.NoError(t, run(ctx, []string{"migrate"}, getenv, &out, &errOut))

	wctx, cancel := context.WithCancel(ctx)
	done := make(chan error, 1)
	go func() { done <- run(wctx, []string{"worker"}, getenv, &bytes.Buffer{}, &bytes.Buffer{}) }()
	defer func() {
		cancel()
		select {
		case err := <-done:
			require.NoError(t, err)
		case <-time.After(30 * time.Second):
			t.Fatal("the worker did not stop")
		}
	}()

	var body bytes.Buffer
	require.Eventually(t, func() bool {
		body.Reset()
		return runProbe(ctx, []string{"http://" + addr + "/readyz"}, &body, &bytes.Buffer{}) == nil &&
			bytes.Contains(body.Bytes(), []byte(`"outbox"`))
	}, 20*time.Second, 50*time.Millisecond)
	require.Contains(t, body.String(), `"status":"ready"`)
	require.Contains(t, body.String(), `"pending_by_kind"`)
	require.NoError(t, runProbe(ctx, []string{"http://" + addr + "/healthz"}, &body, &bytes.Buffer{}))
	resp, err := http.Get("http://" + addr + "/metrics")
	require.NoError(t, err)
	metrics, err := io.ReadAll(resp.Body)
	require.NoError(t, err)
	require.NoError(t, resp.Body.Close())
	require.Equal(t, http.StatusOK, resp.StatusCode)
	require.Contains(t, string(metrics), `signalbox_outbox_pending{kind="start"`)
	require.Contains(t, string(metrics), `signalbox_outbox_oldest_age_seconds`)
	require.Error(t, runProbe(ctx, []string{"http://" + addr + "/v1/events"}, &body, &bytes.Buffer{}), "a worker serves no API")
}
