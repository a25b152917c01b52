package store_test

import (
	"context"
	"encoding/json"
	"fmt"
	"math/rand/v2"
	"testing"
	"time"

	"github.com/google/uuid"
	"github.com/stretchr/testify/require"

	"github.com/signalbox/signalbox/store"
	"github.com/signalbox/signalbox/store/storetest"
)

// recordSeen records a "seen" event (a purchase of 2) of the contact with
// email, created if missing, and returns its id.
func recordSeen(t *testing.T, s *store.Store, ws store.Workspace, email, externalID string, at time.Time) uuid.UUID {
	t.Helper()
	out, err := s.Record(context.Background(), []*store.RecordRequest{{WorkspaceID: ws.ID, Plan: ws.Plan, Events: []store.EventInput{{
		Email: email, CreateIfMissing: true, Name: "seen", ExternalID: externalID, GoalType: "purchase", GoalValue: "2",
		Properties: json.RawMessage(`{}`), OccurredAt: at}}}})
	require.NoError(t, err)
	require.NoError(t, out[0].Results[0].Err)
	return out[0].Results[0].EventID
}

// TestLiveBucketFollowsEveryChange draws a chart after each of a few
// hundred random changes to the current day's events (new events of new
// and returning contacts, upserts that move an event across days,
// deletes, restores, and an event whose receipt is older than the latest,
// as when transactions commit out of order) and requires every bucket to
// equal what the events table says: counts from the rollups, distinct
// contacts from the cache while its change counters match, the live
// bucket's from its events (for weeks and months, split at a recent hour
// once the bucket is older than two hours: splitLive). It charts by day,
// week and month.
func TestLiveBucketFollowsEveryChange(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	s := storetest.New(t, store.Config{})
	ws, _ := storetest.Workspace(t, s, store.PlanStarter)
	r := rand.New(rand.NewPCG(7, 8))
	now := time.Now().UTC()
	var ids []uuid.UUID
	record := func(email, ext string, at time.Time) { ids = append(ids, recordSeen(t, s, ws, email, ext, at)) }
	check := func(step int, what string) {
		t.Helper()
		for _, interval := range []string{store.IntervalDay, store.IntervalWeek, store.IntervalMonth} {
			buckets, err := s.EventStats(ctx, ws.ID, store.StatsQuery{Name: "seen", Interval: interval, TZ: "UTC",
				Loc: time.UTC, Since: now.Add(-48 * time.Hour), Until: now.Add(time.Hour)})
			require.NoError(t, err)
			rows, err := s.Pool().Query(ctx, `SELECT date_trunc($2, occurred_at, 'UTC'), count(*), count(DISTINCT contact_id)
				FROM events WHERE workspace_id = $1 AND name = 'seen' AND deleted_at IS NULL GROUP BY 1`, ws.ID, interval)
			require.NoError(t, err)
			truth := map[time.Time][2]int64{}
			var (
				start     time.Time
				n, people int64
			)
			for rows.Next() {
				require.NoError(t, rows.Scan(&start, &n, &people))
				truth[start.UTC()] = [2]int64{n, people}
			}
			require.NoError(t, rows.Err())
			for _, b := range buckets {
				require.Equal(t, truth[b.Start.UTC()], [2]int64{b.Count, b.Contacts}, "step %d (%s), %s bucket %s",
					step, what, interval, b.Start)
			}
		}
	}
	for step := range 250 {
		var what string
		switch k := r.IntN(10); {
		case k < 5 || len(ids) == 0:
			what = "new event"
			record(fmt.Sprintf("c%d@example.com", r.IntN(12)), "", time.Now().UTC())
		case k == 5:
			what = "upsert moving an event"
			x := r.IntN(4)
			record(fmt.Sprintf("c%d@example.com", x), fmt.Sprintf("x%d", x), time.Now().UTC().Add(-time.Duration(r.IntN(30))*time.Hour))
		case k == 6:
			what = "delete"
			_ = s.DeleteEvent(ctx, ws.ID, ids[r.IntN(len(ids))])
		case k == 7:
			what = "restore"
			_, _ = s.RestoreEvent(ctx, ws.ID, ids[r.IntN(len(ids))])
		case k == 8:
			what = "out-of-order commit"
			record(fmt.Sprintf("c%d@example.com", r.IntN(12)), "", time.Now().UTC())
			_, err := s.Pool().Exec(ctx, `UPDATE events SET received_at = received_at - interval '1 hour' WHERE id = $1`, ids[len(ids)-1])
			require.NoError(t, err)
		default:
			what = "nothing"
		}
		check(step, what)
	}
}

