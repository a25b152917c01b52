package store

import (
	"context"
	"fmt"
	"time"

	"github.com/google/uuid"
	"github.com/jackc/pgx/v5"
)

// IntentKinds are the kinds of outbox intent, in the order they are
// reported.
var IntentKinds = []string{"start", "signal", "cancel", "backfill"}

// Backlog is what the outbox holds undelivered: intents neither delivered
// nor failed, including those a dispatcher has claimed and is delivering.
type Backlog struct {
	// Pending counts undelivered intents by kind; every kind in IntentKinds
	// is present.
	Pending map[string]int64
	// Total is the sum of Pending.
	Total int64
	// Oldest is when the oldest undelivered intent was written; zero when
	// nothing is pending.
	Oldest time.Time
	// At is the database's clock when the backlog was read, so that the age
	// of the oldest intent does not depend on this host's clock.
	At time.Time
}

// OldestAge is how long the oldest undelivered intent has waited; 0 when
// nothing is pending.
func (b Backlog) OldestAge() time.Duration {
	if b.Oldest.IsZero() || b.At.Before(b.Oldest) {
		return 0
	}
	return b.At.Sub(b.Oldest)
}

// OutboxBacklog reads the undelivered intents of every workspace. It walks
// the partial index of pending intents, so its cost grows with the backlog,
// not with the outbox: tens of milliseconds for tens of thousands of
// intents. Callers poll it periodically rather than per request.
func (s *Store) OutboxBacklog(ctx context.Context) (Backlog, error) {
	return s.backlog(ctx, `SELECT kind, count(*), min(created_at), now() FROM outbox
		WHERE delivered_at IS NULL AND failed_at IS NULL GROUP BY kind`)
}

// WorkspaceBacklog reads the undelivered intents of one workspace.
func (s *Store) WorkspaceBacklog(ctx context.Context, workspaceID uuid.UUID) (Backlog, error) {
	return s.backlog(ctx, `SELECT kind, count(*), min(created_at), now() FROM outbox
		WHERE delivered_at IS NULL AND failed_at IS NULL AND workspace_id = $1 GROUP BY kind`, workspaceID)
}

func (s *Store) backlog(ctx context.Context, sql string, args ...any) (Backlog, error) {
	b := Backlog{Pending: make(map[string]int64, len(IntentKinds))}
	for _, k := range IntentKinds {
		b.Pending[k] = 0
	}
	rows, err := s.pool.Query(ctx, sql, args...)
	if err != nil {
		return Backlog{}, fmt.Errorf("read outbox backlog: %w", err)
	}
	var (
		kind   string
		n      int64
		oldest time.Time
		at     time.Time
	)
	_, err = pgx.ForEachRow(rows, []any{&kind, &n, &oldest, &at}, func() error {
		b.Pending[kind] += n
		b.Total += n
		if b.Oldest.IsZero() || oldest.Before(b.Oldest) {
			b.Oldest = oldest
		}
		b.At = at
		return nil
	})
	if err != nil {
		return Backlog{}, fmt.Errorf("read outbox backlog: %w", err)
	}
	if b.At.IsZero() {
		if err := s.pool.QueryRow(ctx, `SELECT now()`).Scan(&b.At); err != nil {
			return Backlog{}, fmt.Errorf("read outbox backlog: %w", err)
		}
	}
	return b, nil
}
