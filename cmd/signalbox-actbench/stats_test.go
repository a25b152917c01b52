package main

import (
	"testing"
	"time"

	"github.com/stretchr/testify/require"
)

func TestPercentile(t *testing.T) {
	t.Parallel()
	hundred := make([]time.Duration, 100)
	for i := range hundred {
		hundred[i] = time.Duration(i+1) * time.Millisecond
	}
	for _, tc := range []struct {
		name   string
		sorted []time.Duration
		p      float64
		want   time.Duration
	}{
		{"none", nil, 50, 0},
		{"one", []time.Duration{7}, 99, 7},
		{"p50 of 100", hundred, 50, 50 * time.Millisecond},
		{"p99 of 100", hundred, 99, 99 * time.Millisecond},
		{"p100 of 100", hundred, 100, 100 * time.Millisecond},
		{"p0 is the least", hundred, 0, time.Millisecond},
		{"p99 of 3 is the max", []time.Duration{1, 2, 3}, 99, 3},
		{"p50 of 4 is the second", []time.Duration{1, 2, 3, 4}, 50, 2},
	} {
		t.Run(tc.name, func(t *testing.T) {
			require.Equal(t, tc.want, percentile(tc.sorted, tc.p))
		})
	}
}

func TestSummarizeSortsAndConverts(t *testing.T) {
	t.Parallel()
	s := summarize([]time.Duration{30 * time.Millisecond, 10 * time.Millisecond, 20 * time.Millisecond})
	require.Equal(t, summary{N: 3, P50: 20, P99: 30, Max: 30, Mean: 20}, s)
	require.Equal(t, summary{}, summarize(nil))
}

func TestRatioAndMean(t *testing.T) {
	t.Parallel()
	require.InDelta(t, 0.8, ratio(80, 100), 1e-9)
	require.Zero(t, ratio(1, 0))
	require.InDelta(t, 2.0, mean(1, 3), 1e-9)
	require.Zero(t, mean())
}

func TestWindowContains(t *testing.T) {
	t.Parallel()
	t0 := time.Unix(100, 0)
	w := window{from: t0, to: t0.Add(time.Second)}
	require.True(t, w.contains(t0))
	require.False(t, w.contains(t0.Add(time.Second)))
	require.False(t, w.contains(t0.Add(-time.Nanosecond)))
	require.InDelta(t, 1.0, w.seconds(), 1e-9)
}

func TestThousands(t *testing.T) {
	t.Parallel()
	for n, want := range map[int]string{0: "0", 999: "999", 1000: "1,000", 100000: "100,000", 1234567: "1,234,567"} {
		require.Equal(t, want, thousands(n))
	}
}
