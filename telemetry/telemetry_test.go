package telemetry

import (
	"bytes"
	"context"
	"encoding/json"
	"net/http/httptest"
	"testing"

	"github.com/stretchr/testify/require"
	sdktrace "go.opentelemetry.io/otel/sdk/trace"
)

func TestLoggerAddsTraceIDs(t *testing.T) {
	t.Parallel()
	var buf bytes.Buffer
	log := NewLogger(&buf, "info", "json")
	tp := sdktrace.NewTracerProvider()
	ctx, span := tp.Tracer("test").Start(context.Background(), "op")
	log.InfoContext(ctx, "hello", "user_id", 7)
	span.End()
	log.DebugContext(ctx, "hidden at info")

	var rec map[string]any
	require.NoError(t, json.Unmarshal(buf.Bytes(), &rec))
	require.Equal(t, "hello", rec["msg"])
	require.Equal(t, span.SpanContext().TraceID().String(), rec["trace_id"])
	require.Equal(t, span.SpanContext().SpanID().String(), rec["span_id"])
	require.EqualValues(t, 7, rec["user_id"])
	require.NotContains(t, buf.String(), "hidden at info")
}

func TestMetricsServeGoRuntime(t *testing.T) {
	tel, err := Setup(context.Background(), "test", false)
	require.NoError(t, err)
	t.Cleanup(func() { _ = tel.Shutdown(context.Background()) })
	counter, err := tel.Meter.Meter("test").Int64Counter("signalbox.test.things")
	require.NoError(t, err)
	counter.Add(context.Background(), 3)

	rec := httptest.NewRecorder()
	tel.Metrics.ServeHTTP(rec, httptest.NewRequest("GET", "/metrics", nil))
	require.Equal(t, 200, rec.Code)
	require.Contains(t, rec.Body.String(), "go_goroutines")
	require.Regexp(t, `signalbox_test_things_total\{[^}]*\} 3\n`, rec.Body.String())
}
