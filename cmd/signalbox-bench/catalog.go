package main

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"math/rand/v2"
	"net/http"
	"strings"
	"time"
)

// The catalog phase: what the event catalog costs the record path, as two
// ratios measured in alternating windows of the same run.
//
//   - schema: single events of one name carrying 20 properties, while the
//     name's type has a 20-property schema in enforce mode (every event is
//     checked and conforms), against the same events while the type has no
//     schema (PATCH schema: null through the same API, whose catalog cache
//     the change invalidates at once).
//   - counters: the workload's single events to the bench's API, which
//     counts every event per name, against a second API process on the
//     same database started with BENCH_SKIP_NAME_COUNTS=true.

// Targets of the issue: a schema costs at most 10%, the counters at most 5%.
const (
	catalogSchemaTarget   = 0.9
	catalogCountersTarget = 0.95
)

// catalogEventName is the name the schema windows send.
const catalogEventName = "catalog.checked"

type catalogRun struct {
	With    throughput `json:"with"`
	Without throughput `json:"without"`
}

// catalogPair is one of the phase's two comparisons over every round.
type catalogPair struct {
	Name   string       `json:"name"`
	Runs   []catalogRun `json:"runs"`
	Ratios []float64    `json:"ratios"`
	Ratio  float64      `json:"ratio"`
	// CPURatios compare the CPU (API and PostgreSQL) each event took, the
	// side without over the side with: on a machine shared with other
	// work, a steadier estimate of the throughput ratio of a CPU-bound
	// record path than the throughputs themselves.
	CPURatios []float64 `json:"cpu_ratios"`
	CPURatio  float64   `json:"cpu_ratio"`
	Target    float64   `json:"target"`
	With      float64   `json:"with_events_per_s"`
	Without   float64   `json:"without_events_per_s"`
}

type catalogReport struct {
	Clients  int         `json:"clients"`
	Schema   catalogPair `json:"schema"`
	Counters catalogPair `json:"counters"`
}

// catalogSchema is 20 typed properties, half of them required, the shape
// most event schemas have.
func catalogSchema() json.RawMessage {
	types := []string{`{"type":"string","maxLength":64}`, `{"type":"number","minimum":0}`, `{"type":"integer"}`,
		`{"type":"boolean"}`, `{"type":"string","enum":["a","b","c"]}`}
	var props, req []string
	for i := range 20 {
		props = append(props, fmt.Sprintf(`"p%d":%s`, i, types[i%len(types)]))
		if i%2 == 0 {
			req = append(req, fmt.Sprintf(`"p%d"`, i))
		}
	}
	return json.RawMessage(`{"type":"object","properties":{` + strings.Join(props, ",") + `},"required":[` +
		strings.Join(req, ",") + `]}`)
}

// catalogBodies are single-event requests of catalogEventName whose 20
// properties conform to catalogSchema, spread over the contacts.
func catalogBodies(contacts int) [][]byte {
	r := rand.New(rand.NewPCG(7, 11))
	out := make([][]byte, 4096)
	for i := range out {
		var props []string
		for p := range 20 {
			var v string
			switch p % 5 {
			case 0:
				v = fmt.Sprintf(`"s-%d"`, r.IntN(1000))
			case 1:
				v = fmt.Sprintf(`%d.%d`, r.IntN(500), r.IntN(10))
			case 2:
				v = fmt.Sprintf(`%d`, r.IntN(100000))
			case 3:
				v = []string{"true", "false"}[r.IntN(2)]
			case 4:
				v = []string{`"a"`, `"b"`, `"c"`}[r.IntN(3)]
			}
			props = append(props, fmt.Sprintf(`"p%d":%s`, p, v))
		}
		out[i] = fmt.Appendf(nil, `{"name":%q,"email":%q,"properties":{%s}}`, catalogEventName,
			contactEmail(r.IntN(contacts)), strings.Join(props, ","))
	}
	return out
}

