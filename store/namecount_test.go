package store_test

import (
	"context"
	"encoding/json"
	"sync"
	"testing"
	"time"

	"github.com/google/uuid"
	"github.com/stretchr/testify/require"

	"github.com/signalbox/signalbox/store"
	"github.com/signalbox/signalbox/store/storetest"
)

// recordNames records one event per name for a contact and returns their ids.
func recordNames(t *testing.T, s *store.Store, ws store.Workspace, email string, names ...string) []uuid.UUID {
	t.Helper()
	events := make([]store.EventInput, len(names))
	for i, n := range names {
		events[i] = store.EventInput{Email: email, CreateIfMissing: true, Name: n, Properties: json.RawMessage(`{}`),
			OccurredAt: time.Now()}
	}
	out, err := s.Record(context.Background(), []*store.RecordRequest{{WorkspaceID: ws.ID, Plan: ws.Plan, Events: events}})
	require.NoError(t, err)
	ids := make([]uuid.UUID, len(names))
	for i, r := range out[0].Results {
		require.NoError(t, r.Err)
		ids[i] = r.EventID
	}
	return ids
}

// counts reads count_total and count_24h of a name.
func counts(t *testing.T, s *store.Store, ws uuid.UUID, name string) (int64, int64) {
	t.Helper()
	e, err := s.GetEventType(context.Background(), ws, name)
	require.NoError(t, err)
	return e.CountTotal, e.Count24h
}

func TestNameCountsFollowDeleteRestoreAndContactDeletion(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	s := storetest.New(t, store.Config{})
	ws, _ := storetest.Workspace(t, s, store.PlanEnterprise)

	ada := recordNames(t, s, ws, "ada@example.com", "a", "a", "b")
	bob := recordNames(t, s, ws, "bob@example.com", "a")
	total, day := counts(t, s, ws.ID, "a")
	require.EqualValues(t, 3, total)
	require.EqualValues(t, 3, day)

	// A duplicate (same external_id) is not a new event.
	for range 2 {
		_, err := s.Record(ctx, []*store.RecordRequest{{WorkspaceID: ws.ID, Plan: ws.Plan, Events: []store.EventInput{{
			Email: "ada@example.com", Name: "a", ExternalID: "x-1", Properties: json.RawMessage(`{}`), OccurredAt: time.Now()}}}})
		require.NoError(t, err)
	}
	total, _ = counts(t, s, ws.ID, "a")
	require.EqualValues(t, 4, total)

	// Soft delete takes it off once, however often; restore puts it back once.
	require.NoError(t, s.DeleteEvent(ctx, ws.ID, ada[0]))
	require.NoError(t, s.DeleteEvent(ctx, ws.ID, ada[0]))
	total, day = counts(t, s, ws.ID, "a")
	require.EqualValues(t, 3, total)
	require.EqualValues(t, 3, day)
	_, err := s.RestoreEvent(ctx, ws.ID, ada[0])
	require.NoError(t, err)
	_, err = s.RestoreEvent(ctx, ws.ID, ada[0])
	require.NoError(t, err)
	total, _ = counts(t, s, ws.ID, "a")
	require.EqualValues(t, 4, total)

	// Deleting a contact takes its events off, except those already
	// soft-deleted (counted off before).
	require.NoError(t, s.DeleteEvent(ctx, ws.ID, ada[1]))
	_, err = s.DeleteContact(ctx, ws.ID, mustContact(t, s, ws.ID, "ada@example.com"))
	require.NoError(t, err)
	total, _ = counts(t, s, ws.ID, "a")
	require.EqualValues(t, 1, total)
	b, err := s.GetEventType(ctx, ws.ID, "b")
	require.NoError(t, err)
	require.EqualValues(t, 0, b.CountTotal)
	require.NotNil(t, b.FirstSeenAt)
	require.False(t, b.Declared)
	_ = bob

	_, err = s.GetEventType(ctx, ws.ID, "never")
	require.ErrorIs(t, err, store.ErrNotFound)
}

func mustContact(t *testing.T, s *store.Store, ws uuid.UUID, email string) uuid.UUID {
	t.Helper()
	var id uuid.UUID
	require.NoError(t, s.Pool().QueryRow(context.Background(),
		`SELECT id FROM contacts WHERE workspace_id = $1 AND email = $2`, ws, email).Scan(&id))
	return id
}

