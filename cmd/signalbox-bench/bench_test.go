package main

import (
	"encoding/json"
	"testing"
	"time"

	"github.com/stretchr/testify/require"
)

func TestPercentile(t *testing.T) {
	t.Parallel()
	var values []time.Duration
	for i := 1; i <= 100; i++ {
		values = append(values, time.Duration(i)*time.Millisecond)
	}
	require.Equal(t, 50*time.Millisecond, percentile(values, 50))
	require.Equal(t, 90*time.Millisecond, percentile(values, 90))
	require.Equal(t, 99*time.Millisecond, percentile(values, 99))
	require.Equal(t, 100*time.Millisecond, percentile(values, 100))
	require.Equal(t, 1*time.Millisecond, percentile(values, 0.001))
	require.Equal(t, time.Duration(0), percentile(nil, 50))
	one := []time.Duration{7 * time.Millisecond}
	require.Equal(t, 7*time.Millisecond, percentile(one, 50))
	require.Equal(t, 7*time.Millisecond, percentile(one, 99))
	// Nearest rank never interpolates: p50 of two values is the lower one.
	require.Equal(t, time.Millisecond, percentile([]time.Duration{time.Millisecond, 3 * time.Millisecond}, 50))
}

func TestScheduledAt(t *testing.T) {
	t.Parallel()
	start := time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC)
	require.Equal(t, start, scheduledAt(start, 1000, 0))
	require.Equal(t, start.Add(time.Millisecond), scheduledAt(start, 1000, 1))
	require.Equal(t, start.Add(time.Second), scheduledAt(start, 1000, 1000))
	require.Equal(t, start.Add(250*time.Millisecond), scheduledAt(start, 4, 1))
	// Computed from start, not accumulated: no drift after an hour at an
	// awkward rate.
	require.Equal(t, start.Add(time.Hour), scheduledAt(start, 3, 3*3600))
	prev := start
	for i := int64(1); i < 10000; i++ {
		at := scheduledAt(start, 7777, i)
		require.True(t, at.After(prev), "schedule must strictly increase at %d", i)
		prev = at
	}
}

func TestMedian(t *testing.T) {
	t.Parallel()
	require.Equal(t, 0.0, median(nil))
	require.Equal(t, 2.0, median([]float64{3, 1, 2}))
	require.Equal(t, 2.5, median([]float64{4, 1, 3, 2}))
}

func TestThousands(t *testing.T) {
	t.Parallel()
	require.Equal(t, "0", thousands(0))
	require.Equal(t, "999", thousands(999.4))
	require.Equal(t, "1,000", thousands(999.6))
	require.Equal(t, "1,234,567", thousands(1234567))
}

func TestWorkloadIsDeterministic(t *testing.T) {
	t.Parallel()
	a, b := newWorkload(100, 1000), newWorkload(100, 1000)
	require.Equal(t, a.events[0].body, b.events[0].body)
	require.Equal(t, a.batches[3], b.batches[3])
	require.Len(t, a.batches, templateCount/1000)
	var batch struct {
		Events []json.RawMessage `json:"events"`
	}
	require.NoError(t, json.Unmarshal(a.batches[0], &batch))
	require.Len(t, batch.Events, 1000)
	require.JSONEq(t, string(a.events[0].body), string(batch.Events[0]))
	var ev struct {
		Name       string         `json:"name"`
		Email      string         `json:"email"`
		Properties map[string]any `json:"properties"`
	}
	require.NoError(t, json.Unmarshal(a.events[5].body, &ev))
	require.Equal(t, a.events[5].name, ev.Name)
	require.Equal(t, a.events[5].email, ev.Email)
	require.JSONEq(t, string(a.events[5].props), mustJSON(t, ev.Properties))
}

func mustJSON(t *testing.T, v any) string {
	t.Helper()
	data, err := json.Marshal(v)
	require.NoError(t, err)
	return string(data)
}

func TestNoisySummary(t *testing.T) {
	t.Parallel()
	win := func(events int64) throughput { return throughput{Events: events, Elapsed: time.Second} }
	r := &noisyReport{Runs: []noisyRun{
		{Alone: win(1000), BesideUnder: win(700), Under: win(600), BesideOver: win(900), Over: win(5000)},
		{Alone: win(2000), BesideUnder: win(1000), Under: win(900), BesideOver: win(800), Over: win(4000)},
		{Alone: win(1000), BesideUnder: win(600), Under: win(700), BesideOver: win(950), Over: win(4500)},
	}}
	r.summarise()
	require.Equal(t, 1000.0, r.Alone)
	require.Equal(t, 700.0, r.BesideUnder)
	require.Equal(t, 900.0, r.BesideOver)
	require.Equal(t, []float64{0.7, 0.5, 0.6}, r.UnderRatios)
	require.Equal(t, []float64{0.9, 0.4, 0.95}, r.OverRatios)
	require.Equal(t, 0.6, r.UnderRatio)
	require.Equal(t, 0.9, r.OverRatio)
	require.Equal(t, 4500.0, r.OverRefused)
	require.True(t, r.Holds)
	r.Runs[0].BesideOver = win(100)
	r.Runs[2].BesideOver = win(100)
	r.summarise()
	require.False(t, r.Holds, "A beside B slower than beside C")
}
