package main

import (
	"context"
	"fmt"

	"github.com/google/uuid"
)

// Events and automations of the ingest phase.
const (
	ingestEvent      = "bench.ingest"
	ingestAutomation = `{"name":"bench-ingest","trigger":{"event":"bench.ingest"},
		"steps":[{"id":"step","type":"update_contact","properties":{"seen":"true"}}]}`
	otherAutomation = `{"name":"bench-other-%d","trigger":{"event":"bench.other.%d"},
		"steps":[{"id":"step","type":"update_contact","properties":{"seen":"true"}}]}`
	awaitedEvent     = "bench.awaited"
	waiterAutomation = `{"name":"bench-waiter","trigger":{"event":"bench.never"},
		"steps":[{"id":"wait","type":"wait_for_event","event":"bench.awaited","timeout":"1h"}]}`
	// measuredContacts is how many contacts the measured events go to, in
	// turn: enough that no two concurrent requests share one.
	measuredContacts = 5000
)

// ingestRun is one measured run of the ingest phase.
type ingestRun struct {
	Variant string   `json:"variant"`
	PerSec  float64  `json:"events_per_s"`
	CPU     cpuUsage `json:"cpu"`
	// Delivered is how many intents per second the dispatcher delivered
	// to the dev server in the window.
	Delivered float64 `json:"delivered_per_s"`
	// Dropped is how many intents the dispatcher had not delivered when the
	// run ended; they are deleted so the next run starts level.
	Dropped int64 `json:"undelivered_dropped"`
	// Cancelled is how many outbox claims were still running when the run
	// ended (see cancelClaims).
	Cancelled int `json:"claims_cancelled"`
}

// flatness compares the ingest rate without and with a load that must not
// slow it, from runs in the order base, loaded, loaded, base so that a
// drift of the machine over the phase cancels out.
type flatness struct {
	Runs   []ingestRun `json:"runs"`
	Base   float64     `json:"base_events_per_s"`
	Loaded float64     `json:"loaded_events_per_s"`
	// Drop is 1 - Loaded/Base: the share of the rate lost to the load.
	Drop float64 `json:"drop"`
}

// ingestResult is the ingest phase.
type ingestResult struct {
	Automations flatness `json:"automations"`
	Waits       flatness `json:"waits"`
}

// ingestPhase measures single events per second over HTTP at -clients
// with 1 vs -automations enabled automations (every event triggers the one
// that matches), and with 0 vs -waits waiting enrollments of other contacts
// (every event bears the awaited name and resumes nothing). No Temporal
// worker runs: the dispatcher keeps delivering the starts to the dev
// server, as fast as it can, in every run alike.
func (b *bench) ingestPhase(ctx context.Context, rep *report) error {
	fmt.Fprintf(b.progress, "ingest phase: %d clients, runs of %s + %s in the order base, loaded, loaded, base\n",
		b.o.clients, b.o.warmup, b.o.duration)
	var res ingestResult
	var err error
	if res.Automations, err = b.automationsFlatness(ctx); err != nil {
		return err
	}
	b.logf("%d automations: %.0f → %.0f events/s (drop %.1f%%)", b.o.automations, res.Automations.Base,
		res.Automations.Loaded, res.Automations.Drop*100)
	if res.Waits, err = b.waitsFlatness(ctx); err != nil {
		return err
	}
	b.logf("%d waits: %.0f → %.0f events/s (drop %.1f%%)", b.o.waits, res.Waits.Base, res.Waits.Loaded, res.Waits.Drop*100)
	rep.Ingest = &res
	return nil
}

func (b *bench) automationsFlatness(ctx context.Context) (flatness, error) {
	t, err := b.s.newTenant(ctx, "actbench-automations")
	if err != nil {
		return flatness{}, err
	}
	if _, err := t.automation(ctx, ingestAutomation); err != nil {
		return flatness{}, err
	}
	ids, err := copyContacts(ctx, b.s.store, t.ws.ID, "ingest", measuredContacts)
	if err != nil {
		return flatness{}, err
	}
	pool := &contactPool{ids: ids}
	op := func(ctx context.Context) error { return t.event(ctx, ingestEvent, pool.cycle(), 1, 0) }
	others := make([]string, b.o.automations-1)
	return b.flatness(ctx, "automations", "1 automation", fmt.Sprintf("%d automations", b.o.automations), op,
		func() error {
			return parallel(ctx, 8, len(others), func(i int) (err error) {
				others[i], err = t.automation(ctx, fmt.Sprintf(otherAutomation, i, i))
				return err
			})
		},
		func() error {
			return parallel(ctx, 8, len(others), func(i int) error { return t.setEnabled(ctx, others[i], false) })
		})
}