// TestLiveBucketSplitIsReused charts a month whose current bucket is split
// (the store's clock in the middle of last month): the contacts before the
// split are counted once and kept, new events after it are added without
// recounting, an event before it makes the kept count stale and recounted,
// and the sweeper drops a kept count left for LivePartialMaxAge.
func TestLiveBucketSplitIsReused(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	s := storetest.New(t, store.Config{})
	ws, _ := storetest.Workspace(t, s, store.PlanStarter)
	month := time.Now().UTC()
	month = time.Date(month.Year(), month.Month()-1, 1, 0, 0, 0, 0, time.UTC)
	now := month.Add(15*24*time.Hour + 12*time.Hour + 30*time.Minute)
	clock := now
	store.SetNow(s, func() time.Time { return clock })
	var ids []uuid.UUID
	record := func(email string, at time.Time) { ids = append(ids, recordSeen(t, s, ws, email, "", at)) }
	contacts := func() int64 {
		t.Helper()
		buckets, err := s.EventStats(ctx, ws.ID, store.StatsQuery{Name: "seen", Interval: store.IntervalMonth, TZ: "UTC",
			Loc: time.UTC, Since: month, Until: now})
		require.NoError(t, err)
		require.Len(t, buckets, 1)
		return buckets[0].Contacts
	}
	type entry struct {
		stop     time.Time
		contacts int64
		at       time.Time
	}
	kept := func() entry {
		t.Helper()
		var e entry
		require.NoError(t, s.Pool().QueryRow(ctx, `SELECT stop, contacts, computed_at FROM event_contact_partials
			WHERE workspace_id = $1 AND name = 'seen' AND bucket = 'month' AND tz = 'UTC' AND start = $2`, ws.ID, month).
			Scan(&e.stop, &e.contacts, &e.at))
		return e
	}
	before, after := now.Add(-3*time.Hour), now.Add(-time.Minute)
	stop := now.Truncate(time.Hour).Add(-time.Hour)

	record("ada@example.com", before)
	record("bob@example.com", before)
	record("ada@example.com", after)
	require.EqualValues(t, 2, contacts())
	first := kept()
	require.True(t, first.stop.Equal(stop), "split at %s, want %s", first.stop, stop)
	require.EqualValues(t, 2, first.contacts)

	// After the split: added to the kept count, which stays.
	record("cy@example.com", after)
	record("bob@example.com", after)
	require.EqualValues(t, 3, contacts())
	require.Equal(t, first, kept(), "nothing before the split changed, so nothing was recounted")

	// Before the split: the kept count is stale, and recounted.
	record("dan@example.com", before)
	require.EqualValues(t, 4, contacts())
	require.EqualValues(t, 3, kept().contacts)
	require.NoError(t, s.DeleteEvent(ctx, ws.ID, ids[len(ids)-1]))
	require.EqualValues(t, 3, contacts())
	require.EqualValues(t, 2, kept().contacts)

	// An hour later the split moves on.
	clock = now.Add(time.Hour)
	require.EqualValues(t, 3, contacts())
	require.True(t, kept().stop.Equal(stop.Add(time.Hour)))

	// Left alone, it is swept.
	clock = now.Add(time.Hour + store.LivePartialMaxAge + time.Minute)
	_, err := s.Pool().Exec(ctx, `UPDATE event_contact_partials SET computed_at = $2 WHERE workspace_id = $1`, ws.ID, now)
	require.NoError(t, err)
	_, err = s.PurgeContactBuckets(ctx, 100)
	require.NoError(t, err)
	var left int
	require.NoError(t, s.Pool().QueryRow(ctx, `SELECT count(*) FROM event_contact_partials WHERE workspace_id = $1`, ws.ID).Scan(&left))
	require.Zero(t, left)
}

