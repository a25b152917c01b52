package main

import (
	"context"
	"fmt"
	"time"

	"github.com/google/uuid"
	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgxpool"

	"github.com/signalbox/signalbox/store"
)

// The harness's own SQL lives here: the throwaway database, the baseline
// table and truncation between phases. Signalbox's tables are written only
// through the API.

// createBaselineTable makes bench_events like events: same columns, types,
// defaults, checks and indexes, but no foreign key (LIKE never copies
// those), so it follows future migrations by itself. It returns the number
// of indexes of each table as a check.
func createBaselineTable(ctx context.Context, pool *pgxpool.Pool) (events, bench int, err error) {
	if _, err := pool.Exec(ctx, `CREATE TABLE bench_events (LIKE events INCLUDING ALL)`); err != nil {
		return 0, 0, fmt.Errorf("create bench_events: %w", err)
	}
	err = pool.QueryRow(ctx, `SELECT
		(SELECT count(*) FROM pg_indexes WHERE schemaname = current_schema() AND tablename = 'events'),
		(SELECT count(*) FROM pg_indexes WHERE schemaname = current_schema() AND tablename = 'bench_events')`).
		Scan(&events, &bench)
	if err == nil && events != bench {
		err = fmt.Errorf("bench_events has %d indexes, events %d", bench, events)
	}
	return events, bench, err
}

// truncateEvents empties both event tables so the next phase starts from
// the same state whichever side it measures.
func truncateEvents(ctx context.Context, pool *pgxpool.Pool) error {
	if _, err := pool.Exec(ctx, `TRUNCATE bench_events, events`); err != nil {
		return fmt.Errorf("truncate: %w", err)
	}
	return nil
}

// eventsPerCommit is the mean number of rows each writing transaction put
// into table since it was last truncated: rows one transaction wrote share
// its xmin. For the signalbox side it is the size of the group commits.
func eventsPerCommit(ctx context.Context, pool *pgxpool.Pool, table string) (float64, error) {
	var rows, txs int64
	err := pool.QueryRow(ctx, `SELECT count(*), count(DISTINCT xmin::text) FROM `+pgx.Identifier{table}.Sanitize()).
		Scan(&rows, &txs)
	if err != nil || txs == 0 {
		return 0, err
	}
	return float64(rows) / float64(txs), nil
}

// contactIDs reads the id of every contact of the workspace by email.
func contactIDs(ctx context.Context, pool *pgxpool.Pool, workspaceID uuid.UUID) (map[string]uuid.UUID, error) {
	rows, err := pool.Query(ctx, `SELECT email, id FROM contacts WHERE workspace_id = $1`, workspaceID)
	if err != nil {
		return nil, err
	}
	ids := map[string]uuid.UUID{}
	var email string
	var id uuid.UUID
	_, err = pgx.ForEachRow(rows, []any{&email, &id}, func() error { ids[email] = id; return nil })
	return ids, err
}

// serverVersion reads PostgreSQL's short version string.
func serverVersion(ctx context.Context, pool *pgxpool.Pool) string {
	var v string
	if err := pool.QueryRow(ctx, `SHOW server_version`).Scan(&v); err != nil {
		return "unknown"
	}
	return v
}

// setTracked sets a workspace's count of tracked events for the month of at
// to total, on one shard: how the noisy-neighbour phase puts a workspace
// past its hard cap without sending that many events, and keeps another far
// below its own.
func setTracked(ctx context.Context, pool *pgxpool.Pool, workspaceID uuid.UUID, at time.Time, total int64) error {
	period := store.Period(at)
	_, err := pool.Exec(ctx, `WITH cleared AS (
			DELETE FROM usage_counters WHERE workspace_id = $1 AND period = $2 AND shard <> 0)
		INSERT INTO usage_counters (workspace_id, period, shard, tracked) VALUES ($1, $2, 0, $3)
		ON CONFLICT (workspace_id, period, shard) DO UPDATE SET tracked = excluded.tracked`,
		workspaceID, period, total)
	if err != nil {
		return fmt.Errorf("set tracked events: %w", err)
	}
	return nil
}
