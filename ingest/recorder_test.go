package ingest

import (
	"context"
	"encoding/json"
	"errors"
	"slices"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/google/uuid"
	"github.com/stretchr/testify/require"

	"github.com/signalbox/signalbox/store"
	"github.com/signalbox/signalbox/store/storetest"
)

func TestMain(m *testing.M) { storetest.Main(m) }

// countingStore records every transaction the recorder asks for: the
// workspaces of its requests and whether it failed.
type countingStore struct {
	recordStore
	mu    sync.Mutex
	calls []storeCall
}

type storeCall struct {
	workspaces []uuid.UUID
	err        error
}

func (c *countingStore) Record(ctx context.Context, reqs []*store.RecordRequest) ([]store.RecordOutcome, error) {
	out, err := c.recordStore.Record(ctx, reqs)
	call := storeCall{err: err}
	for _, r := range reqs {
		call.workspaces = append(call.workspaces, r.WorkspaceID)
	}
	c.mu.Lock()
	c.calls = append(c.calls, call)
	c.mu.Unlock()
	return out, err
}

// took returns the transactions since the last call, and forgets them.
func (c *countingStore) took() []storeCall {
	c.mu.Lock()
	defer c.mu.Unlock()
	calls := c.calls
	c.calls = nil
	return calls
}

// newCountingRecorder is a recorder on s whose transactions are counted.
// Probes are off unless the test sets quota.refresh.
func newCountingRecorder(t *testing.T, s *store.Store) (*Recorder, *countingStore) {
	cs := &countingStore{recordStore: s}
	r := newRecorder(cs, RecorderConfig{})
	r.quota.refresh = time.Hour
	t.Cleanup(r.Close)
	return r, cs
}

// quotaWorkspace makes a workspace with contact a@example.com and sets its
// month's count to tracked.
func quotaWorkspace(t *testing.T, s *store.Store, plan store.Plan, tracked int64) uuid.UUID {
	t.Helper()
	ctx := context.Background()
	ws, _ := storetest.Workspace(t, s, plan)
	_, err := s.Record(ctx, []*store.RecordRequest{{WorkspaceID: ws.ID, Plan: plan, Events: []store.EventInput{{
		Email: "a@example.com", CreateIfMissing: true, Name: "created", Properties: json.RawMessage(`{}`), OccurredAt: time.Now(),
	}}}})
	require.NoError(t, err)
	_, err = s.Pool().Exec(ctx, `UPDATE usage_counters SET tracked = $2 WHERE workspace_id = $1`, ws.ID, tracked)
	require.NoError(t, err)
	return ws.ID
}

func events(ws uuid.UUID, plan store.Plan, n int) *store.RecordRequest {
	req := &store.RecordRequest{WorkspaceID: ws, Plan: plan}
	for range n {
		req.Events = append(req.Events, store.EventInput{Email: "a@example.com", Name: "race",
			Properties: json.RawMessage(`{}`), OccurredAt: time.Now()})
	}
	return req
}

// TestRecorderRefusesOverCapAlone has a workspace at its hard cap send
// beside another under its cap. Once the recorder knows the count, the
// first is refused without a transaction, so no group of the second ever
// fails on its account.
func TestRecorderRefusesOverCapAlone(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	s := storetest.New(t, store.Config{})
	overPlan, underPlan := store.PlanStarter, store.PlanScale
	over := quotaWorkspace(t, s, overPlan, overPlan.HardCap())
	under := quotaWorkspace(t, s, underPlan, 1)
	r, cs := newCountingRecorder(t, s)

	// The first request is the one that learns the count, in a
	// transaction of its own.
	_, err := r.Record(ctx, events(over, overPlan, 1))
	var qe *store.QuotaError
	require.ErrorAs(t, err, &qe)
	require.Equal(t, overPlan.HardCap(), qe.Used)
	calls := cs.took()
	require.Len(t, calls, 1)
	require.Equal(t, []uuid.UUID{over}, calls[0].workspaces)

	const clients, each = 8, 25
	var refused, accepted atomic.Int64
	var wg sync.WaitGroup
	for i := range 2 * clients {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for range each {
				if i%2 == 0 {
					_, err := r.Record(ctx, events(over, overPlan, 1))
					var qe *store.QuotaError
					if errors.As(err, &qe) && qe.Used == overPlan.HardCap() && qe.HardCap == overPlan.HardCap() {
						refused.Add(1)
					}
					continue
				}
				if _, err := r.Record(ctx, events(under, underPlan, 1)); err == nil {
					accepted.Add(1)
				}
			}
		}()
	}
	wg.Wait()
	require.EqualValues(t, clients*each, refused.Load())
	require.EqualValues(t, clients*each, accepted.Load())
	for _, c := range cs.took() {
		require.NoError(t, c.err, "no transaction failed")
		require.NotContains(t, c.workspaces, over, "the workspace at its cap took no transaction")
	}
	u, err := s.GetUsage(ctx, under)
	require.NoError(t, err)
	require.EqualValues(t, 1+clients*each, u.Tracked)

	// Refusing needs no database at all; recording does, and fails as a
	// transient failure when there is none.
	s.Close()
	_, err = r.Record(ctx, events(over, overPlan, 1))
	require.ErrorAs(t, err, &qe)
	_, err = r.Record(ctx, events(under, underPlan, 1))
	require.Error(t, err)
	require.True(t, store.IsTransient(err), "%v", err)
}

// TestRecorderHoldsCapUnderConcurrency sends more events than a workspace
// has room for, singly and in small batches from many goroutines, beside a
// workspace far from its cap: exactly the room is accepted, the rest refused,
// and every transaction that failed was one request of the workspace near
// its cap, committing alone.
func TestRecorderHoldsCapUnderConcurrency(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	s := storetest.New(t, store.Config{})
	plan := store.PlanStarter
	const room = 60
	near := quotaWorkspace(t, s, plan, plan.HardCap()-room)
	far := quotaWorkspace(t, s, store.PlanScale, 1)
	r, cs := newCountingRecorder(t, s)
	// Probes on, often: they must not break the cap either.
	r.quota.refresh = 5 * time.Millisecond

	const clients, each = 12, 10
	var accepted, refused, farAccepted atomic.Int64
	var wg sync.WaitGroup
	for i := range clients {
		wg.Add(2)
		go func() {
			defer wg.Done()
			for j := range each {
				n := 1 + (i+j)%3
				_, err := r.Record(ctx, events(near, plan, n))
				var qe *store.QuotaError
				switch {
				case err == nil:
					accepted.Add(int64(n))
				case errors.As(err, &qe):
					refused.Add(1)
				}
			}
		}()
		go func() {
			defer wg.Done()
			for range each {
				if _, err := r.Record(ctx, events(far, store.PlanScale, 1)); err == nil {
					farAccepted.Add(1)
				}
			}
		}()
	}
	wg.Wait()
	require.EqualValues(t, room, accepted.Load(), "exactly the room left is accepted")
	require.Positive(t, refused.Load())
	require.EqualValues(t, clients*each, farAccepted.Load())
	u, err := s.GetUsage(ctx, near)
	require.NoError(t, err)
	require.Equal(t, plan.HardCap(), u.Tracked)
	for _, c := range cs.took() {
		if c.err != nil {
			require.ErrorAs(t, c.err, new(*store.QuotaError))
			require.Equal(t, []uuid.UUID{near}, c.workspaces, "only a request near its cap, alone, was refused by the store")
		}
		if slices.Contains(c.workspaces, near) {
			require.Len(t, c.workspaces, 1, "near its cap a workspace's requests commit alone")
		}
	}
}
