package store_test

import (
	"context"
	"encoding/json"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/signalbox/signalbox/store"
	"github.com/signalbox/signalbox/store/storetest"
)

// TestRollupsFollowEveryWrite records, upserts (twice in one request),
// deletes, restores and purges events, and requires the rollups to equal
// what the events table says, per name, hour and day.
func TestRollupsFollowEveryWrite(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	s := storetest.New(t, store.Config{})
	ws, _ := storetest.Workspace(t, s, store.PlanStarter)
	at := time.Now().UTC().Add(-72 * time.Hour).Truncate(time.Hour)
	ev := func(name, ext, goal string, when time.Time) store.EventInput {
		return store.EventInput{Email: "ada@example.com", CreateIfMissing: true, Name: name, ExternalID: ext,
			GoalType: map[bool]string{true: "purchase"}[goal != ""], GoalValue: goal,
			Properties: json.RawMessage(`{}`), OccurredAt: when}
	}
	record := func(events ...store.EventInput) []store.EventResult {
		out, err := s.Record(ctx, []*store.RecordRequest{{WorkspaceID: ws.ID, Plan: ws.Plan, Events: events}})
		require.NoError(t, err)
		return out[0].Results
	}
	check := func() {
		t.Helper()
		var diff int
		require.NoError(t, s.Pool().QueryRow(ctx, `WITH truth AS (
				SELECT name, h.hod, (occurred_at AT TIME ZONE 'UTC')::date AS day, count(*) AS n, coalesce(sum(goal_value), 0) AS g
				FROM events CROSS JOIN LATERAL (VALUES (extract(hour FROM occurred_at AT TIME ZONE 'UTC')::smallint), (-1::smallint)) h(hod)
				WHERE workspace_id = $1 AND deleted_at IS NULL GROUP BY 1, 2, 3),
			roll AS (SELECT name, hod, day, sum(events) AS n, sum(goal_sum) AS g FROM event_rollups
				WHERE workspace_id = $1 GROUP BY 1, 2, 3 HAVING sum(events) <> 0 OR sum(goal_sum) <> 0)
			SELECT count(*) FROM truth FULL JOIN roll USING (name, hod, day)
			WHERE truth.n IS DISTINCT FROM roll.n OR truth.g IS DISTINCT FROM roll.g`, ws.ID).Scan(&diff))
		require.Zero(t, diff, "rollups differ from the events")
	}
	res := record(ev("a", "", "", at), ev("a", "", "", at.Add(time.Hour)), ev("buy", "o-1", "10", at),
		ev("buy", "o-1", "30", at.Add(2*time.Hour)), ev("buy", "o-2", "-5", at.Add(26*time.Hour)))
	check()
	record(ev("buy", "o-1", "70", at.Add(3*time.Hour)), ev("buy", "o-1", "1", at.Add(-time.Hour))) // newer wins, older ignored
	check()
	require.NoError(t, s.DeleteEvent(ctx, ws.ID, res[0].EventID))
	require.NoError(t, s.DeleteEvent(ctx, ws.ID, res[4].EventID))
	check()
	_, err := s.RestoreEvent(ctx, ws.ID, res[4].EventID)
	require.NoError(t, err)
	check()
	_, err = s.DeleteContact(ctx, ws.ID, res[0].ContactID)
	require.NoError(t, err)
	check()
	require.NoError(t, s.RebuildRollups(ctx, ws.ID))
	check()
}

// TestChartLeavesConnectionsAsTheyWere draws a chart (whose statement runs
// with a generic plan, set for its batch alone) on a pool of one
// connection, then requires that connection's plan_cache_mode unchanged
// and the live bucket exact, and the chart's statement planned generically
// every time.
func TestChartLeavesConnectionsAsTheyWere(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	s := storetest.New(t, store.Config{MaxConns: 1})
	ws, _ := storetest.Workspace(t, s, store.PlanStarter)
	now := time.Now().UTC()
	for i, goal := range []string{"5", "", "7.5"} {
		_, err := s.Record(ctx, []*store.RecordRequest{{WorkspaceID: ws.ID, Plan: ws.Plan, Events: []store.EventInput{{
			Email: []string{"ada@example.com", "bob@example.com", "ada@example.com"}[i], CreateIfMissing: true,
			Name: "buy", GoalType: map[bool]string{true: "purchase"}[goal != ""], GoalValue: goal,
			Properties: json.RawMessage(`{}`), OccurredAt: now}}}})
		require.NoError(t, err)
	}
	for range 7 { // past the five custom plans PostgreSQL tries first
		buckets, err := s.EventStats(ctx, ws.ID, store.StatsQuery{Name: "buy", Interval: store.IntervalDay, TZ: "UTC",
			Loc: time.UTC, Since: now.Add(-72 * time.Hour), Until: now.Add(time.Hour)})
		require.NoError(t, err)
		last := buckets[len(buckets)-1]
		require.Equal(t, store.Bucket{Start: last.Start, Count: 3, Contacts: 2, GoalValueSum: 12.5}, last)
	}
	var mode string
	var generic, custom int64
	require.NoError(t, s.Pool().QueryRow(ctx, `SELECT current_setting('plan_cache_mode'),
		(SELECT coalesce(sum(generic_plans), 0) FROM pg_prepared_statements WHERE statement LIKE 'SELECT ''r''%'),
		(SELECT coalesce(sum(custom_plans), 0) FROM pg_prepared_statements WHERE statement LIKE 'SELECT ''r''%')`).
		Scan(&mode, &generic, &custom))
	require.Equal(t, "auto", mode)
	require.Zero(t, custom, "custom plans of the chart's statement")
	require.GreaterOrEqual(t, generic, int64(7), "generic plans of the chart's statement")
}
