package main

import (
	"context"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"sync"
	"sync/atomic"
	"time"
)

// The drain phase's automation: one step, like the start phase's.
const (
	burstEvent      = "bench.burst"
	burstAutomation = `{"name":"bench-burst","trigger":{"event":"bench.burst"},
		"steps":[{"id":"step","type":"update_contact","properties":{"burst":"true"}}]}`
)

// slowBurstAutomation is the drain phase's automation with -action-latency:
// one webhook step, to a receiver that takes that long to answer.
const slowBurstAutomation = `{"name":"bench-burst","trigger":{"event":"bench.burst"},
	"steps":[{"id":"step","type":"webhook","url":%q}]}`

// slowReceiver answers every webhook with 204 after latency, as a slow
// receiver would: each delivery holds one of its worker's activity slots
// (WORKER_CONCURRENCY) that long.
func slowReceiver(latency time.Duration) *httptest.Server {
	return httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		_, _ = io.Copy(io.Discard, r.Body)
		time.Sleep(latency)
		w.WriteHeader(http.StatusNoContent)
	}))
}

// drainResult is the drain phase: an ingest burst of -burst triggering
// events from -clients clients with -workers workers running, then how fast
// the outbox backlog it left is delivered to Temporal and the enrollments
// run. Rates are absolute (events, intents, enrollments per second); the
// phase is run on each server to compare them, not against a baseline.
type drainResult struct {
	Events  int `json:"events"`
	Workers int `json:"workers"`
	// With -action-latency: how long each action took, and how many
	// activities each worker ran at once.
	ActionLatencyMs   float64 `json:"action_latency_ms,omitempty"`
	WorkerConcurrency int     `json:"worker_concurrency,omitempty"`
	IngestSec         float64 `json:"ingest_s"`
	IngestRate        float64 `json:"ingest_per_s"`
	BacklogAtEnd      int64   `json:"backlog_at_burst_end"`
	OldestAgeSec      float64 `json:"oldest_age_at_burst_end_s"`
	// DrainSec is from the burst's end until the outbox is empty;
	// DrainRate the backlog left at the end over it.
	DrainSec  float64 `json:"drain_s"`
	DrainRate float64 `json:"drain_per_s"`
	// DeliveredRate is every intent over the time from the first event
	// until the outbox was empty; Completed the enrollments whose step had
	// run by then, CompletedRate them over that time.
	DeliveredRate float64 `json:"delivered_per_s"`
	Completed     int     `json:"completed"`
	CompletedSec  float64 `json:"completed_s"`
	CompletedRate float64 `json:"completed_per_s"`
	// With -drain-complete: from the first event until every enrollment
	// of the burst had ended, and the burst over that time.
	AllEndedSec  float64 `json:"all_ended_s,omitempty"`
	AllEndedRate float64 `json:"all_ended_per_s,omitempty"`
}

