package main

import (
	"encoding/json"
	"fmt"
	"io"
	"strconv"
	"strings"
	"text/tabwriter"
)

// report is everything one run measured.
type report struct {
	Duration    string         `json:"duration"`
	Clients     int            `json:"clients"`
	Rate        float64        `json:"rate"`
	TemporalDB  string         `json:"temporal_db"`
	PostgreSQL  string         `json:"postgresql"`
	CPUs        int            `json:"cpus"`
	Automations int            `json:"automations"`
	Waits       int            `json:"waits"`
	Start       *startResult   `json:"start,omitempty"`
	Latency     *latencyResult `json:"latency,omitempty"`
	Resume      *resumeResult  `json:"resume,omitempty"`
	Ingest      *ingestResult  `json:"ingest,omitempty"`
	Drain       *drainResult   `json:"drain,omitempty"`
	// Server says which Temporal server ran: the dev server, or the
	// -temporal-address one.
	Server string `json:"temporal_server"`
	// Workers is -workers.
	Workers    int    `json:"workers"`
	Rows       []row  `json:"rows"`
	Errors     int64  `json:"errors"`
	FirstError string `json:"first_error,omitempty"`
}

// row is one line of the table: a figure of the baseline and of Signalbox,
// their ratio (Signalbox / baseline), and the ratio's target if it has one.
type row struct {
	Phase     string  `json:"phase"`
	Metric    string  `json:"metric"`
	Baseline  float64 `json:"baseline"`
	Signalbox float64 `json:"signalbox"`
	Ratio     float64 `json:"ratio"`
	// MinRatio is the target (the ratio must be at least this); 0 means the
	// row is information only.
	MinRatio float64 `json:"min_ratio,omitempty"`
	Target   string  `json:"target"`
	Result   string  `json:"result"`
	format   string
}

// Results of a row.
const (
	resultPass   = "PASS"
	resultMissed = "MISSED"
	resultInfo   = "info"
)

func newRow(phase, metric, format string, base, sb, minRatio float64, target string) row {
	r := row{Phase: phase, Metric: metric, Baseline: base, Signalbox: sb, Ratio: ratio(sb, base), MinRatio: minRatio,
		Target: target, Result: resultInfo, format: format}
	if minRatio > 0 {
		r.Result = resultMissed
		if r.Ratio >= minRatio {
			r.Result = resultPass
		}
	}
	if r.Target == "" {
		r.Target = "—"
	}
	return r
}

// rows turns the results into the table's lines.
func (r *report) rows() []row {
	var out []row
	if s := r.Start; s != nil {
		b, x := s.Baseline, s.Signalbox
		out = append(out,
			newRow("start", "workflows started /s", "%.1f", b.Started, x.Started, 0.8, "≥ 0.80"),
			newRow("start", "reached first activity /s", "%.1f", b.First, x.First, 0, ""),
			newRow("start", "completed /s", "%.1f", b.Completed, x.Completed, 0, ""),
			newRow("start", "history events / workflow", "%.0f", float64(b.HistoryEvents), float64(x.HistoryEvents), 0, ""),
			newRow("start", "history bytes / workflow", "%.0f", float64(b.HistoryBytes), float64(x.HistoryBytes), 0, ""),
			newRow("start", "dev server CPU ms / workflow", "%.2f", b.TemporalMS, x.TemporalMS, 0, ""),
			newRow("start", "this process CPU ms / workflow", "%.2f", b.BenchMS, x.BenchMS, 0, ""),
			newRow("start", "PostgreSQL CPU ms / workflow", "%.2f", b.PostgresMS, x.PostgresMS, 0, ""))
		if sh := s.Shaped; len(sh.Runs) > 0 {
			out = append(out,
				newRow("start/shape", "workflows started /s", "%.1f", sh.Started, x.Started, 0, ""),
				newRow("start/shape", "history events / workflow", "%.0f", float64(sh.HistoryEvents), float64(x.HistoryEvents), 0, ""),
				newRow("start/shape", "history bytes / workflow", "%.0f", float64(sh.HistoryBytes), float64(x.HistoryBytes), 0, ""),
				newRow("start/shape", "dev server CPU ms / workflow", "%.2f", sh.TemporalMS, x.TemporalMS, 0, ""),
				newRow("start/shape", "this process CPU ms / workflow", "%.2f", sh.BenchMS, x.BenchMS, 0, ""))
		}
	}
	if l := r.Latency; l != nil {
		out = append(out,
			newRow("latency", "to the first step p50 (ms)", "%.1f", l.Baseline.P50, l.Signalbox.P50, 0, ""),
			newRow("latency", "to the first step p99 (ms)", "%.1f", l.Baseline.P99, l.Signalbox.P99, 0, ""))
	}
	if l := r.Resume; l != nil {
		out = append(out,
			newRow("resume", "to leaving the wait p50 (ms)", "%.1f", l.Baseline.P50, l.Signalbox.P50, 0, ""),
			newRow("resume", "to leaving the wait p99 (ms)", "%.1f", l.Baseline.P99, l.Signalbox.P99, 0, ""),
			newRow("resume", "to the next step p50 (ms)", "%.1f", l.Baseline.P50, l.SignalboxStep.P50, 0, ""),
			newRow("resume", "to the next step p99 (ms)", "%.1f", l.Baseline.P99, l.SignalboxStep.P99, 0, ""))
	}
	if in := r.Ingest; in != nil {
		a, w := in.Automations, in.Waits
		ra := newRow("ingest", fmt.Sprintf("events/s: 1 → %s automations", thousands(r.Automations)),
			"%.0f", a.Base, a.Loaded, 0.9, "drop < 10%")
		rw := newRow("ingest", fmt.Sprintf("events/s: 0 → %s waits", thousands(r.Waits)),
			"%.0f", w.Base, w.Loaded, 0.9, "drop < 10%")
		ra.Result += fmt.Sprintf(" (drop %.1f%%)", a.Drop*100)
		rw.Result += fmt.Sprintf(" (drop %.1f%%)", w.Drop*100)
		out = append(out, ra, rw)
	}
	return out
}

