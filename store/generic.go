package store

import (
	"context"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgconn"
)

// Generic plans for the hot statements.
//
// PostgreSQL plans a prepared statement anew for each of its first five
// executions on a connection (a custom plan, for the values given), then
// keeps doing so whenever the generic plan's estimate looks worse. For the
// statements of the record path, the workers' bookkeeping, the outbox and
// the chart, whose best plan does not depend on the values (ids, names,
// arrays of them, a time window read through an index), planning cost as
// much as executing: about 0.5 ms a statement for the record path's CTEs,
// 0.1–0.3 ms for the others, measured with log_min_duration_statement in
// the act benchmark. These helpers run them with plan_cache_mode =
// force_generic_plan, set for their own transaction only, so the
// connection goes back to the pool as it was and no other statement is
// affected; none costs a round trip of its own.

// setLocalGeneric makes a transaction's statements use generic plans.
const setLocalGeneric = "SET LOCAL plan_cache_mode = force_generic_plan"

// genericBegin starts a transaction whose statements use generic plans
// (one simple-protocol message).
const genericBegin = "BEGIN; " + setLocalGeneric

// setGeneric is queued before a statement sent alone: set_config with
// is_local lasts until the batch's implicit transaction ends.
const setGeneric = `SELECT set_config('plan_cache_mode', 'force_generic_plan', true)`

// inGenericTx is inTx with generic plans.
func (s *Store) inGenericTx(ctx context.Context, fn func(pgx.Tx) error) error {
	return pgx.BeginTxFunc(ctx, s.pool, pgx.TxOptions{BeginQuery: genericBegin}, fn)
}

// sendGeneric sends sql after setGeneric in one batch and reads
// setGeneric's answer; the caller reads sql's, then closes the batch.
func (s *Store) sendGeneric(ctx context.Context, sql string, args ...any) (pgx.BatchResults, error) {
	b := &pgx.Batch{}
	b.Queue(setGeneric)
	b.Queue(sql, args...)
	br := s.pool.SendBatch(ctx, b)
	if _, err := br.Exec(); err != nil {
		_ = br.Close()
		return nil, err
	}
	return br, nil
}

// execGeneric is pool.Exec with a generic plan.
func (s *Store) execGeneric(ctx context.Context, sql string, args ...any) (pgconn.CommandTag, error) {
	br, err := s.sendGeneric(ctx, sql, args...)
	if err != nil {
		return pgconn.CommandTag{}, err
	}
	tag, err := br.Exec()
	if cerr := br.Close(); err == nil {
		err = cerr
	}
	return tag, err
}

// queryRowGeneric is pool.QueryRow(...).Scan(dest...) with a generic plan.
func (s *Store) queryRowGeneric(ctx context.Context, dest []any, sql string, args ...any) error {
	br, err := s.sendGeneric(ctx, sql, args...)
	if err != nil {
		return err
	}
	err = br.QueryRow().Scan(dest...)
	if cerr := br.Close(); err == nil {
		err = cerr
	}
	return err
}

// queryGeneric is pool.Query with a generic plan; the caller closes the
// rows, then the batch.
func (s *Store) queryGeneric(ctx context.Context, sql string, args ...any) (pgx.BatchResults, pgx.Rows, error) {
	br, err := s.sendGeneric(ctx, sql, args...)
	if err != nil {
		return nil, nil, err
	}
	rows, err := br.Query()
	if err != nil {
		_ = br.Close()
		return nil, nil, err
	}
	return br, rows, nil
}
