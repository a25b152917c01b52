package store

import (
	"context"
	"encoding/json"
	"fmt"
	"time"

	"github.com/google/uuid"
	"github.com/jackc/pgx/v5"
)

// Intent is an outbox row: a start, signal or cancel for one workflow.
type Intent struct {
	ID          uuid.UUID
	WorkspaceID uuid.UUID
	WorkflowID  string
	Kind        string
	Payload     json.RawMessage
	Attempts    int
	// TraceParent is the W3C trace context of the request that wrote it.
	TraceParent string
}

// ClaimIntents leases up to limit undelivered intents for lease. Only the
// first undelivered intent of each workflow is eligible, so intents for one
// workflow are delivered in the order they were written (a start before the
// cancel that follows it). Rows are claimed with FOR UPDATE SKIP LOCKED and
// a lease rather than a cursor, so concurrent dispatchers share the work and
// a row that commits late is never skipped; a dispatcher that dies leaves
// rows that become claimable again when their lease ends.
//
// The check costs one index probe per candidate however large the backlog
// (an outage's worth of intents must drain quickly): a start is always its
// workflow's first intent, and for the others a correlated min() over the
// (workflow_id, seq) index says whether they are first.
func (s *Store) ClaimIntents(ctx context.Context, limit int, lease time.Duration) ([]Intent, error) {
	br, rows, err := s.queryGeneric(ctx, `WITH c AS (
			SELECT id FROM outbox o
			WHERE delivered_at IS NULL AND failed_at IS NULL AND (lease_until IS NULL OR lease_until < now())
			  AND (o.kind = 'start' OR o.seq = (SELECT min(p.seq) FROM outbox p
			                                    WHERE p.workflow_id = o.workflow_id AND p.delivered_at IS NULL
			                                      AND p.failed_at IS NULL))
			ORDER BY seq LIMIT $1 FOR UPDATE SKIP LOCKED)
		UPDATE outbox o SET lease_until = now() + $2::interval, attempts = o.attempts + 1
		FROM c WHERE o.id = c.id
		RETURNING o.id, o.workspace_id, o.workflow_id, o.kind, o.payload, o.attempts, coalesce(o.trace_parent, '')`, limit, lease)
	if err != nil {
		return nil, fmt.Errorf("claim intents: %w", err)
	}
	out, err := pgx.CollectRows(rows, func(r pgx.CollectableRow) (Intent, error) {
		var in Intent
		err := r.Scan(&in.ID, &in.WorkspaceID, &in.WorkflowID, &in.Kind, &in.Payload, &in.Attempts, &in.TraceParent)
		return in, err
	})
	if cerr := br.Close(); err == nil {
		err = cerr
	}
	return out, err
}

// MarkDelivered records that intents reached Temporal (or met a final
// answer, such as a signal to a workflow that had already ended), with a
// short outcome for each.
func (s *Store) MarkDelivered(ctx context.Context, ids []uuid.UUID, outcomes []string) error {
	if len(ids) == 0 {
		return nil
	}
	_, err := s.execGeneric(ctx, `UPDATE outbox o SET delivered_at = now(), lease_until = NULL, outcome = u.outcome
		FROM unnest($1::uuid[], $2::text[]) AS u(id, outcome) WHERE o.id = u.id`, ids, outcomes)
	return err
}

// RetryIntent releases an intent whose delivery failed, to be claimed again
// after the backoff.
func (s *Store) RetryIntent(ctx context.Context, id uuid.UUID, backoff time.Duration, cause string) error {
	_, err := s.pool.Exec(ctx, `UPDATE outbox SET lease_until = now() + $2::interval, last_error = $3 WHERE id = $1`,
		id, backoff, cause)
	return err
}

// FailIntent settles an intent Temporal refused for good: it is marked
// failed with the cause and never retried, and its enrollment, if still
// active, ends failed with the cause as its reason (a workflow that never
// started, or one that cannot be reached, would otherwise stay active for
// ever). It returns whether an enrollment was ended.
func (s *Store) FailIntent(ctx context.Context, id uuid.UUID, cause string) (bool, error) {
	var ended bool
	err := s.pool.QueryRow(ctx, `WITH failed AS (
			UPDATE outbox SET failed_at = now(), lease_until = NULL, last_error = $2, outcome = 'failed'
			WHERE id = $1 AND delivered_at IS NULL AND failed_at IS NULL RETURNING workflow_id),
		ended AS (
			UPDATE enrollments SET status = 'failed', reason = $3, ended_at = now(), current_step = NULL
			WHERE workflow_id = (SELECT workflow_id FROM failed) AND status = 'active' RETURNING id),
		waits AS (DELETE FROM enrollment_waits WHERE enrollment_id = (SELECT id FROM ended)),
		exits AS (DELETE FROM enrollment_exits WHERE enrollment_id = (SELECT id FROM ended))
		SELECT EXISTS (SELECT 1 FROM ended)`, id, cause, "temporal refused the intent: "+cause).Scan(&ended)
	if err != nil {
		return false, fmt.Errorf("fail intent: %w", err)
	}
	return ended, nil
}

// PendingIntents counts intents not yet delivered.
func (s *Store) PendingIntents(ctx context.Context) (int64, error) {
	var n int64
	err := s.pool.QueryRow(ctx, `SELECT count(*) FROM outbox WHERE delivered_at IS NULL AND failed_at IS NULL`).Scan(&n)
	return n, err
}

// PurgeDelivered deletes at most limit intents delivered (or failed)
// before the given age, oldest first.
func (s *Store) PurgeDelivered(ctx context.Context, olderThan time.Duration, limit int) (int64, error) {
	tag, err := s.pool.Exec(ctx, `DELETE FROM outbox WHERE id IN (
		SELECT id FROM outbox WHERE coalesce(delivered_at, failed_at) < now() - $1::interval ORDER BY id LIMIT $2)`,
		olderThan, limit)
	if err != nil {
		return 0, err
	}
	return tag.RowsAffected(), nil
}
