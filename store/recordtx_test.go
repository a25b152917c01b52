package store_test

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"testing"
	"time"

	"github.com/google/uuid"
	"github.com/jackc/pgx/v5/pgconn"
	"github.com/stretchr/testify/require"

	"github.com/signalbox/signalbox/store"
	"github.com/signalbox/signalbox/store/storetest"
)

// TestRecordTimeouts holds a contact's row locked from another transaction
// while an event for the contact is recorded: with a short lock timeout the
// record transaction gives up waiting (55P03), with a short statement
// timeout its statement is cancelled (57014); both are transient, neither
// stores anything, and the timeouts bind record transactions only.
func TestRecordTimeouts(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	for _, tc := range []struct {
		name string
		cfg  store.Config
		code string
	}{
		{"lock timeout", store.Config{LockTimeout: 100 * time.Millisecond}, "55P03"},
		{"statement timeout", store.Config{StatementTimeout: 150 * time.Millisecond, LockTimeout: time.Minute}, "57014"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			s := storetest.New(t, tc.cfg)
			ws, _ := storetest.Workspace(t, s, store.PlanStarter)
			event := func(name string) *store.RecordRequest {
				return &store.RecordRequest{WorkspaceID: ws.ID, Plan: ws.Plan, Events: []store.EventInput{{
					Email: "a@example.com", CreateIfMissing: true, Name: name, Properties: json.RawMessage(`{}`), OccurredAt: time.Now(),
				}}}
			}
			out, err := s.Record(ctx, []*store.RecordRequest{event("created")})
			require.NoError(t, err)
			contact := out[0].Results[0].ContactID

			hold, err := s.Pool().Begin(ctx)
			require.NoError(t, err)
			defer func() { _ = hold.Rollback(ctx) }()
			_, err = hold.Exec(ctx, `SELECT 1 FROM contacts WHERE id = $1 FOR UPDATE`, contact)
			require.NoError(t, err)

			start := time.Now()
			_, err = s.Record(ctx, []*store.RecordRequest{event("blocked")})
			var pgErr *pgconn.PgError
			require.ErrorAs(t, err, &pgErr)
			require.Equal(t, tc.code, pgErr.Code)
			require.True(t, store.IsTransient(err))
			require.Less(t, time.Since(start), 5*time.Second)
			require.NoError(t, hold.Rollback(ctx))

			page, _, err := s.ListEvents(ctx, ws.ID, store.EventFilter{Name: "blocked", Limit: 10})
			require.NoError(t, err)
			require.Empty(t, page, "a timed-out record transaction stores nothing")
			u, err := s.GetUsage(ctx, ws.ID)
			require.NoError(t, err)
			require.EqualValues(t, 1, u.Tracked)

			// Other statements on the pool are not bound by the timeouts:
			// the sessions keep the server's settings.
			for _, setting := range []string{"statement_timeout", "lock_timeout"} {
				var now, reset string
				require.NoError(t, s.Pool().QueryRow(ctx, `SELECT setting, reset_val FROM pg_settings WHERE name = $1`,
					setting).Scan(&now, &reset))
				require.Equal(t, reset, now, setting)
			}
			_, err = s.Pool().Exec(ctx, `SELECT pg_sleep(0.3)`)
			require.NoError(t, err)
		})
	}
}

func TestIsTransient(t *testing.T) {
	t.Parallel()
	for _, code := range []string{"57014", "55P03", "40001", "40P01", "57P01", "57P02", "57P03", "53300", "08006", "08001", "08P01"} {
		require.True(t, store.IsTransient(fmt.Errorf("record: %w", &pgconn.PgError{Code: code})), code)
	}
	for _, code := range []string{"23505", "23503", "22P02", "42P01", "53100"} {
		require.False(t, store.IsTransient(&pgconn.PgError{Code: code}), code)
	}
	require.True(t, store.IsTransient(fmt.Errorf("flush: %w", context.DeadlineExceeded)))
	for _, err := range []error{nil, context.Canceled, errors.New("boom"), store.ErrNotFound, store.ErrConflict,
		&store.QuotaError{Limit: 1, HardCap: 1, Used: 1}} {
		require.False(t, store.IsTransient(err), "%v", err)
	}

	ctx := context.Background()
	// Nothing listens on port 1: cannot connect.
	_, err := store.Open(ctx, "postgres://postgres@127.0.0.1:1/postgres?sslmode=disable&connect_timeout=2", store.Config{})
	require.Error(t, err)
	require.True(t, store.IsTransient(err), "%v", err)

	// A connection the server ended (as on a restart or failover).
	s := storetest.New(t, store.Config{})
	conn, err := s.Pool().Acquire(ctx)
	require.NoError(t, err)
	defer conn.Release()
	var pid int
	require.NoError(t, conn.QueryRow(ctx, `SELECT pg_backend_pid()`).Scan(&pid))
	_, err = s.Pool().Exec(ctx, `SELECT pg_terminate_backend($1)`, pid)
	require.NoError(t, err)
	_, err = conn.Exec(ctx, `SELECT 1`)
	require.Error(t, err)
	require.True(t, store.IsTransient(err), "%v", err)

	// A closed pool, as during shutdown.
	closed := storetest.New(t, store.Config{})
	closed.Close()
	_, err = closed.GetUsage(ctx, uuid.New())
	require.Error(t, err)
	require.True(t, store.IsTransient(err), "%v", err)
}
