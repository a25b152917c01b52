package main

import (
	"encoding/json"
	"fmt"
	"io"
	"slices"
	"strconv"
	"strings"
	"text/tabwriter"
	"time"
)

// report is everything one run measured.
type report struct {
	CPUs          int              `json:"cpus"`
	GOMAXPROCS    int              `json:"gomaxprocs"`
	Postgres      string           `json:"postgres"`
	Duration      string           `json:"duration"`
	Warmup        string           `json:"warmup"`
	Clients       int              `json:"clients"`
	BatchSize     int              `json:"batch_size"`
	Contacts      int              `json:"contacts"`
	Rounds        int              `json:"rounds"`
	Indexes       int              `json:"events_indexes"`
	Phases        []phaseReport    `json:"phases"`
	Latency       *latencyReport   `json:"latency,omitempty"`
	Noisy         *noisyReport     `json:"noisy,omitempty"`
	Decisions     *decisionsReport `json:"decisions,omitempty"`
	Sources       *sourcesReport   `json:"sources,omitempty"`
	Catalog       *catalogReport   `json:"catalog,omitempty"`
	APIPeakRSSMiB float64          `json:"api_peak_rss_mib"`
	Errors        int64            `json:"errors"`
	FirstError    string           `json:"first_error,omitempty"`
}

// addErrors counts failed requests, keeping the first message.
func (r *report) addErrors(n int64, first string) {
	if n > 0 && r.Errors == 0 {
		r.FirstError = first
	}
	r.Errors += n
}

// phaseReport is one comparison over every round.
type phaseReport struct {
	Name    string `json:"name"`
	Key     string `json:"key"`
	Clients int    `json:"clients"`
	// Baseline and Signalbox are the median events/s over the rounds.
	Baseline  float64 `json:"baseline_events_per_s"`
	Signalbox float64 `json:"signalbox_events_per_s"`
	// Ratio is the median of the rounds' ratios.
	Ratio  float64   `json:"ratio"`
	Ratios []float64 `json:"ratios"`
	Target float64   `json:"target"`
	Pass   bool      `json:"pass"`
	Runs   []pairRun `json:"runs"`
}

// pairRun is one round of a phase.
type pairRun struct {
	Baseline  throughput `json:"baseline"`
	Signalbox throughput `json:"signalbox"`
}

// summarise computes the medians and the verdict.
func (p *phaseReport) summarise() {
	var base, sb []float64
	p.Ratios = nil
	for _, r := range p.Runs {
		base = append(base, r.Baseline.rate())
		sb = append(sb, r.Signalbox.rate())
		ratio := 0.0
		if r.Baseline.rate() > 0 {
			ratio = r.Signalbox.rate() / r.Baseline.rate()
		}
		p.Ratios = append(p.Ratios, ratio)
	}
	p.Baseline, p.Signalbox, p.Ratio = median(base), median(sb), median(p.Ratios)
	p.Pass = p.Ratio >= p.Target
}

// latencyReport compares open-loop latency at one rate.
type latencyReport struct {
	Rate      float64   `json:"rate"`
	Baseline  latencies `json:"baseline"`
	Signalbox latencies `json:"signalbox"`
}

// median of values (the mean of the middle two for an even count).
func median(values []float64) float64 {
	if len(values) == 0 {
		return 0
	}
	s := slices.Clone(values)
	slices.Sort(s)
	if n := len(s); n%2 == 0 {
		return (s[n/2-1] + s[n/2]) / 2
	}
	return s[len(s)/2]
}

