package store

import (
	"context"
	"fmt"
	"slices"
	"time"

	"github.com/google/uuid"
	"github.com/jackc/pgx/v5"

	"github.com/signalbox/signalbox/decision"
)

// stamp takes the group's wait locks and reads the receipt time of every
// event in the group, in one round trip, before any event is written.
//
// The receipt time comes from PostgreSQL's clock, read after the locks are
// held: a wait's registration and its timeout (RegisterWait, ClearWait)
// take the same locks exclusively and read the same clock, so an event
// whose receipt time falls inside a wait's window is either committed
// before the registration looks back or sees the registered wait, and
// never lands between a timeout's decision and its commit. Every window
// bound is on that one clock; the clocks of API, worker and Temporal hosts
// only decide when things run, never which events count.
//
// It also reports which workspaces of the group have automations. The
// cached set may be a few seconds stale about a workspace's first
// automation (another replica's change); waits and exits must not depend
// on it, so a workspace the cache knows none of is checked here too.
func stamp(ctx context.Context, tx pgx.Tx, reqs []*RecordRequest, out []RecordOutcome, set decision.Automations) (
	time.Time, map[uuid.UUID]bool, error) {
	automating := map[uuid.UUID]bool{}
	var unknown []uuid.UUID
	var stripes []int32
	seen := map[int32]bool{}
	for ri, r := range reqs {
		if set == nil {
			break
		}
		if _, ok := automating[r.WorkspaceID]; !ok {
			automating[r.WorkspaceID] = set.Automates(r.WorkspaceID)
			if !automating[r.WorkspaceID] {
				unknown = append(unknown, r.WorkspaceID)
			}
		}
		for _, res := range out[ri].Results {
			if res.Err != nil {
				continue
			}
			if k := waitStripe(res.ContactID); !seen[k] {
				seen[k] = true
				stripes = append(stripes, k)
			}
		}
	}
	// Every transaction takes its stripes in ascending order.
	slices.Sort(stripes)
	b := &pgx.Batch{}
	if len(stripes) > 0 {
		b.Queue(`SELECT count(pg_advisory_xact_lock_shared($1, k)) FROM unnest($2::int4[]) AS k`, waitLockClass, stripes)
	}
	var at time.Time
	b.Queue(`SELECT clock_timestamp()`).QueryRow(func(row pgx.Row) error { return row.Scan(&at) })
	if len(unknown) > 0 {
		b.Queue(`SELECT DISTINCT workspace_id FROM automations WHERE workspace_id = ANY($1)`, unknown).Query(
			func(rows pgx.Rows) error {
				var ws uuid.UUID
				_, err := pgx.ForEachRow(rows, []any{&ws}, func() error {
					automating[ws] = true
					return nil
				})
				return err
			})
	}
	if err := tx.SendBatch(ctx, b).Close(); err != nil {
		return time.Time{}, nil, fmt.Errorf("stamp events: %w", err)
	}
	return at.UTC(), automating, nil
}