// measureCatalog runs the phase.
func (b *bench) measureCatalog(ctx context.Context) (*catalogReport, error) {
	rep := &catalogReport{Clients: b.cfg.clients,
		Schema: catalogPair{Name: "20-property schema, enforce / no schema", Target: catalogSchemaTarget},
		Counters: catalogPair{Name: "per-name counters / BENCH_SKIP_NAME_COUNTS=true (second API)",
			Target: catalogCountersTarget}}

	decl, _ := json.Marshal(map[string]any{"name": catalogEventName, "schema": catalogSchema(), "schema_mode": "enforce"})
	if _, err := b.client.post(ctx, "/v1/event-types", decl, http.StatusCreated, false); err != nil {
		return nil, fmt.Errorf("declare %s: %w", catalogEventName, err)
	}
	bodies := catalogBodies(b.cfg.contacts)
	send := func(ctx context.Context, seq int64) (int, error) {
		if _, err := b.client.post(ctx, "/v1/events", bodies[seq%int64(len(bodies))], http.StatusAccepted, false); err != nil {
			return 0, err
		}
		return 1, nil
	}
	setSchema := func(ctx context.Context, schema json.RawMessage) error {
		body, _ := json.Marshal(map[string]any{"schema": schema})
		_, err := b.client.patch(ctx, "/v1/event-types/"+catalogEventName, body)
		return err
	}

	noCounts := func(k string) string {
		if k == "BENCH_SKIP_NAME_COUNTS" {
			return "true"
		}
		return b.getenv(k)
	}
	other, err := startAPI(b.bin, b.dbURL, noCounts, false)
	if err != nil {
		return nil, err
	}
	defer other.stop(20 * time.Second)
	if err := other.waitReady(ctx, b.client.http, 30*time.Second); err != nil {
		return nil, err
	}
	uncounted := &apiClient{http: b.client.http, base: "http://" + other.addr, key: b.client.key, w: b.w}
	otherCPU := &cpuSampler{apiPID: other.pid()}

	window := func(name string, round int, c *apiClient, cpu *cpuSampler, fn op, out *throughput) error {
		b.logf("round %d/%d: catalog: %s", round+1, b.cfg.rounds, name)
		if _, err := b.harness.Exec(ctx, `TRUNCATE bench_events, events`); err != nil {
			return fmt.Errorf("truncate: %w", err)
		}
		*out = closedLoop(ctx, b.cfg.clients, b.cfg.warmup, b.cfg.duration, cpu, fn, nil)
		if err := b.check(ctx); err != nil {
			return err
		}
		if !other.alive() {
			return fmt.Errorf("the second signalbox api exited:\n%s", other.logTail())
		}
		return nil
	}
	// Each round measures the sides in the order A B B A (B A A B on odd
	// rounds) and adds up each side's two windows, so a drift of the
	// shared machine within the round weighs on both sides alike.
	abba := func(round int) []bool {
		if round%2 == 1 {
			return []bool{false, true, true, false}
		}
		return []bool{true, false, false, true}
	}
	for round := range b.cfg.rounds {
		var s catalogRun
		for _, with := range abba(round) {
			schema, name, out := json.RawMessage("null"), "no schema", &s.Without
			if with {
				schema, name, out = catalogSchema(), "20-property schema, enforce", &s.With
			}
			if err := setSchema(ctx, schema); err != nil {
				return nil, fmt.Errorf("set schema: %w", err)
			}
			var t throughput
			if err := window(name, round, b.client, b.cpu, send, &t); err != nil {
				return nil, err
			}
			*out = addThroughput(*out, t)
		}
		rep.Schema.Runs = append(rep.Schema.Runs, s)

		var c catalogRun
		for _, with := range abba(round) {
			name, client, cpu, out := "counters off (second API)", uncounted, otherCPU, &c.Without
			if with {
				name, client, cpu, out = "counters on", b.client, b.cpu, &c.With
			}
			var t throughput
			if err := window(name, round, client, cpu, client.single, &t); err != nil {
				return nil, err
			}
			*out = addThroughput(*out, t)
		}
		rep.Counters.Runs = append(rep.Counters.Runs, c)
	}
	rep.Schema.summarise()
	rep.Counters.summarise()
	return rep, nil
}

