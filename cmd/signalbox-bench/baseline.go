package main

import (
	"context"
	"fmt"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgxpool"
)

// baseline writes the workload's rows straight into bench_events with pgx:
// what PostgreSQL itself manages on this machine, with no HTTP, no
// validation and no contact resolution.
type baseline struct {
	pool *pgxpool.Pool
	w    *workload
}

// insertBaselineSQL writes one row; pgx prepares and caches it.
const insertBaselineSQL = `INSERT INTO bench_events (id, workspace_id, contact_id, name, properties, external_id,
	goal_type, goal_value, occurred_at, received_at) VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10)`

// openBaselinePool connects conns connections to the bench database and
// opens them all now, so the warm-up does not pay for dialling.
func openBaselinePool(ctx context.Context, url string, conns int) (*pgxpool.Pool, error) {
	pc, err := pgxpool.ParseConfig(url)
	if err != nil {
		return nil, err
	}
	pc.MaxConns, pc.MinConns = int32(conns), int32(conns)
	pool, err := pgxpool.NewWithConfig(ctx, pc)
	if err != nil {
		return nil, err
	}
	held := make([]*pgxpool.Conn, 0, conns)
	defer func() {
		for _, c := range held {
			c.Release()
		}
	}()
	for range conns {
		c, err := pool.Acquire(ctx)
		if err != nil {
			pool.Close()
			return nil, fmt.Errorf("open baseline connections: %w", err)
		}
		held = append(held, c)
	}
	return pool, nil
}

// single inserts event seq in its own transaction (autocommit).
func (b *baseline) single(ctx context.Context, seq int64) (int, error) {
	_, err := b.pool.Exec(ctx, insertBaselineSQL, b.w.row(b.w.event(seq), time.Now())...)
	if err != nil {
		return 0, err
	}
	return 1, nil
}

// batch copies the rows of batch seq with COPY, one transaction per batch.
func (b *baseline) batch(ctx context.Context, seq int64) (int, error) {
	_, first := b.w.batch(seq)
	now := time.Now()
	rows := make([][]any, b.w.batchSize)
	for i := range rows {
		rows[i] = b.w.row(&b.w.events[first+i], now)
	}
	n, err := b.pool.CopyFrom(ctx, pgx.Identifier{"bench_events"}, eventColumns, pgx.CopyFromRows(rows))
	if err != nil {
		return 0, err
	}
	return int(n), nil
}