// TestPurgeContactBuckets charts two days, ages one day's cache entry past
// ContactBucketMaxAge, and requires the purge to drop that entry alone and
// the next chart to count the day again, exactly.
func TestPurgeContactBuckets(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	s := storetest.New(t, store.Config{})
	ws, _ := storetest.Workspace(t, s, store.PlanStarter)
	day := time.Now().UTC().Truncate(24 * time.Hour).Add(-72 * time.Hour)
	for i, email := range []string{"ada@example.com", "bob@example.com", "ada@example.com"} {
		_, err := s.Record(ctx, []*store.RecordRequest{{WorkspaceID: ws.ID, Plan: ws.Plan, Events: []store.EventInput{{
			Email: email, CreateIfMissing: true, Name: "seen", Properties: json.RawMessage(`{}`),
			OccurredAt: day.Add(time.Duration(i*20) * time.Hour)}}}})
		require.NoError(t, err)
	}
	chart := func() []store.Bucket {
		t.Helper()
		buckets, err := s.EventStats(ctx, ws.ID, store.StatsQuery{Name: "seen", Interval: store.IntervalDay, TZ: "UTC",
			Loc: time.UTC, Since: day, Until: day.Add(48 * time.Hour)})
		require.NoError(t, err)
		return buckets
	}
	want := chart()
	require.Equal(t, [][2]int64{{2, 2}, {1, 1}}, [][2]int64{{want[0].Count, want[0].Contacts}, {want[1].Count, want[1].Contacts}})
	entries := func() int {
		var n int
		require.NoError(t, s.Pool().QueryRow(ctx, `SELECT count(*) FROM event_contact_buckets WHERE workspace_id = $1`, ws.ID).Scan(&n))
		return n
	}
	require.Equal(t, 2, entries())
	_, err := s.Pool().Exec(ctx, `UPDATE event_contact_buckets SET computed_at = now() - $2::interval
		WHERE workspace_id = $1 AND start = $3`, ws.ID, store.ContactBucketMaxAge+time.Hour, day)
	require.NoError(t, err)

	// Other tests' workspaces share the table: purge until nothing is old.
	for {
		n, err := s.PurgeContactBuckets(ctx, 1000)
		require.NoError(t, err)
		if n < 1000 {
			break
		}
	}
	require.Equal(t, 1, entries())
	require.Equal(t, want, chart())
	require.Equal(t, 2, entries())
}

// TestChartLeavesOutExpiredEvents charts a day, then moves the store's
// clock past the retention: before the sweeper purges them, the expired
// events must leave the counts, the goal sum and the distinct contacts.
func TestChartLeavesOutExpiredEvents(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	s := storetest.Isolated(t, store.Config{Retention: 48 * time.Hour})
	ws, _ := storetest.Workspace(t, s, store.PlanStarter)
	now := time.Now().UTC()
	for i, email := range []string{"ada@example.com", "bob@example.com"} {
		_, err := s.Record(ctx, []*store.RecordRequest{{WorkspaceID: ws.ID, Plan: ws.Plan, Events: []store.EventInput{{
			Email: email, CreateIfMissing: true, Name: "buy", GoalType: "purchase", GoalValue: []string{"5", "7"}[i],
			Properties: json.RawMessage(`{}`), OccurredAt: now.Add(-time.Duration(i) * time.Minute)}}}})
		require.NoError(t, err)
	}
	day := now.Truncate(24 * time.Hour)
	chart := func() store.Bucket {
		t.Helper()
		buckets, err := s.EventStats(ctx, ws.ID, store.StatsQuery{Name: "buy", Interval: store.IntervalDay, TZ: "UTC",
			Loc: time.UTC, Since: day, Until: day.Add(24 * time.Hour)})
		require.NoError(t, err)
		require.Len(t, buckets, 1)
		return buckets[0]
	}
	require.Equal(t, store.Bucket{Start: day, Count: 2, Contacts: 2, GoalValueSum: 12}, chart())
	store.SetNow(s, func() time.Time { return time.Now().Add(49 * time.Hour) })
	require.Equal(t, store.Bucket{Start: day, Count: 0, Contacts: 0, GoalValueSum: 0}, chart())
}