func (p *catalogPair) summarise() {
	var with, without []float64
	for _, r := range p.Runs {
		with, without = append(with, r.With.rate()), append(without, r.Without.rate())
		if w := r.Without.rate(); w > 0 {
			p.Ratios = append(p.Ratios, r.With.rate()/w)
		}
		if cw, cwo := cpuPerEvent(r.With), cpuPerEvent(r.Without); cw > 0 && cwo > 0 {
			p.CPURatios = append(p.CPURatios, cwo/cw)
		}
	}
	p.Ratio, p.With, p.Without = median(p.Ratios), median(with), median(without)
	p.CPURatio = median(p.CPURatios)
}

// printCatalog writes the catalog phase's tables and verdicts.
func printCatalog(w io.Writer, r *catalogReport) {
	for _, p := range []catalogPair{r.Schema, r.Counters} {
		fmt.Fprintf(w, "\ncatalog: single events, %d clients: %s\n", r.Clients, p.Name)
		for i, run := range p.Runs {
			fmt.Fprintf(w, "  round %d: with %s events/s, without %s events/s, ratio %.3f; api+postgres µs/event %.0f vs %.0f, ratio %.3f\n", i+1,
				thousands(run.With.rate()), thousands(run.Without.rate()), safeRatio(run.With.rate(), run.Without.rate()),
				cpuPerEvent(run.With), cpuPerEvent(run.Without), safeRatio(cpuPerEvent(run.Without), cpuPerEvent(run.With)))
		}
		fmt.Fprintf(w, "  median CPU-per-event ratio %.3f\n", p.CPURatio)
		verdict := "meets"
		if p.Ratio < p.Target {
			verdict = "MISSES"
		}
		fmt.Fprintf(w, "  median ratio %.3f (target >= %.2f): %s\n", p.Ratio, p.Target, verdict)
	}
}

// patch sends a PATCH and requires 200.
func (c *apiClient) patch(ctx context.Context, path string, body []byte) ([]byte, error) {
	req, err := http.NewRequestWithContext(ctx, http.MethodPatch, c.base+path, strings.NewReader(string(body)))
	if err != nil {
		return nil, err
	}
	req.Header.Set("Authorization", "Bearer "+c.key)
	req.Header.Set("Content-Type", "application/json")
	resp, err := c.http.Do(req)
	if err != nil {
		return nil, err
	}
	defer resp.Body.Close()
	raw, _ := io.ReadAll(resp.Body)
	if resp.StatusCode != http.StatusOK {
		return nil, fmt.Errorf("PATCH %s: %d %s", path, resp.StatusCode, raw)
	}
	return raw, nil
}

// cpuPerEvent is the API's and PostgreSQL's CPU per event of a window, in
// microseconds.
func cpuPerEvent(t throughput) float64 {
	if t.rate() <= 0 {
		return 0
	}
	return (t.CPU.API + t.CPU.Postgres) * 1e6 / t.rate()
}

// addThroughput adds up two windows of one side: events, time and
// errors, and CPU weighted by each window's length.
func addThroughput(a, b throughput) throughput {
	out := throughput{Events: a.Events + b.Events, Requests: a.Requests + b.Requests, Elapsed: a.Elapsed + b.Elapsed,
		Errors: a.Errors + b.Errors, first: a.first}
	if out.first == "" {
		out.first = b.first
	}
	if out.Elapsed > 0 {
		wa, wb := a.Elapsed.Seconds()/out.Elapsed.Seconds(), b.Elapsed.Seconds()/out.Elapsed.Seconds()
		mix := func(x, y float64) float64 { return x*wa + y*wb }
		out.CPU = cpuUsage{API: mix(a.CPU.API, b.CPU.API), Bench: mix(a.CPU.Bench, b.CPU.Bench),
			Postgres: mix(a.CPU.Postgres, b.CPU.Postgres), Other: mix(a.CPU.Other, b.CPU.Other), Idle: mix(a.CPU.Idle, b.CPU.Idle)}
		out.PerCommit = mix(a.PerCommit, b.PerCommit)
	}
	return out
}