// printReport writes the human-readable tables.
func printReport(w io.Writer, r *report) {
	fmt.Fprintf(w, "\nSignalbox record-path benchmark\n")
	fmt.Fprintf(w, "machine: %d CPUs, GOMAXPROCS %d, PostgreSQL %s (same server for both sides)\n", r.CPUs, r.GOMAXPROCS, r.Postgres)
	fmt.Fprintf(w, "run: %s measured per phase after %s warm-up, %d round(s), %d contacts, events spread uniformly over them\n",
		r.Duration, r.Warmup, r.Rounds, r.Contacts)
	fmt.Fprintf(w, "baseline: raw pgx into bench_events (LIKE events INCLUDING ALL: %d indexes, no foreign key);\n", r.Indexes)
	fmt.Fprintf(w, "          events and bench_events are truncated before every phase, so each starts empty\n\n")

	tw := tabwriter.NewWriter(w, 0, 0, 2, ' ', 0)
	if len(r.Phases) > 0 {
		fmt.Fprintln(tw, "phase\tbaseline ev/s\tsignalbox ev/s\tratio\ttarget\tresult\t")
	}
	for _, p := range r.Phases {
		result := "PASS"
		if !p.Pass {
			result = "MISSED"
		}
		ratio := fmt.Sprintf("%.3f", p.Ratio)
		if len(p.Ratios) > 1 {
			var each []string
			for _, x := range p.Ratios {
				each = append(each, fmt.Sprintf("%.3f", x))
			}
			ratio += " (" + strings.Join(each, " ") + ")"
		}
		fmt.Fprintf(tw, "%s\t%s\t%s\t%s\t≥ %.2f\t%s\t\n", p.Name, thousands(p.Baseline), thousands(p.Signalbox), ratio, p.Target, result)
	}
	tw.Flush()

	if l := r.Latency; l != nil {
		fmt.Fprintf(w, "\nsingle-event latency, open loop at %s events/s (0.5 × signalbox max), from each request's scheduled send time\n",
			thousands(l.Rate))
		tw = tabwriter.NewWriter(w, 0, 0, 2, ' ', 0)
		fmt.Fprintln(tw, "side\tachieved ev/s\tp50\tp90\tp99\tmax\terrors\t")
		for _, s := range []struct {
			name string
			l    latencies
		}{{"raw pgx", l.Baseline}, {"signalbox", l.Signalbox}} {
			fmt.Fprintf(tw, "%s\t%s\t%s\t%s\t%s\t%s\t%d\t\n", s.name, thousands(s.l.Achieved),
				ms(s.l.P50), ms(s.l.P90), ms(s.l.P99), ms(s.l.Max), s.l.Errors)
		}
		tw.Flush()
	}

	if n := r.Noisy; n != nil {
		printNoisy(w, n)
	}
	if sr := r.Sources; sr != nil {
		printSources(w, sr)
	}
	if c := r.Catalog; c != nil {
		printCatalog(w, c)
	}
	if d := r.Decisions; d != nil {
		printDecisions(w, d)
	}

	fmt.Fprintf(w, "\nAPI peak RSS (VmHWM at the end): %.1f MiB\n", r.APIPeakRSSMiB)

	fmt.Fprintf(w, "\nCPU in the measured windows, in cores busy of %d (bench = this process: load generator and pgx client)\n", r.CPUs)
	tw = tabwriter.NewWriter(w, 0, 0, 2, ' ', 0)
	fmt.Fprintln(tw, "phase\tside\tapi\tbench\tpostgres\tother\tidle\tapi µs/event\tpostgres µs/event\tevents/commit\t")
	row := func(phase, side string, c cpuUsage, rate, perCommit float64) {
		perEvent := func(cores float64) string {
			if rate <= 0 || cores <= 0 {
				return "-"
			}
			return fmt.Sprintf("%.1f", cores*1e6/rate)
		}
		commit := "-"
		if perCommit > 0 {
			commit = fmt.Sprintf("%.1f", perCommit)
		}
		// On baseline rows the API only idles; its few ticks are not a cost
		// of those events.
		api := "-"
		if side != "baseline" {
			api = perEvent(c.API)
		}
		fmt.Fprintf(tw, "%s\t%s\t%.2f\t%.2f\t%.2f\t%.2f\t%.2f\t%s\t%s\t%s\t\n", phase, side, c.API, c.Bench, c.Postgres, c.Other, c.Idle,
			api, perEvent(c.Postgres), commit)
	}
	for _, p := range r.Phases {
		for i, run := range p.Runs {
			name := p.Name
			if len(p.Runs) > 1 {
				name += fmt.Sprintf(" #%d", i+1)
			}
			row(name, "baseline", run.Baseline.CPU, run.Baseline.rate(), run.Baseline.PerCommit)
			row("", "signalbox", run.Signalbox.CPU, run.Signalbox.rate(), run.Signalbox.PerCommit)
		}
	}
	if l := r.Latency; l != nil {
		row("latency (open loop)", "baseline", l.Baseline.CPU, l.Baseline.Achieved, l.Baseline.PerCommit)
		row("", "signalbox", l.Signalbox.CPU, l.Signalbox.Achieved, l.Signalbox.PerCommit)
	}
	if n := r.Noisy; n != nil {
		// The µs/event columns divide by A's events alone; beside C the
		// machine also served C's.
		for i, run := range n.Runs {
			name := "noisy neighbours"
			if len(n.Runs) > 1 {
				name += fmt.Sprintf(" #%d", i+1)
			}
			row(name, "A alone", run.Alone.CPU, run.Alone.rate(), run.Alone.PerCommit)
			row("", "A+C", run.BesideUnder.CPU, run.BesideUnder.rate(), run.BesideUnder.PerCommit)
			row("", "A+B", run.BesideOver.CPU, run.BesideOver.rate(), run.BesideOver.PerCommit)
		}
	}
	if sr := r.Sources; sr != nil {
		for i, run := range sr.Runs {
			name := "sources"
			if len(sr.Runs) > 1 {
				name += fmt.Sprintf(" #%d", i+1)
			}
			row(name, "/v1/events", run.Events.CPU, run.Events.rate(), run.Events.PerCommit)
			row("", "/in/{token}", run.Inbound.CPU, run.Inbound.rate(), run.Inbound.PerCommit)
		}
	}
	tw.Flush()
}

