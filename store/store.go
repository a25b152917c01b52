// Package store is Signalbox's PostgreSQL layer: the schema and its embedded
// migrations, and every query, each scoped by workspace. Nothing outside this
// package (and tests) writes SQL.
package store

import (
	"context"
	"errors"
	"fmt"
	"time"

	"github.com/exaring/otelpgx"
	"github.com/google/uuid"
	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgconn"
	"github.com/jackc/pgx/v5/pgxpool"
	pgxuuid "github.com/vgarvardt/pgx-google-uuid/v5"
)

var (
	// ErrNotFound is returned when a row does not exist in the caller's
	// workspace (including when it exists in another one).
	ErrNotFound = errors.New("not found")
	// ErrConflict is returned when a write would break a uniqueness rule,
	// such as two contacts with one email.
	ErrConflict = errors.New("conflict")
)

// Config tunes the connection pool. The zero value is usable.
type Config struct {
	// MaxConns caps the pool; 0 means pgx's default with a floor of 16,
	// enough for the recorder's transactions (at most 2 × its committers)
	// and concurrent reads on a small machine.
	MaxConns int32
	// Tracing turns on OpenTelemetry spans for every query.
	Tracing bool
	// Retention is how long an event lives after it was received; reads hide
	// older events at once and the sweeper deletes them. 0 means two years.
	Retention time.Duration
	// StatementTimeout and LockTimeout bound each statement of a record
	// transaction and each of its waits for a lock; 0 means
	// DefaultStatementTimeout and DefaultLockTimeout. They apply to record
	// transactions only.
	StatementTimeout, LockTimeout time.Duration
	// SkipDecisions leaves the record path's decisions unwritten; only the
	// benchmark sets it, as the baseline of what keeping them costs.
	SkipDecisions bool
	// SkipNameCounts leaves the catalog's per-name counters uncounted;
	// only the benchmark sets it, as the baseline of what they cost.
	SkipNameCounts bool
	// SkipRollups leaves new events out of the analytics rollups; only the
	// segment benchmark sets it, as the baseline of what keeping them costs.
	SkipRollups bool
}

// DefaultRetention keeps events for two years.
const DefaultRetention = 2 * 365 * 24 * time.Hour

// Store holds the connection pool. It is safe for concurrent use.
type Store struct {
	pool      *pgxpool.Pool
	now       func() time.Time
	retention time.Duration
	automator Automator
	// skipDecisions leaves the record path's decisions unwritten (the
	// benchmark's baseline for what keeping them costs).
	skipDecisions bool
	// skipNameCounts leaves the catalog's counters alone (benchmark only).
	skipNameCounts bool
	// skipRollups leaves new events out of the rollups (a benchmark baseline).
	skipRollups bool
	// recordBegin starts a record transaction with its timeouts.
	recordBegin string
}

// Open connects to the database at url and checks that it answers.
func Open(ctx context.Context, url string, cfg Config) (*Store, error) {
	pc, err := pgxpool.ParseConfig(url)
	if err != nil {
		return nil, fmt.Errorf("parse database url: %w", err)
	}
	if cfg.MaxConns > 0 {
		pc.MaxConns = cfg.MaxConns
	} else if pc.MaxConns < 16 {
		pc.MaxConns = 16
	}
	if cfg.Tracing {
		pc.ConnConfig.Tracer = otelpgx.NewTracer()
	}
	// pgx encodes google/uuid values through their text form unless told
	// about the type; registering it keeps them binary (a third of the API's
	// CPU on batch ingest otherwise).
	pc.AfterConnect = func(_ context.Context, conn *pgx.Conn) error {
		pgxuuid.Register(conn.TypeMap())
		return nil
	}
	pool, err := pgxpool.NewWithConfig(ctx, pc)
	if err != nil {
		return nil, fmt.Errorf("open database: %w", err)
	}
	if err := pool.Ping(ctx); err != nil {
		pool.Close()
		return nil, fmt.Errorf("ping database: %w", err)
	}
	if cfg.Retention <= 0 {
		cfg.Retention = DefaultRetention
	}
	if cfg.StatementTimeout <= 0 {
		cfg.StatementTimeout = DefaultStatementTimeout
	}
	if cfg.LockTimeout <= 0 {
		cfg.LockTimeout = DefaultLockTimeout
	}
	return &Store{pool: pool, now: time.Now, retention: cfg.Retention, skipDecisions: cfg.SkipDecisions,
		skipNameCounts: cfg.SkipNameCounts, skipRollups: cfg.SkipRollups,
		recordBegin: recordBeginQuery(cfg.StatementTimeout, cfg.LockTimeout)}, nil
}

// Close releases every connection.
func (s *Store) Close() { s.pool.Close() }

// Ping checks that the database answers; readiness probes use it.
func (s *Store) Ping(ctx context.Context) error { return s.pool.Ping(ctx) }

// Pool exposes the pool for tests and benchmarks that need raw access.
func (s *Store) Pool() *pgxpool.Pool { return s.pool }

// DurabilityWarnings lists server settings under which a committed event
// could still be lost in a crash, so start-up can warn about them: Signalbox
// answers 2xx only once a commit is durable.
func (s *Store) DurabilityWarnings(ctx context.Context) ([]string, error) {
	var warnings []string
	for _, setting := range []string{"fsync", "synchronous_commit"} {
		var v string
		if err := s.pool.QueryRow(ctx, "SELECT current_setting($1)", setting).Scan(&v); err != nil {
			return nil, fmt.Errorf("read %s: %w", setting, err)
		}
		if v == "off" {
			warnings = append(warnings, setting+" is off: an acknowledged event can be lost if PostgreSQL crashes")
		}
	}
	return warnings, nil
}

// NewID returns a time-ordered UUIDv7, so new rows land at the right edge of
// their primary-key index.
func NewID() uuid.UUID { return uuid.Must(uuid.NewV7()) }

// inTx runs fn in a transaction, committing if it returns nil.
func (s *Store) inTx(ctx context.Context, fn func(pgx.Tx) error) error {
	return pgx.BeginFunc(ctx, s.pool, fn)
}

// notFound translates pgx's no-rows error once, here.
func notFound(err error) error {
	if errors.Is(err, pgx.ErrNoRows) {
		return ErrNotFound
	}
	return err
}

// isUniqueViolation reports a unique_violation (23505).
func isUniqueViolation(err error) bool {
	var pgErr *pgconn.PgError
	return errors.As(err, &pgErr) && pgErr.Code == "23505"
}

// isForeignKeyViolation reports a foreign_key_violation (23503): the row
// referred to is gone (a deleted contact and its enrollments, say).
func isForeignKeyViolation(err error) bool {
	var pgErr *pgconn.PgError
	return errors.As(err, &pgErr) && pgErr.Code == "23503"
}

// trimPage cuts a listing read with limit+1 rows back to limit and says
// whether more rows follow.
func trimPage[T any](rows []T, limit int) ([]T, bool) {
	if len(rows) > limit {
		return rows[:limit], true
	}
	return rows, false
}