// thousands groups the digits of n: 100000 → "100,000".
func thousands(n int) string {
	s := strconv.Itoa(n)
	var b strings.Builder
	for i, c := range s {
		if i > 0 && c != '-' && s[i-1] != '-' && (len(s)-i)%3 == 0 {
			b.WriteByte(',')
		}
		b.WriteRune(c)
	}
	return b.String()
}

// printReport writes the table and what each baseline is.
func printReport(w io.Writer, r *report) {
	r.Rows = r.rows()
	server := fmt.Sprintf("Temporal dev server on SQLite (%s)", sqliteMode(r.TemporalDB))
	if r.Server != "" {
		server = r.Server
	}
	fmt.Fprintf(w, "\nSignalbox act-path benchmark: %s per run, %d clients, %.0f/s open loop, %d CPUs, PostgreSQL %s, %s, %d worker(s) per side\n\n",
		r.Duration, r.Clients, r.Rate, r.CPUs, r.PostgreSQL, server, r.Workers)
	tw := tabwriter.NewWriter(w, 0, 0, 2, ' ', tabwriter.AlignRight)
	fmt.Fprintln(tw, "phase\tmetric\tbaseline\tsignalbox\tratio\ttarget\tresult\t")
	for _, x := range r.Rows {
		fmt.Fprintf(tw, "%s\t%s\t"+x.format+"\t"+x.format+"\t%.2f\t%s\t%s\t\n",
			x.Phase, x.Metric, x.Baseline, x.Signalbox, x.Ratio, x.Target, x.Result)
	}
	_ = tw.Flush()
	if r.Drain != nil {
		printDrain(w, r.Drain)
	}
	fmt.Fprint(w, `
ratio = signalbox / baseline. Baselines, on the same servers in the same run:
  start    SignalWithStartWorkflow of a workflow that runs one no-op activity, then completes, from
           the same number of clients, each waiting for its workflow to return before the next call.
           The runs go in -start-order (default baseline, signalbox, signalbox, baseline, shape: the dev
           server slows as it fills, so the two main sides are mirrored); a side's figures pool its runs.
           Signalbox: POST /v1/events, each triggering one enrollment (a single update_contact step,
           an activity that also writes its log line and ends the enrollment). started = the SDK call /
           the dispatcher's ExecuteWorkflow returned, in the window.
  start/shape  information: a bare workflow with the enrollment's shape in Temporal (its input, the
           step as one no-op activity with the step's input and result, its result) started as the
           dispatcher starts one (ExecuteWorkflow with eager start, its ID
           policies and the three search attributes): baseline/shape is what the shape costs Temporal,
           shape/signalbox what Signalbox's plumbing costs beyond it.
  latency  SignalWithStartWorkflow called → its activity runs; Signalbox: the 202 → UpdateContact runs.
  resume   SignalWorkflow called → the bare waiting workflow's next activity runs; Signalbox: the 202 of
           the resuming event → the "yes" line of its log runs (left the wait), and → UpdateContact runs (next step).
  ingest   the same load without what must not slow it (1 automation; 0 waits); runs in the order
           base, loaded, loaded, base; no Temporal worker runs, the dispatcher delivers throughout.
`)
	if s := r.Start; s != nil {
		fmt.Fprint(w, "\nThe start runs in order (started/s):")
		sides := map[string][]startRunFigures{"baseline": s.Baseline.Runs, "shape": s.Shaped.Runs, "signalbox": s.Signalbox.Runs}
		for i, name := range s.Order {
			run := sides[name][0]
			sides[name] = sides[name][1:]
			if run.Seconds > 0 {
				fmt.Fprintf(w, "  %d %s %.1f", i+1, name, float64(run.Started)/run.Seconds)
			}
		}
		fmt.Fprintln(w)
	}
	if lines := r.stageLines(); len(lines) > 0 {
		fmt.Fprintln(w, "\nWhere the latency goes (ms; stages are measured separately, so they need not add up):")
		for _, l := range lines {
			fmt.Fprintln(w, "  "+l)
		}
	}
	if in := r.Ingest; in != nil {
		fmt.Fprintln(w, "\nThe dispatcher during the ingest runs (intents/s delivered to the dev server; claims still running at the end):")
		for _, f := range []flatness{in.Automations, in.Waits} {
			for i, run := range f.Runs {
				fmt.Fprintf(w, "  %d: %-18s %6.0f events/s  %5.0f intents/s delivered  %6d undelivered  %d claims cancelled\n",
					i+1, run.Variant, run.PerSec, run.Delivered, run.Dropped, run.Cancelled)
			}
		}
	}
	fmt.Fprintln(w, "\nCPU cores busy during each measured window (this process = load, API, dispatcher, worker):")
	lines, noisy := r.cpuLines()
	for _, c := range lines {
		fmt.Fprintln(w, "  "+c)
	}
	if len(noisy) > 0 {
		fmt.Fprintf(w, "  NOTE: other processes used more than %.2f cores during %s; those figures are noisier.\n",
			noisyOther, strings.Join(noisy, ", "))
	}
	if r.Errors > 0 {
		fmt.Fprintf(w, "\n!!! %d REQUESTS FAILED OR TIMED OUT: the figures above are not valid. First: %s\n", r.Errors, r.FirstError)
	}
}

