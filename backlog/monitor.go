// Package backlog watches the outbox's undelivered intents: a periodic read
// of how many wait, by kind, and how old the oldest is, published as
// Prometheus gauges and kept for /readyz. Reading on a timer instead of on
// every scrape bounds what a busy scraper (or many replicas) costs
// PostgreSQL.
package backlog

import (
	"context"
	"log/slog"
	"sync"
	"time"

	"go.opentelemetry.io/otel/attribute"
	"go.opentelemetry.io/otel/metric"

	"github.com/signalbox/signalbox/store"
)

// DefaultEvery is how often a Monitor reads the backlog by default.
const DefaultEvery = 10 * time.Second

// Source reads the backlog; *store.Store is one.
type Source interface {
	OutboxBacklog(ctx context.Context) (store.Backlog, error)
}

// Monitor reads the backlog every Every and keeps the last reading.
type Monitor struct {
	src   Source
	every time.Duration
	log   *slog.Logger

	mu   sync.Mutex
	last Snapshot
}

// Snapshot is the last reading of the backlog.
type Snapshot struct {
	store.Backlog
	// Read is when this process read it (its own clock); zero before the
	// first reading.
	Read time.Time
}

// New makes a Monitor and registers its gauges with mp:
// signalbox.outbox.pending (by kind; Prometheus signalbox_outbox_pending)
// and signalbox.outbox.oldest_age in seconds (Prometheus
// signalbox_outbox_oldest_age_seconds). every ≤ 0 means DefaultEvery.
func New(src Source, every time.Duration, mp metric.MeterProvider, log *slog.Logger) (*Monitor, error) {
	if every <= 0 {
		every = DefaultEvery
	}
	m := &Monitor{src: src, every: every, log: log}
	meter := mp.Meter("github.com/signalbox/signalbox/backlog")
	pending, err := meter.Int64ObservableGauge("signalbox.outbox.pending",
		metric.WithDescription("Outbox intents not yet delivered to Temporal, by kind (start, signal, cancel, backfill); read periodically."))
	if err != nil {
		return nil, err
	}
	oldest, err := meter.Float64ObservableGauge("signalbox.outbox.oldest_age", metric.WithUnit("s"),
		metric.WithDescription("Age of the oldest outbox intent not yet delivered to Temporal; 0 when none waits."))
	if err != nil {
		return nil, err
	}
	_, err = meter.RegisterCallback(func(_ context.Context, o metric.Observer) error {
		s, ok := m.Snapshot()
		if !ok {
			return nil
		}
		for _, k := range store.IntentKinds {
			o.ObserveInt64(pending, s.Pending[k], metric.WithAttributes(attribute.String("kind", k)))
		}
		o.ObserveFloat64(oldest, s.OldestAge().Seconds())
		return nil
	}, pending, oldest)
	if err != nil {
		return nil, err
	}
	return m, nil
}

// Snapshot returns the last reading, and false before the first one.
func (m *Monitor) Snapshot() (Snapshot, bool) {
	m.mu.Lock()
	defer m.mu.Unlock()
	return m.last, !m.last.Read.IsZero()
}

// Refresh reads the backlog now.
func (m *Monitor) Refresh(ctx context.Context) error {
	b, err := m.src.OutboxBacklog(ctx)
	if err != nil {
		return err
	}
	m.mu.Lock()
	m.last = Snapshot{Backlog: b, Read: time.Now()}
	m.mu.Unlock()
	return nil
}

// Run reads the backlog at once and then every interval until ctx ends. A
// failed read is logged and the previous reading kept.
func (m *Monitor) Run(ctx context.Context) {
	t := time.NewTicker(m.every)
	defer t.Stop()
	for {
		rctx, cancel := context.WithTimeout(ctx, m.every)
		if err := m.Refresh(rctx); err != nil && ctx.Err() == nil {
			m.log.WarnContext(ctx, "could not read the outbox backlog", "error", err.Error())
		}
		cancel()
		select {
		case <-ctx.Done():
			return
		case <-t.C:
		}
	}
}