// drainPhase sends the burst and follows the backlog down.
func (b *bench) drainPhase(ctx context.Context, rep *report) error {
	t, err := b.s.newTenant(ctx, "actbench-burst")
	if err != nil {
		return err
	}
	def := burstAutomation
	if b.o.actionLatency > 0 {
		hook := slowReceiver(b.o.actionLatency)
		defer hook.Close()
		def = fmt.Sprintf(slowBurstAutomation, hook.URL)
	}
	if _, err := t.automation(ctx, def); err != nil {
		return err
	}
	contacts, err := copyContacts(ctx, b.s.store, t.ws.ID, "burst", b.o.burst)
	if err != nil {
		return err
	}
	res := &drainResult{Events: b.o.burst, Workers: b.o.workers}
	if b.o.actionLatency > 0 {
		res.ActionLatencyMs, res.WorkerConcurrency = float64(b.o.actionLatency.Milliseconds()), b.s.cfg.WorkerConcurrency
	}
	err = b.withWorker(enrollmentWorker, func() error {
		b.logf("drain: %d triggering events from %d clients, %d workers", b.o.burst, b.o.clients, b.o.workers)
		start := time.Now()
		var next atomic.Int64
		var wg sync.WaitGroup
		errs := make(chan error, b.o.clients)
		for range b.o.clients {
			wg.Add(1)
			go func() {
				defer wg.Done()
				for {
					i := int(next.Add(1)) - 1
					if i >= len(contacts) || ctx.Err() != nil {
						return
					}
					if err := t.event(ctx, burstEvent, contacts[i], 1, 0); err != nil {
						errs <- err
						return
					}
				}
			}()
		}
		wg.Wait()
		close(errs)
		if err := <-errs; err != nil {
			return err
		}
		ingested := time.Now()
		res.IngestSec = ingested.Sub(start).Seconds()
		res.IngestRate = float64(b.o.burst) / res.IngestSec
		bl, err := b.s.store.OutboxBacklog(ctx)
		if err != nil {
			return err
		}
		res.BacklogAtEnd, res.OldestAgeSec = bl.Total, bl.OldestAge().Seconds()
		b.logf("drain: ingested in %.1fs (%.0f/s), %d intents undelivered, the oldest %.1fs old",
			res.IngestSec, res.IngestRate, bl.Total, res.OldestAgeSec)
		if err := b.waitUntilLong(ctx, "outbox drained", func() (bool, error) {
			bl, err := b.s.store.OutboxBacklog(ctx)
			return err == nil && bl.Total == 0, err
		}); err != nil {
			return err
		}
		drained := time.Now()
		res.DrainSec = drained.Sub(ingested).Seconds()
		if res.DrainSec > 0 {
			res.DrainRate = float64(res.BacklogAtEnd) / res.DrainSec
		}
		res.DeliveredRate = float64(b.o.burst) / drained.Sub(start).Seconds()
		// Enrollments completed by the time the outbox was empty (the
		// workers run them meanwhile; waiting for the last would measure
		// the workers, not the drain).
		done, err := countStepOutcomes(ctx, b.s.store, t.ws.ID, "step", "done")
		if err != nil {
			return err
		}
		res.Completed = done
		res.CompletedSec = time.Since(start).Seconds()
		res.CompletedRate = float64(done) / res.CompletedSec
		if !b.o.drainComplete {
			return nil
		}
		// The workers' drain: every enrollment of the burst ended (none
		// may be left running on the server for the next run's workers).
		if err := b.waitUntilLong(ctx, "every enrollment ended", func() (bool, error) {
			n, err := activeEnrollments(ctx, b.s.store, t.ws.ID)
			return err == nil && n == 0, err
		}); err != nil {
			return err
		}
		res.AllEndedSec = time.Since(start).Seconds()
		res.AllEndedRate = float64(b.o.burst) / res.AllEndedSec
		b.logf("drain: every enrollment ended %.1fs after the first event (%.1f/s)", res.AllEndedSec, res.AllEndedRate)
		return nil
	})
	if err != nil {
		return err
	}
	rep.Drain = res
	return nil
}

// waitUntilLong is waitUntil with a deadline long enough for a burst on
// the slowest server: ten times -timeout.
func (b *bench) waitUntilLong(ctx context.Context, what string, cond func() (bool, error)) error {
	deadline := time.Now().Add(10 * b.o.timeout)
	for {
		ok, err := cond()
		if err != nil {
			return err
		}
		if ok {
			return nil
		}
		if time.Now().After(deadline) {
			return fmt.Errorf("%s: not done within %s", what, 10*b.o.timeout)
		}
		select {
		case <-ctx.Done():
			return ctx.Err()
		case <-time.After(200 * time.Millisecond):
		}
	}
}

// printDrain prints the drain phase's figures.
func printDrain(w io.Writer, d *drainResult) {
	fmt.Fprintf(w, "\ndrain: a burst of %d triggering events, %d worker(s)\n", d.Events, d.Workers)
	fmt.Fprintf(w, "  ingest          %8.0f events/s (%.1f s)\n", d.IngestRate, d.IngestSec)
	fmt.Fprintf(w, "  backlog at end  %8d intents, the oldest %.1f s old\n", d.BacklogAtEnd, d.OldestAgeSec)
	fmt.Fprintf(w, "  drain           %8.0f intents/s (%.1f s from the burst's end to an empty outbox)\n", d.DrainRate, d.DrainSec)
	fmt.Fprintf(w, "  delivered       %8.0f intents/s from the first event to an empty outbox\n", d.DeliveredRate)
	fmt.Fprintf(w, "  completed       %8d enrollments by then, %.0f/s\n", d.Completed, d.CompletedRate)
	if d.AllEndedSec > 0 {
		fmt.Fprintf(w, "  all ended       %8.1f enrollments/s (%.1f s from the first event until every one had ended)\n",
			d.AllEndedRate, d.AllEndedSec)
	}
}