func (b *bench) waitsFlatness(ctx context.Context) (flatness, error) {
	t, err := b.s.newTenant(ctx, "actbench-waits")
	if err != nil {
		return flatness{}, err
	}
	id, err := t.automation(ctx, waiterAutomation)
	if err != nil {
		return flatness{}, err
	}
	f := &waitFixture{workspaceID: t.ws.ID, event: awaitedEvent}
	if f.automationID, err = uuid.Parse(id); err != nil {
		return flatness{}, err
	}
	b.logf("preparing %d contacts and enrollments with COPY", b.o.waits)
	if f.contacts, err = copyContacts(ctx, b.s.store, t.ws.ID, "waiting", b.o.waits); err != nil {
		return flatness{}, err
	}
	if err := copyEnrollments(ctx, b.s.store, f); err != nil {
		return flatness{}, err
	}
	ids, err := copyContacts(ctx, b.s.store, t.ws.ID, "measured", measuredContacts)
	if err != nil {
		return flatness{}, err
	}
	pool := &contactPool{ids: ids}
	op := func(ctx context.Context) error { return t.event(ctx, awaitedEvent, pool.cycle(), 0, 0) }
	return b.flatness(ctx, "waits", "0 waits", fmt.Sprintf("%d waits", b.o.waits), op,
		func() error { return copyWaits(ctx, b.s.store, f) },
		func() error { return clearWaits(ctx, b.s.store) })
}

// flatness runs op closed loop in the order base, loaded, loaded, base,
// after an unmeasured priming run; load and unload switch between the two
// states.
func (b *bench) flatness(ctx context.Context, name, baseName, loadedName string, op func(context.Context) error,
	load, unload func() error) (flatness, error) {
	var f flatness
	runOne := func(variant string, i int) error {
		// Every run starts from the same state: nothing left of the last
		// one in the outbox or running against it, tables vacuumed and
		// analyzed, a fresh checkpoint.
		if err := settleDatabase(ctx, b.s.store, "outbox", "events", "contacts", "enrollments", "enrollment_waits"); err != nil {
			return err
		}
		if _, err := cancelClaims(ctx, b.s.store); err != nil {
			return err
		}
		end := b.watchWindow(ctx, fmt.Sprintf("ingest-%s-%d", name, i))
		w, n := closedLoop(ctx, b.o.clients, b.o.warmup, b.o.duration, &b.fail, op)
		r := ingestRun{Variant: variant, PerSec: float64(n) / w.seconds(), CPU: end()}
		delivered, err := deliveredIn(ctx, b.s.store, w)
		if err != nil {
			return err
		}
		r.Delivered = float64(delivered) / w.seconds()
		// Drop the backlog first, then cancel the claims: a claim that began
		// before the delete still scans it; one that begins after finds
		// nothing.
		if r.Dropped, err = dropPendingIntents(ctx, b.s.store); err != nil {
			return err
		}
		if r.Cancelled, err = cancelClaims(ctx, b.s.store); err != nil {
			return err
		}
		b.logf("%-18s %7.0f events/s  (dispatcher: %.0f intents/s delivered, %d undelivered, %d claims cancelled)",
			variant, r.PerSec, r.Delivered, r.Dropped, r.Cancelled)
		f.Runs = append(f.Runs, r)
		return nil
	}
	// An unmeasured run first, so that what happens once per phase (the
	// first events of a workspace, the first starts on the dev server) is
	// not charged to the first measured run.
	prime := func() error {
		_, _ = closedLoop(ctx, b.o.clients, 0, b.o.warmup, &b.fail, op)
		_, err := dropPendingIntents(ctx, b.s.store)
		return err
	}
	steps := []func() error{
		prime,
		func() error { return runOne(baseName, 1) },
		load,
		func() error { return runOne(loadedName, 2) },
		func() error { return runOne(loadedName, 3) },
		unload,
		func() error { return runOne(baseName, 4) },
	}
	for _, st := range steps {
		if err := st(); err != nil {
			return f, err
		}
		if ctx.Err() != nil {
			return f, ctx.Err()
		}
	}
	f.Base, f.Loaded = mean(f.Runs[0].PerSec, f.Runs[3].PerSec), mean(f.Runs[1].PerSec, f.Runs[2].PerSec)
	f.Drop = 1 - ratio(f.Loaded, f.Base)
	return f, nil
}
