package main

import (
	"bytes"
	"context"
	"fmt"
	"io"
	"net/http"
	"slices"
	"time"
)

// The decisions phase: what keeping every decision costs the record path.
// The workspace gets one automation per event name of the workload, each
// with a trigger condition that is false for every event, so each event
// writes exactly one decision (condition_false, with the values it read)
// and starts nothing. The same single events then go, in alternating
// windows, to the bench's API (decisions kept, DECISION_RETENTION's
// default) and to a second API process on the same database started with
// DECISION_RETENTION=0 (decisions made, never written). Both see the same
// automations, so the ratio isolates the decision rows.

// decisionsTarget is the bound: keeping decisions costs at most 10%.
const decisionsTarget = 0.9

type decisionsRun struct {
	Kept    throughput `json:"kept"`
	Skipped throughput `json:"skipped"`
}

type decisionsReport struct {
	Clients int            `json:"clients"`
	Runs    []decisionsRun `json:"runs"`
	Ratios  []float64      `json:"ratios"`
	// Ratio is the median of kept/skipped events per second.
	Ratio   float64 `json:"ratio"`
	Target  float64 `json:"target"`
	Kept    float64 `json:"kept_events_per_s"`
	Skipped float64 `json:"skipped_events_per_s"`
}

// measureDecisions runs the phase; it goes last, since it leaves
// automations in the bench's workspace.
func (b *bench) measureDecisions(ctx context.Context) (*decisionsReport, error) {
	for _, name := range workloadNames {
		def := fmt.Sprintf(`{"name":"bench-%s","trigger":{"event":%q,"condition":"has(event.properties.never_set)"},
			"steps":[{"id":"d","type":"delay","duration":"1h"}]}`, name, name)
		raw, err := b.client.post(ctx, "/v1/automations", []byte(def), http.StatusCreated, true)
		if err != nil {
			return nil, fmt.Errorf("create automation: %w", err)
		}
		id, err := jsonID(raw)
		if err != nil {
			return nil, err
		}
		if _, err := b.client.post(ctx, "/v1/automations/"+id+"/enable", nil, http.StatusOK, false); err != nil {
			return nil, fmt.Errorf("enable automation: %w", err)
		}
	}
	noDecisions := func(k string) string {
		if k == "DECISION_RETENTION" {
			return "0"
		}
		return b.getenv(k)
	}
	other, err := startAPI(b.bin, b.dbURL, noDecisions, false)
	if err != nil {
		return nil, err
	}
	defer other.stop(20 * time.Second)
	skipping := &apiClient{http: b.client.http, base: "http://" + other.addr, key: b.client.key, w: b.w}
	if err := other.waitReady(ctx, b.client.http, 30*time.Second); err != nil {
		return nil, err
	}
	otherCPU := &cpuSampler{apiPID: other.pid()}

	rep := &decisionsReport{Clients: b.cfg.clients, Target: decisionsTarget}
	for round := range b.cfg.rounds {
		var run decisionsRun
		windows := []struct {
			name string
			c    *apiClient
			cpu  *cpuSampler
			out  *throughput
		}{{"decisions kept", b.client, b.cpu, &run.Kept}, {"DECISION_RETENTION=0", skipping, otherCPU, &run.Skipped}}
		if round%2 == 1 {
			slices.Reverse(windows)
		}
		for _, w := range windows {
			b.logf("round %d/%d: decisions: %s", round+1, b.cfg.rounds, w.name)
			if _, err := b.harness.Exec(ctx, `TRUNCATE bench_events, events, decisions`); err != nil {
				return nil, fmt.Errorf("truncate: %w", err)
			}
			*w.out = closedLoop(ctx, b.cfg.clients, b.cfg.warmup, b.cfg.duration, w.cpu, w.c.single, nil)
			if err := b.check(ctx); err != nil {
				return nil, err
			}
			if !other.alive() {
				return nil, fmt.Errorf("the second signalbox api exited:\n%s", other.logTail())
			}
		}
		var decisions, events int64
		if err := b.harness.QueryRow(ctx, `SELECT (SELECT count(*) FROM decisions), (SELECT count(*) FROM events)`).
			Scan(&decisions, &events); err != nil {
			return nil, err
		}
		b.logf("round %d/%d: decisions: last window wrote %d decisions for %d events", round+1, b.cfg.rounds, decisions, events)
		rep.Runs = append(rep.Runs, run)
	}
	var kept, skipped []float64
	for _, r := range rep.Runs {
		kept, skipped = append(kept, r.Kept.rate()), append(skipped, r.Skipped.rate())
		if s := r.Skipped.rate(); s > 0 {
			rep.Ratios = append(rep.Ratios, r.Kept.rate()/s)
		}
	}
	rep.Ratio, rep.Kept, rep.Skipped = median(rep.Ratios), median(kept), median(skipped)
	return rep, nil
}

// printDecisions writes the decisions phase's table and verdict.
func printDecisions(w io.Writer, r *decisionsReport) {
	fmt.Fprintf(w, "\ndecisions: single events, %d clients, each writing one decision, vs the same API with DECISION_RETENTION=0\n",
		r.Clients)
	for i, run := range r.Runs {
		fmt.Fprintf(w, "  round %d: kept %s events/s, not kept %s events/s, ratio %.3f\n", i+1,
			thousands(run.Kept.rate()), thousands(run.Skipped.rate()), safeRatio(run.Kept.rate(), run.Skipped.rate()))
	}
	verdict := "meets"
	if r.Ratio < r.Target {
		verdict = "MISSES"
	}
	fmt.Fprintf(w, "  median ratio %.3f (target >= %.2f): %s\n", r.Ratio, r.Target, verdict)
}

func safeRatio(a, b float64) float64 {
	if b <= 0 {
		return 0
	}
	return a / b
}

// jsonID reads the "id" member of a JSON object.
func jsonID(raw []byte) (string, error) {
	i := bytes.Index(raw, []byte(`"id":"`))
	if i < 0 {
		return "", fmt.Errorf("no id in %s", raw)
	}
	rest := raw[i+6:]
	j := bytes.IndexByte(rest, '"')
	if j < 0 {
		return "", fmt.Errorf("no id in %s", raw)
	}
	return string(rest[:j]), nil
}
