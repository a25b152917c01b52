package main

import (
	"context"
	"fmt"
	"net/http"
	"slices"
	"sync"
	"time"

	"github.com/google/uuid"

	"github.com/signalbox/signalbox/store"
)

// The noisy-neighbour phase: group commit mixes workspaces in one
// transaction, so what one workspace sends must not slow another. Workspace
// A (the bench's own) sends single events from -noisy-clients clients: alone,
// beside a workspace C sending the same load under its cap, and beside a
// workspace B sending the same load past its hard cap, every request refused
// with 429. A refusal must cost less than an acceptance, so A beside B should
// be at least as fast as A beside C.

// Plans of the neighbours: C has room for many runs (its count is reset
// before each window, far from the margin where its requests would commit
// alone); B is a starter workspace whose month is full.
const (
	underPlan = store.PlanScale
	overPlan  = store.PlanStarter
)

// neighbours are workspaces B and C, with their own clients and contacts.
type neighbours struct {
	over, under       *apiClient
	overWS, underWS   uuid.UUID
	underStartTracked int64
}

// setupNoisy makes workspaces B and C, gives each the bench's contacts (the
// workload names contacts by email, the same in every workspace), and fills
// B's month up to its hard cap.
func (b *bench) setupNoisy(ctx context.Context, st *store.Store) error {
	n := &neighbours{}
	for _, side := range []struct {
		name string
		plan store.Plan
		c    **apiClient
		id   *uuid.UUID
	}{{"bench-over-cap", overPlan, &n.over, &n.overWS}, {"bench-under-cap", underPlan, &n.under, &n.underWS}} {
		ws, key, err := st.CreateWorkspace(ctx, side.name, side.plan)
		if err != nil {
			return fmt.Errorf("create workspace: %w", err)
		}
		*side.id = ws.ID
		*side.c = &apiClient{http: b.client.http, base: b.client.base, key: key.Secret, w: b.w}
	}
	b.logf("creating %d contacts in each neighbour workspace", b.cfg.contacts)
	for _, c := range []*apiClient{n.over, n.under} {
		for i, body := range contactBatches(b.cfg.contacts) {
			if _, err := c.sendBatch(ctx, body, min(1000, b.cfg.contacts-i*1000)); err != nil {
				return fmt.Errorf("create neighbour contacts: %w", err)
			}
		}
	}
	if err := setTracked(ctx, b.harness, n.overWS, time.Now(), overPlan.HardCap()); err != nil {
		return err
	}
	n.underStartTracked = int64(b.cfg.contacts)
	b.neighbours = n
	return nil
}

// noisyRun is one round of the phase. Events of the over-cap side count
// refused requests.
type noisyRun struct {
	Alone       throughput `json:"a_alone"`
	BesideUnder throughput `json:"a_beside_under_cap"`
	Under       throughput `json:"under_cap"`
	BesideOver  throughput `json:"a_beside_over_cap"`
	Over        throughput `json:"over_cap_refused"`
}

// noisyReport is the phase over every round: A's rate alone and beside each
// neighbour (medians), and the ratios to A alone (medians of the rounds'
// ratios).
type noisyReport struct {
	Clients     int        `json:"clients_per_workspace"`
	Alone       float64    `json:"a_alone_events_per_s"`
	BesideUnder float64    `json:"a_beside_under_cap_events_per_s"`
	BesideOver  float64    `json:"a_beside_over_cap_events_per_s"`
	UnderRatio  float64    `json:"under_cap_ratio"`
	OverRatio   float64    `json:"over_cap_ratio"`
	UnderRatios []float64  `json:"under_cap_ratios"`
	OverRatios  []float64  `json:"over_cap_ratios"`
	UnderRate   float64    `json:"under_cap_events_per_s"`
	OverRefused float64    `json:"over_cap_refused_per_s"`
	Holds       bool       `json:"refusal_cheaper"`
	Runs        []noisyRun `json:"runs"`
}

