package store

import (
	"context"
	"fmt"
	"time"

	"github.com/google/uuid"
	"github.com/jackc/pgx/v5"
)

// UncheckedEnrollment is an active enrollment due for a check against its
// workflow in Temporal.
type UncheckedEnrollment struct {
	ID         uuid.UUID
	WorkflowID string
	// Pending says intents for its workflow are still to be delivered (its
	// start among them, perhaps): Temporal may not know it yet, and it is
	// not checked this time.
	Pending bool
}

// ClaimUnchecked leases up to limit active enrollments last checked more
// than every ago, oldest check first. Claiming moves their checked_at to
// now, so concurrent reconcilers (rows are taken with SKIP LOCKED) and the
// next rounds skip them until every has passed again.
func (s *Store) ClaimUnchecked(ctx context.Context, every time.Duration, limit int) ([]UncheckedEnrollment, error) {
	rows, err := s.pool.Query(ctx, `WITH c AS (
			SELECT id FROM enrollments WHERE status = 'active' AND checked_at < now() - $1::interval
			ORDER BY checked_at LIMIT $2 FOR UPDATE SKIP LOCKED)
		UPDATE enrollments e SET checked_at = now() FROM c WHERE e.id = c.id
		RETURNING e.id, e.workflow_id, EXISTS (SELECT 1 FROM outbox o WHERE o.workflow_id = e.workflow_id
			AND o.delivered_at IS NULL AND o.failed_at IS NULL)`, every, limit)
	if err != nil {
		return nil, fmt.Errorf("claim unchecked enrollments: %w", err)
	}
	return pgx.CollectRows(rows, func(r pgx.CollectableRow) (UncheckedEnrollment, error) {
		var e UncheckedEnrollment
		err := r.Scan(&e.ID, &e.WorkflowID, &e.Pending)
		return e, err
	})
}

// StaleBackfill is a running backfill whose progress has not moved for a
// while, to be checked against its workflow.
type StaleBackfill struct {
	ID         uuid.UUID
	WorkflowID string
	// Pending is set while the intent that starts its workflow is still
	// undelivered: the workflow may not exist yet.
	Pending bool
}

// StaleBackfills lists running backfills not updated for every, the
// longest-still first. Each page moves updated_at, so a backfill whose
// workflow runs is seldom here for long; one terminated or lost outside
// Signalbox stays until the reconciler records its end.
func (s *Store) StaleBackfills(ctx context.Context, every time.Duration, limit int) ([]StaleBackfill, error) {
	rows, err := s.pool.Query(ctx, `SELECT b.id, 'backfill-' || b.id::text,
			EXISTS (SELECT 1 FROM outbox o WHERE o.workflow_id = 'backfill-' || b.id::text
				AND o.delivered_at IS NULL AND o.failed_at IS NULL)
		FROM backfills b WHERE b.status = 'running' AND b.updated_at < now() - $1::interval
		ORDER BY b.updated_at LIMIT $2`, every, limit)
	if err != nil {
		return nil, fmt.Errorf("stale backfills: %w", err)
	}
	return pgx.CollectRows(rows, func(r pgx.CollectableRow) (StaleBackfill, error) {
		var b StaleBackfill
		err := r.Scan(&b.ID, &b.WorkflowID, &b.Pending)
		return b, err
	})
}
