package store

import (
	"context"
	"fmt"
	"math/rand/v2"
	"slices"
	"time"

	"github.com/google/uuid"
	"github.com/jackc/pgx/v5"
)

// nameCountShards spreads each (workspace, name, hour) counter over this
// many rows, as usage_counters does per month.
const nameCountShards = 16

// NameCountFoldAge is how old an hour's counter rows must be before the
// sweeper folds them into the name's one row: older than every hour
// count_24h reads, with two hours to spare.
const NameCountFoldAge = 26 * time.Hour

// foldedHour is the hour of a name's folded row.
var foldedHour = time.Date(1, 1, 1, 0, 0, 0, 0, time.UTC)

// bumpNameCounts is the tail of every statement that adds to the counters:
// the rows it inserts must come sorted by (workspace, name, hour), so that
// concurrent writers lock rows alike.
const bumpNameCounts = `INSERT INTO event_name_counts AS c (workspace_id, name, hour, shard, count, first_at, last_at) %s
	ON CONFLICT (workspace_id, name, hour, shard) DO UPDATE SET count = c.count + excluded.count,
		first_at = least(c.first_at, excluded.first_at), last_at = greatest(c.last_at, excluded.last_at)`

// nameCountShard picks the shard a write adds to.
func nameCountShard() int16 { return int16(rand.IntN(nameCountShards)) }

// newNameCounts adds up a group's new events (not duplicates, not refused)
// per workspace and name, sorted.
func newNameCounts(reqs []*RecordRequest, out []RecordOutcome) (ws []uuid.UUID, names []string, counts []int64) {
	type key struct {
		ws   uuid.UUID
		name string
	}
	m := map[key]int64{}
	for ri, r := range reqs {
		for ii, res := range out[ri].Results {
			if res.Err == nil && !res.Duplicate {
				m[key{r.WorkspaceID, r.Events[ii].Name}]++
			}
		}
	}
	keys := make([]key, 0, len(m))
	for k := range m {
		keys = append(keys, k)
	}
	slices.SortFunc(keys, func(a, b key) int { return compareKeys(a.ws, a.name, b.ws, b.name) })
	for _, k := range keys {
		ws, names, counts = append(ws, k.ws), append(names, k.name), append(counts, m[k])
	}
	return ws, names, counts
}

// countNamesCTE is the CTE the record path's usage statement carries to
// count new events per name in the same round trip: $5.. are the
// workspaces, names and counts of newNameCounts, $8 the hour of receipt,
// $9 the shard and $10 the receipt time.
var countNamesCTE = fmt.Sprintf(`, names AS (`+bumpNameCounts+`)`,
	`SELECT ws, name, $8::timestamptz, $9::smallint, n, $10::timestamptz, $10::timestamptz
	 FROM unnest($5::uuid[], $6::text[], $7::bigint[]) AS u(ws, name, n)`)

// nameCounts is the CTE (and its arguments) that the record path's usage
// statement carries to count the group's new events per name in the same
// round trip; nothing when the store skips the counters (the benchmark's
// baseline).
func (s *Store) nameCounts(reqs []*RecordRequest, out []RecordOutcome, now time.Time) (string, []any) {
	if s.skipNameCounts {
		return "", nil
	}
	ws, names, counts := newNameCounts(reqs, out)
	return countNamesCTE, []any{ws, names, counts, now.UTC().Truncate(time.Hour), nameCountShard(), now}
}

// FoldNameCounts folds counter rows of hours older than NameCountFoldAge
// into one row per name, at most limit rows at a time, and drops the folded
// rows of names whose every event has expired (count 0, last seen before
// the retention cutoff). It returns how many rows it folded; the sweeper
// calls it until that is less than limit.
func (s *Store) FoldNameCounts(ctx context.Context, limit int) (int64, error) {
	var n int64
	err := s.inTx(ctx, func(tx pgx.Tx) error {
		// Rows are locked in key order, as every writer of the counters does.
		err := tx.QueryRow(ctx, `WITH old AS (
				DELETE FROM event_name_counts c USING (
					SELECT workspace_id, name, hour, shard FROM event_name_counts
					WHERE hour < $1 AND hour > $2 ORDER BY workspace_id, name, hour, shard LIMIT $3 FOR UPDATE) o
				WHERE (c.workspace_id, c.name, c.hour, c.shard) = (o.workspace_id, o.name, o.hour, o.shard)
				RETURNING c.workspace_id, c.name, c.count, c.first_at, c.last_at),
			folded AS (`+fmt.Sprintf(bumpNameCounts, `SELECT workspace_id, name, $2::timestamptz, 0::smallint,
				sum(count), min(first_at), max(last_at) FROM old GROUP BY 1, 2 ORDER BY 1, 2`)+`)
			SELECT count(*) FROM old`,
			s.now().Add(-NameCountFoldAge), foldedHour, limit).Scan(&n)
		if err != nil {
			return fmt.Errorf("fold name counts: %w", err)
		}
		if n < int64(limit) {
			_, err = tx.Exec(ctx, `DELETE FROM event_name_counts WHERE hour = $1 AND count = 0 AND last_at <= $2`,
				foldedHour, s.cutoff())
			if err != nil {
				return fmt.Errorf("drop expired names: %w", err)
			}
		}
		return nil
	})
	return n, err
}

// deleteContactEvents deletes a contact's events ahead of the contact
// (which would cascade to them) and takes those not soft-deleted off the
// catalog's counts in the same statement.
func deleteContactEvents(ctx context.Context, tx pgx.Tx, ws, contact uuid.UUID) error {
	_, err := tx.Exec(ctx, `WITH gone AS (
			DELETE FROM events WHERE workspace_id = $1 AND contact_id = $2 RETURNING name, received_at, deleted_at)
		`+fmt.Sprintf(bumpNameCounts, `SELECT $1, name, date_trunc('hour', received_at, 'UTC'), $3::smallint,
			-count(*), min(received_at), max(received_at)
			FROM gone WHERE deleted_at IS NULL GROUP BY 2, 3 ORDER BY 2, 3`), ws, contact, nameCountShard())
	if err != nil {
		return fmt.Errorf("delete events: %w", err)
	}
	return nil
}
