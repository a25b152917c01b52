package store

import (
	"cmp"
	"context"
	"fmt"
	"slices"
	"strings"
	"time"

	"github.com/google/uuid"
	"github.com/jackc/pgx/v5"
)

// rollupDelta accumulates what a record transaction's new events add to
// the rollups (event_rollups): per workspace, name, UTC day and hour, and
// per whole day. Updates, soft deletes, restores and purges adjust the
// rollups through statement triggers (migration 014) instead; new events
// are added here, in the same statement as the usage counter (see
// countUsage), which costs no round trip.
type rollupDelta struct {
	rows map[rollupRowKey]*rollupRowSum
}

type rollupRowKey struct {
	ws   uuid.UUID
	name string
	hod  int16
	day  time.Time
}

type rollupRowSum struct {
	events, goalEvents int64
	goals              []string
}

// add counts one new live event.
func (d *rollupDelta) add(ws uuid.UUID, name string, occurredAt time.Time, goalValue *string) {
	if d.rows == nil {
		d.rows = map[rollupRowKey]*rollupRowSum{}
	}
	t := occurredAt.UTC()
	day := time.Date(t.Year(), t.Month(), t.Day(), 0, 0, 0, 0, time.UTC)
	for _, hod := range []int16{int16(t.Hour()), -1} {
		k := rollupRowKey{ws, name, hod, day}
		r := d.rows[k]
		if r == nil {
			r = &rollupRowSum{}
			d.rows[k] = r
		}
		r.events++
		if goalValue != nil {
			r.goalEvents++
			r.goals = append(r.goals, *goalValue)
		}
	}
}

// arrays returns the rows as parallel arrays in key order (the order
// concurrent transactions lock them in), goal sums as decimal text summed
// by PostgreSQL.
func (d *rollupDelta) arrays() (ws []uuid.UUID, names []string, hods []int16, days []time.Time, events, goalEvents []int64, goals []string) {
	keys := make([]rollupRowKey, 0, len(d.rows))
	for k := range d.rows {
		keys = append(keys, k)
	}
	slices.SortFunc(keys, func(a, b rollupRowKey) int {
		return cmp.Or(slices.Compare(a.ws[:], b.ws[:]), strings.Compare(a.name, b.name), cmp.Compare(a.hod, b.hod),
			a.day.Compare(b.day))
	})
	for _, k := range keys {
		r := d.rows[k]
		ws, names, hods, days = append(ws, k.ws), append(names, k.name), append(hods, k.hod), append(days, k.day)
		events, goalEvents = append(events, r.events), append(goalEvents, r.goalEvents)
		// The values' exact sum, added in SQL: "{1.5,-2}" as a numeric array.
		goals = append(goals, "{"+strings.Join(r.goals, ",")+"}")
	}
	return
}

// rollupCTE is the part of the usage statement that adds a transaction's
// new events to the rollups; its parameters start at $first (rollupArgs). It
// writes the shard of the usage counter ($4): a transaction that would wait
// for another's rollup rows already waits for its usage row, so the
// rollups add no queue of their own (and no hot row); readers sum the
// shards.
func rollupCTE(first int) string {
	return fmt.Sprintf(`, roll AS (
			INSERT INTO event_rollups AS r (workspace_id, name, hod, day, shard, events, goal_events, goal_sum, changes)
			SELECT u.ws, u.name, u.hod, u.day, $4, u.n, u.gn,
			       coalesce((SELECT sum(g) FROM unnest(u.goals::numeric[]) AS g), 0), u.n
			FROM unnest($%d::uuid[], $%d::text[], $%d::smallint[], $%d::date[], $%d::bigint[], $%d::bigint[], $%d::text[])
			     AS u(ws, name, hod, day, n, gn, goals)
			ON CONFLICT (workspace_id, name, hod, day, shard) DO UPDATE SET
				events = r.events + excluded.events, goal_events = r.goal_events + excluded.goal_events,
				goal_sum = r.goal_sum + excluded.goal_sum, changes = r.changes + excluded.changes)`,
		first, first+1, first+2, first+3, first+4, first+5, first+6)
}

// RebuildRollups recomputes a workspace's rollups from its events, for
// events written around the record path (a bulk load with COPY).
func (s *Store) RebuildRollups(ctx context.Context, workspaceID uuid.UUID) error {
	err := s.inTx(ctx, func(tx pgx.Tx) error {
		if _, err := tx.Exec(ctx, `DELETE FROM event_rollups WHERE workspace_id = $1`, workspaceID); err != nil {
			return err
		}
		_, err := tx.Exec(ctx, `INSERT INTO event_rollups (workspace_id, name, hod, day, shard, events, goal_events, goal_sum, changes)
		SELECT d.workspace_id, d.name, h.hod, d.day, 0, count(*), count(d.goal_value), coalesce(sum(d.goal_value), 0), count(*)
		FROM (SELECT workspace_id, name, goal_value, (occurred_at AT TIME ZONE 'UTC')::date AS day,
		             extract(hour FROM occurred_at AT TIME ZONE 'UTC')::smallint AS hour
		      FROM events WHERE workspace_id = $1 AND deleted_at IS NULL) d
		CROSS JOIN LATERAL (VALUES (d.hour), (-1::smallint)) AS h(hod)
		GROUP BY 1, 2, 3, 4`, workspaceID)
		return err
	})
	if err != nil {
		return fmt.Errorf("rebuild rollups: %w", err)
	}
	return nil
}

// rollupArgs are rollupCTE's seven parameters.
func rollupArgs(d *rollupDelta) []any {
	ws, names, hods, days, events, goalEvents, goals := d.arrays()
	return []any{ws, names, hods, days, events, goalEvents, goals}
}
