// Package flowcontrol starts the enrollments that wait in automations'
// queues ("limits" with "on_limit": "queue") as their windows allow.
package flowcontrol

import (
	"context"
	"log/slog"
	"time"

	"github.com/signalbox/signalbox/store"
)

// Releaser polls the queues. Every worker may run one: the automations'
// limit locks make them take turns.
type Releaser struct {
	Store *store.Store
	// Every is how often the queues are looked at; a queued enrollment
	// starts at most this long after its window has room.
	Every time.Duration
	// Wake, when set, is called after enrollments were started, so their
	// start intents are delivered at once.
	Wake func()
	Log  *slog.Logger
}

// Run releases until ctx ends.
func (r *Releaser) Run(ctx context.Context) {
	every := r.Every
	if every <= 0 {
		every = time.Second
	}
	t := time.NewTicker(every)
	defer t.Stop()
	for {
		select {
		case <-ctx.Done():
			return
		case <-t.C:
		}
		n, err := r.Store.ReleaseQueued(ctx)
		if err != nil && ctx.Err() == nil {
			r.Log.WarnContext(ctx, "release queued enrollments", "error", err.Error())
		}
		if n > 0 && r.Wake != nil {
			r.Wake()
		}
	}
}
