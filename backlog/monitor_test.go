package backlog

import (
	"context"
	"errors"
	"log/slog"
	"testing"
	"time"

	"github.com/stretchr/testify/require"
	sdkmetric "go.opentelemetry.io/otel/sdk/metric"
	"go.opentelemetry.io/otel/sdk/metric/metricdata"

	"github.com/signalbox/signalbox/store"
)

type fakeSource struct {
	b   store.Backlog
	err error
}

func (f *fakeSource) OutboxBacklog(context.Context) (store.Backlog, error) { return f.b, f.err }

// TestMonitorGauges checks the gauges and that a failed read keeps the
// previous reading rather than reporting an empty outbox.
func TestMonitorGauges(t *testing.T) {
	t.Parallel()
	reader := sdkmetric.NewManualReader()
	mp := sdkmetric.NewMeterProvider(sdkmetric.WithReader(reader))
	now := time.Now()
	src := &fakeSource{b: store.Backlog{Pending: map[string]int64{"start": 7, "signal": 2, "cancel": 0, "backfill": 0},
		Total: 9, Oldest: now.Add(-90 * time.Second), At: now}}
	m, err := New(src, time.Hour, mp, slog.New(slog.DiscardHandler))
	require.NoError(t, err)

	collect := func() (map[string]int64, float64, bool) {
		var rm metricdata.ResourceMetrics
		require.NoError(t, reader.Collect(context.Background(), &rm))
		pending, age, found := map[string]int64{}, 0.0, false
		for _, sm := range rm.ScopeMetrics {
			for _, mt := range sm.Metrics {
				switch mt.Name {
				case "signalbox.outbox.pending":
					for _, dp := range mt.Data.(metricdata.Gauge[int64]).DataPoints {
						kind, _ := dp.Attributes.Value("kind")
						pending[kind.AsString()] = dp.Value
					}
					found = true
				case "signalbox.outbox.oldest_age":
					age = mt.Data.(metricdata.Gauge[float64]).DataPoints[0].Value
				}
			}
		}
		return pending, age, found
	}
	_, _, found := collect()
	require.False(t, found, "no gauge before the first reading")
	_, ok := m.Snapshot()
	require.False(t, ok)

	require.NoError(t, m.Refresh(context.Background()))
	pending, age, found := collect()
	require.True(t, found)
	require.Equal(t, map[string]int64{"start": 7, "signal": 2, "cancel": 0, "backfill": 0}, pending)
	require.InDelta(t, 90, age, 0.001)

	src.err = errors.New("database down")
	require.Error(t, m.Refresh(context.Background()))
	snap, ok := m.Snapshot()
	require.True(t, ok)
	require.EqualValues(t, 9, snap.Total, "a failed read keeps the last reading")

	// Run reads at once and stops with its context.
	src.err, src.b.Total = nil, 1
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan struct{})
	go func() { m.Run(ctx); close(done) }()
	require.Eventually(t, func() bool { s, _ := m.Snapshot(); return s.Total == 1 }, 5*time.Second, 10*time.Millisecond)
	cancel()
	<-done
}
