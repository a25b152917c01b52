package store

import (
	"context"
	"time"

	"github.com/google/uuid"
)

// Usage is a workspace's metering for one calendar month.
type Usage struct {
	Period  time.Time
	Plan    Plan
	Tracked int64
}

// GetUsage reads the workspace's tracked events for the current month.
func (s *Store) GetUsage(ctx context.Context, workspaceID uuid.UUID) (Usage, error) {
	u := Usage{Period: Period(s.now())}
	err := s.pool.QueryRow(ctx, `SELECT w.plan, coalesce((SELECT sum(tracked) FROM usage_counters
		WHERE workspace_id = w.id AND period = $2), 0)::bigint FROM workspaces w WHERE w.id = $1`,
		workspaceID, u.Period).Scan(&u.Plan, &u.Tracked)
	return u, notFound(err)
}