func TestNameCountsFollowExpiryAndSurviveFolding(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	// A database of its own: the sweep and the fold act on every workspace.
	s := storetest.Isolated(t, store.Config{Retention: 48 * time.Hour})
	ws, _ := storetest.Workspace(t, s, store.PlanEnterprise)
	recordNames(t, s, ws, "ada@example.com", "old", "old", "kept")
	deleted := recordNames(t, s, ws, "ada@example.com", "old")
	require.NoError(t, s.DeleteEvent(ctx, ws.ID, deleted[0]))

	// 49 hours on, the events have expired: reads hide them at once,
	// before any sweep.
	later := time.Now().Add(49 * time.Hour)
	store.SetNow(s, func() time.Time { return later })
	total, day := counts(t, s, ws.ID, "old")
	require.EqualValues(t, 0, total)
	require.EqualValues(t, 0, day)
	// The sweep deletes them and takes them off the counters: still 0.
	n, err := s.PurgeExpired(ctx, 1000)
	require.NoError(t, err)
	require.EqualValues(t, 4, n)
	total, _ = counts(t, s, ws.ID, "old")
	require.EqualValues(t, 0, total)

	// New events after the sweep count from zero; once their hour is
	// older than the fold age they are folded into one row, same counts.
	store.SetNow(s, time.Now)
	recordNames(t, s, ws, "ada@example.com", "fresh", "fresh")
	store.SetNow(s, func() time.Time { return time.Now().Add(20 * time.Hour) })
	total, day = counts(t, s, ws.ID, "fresh")
	require.EqualValues(t, 2, total)
	require.EqualValues(t, 2, day)
	store.SetNow(s, func() time.Time { return time.Now().Add(30 * time.Hour) })
	folded, err := s.FoldNameCounts(ctx, 1000)
	require.NoError(t, err)
	require.Positive(t, folded)
	var rows int
	require.NoError(t, s.Pool().QueryRow(ctx, `SELECT count(*) FROM event_name_counts WHERE workspace_id = $1 AND name = 'fresh'`,
		ws.ID).Scan(&rows))
	require.Equal(t, 1, rows)
	total, day = counts(t, s, ws.ID, "fresh")
	require.EqualValues(t, 2, total)
	require.EqualValues(t, 0, day, "received 30 h ago: outside the 24 h window")

}

func TestNameCountsExactUnderConcurrentRecording(t *testing.T) {
	t.Parallel()
	s := storetest.New(t, store.Config{})
	ws, _ := storetest.Workspace(t, s, store.PlanEnterprise)
	recordNames(t, s, ws, "ada@example.com", "warm")
	var wg sync.WaitGroup
	const workers, each = 8, 25
	for w := range workers {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for range each {
				// Several names per transaction, in varying order, to
				// exercise lock ordering.
				names := []string{"hot", "warm"}
				if w%2 == 1 {
					names = []string{"warm", "hot"}
				}
				recordNames(t, s, ws, "ada@example.com", names...)
			}
		}()
	}
	wg.Wait()
	total, day := counts(t, s, ws.ID, "hot")
	require.EqualValues(t, workers*each, total)
	require.EqualValues(t, workers*each, day)
	total, _ = counts(t, s, ws.ID, "warm")
	require.EqualValues(t, workers*each+1, total)
}

func TestNameCountsExactUnderConcurrentDeleteAndRestore(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	s := storetest.New(t, store.Config{})
	ws, _ := storetest.Workspace(t, s, store.PlanEnterprise)
	ids := recordNames(t, s, ws, "ada@example.com", "x", "x", "x")
	race := func(fn func() error) {
		var wg sync.WaitGroup
		for range 8 {
			wg.Add(1)
			go func() {
				defer wg.Done()
				require.NoError(t, fn())
			}()
		}
		wg.Wait()
	}
	race(func() error { return s.DeleteEvent(ctx, ws.ID, ids[0]) })
	total, _ := counts(t, s, ws.ID, "x")
	require.EqualValues(t, 2, total)
	race(func() error { _, err := s.RestoreEvent(ctx, ws.ID, ids[0]); return err })
	total, _ = counts(t, s, ws.ID, "x")
	require.EqualValues(t, 3, total)
}
