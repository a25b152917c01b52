package main

import (
	"bytes"
	"context"
	"fmt"
	"io"
	"net/http"
	"slices"
	"strings"
)

// The sources phase: what taking events through an inbound source's URL
// costs against POST /v1/events. The bench's workspace gets one source
// whose paths read exactly the fields of a POST /v1/events body (email,
// name, properties), so both sides send the very same bytes for the same
// events, from the same clients, to the same API: /in/{token} with no API
// key (and no signature), /v1/events with the bench's key. Windows
// alternate, each starting from empty events and deliveries tables; each
// /in window also keeps one delivery per event, written in the same record
// transaction.

// sourcesTarget is the bound: /in/{token} at least 0.8 of
// POST /v1/events.
const sourcesTarget = 0.8

type sourcesRun struct {
	Events  throughput `json:"events"`
	Inbound throughput `json:"inbound"`
}

type sourcesReport struct {
	Clients int          `json:"clients"`
	Runs    []sourcesRun `json:"runs"`
	Ratios  []float64    `json:"ratios"`
	// Ratio is the median of inbound/events events per second.
	Ratio   float64 `json:"ratio"`
	Target  float64 `json:"target"`
	Events  float64 `json:"events_per_s"`
	Inbound float64 `json:"inbound_per_s"`
	// CPURatios compare the CPU (API and PostgreSQL) an event took on
	// each side, /v1/events over /in: on a machine shared with other work
	// a steadier estimate of the throughput ratio of a CPU-bound path than
	// the throughputs. CPURatio is their median.
	CPURatios []float64 `json:"cpu_ratios"`
	CPURatio  float64   `json:"cpu_ratio"`
}

// measureSources runs the phase.
func (b *bench) measureSources(ctx context.Context) (*sourcesReport, error) {
	raw, err := b.client.post(ctx, "/v1/sources", []byte(`{"name":"bench","email_path":"email","event_name_path":"name",
		"properties_path":"properties"}`), http.StatusCreated, true)
	if err != nil {
		return nil, fmt.Errorf("create source: %w", err)
	}
	i := bytes.Index(raw, []byte(`"/in/`))
	j := bytes.IndexByte(raw[i+1:], '"')
	if i < 0 || j < 0 {
		return nil, fmt.Errorf("no url in %s", raw)
	}
	path := string(raw[i+1 : i+1+j])

	rep := &sourcesReport{Clients: b.cfg.clients, Target: sourcesTarget}
	for round := range b.cfg.rounds {
		var run sourcesRun
		windows := []struct {
			name string
			fn   op
			out  *throughput
		}{{"POST /v1/events", b.client.single, &run.Events}, {"POST /in/{token}", b.client.inbound(path), &run.Inbound}}
		if round%2 == 1 {
			slices.Reverse(windows)
		}
		for _, w := range windows {
			b.logf("round %d/%d: sources: %s", round+1, b.cfg.rounds, w.name)
			if _, err := b.harness.Exec(ctx, `TRUNCATE bench_events, events, source_deliveries`); err != nil {
				return nil, fmt.Errorf("truncate: %w", err)
			}
			*w.out = closedLoop(ctx, b.cfg.clients, b.cfg.warmup, b.cfg.duration, b.cpu, w.fn, nil)
			if err := b.check(ctx); err != nil {
				return nil, err
			}
			if w.out.PerCommit, err = eventsPerCommit(ctx, b.harness, "events"); err != nil {
				return nil, err
			}
		}
		// The last window of an /in round must have kept a delivery per event.
		var deliveries, events int64
		if err := b.harness.QueryRow(ctx, `SELECT (SELECT count(*) FROM source_deliveries WHERE status = 'accepted'),
			(SELECT count(*) FROM events)`).Scan(&deliveries, &events); err != nil {
			return nil, err
		}
		if round%2 == 0 && deliveries != events {
			return nil, fmt.Errorf("sources: %d accepted deliveries for %d events", deliveries, events)
		}
		b.logf("round %d/%d: sources: %d accepted deliveries, %d events in the last window", round+1, b.cfg.rounds, deliveries, events)
		rep.Runs = append(rep.Runs, run)
	}
	var ev, in []float64
	for _, r := range rep.Runs {
		ev, in = append(ev, r.Events.rate()), append(in, r.Inbound.rate())
		if e := r.Events.rate(); e > 0 {
			rep.Ratios = append(rep.Ratios, r.Inbound.rate()/e)
		}
		if c := cpuPerEvent(r.Inbound); c > 0 {
			rep.CPURatios = append(rep.CPURatios, cpuPerEvent(r.Events)/c)
		}
	}
	rep.Ratio, rep.Events, rep.Inbound = median(rep.Ratios), median(ev), median(in)
	rep.CPURatio = median(rep.CPURatios)
	return rep, nil
}

// inbound posts event seq's POST /v1/events body to a source's path, as a
// third party would: no API key. The answer must say accepted.
func (c *apiClient) inbound(path string) op {
	return func(ctx context.Context, seq int64) (int, error) {
		req, err := http.NewRequestWithContext(ctx, http.MethodPost, c.base+path, bytes.NewReader(c.w.event(seq).body))
		if err != nil {
			return 0, err
		}
		req.Header.Set("Content-Type", "application/json")
		resp, err := c.http.Do(req)
		if err != nil {
			return 0, err
		}
		defer resp.Body.Close()
		data, err := io.ReadAll(resp.Body)
		if err != nil {
			return 0, err
		}
		if resp.StatusCode != http.StatusAccepted || !bytes.Contains(data, []byte(`"status":"accepted"`)) {
			return 0, fmt.Errorf("POST %s: status %d: %.300s", path, resp.StatusCode, data)
		}
		return 1, nil
	}
}

// printSources writes the sources phase's table and verdict.
func printSources(w io.Writer, r *sourcesReport) {
	fmt.Fprintf(w, "\nsources: the same single events, %d clients, to POST /in/{token} (no key, a delivery kept each) vs POST /v1/events\n",
		r.Clients)
	for i, run := range r.Runs {
		fmt.Fprintf(w, "  round %d: /in %s events/s (%.1f per commit), /v1/events %s events/s (%.1f per commit), ratio %.3f\n", i+1,
			thousands(run.Inbound.rate()), run.Inbound.PerCommit, thousands(run.Events.rate()), run.Events.PerCommit,
			safeRatio(run.Inbound.rate(), run.Events.rate()))
	}
	verdict := "meets"
	if r.Ratio < r.Target {
		verdict = "MISSES"
	}
	fmt.Fprintf(w, "  median ratio %.3f (target >= %.2f): %s\n", r.Ratio, r.Target, verdict)
	fmt.Fprintf(w, "  API+PostgreSQL CPU per event, /v1/events over /in: median %.3f (%s)\n", r.CPURatio, floats(r.CPURatios))
}

func floats(v []float64) string {
	s := make([]string, len(v))
	for i, f := range v {
		s[i] = fmt.Sprintf("%.3f", f)
	}
	return strings.Join(s, ", ")
}