// summarise computes the medians and whether A beside the over-cap
// neighbour was at least as fast as beside the under-cap one.
func (r *noisyReport) summarise() {
	var alone, under, over, underRate, refused []float64
	r.UnderRatios, r.OverRatios = nil, nil
	for _, run := range r.Runs {
		alone = append(alone, run.Alone.rate())
		under = append(under, run.BesideUnder.rate())
		over = append(over, run.BesideOver.rate())
		underRate = append(underRate, run.Under.rate())
		refused = append(refused, run.Over.rate())
		if a := run.Alone.rate(); a > 0 {
			r.UnderRatios = append(r.UnderRatios, run.BesideUnder.rate()/a)
			r.OverRatios = append(r.OverRatios, run.BesideOver.rate()/a)
		}
	}
	r.Alone, r.BesideUnder, r.BesideOver = median(alone), median(under), median(over)
	r.UnderRate, r.OverRefused = median(underRate), median(refused)
	r.UnderRatio, r.OverRatio = median(r.UnderRatios), median(r.OverRatios)
	r.Holds = r.BesideOver >= r.BesideUnder
}

// measureNoisy runs the phase: per round A alone, beside C and beside B,
// in reverse order every other round so that drift favours no window.
func (b *bench) measureNoisy(ctx context.Context) (*noisyReport, error) {
	n, clients := b.neighbours, b.cfg.noisyClients
	rep := &noisyReport{Clients: clients}
	for round := range b.cfg.rounds {
		var run noisyRun
		windows := []struct {
			name      string
			neighbour op
			a, other  *throughput
		}{
			{"A alone", nil, &run.Alone, nil},
			{"A beside under-cap C", n.under.single, &run.BesideUnder, &run.Under},
			{"A beside over-cap B", n.over.refused, &run.BesideOver, &run.Over},
		}
		if round%2 == 1 {
			slices.Reverse(windows)
		}
		for _, w := range windows {
			b.logf("round %d/%d: noisy neighbours: %s", round+1, b.cfg.rounds, w.name)
			if err := truncateEvents(ctx, b.harness); err != nil {
				return nil, err
			}
			// C's count starts where it did in every window, so no number
			// of rounds brings it near its cap.
			if err := setTracked(ctx, b.harness, n.underWS, time.Now(), n.underStartTracked); err != nil {
				return nil, err
			}
			a, other := b.beside(ctx, clients, w.neighbour)
			var err error
			if a.PerCommit, err = eventsPerCommit(ctx, b.harness, "events"); err != nil {
				return nil, err
			}
			*w.a = a
			if w.other != nil {
				*w.other = other
			}
			if err := b.check(ctx); err != nil {
				return nil, err
			}
		}
		rep.Runs = append(rep.Runs, run)
	}
	rep.summarise()
	return rep, nil
}

// beside measures A's single events from clients clients while, when
// neighbour is set, as many clients send neighbour's requests in the same
// window.
func (b *bench) beside(ctx context.Context, clients int, neighbour op) (a, other throughput) {
	var wg sync.WaitGroup
	if neighbour != nil {
		wg.Add(1)
		go func() {
			defer wg.Done()
			other = closedLoop(ctx, clients, b.cfg.warmup, b.cfg.duration, nil, neighbour, nil)
		}()
	}
	a = closedLoop(ctx, clients, b.cfg.warmup, b.cfg.duration, b.cpu, b.client.single, nil)
	wg.Wait()
	return a, other
}

// refused sends event seq to POST /v1/events of a workspace past its hard
// cap, which must refuse it with 429; it counts one refused request.
func (c *apiClient) refused(ctx context.Context, seq int64) (int, error) {
	if _, err := c.post(ctx, "/v1/events", c.w.event(seq).body, http.StatusTooManyRequests, false); err != nil {
		return 0, err
	}
	return 1, nil
}
