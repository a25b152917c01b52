// Package retention deletes events past the deployment's retention period.
// Reads already hide expired events; this only reclaims their space.
package retention

import (
	"context"
	"log/slog"
	"time"
)

// Purger deletes up to limit expired events and says how many it removed.
type Purger interface {
	PurgeExpired(ctx context.Context, limit int) (int64, error)
}

// Sweeper runs the purge on an interval, in bounded batches, so a backlog
// (say, after the retention is shortened) drains without one huge delete
// that would hold locks and bloat the WAL.
type Sweeper struct {
	Store    Purger
	Interval time.Duration
	// Batch is the most rows one statement deletes; default 1000.
	Batch int
	Log   *slog.Logger
}

// Run sweeps until ctx ends.
func (s *Sweeper) Run(ctx context.Context) {
	if s.Batch <= 0 {
		s.Batch = 1000
	}
	t := time.NewTicker(s.Interval)
	defer t.Stop()
	for {
		if n, err := s.Sweep(ctx); err != nil && ctx.Err() == nil {
			s.Log.ErrorContext(ctx, "retention sweep failed", "error", err.Error(), "deleted", n)
		} else if n > 0 {
			s.Log.InfoContext(ctx, "retention sweep", "deleted", n)
		}
		select {
		case <-ctx.Done():
			return
		case <-t.C:
		}
	}
}

// Sweep deletes every expired event, one batch at a time, and returns how
// many it removed.
func (s *Sweeper) Sweep(ctx context.Context) (int64, error) {
	if s.Batch <= 0 {
		s.Batch = 1000
	}
	var total int64
	for ctx.Err() == nil {
		n, err := s.Store.PurgeExpired(ctx, s.Batch)
		total += n
		if err != nil || n < int64(s.Batch) {
			return total, err
		}
	}
	return total, ctx.Err()
}