// printNoisy writes the noisy-neighbour table and its verdict.
func printNoisy(w io.Writer, n *noisyReport) {
	fmt.Fprintf(w, "\nnoisy neighbours: workspace A's single events, %d clients per workspace, A alone vs beside a workspace\n", n.Clients)
	fmt.Fprintf(w, "sending the same load under its cap (C) or past its hard cap (B, every request refused with 429)\n")
	tw := tabwriter.NewWriter(w, 0, 0, 2, ' ', 0)
	fmt.Fprintln(tw, "round\tA alone ev/s\tA beside C ev/s\tratio\tA beside B ev/s\tratio\tC accepted ev/s\tB refused req/s\t")
	for i, run := range n.Runs {
		ratio := func(t throughput) string {
			if run.Alone.rate() <= 0 {
				return "-"
			}
			return fmt.Sprintf("%.3f", t.rate()/run.Alone.rate())
		}
		fmt.Fprintf(tw, "%d\t%s\t%s\t%s\t%s\t%s\t%s\t%s\t\n", i+1, thousands(run.Alone.rate()),
			thousands(run.BesideUnder.rate()), ratio(run.BesideUnder), thousands(run.BesideOver.rate()), ratio(run.BesideOver),
			thousands(run.Under.rate()), thousands(run.Over.rate()))
	}
	if len(n.Runs) > 1 {
		fmt.Fprintf(tw, "median\t%s\t%s\t%.3f\t%s\t%.3f\t%s\t%s\t\n", thousands(n.Alone), thousands(n.BesideUnder), n.UnderRatio,
			thousands(n.BesideOver), n.OverRatio, thousands(n.UnderRate), thousands(n.OverRefused))
	}
	tw.Flush()
	verdict := "HOLDS"
	if !n.Holds {
		verdict = "MISSED"
	}
	fmt.Fprintf(w, "A beside over-cap B ≥ A beside under-cap C: %s (%s vs %s ev/s)\n", verdict,
		thousands(n.BesideOver), thousands(n.BesideUnder))
}

// printJSON writes the report as one JSON document on the last line.
func printJSON(w io.Writer, r *report) error {
	data, err := json.Marshal(r)
	if err != nil {
		return err
	}
	_, err = fmt.Fprintf(w, "\n%s\n", data)
	return err
}

// thousands formats a rate as a whole number with thin separators.
func thousands(v float64) string {
	s := strconv.FormatInt(int64(v+0.5), 10)
	var b strings.Builder
	for i, c := range s {
		if i > 0 && (len(s)-i)%3 == 0 {
			b.WriteByte(',')
		}
		b.WriteRune(c)
	}
	return b.String()
}

// ms formats a duration in milliseconds.
func ms(d time.Duration) string { return fmt.Sprintf("%.2fms", float64(d)/float64(time.Millisecond)) }
