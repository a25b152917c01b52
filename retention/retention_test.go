package retention_test

import (
	"context"
	"errors"
	"io"
	"log/slog"
	"sync"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/signalbox/signalbox/retention"
)

// step is one scripted answer of fakePurger.
type step struct {
	n   int64
	err error
}

// fakePurger answers PurgeExpired from a script, then with 0, and records
// the limits it was asked for.
type fakePurger struct {
	mu     sync.Mutex
	script []step
	limits []int
	// cancel, when set, is called on the call numbered cancelAt (from 1).
	cancel   context.CancelFunc
	cancelAt int
}

func (f *fakePurger) PurgeExpired(_ context.Context, limit int) (int64, error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.limits = append(f.limits, limit)
	if f.cancel != nil && len(f.limits) == f.cancelAt {
		f.cancel()
	}
	if len(f.script) == 0 {
		return 0, nil
	}
	s := f.script[0]
	f.script = f.script[1:]
	return s.n, s.err
}

func (f *fakePurger) calls() []int {
	f.mu.Lock()
	defer f.mu.Unlock()
	return append([]int(nil), f.limits...)
}

func discard() *slog.Logger { return slog.New(slog.NewTextHandler(io.Discard, nil)) }

func TestSweep(t *testing.T) {
	t.Parallel()
	errDB := errors.New("connection reset")
	for _, tc := range []struct {
		name   string
		batch  int
		script []step
		total  int64
		err    error
		limits []int
	}{
		{"nothing expired", 10, nil, 0, nil, []int{10}},
		{"one short batch", 10, []step{{3, nil}}, 3, nil, []int{10}},
		{"full batches then short", 10, []step{{10, nil}, {10, nil}, {3, nil}}, 23, nil, []int{10, 10, 10}},
		{"full batches then none", 10, []step{{10, nil}, {10, nil}}, 20, nil, []int{10, 10, 10}},
		{"error stops", 10, []step{{10, nil}, {4, errDB}, {10, nil}}, 14, errDB, []int{10, 10}},
		{"error first", 10, []step{{0, errDB}}, 0, errDB, []int{10}},
		{"default batch", 0, []step{{1000, nil}, {1, nil}}, 1001, nil, []int{1000, 1000}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			p := &fakePurger{script: tc.script}
			s := &retention.Sweeper{Store: p, Batch: tc.batch, Log: discard()}
			n, err := s.Sweep(context.Background())
			require.ErrorIs(t, err, tc.err) // nil matches only nil
			require.Equal(t, tc.total, n)
			require.Equal(t, tc.limits, p.calls())
		})
	}
}

func TestSweepStopsWhenCancelled(t *testing.T) {
	t.Parallel()
	ctx, cancel := context.WithCancel(context.Background())
	// A backlog that never drains: only cancellation ends the sweep.
	p := &fakePurger{cancel: cancel, cancelAt: 3}
	for range 100 {
		p.script = append(p.script, step{n: 5})
	}
	s := &retention.Sweeper{Store: p, Batch: 5, Log: discard()}
	n, err := s.Sweep(ctx)
	require.ErrorIs(t, err, context.Canceled)
	require.EqualValues(t, 15, n)
	require.Len(t, p.calls(), 3)

	n, err = s.Sweep(ctx)
	require.ErrorIs(t, err, context.Canceled)
	require.Zero(t, n)
	require.Len(t, p.calls(), 3, "a cancelled sweep deletes nothing")
}

func TestRun(t *testing.T) {
	t.Parallel()
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	p := &fakePurger{script: []step{{2, nil}, {0, errors.New("connection reset")}}}
	s := &retention.Sweeper{Store: p, Interval: 10 * time.Millisecond, Batch: 2, Log: discard()}
	done := make(chan struct{})
	go func() {
		defer close(done)
		s.Run(ctx)
	}()

	// It sweeps at once, goes on after a failed sweep, and again on every tick.
	require.Eventually(t, func() bool { return len(p.calls()) >= 5 }, 5*time.Second, 5*time.Millisecond)
	cancel()
	select {
	case <-done:
	case <-time.After(5 * time.Second):
		t.Fatal("Run did not return after its context was cancelled")
	}
}