func (r *report) stageLines() []string {
	var out []string
	add := func(title string, st []stage) {
		if len(st) == 0 {
			return
		}
		out = append(out, title)
		for _, x := range st {
			out = append(out, fmt.Sprintf("  %-52s p50 %7.1f  p99 %7.1f", x.Name, x.P50, x.P99))
		}
	}
	if l := r.Latency; l != nil {
		add("latency, baseline (from the SDK call):", l.BaselineStages)
		add("latency, signalbox (from the 202):", l.SignalboxStages)
	}
	if l := r.Resume; l != nil {
		add("resume, baseline (from the SDK call):", l.BaselineStages)
		add("resume, signalbox (from the 202):", l.SignalboxStages)
	}
	return out
}

// noisyOther is how many cores the rest of the machine may use during a
// window before the report points it out.
const noisyOther = 0.25

// cpuLines lists the CPU use of every window, and the windows during which
// the rest of the machine was busy.
func (r *report) cpuLines() (out, noisy []string) {
	add := func(name string, u cpuUsage) {
		out = append(out, fmt.Sprintf("%-28s this process %.2f  dev server %.2f  postgres %.2f  other %.2f",
			name, u.Bench, u.Temporal, u.Postgres, u.Other))
		if u.Other > noisyOther {
			noisy = append(noisy, name)
		}
	}
	if s := r.Start; s != nil {
		add("start baseline", s.Baseline.Window)
		if len(s.Shaped.Runs) > 0 {
			add("start/shape baseline", s.Shaped.Window)
		}
		add("start signalbox", s.Signalbox.Window)
	}
	if l := r.Latency; l != nil {
		add("latency baseline", l.BaselineCPU)
		add("latency signalbox", l.SignalboxCPU)
	}
	if l := r.Resume; l != nil {
		add("resume baseline", l.BaselineCPU)
		add("resume signalbox", l.SignalboxCPU)
	}
	if in := r.Ingest; in != nil {
		for i, run := range in.Automations.Runs {
			add(fmt.Sprintf("ingest %d: %s", i+1, run.Variant), run.CPU)
		}
		for i, run := range in.Waits.Runs {
			add(fmt.Sprintf("ingest %d: %s", i+1, run.Variant), run.CPU)
		}
	}
	return out, noisy
}

func sqliteMode(db string) string {
	if db == "memory" {
		return "in memory"
	}
	return "a temporary file, journal_mode=wal, synchronous=normal"
}

// printJSON writes the report as indented JSON.
func printJSON(w io.Writer, r *report) error {
	if r.Rows == nil {
		r.Rows = r.rows()
	}
	enc := json.NewEncoder(w)
	enc.SetIndent("", "  ")
	return enc.Encode(r)
}
