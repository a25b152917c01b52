package main

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"os"
	"os/exec"
	"slices"
	"strconv"
	"strings"
	"text/tabwriter"
	"time"
)

// benchFigures is what the summary reads from one signalbox-actbench run
// (its -json report).
type benchFigures struct {
	Start *struct {
		Baseline  startFigures `json:"baseline"`
		Signalbox startFigures `json:"signalbox"`
	} `json:"start"`
	Drain *struct {
		Events        int     `json:"events"`
		IngestRate    float64 `json:"ingest_per_s"`
		BacklogAtEnd  int64   `json:"backlog_at_burst_end"`
		DrainSec      float64 `json:"drain_s"`
		DrainRate     float64 `json:"drain_per_s"`
		DeliveredRate float64 `json:"delivered_per_s"`
		Completed     int     `json:"completed"`
		CompletedRate float64 `json:"completed_per_s"`
		AllEndedSec   float64 `json:"all_ended_s"`
		AllEndedRate  float64 `json:"all_ended_per_s"`
	} `json:"drain"`
	Errors int64 `json:"errors"`
}

type startFigures struct {
	Started   float64 `json:"started_per_s"`
	Completed float64 `json:"completed_per_s"`
}

// benchRun is one signalbox-actbench invocation and its figures.
type benchRun struct {
	server  string
	workers int
	phase   string
	// actions says what the scale bench's enrollments did.
	actions string
	fig     benchFigures
}

// runBench is `signalbox-cluster bench`: the act path's start phase with 1
// and with 3 workers against the bare SDK on the same server, and the
// drain of a 20,000-event burst, first on a real cluster on PostgreSQL,
// then on the dev server, in one run.
func runBench(ctx context.Context, e env, out io.Writer, actbench, duration, only string) error {
	if only == "scale" {
		return runScale(ctx, e, out, actbench, duration)
	}
	dir, err := os.MkdirTemp("", "signalbox-bench-cluster-")
	if err != nil {
		return err
	}
	defer os.RemoveAll(dir)
	start := time.Now()
	var runs []benchRun
	c, clusterArgs, err := benchCluster(ctx, e, out, dir, e.shards)
	if err != nil {
		return err
	}
	server := fmt.Sprintf("cluster (%d shards)", e.shards)
	for _, r := range []struct {
		phase   string
		workers int
	}{{"start", 1}, {"start", 3}, {"drain", 3}} {
		if only != "" && only != r.phase {
			continue
		}
		run, err := actbenchRun(ctx, e, out, actbench, duration, server, r.phase, r.workers, clusterArgs)
		if err != nil {
			c.stop()
			return err
		}
		runs = append(runs, run)
	}
	c.stop()
	fmt.Fprintln(out, "== the Temporal dev server (SQLite, one history shard)")
	for _, r := range []struct {
		phase   string
		workers int
	}{{"start", 1}, {"start", 3}, {"drain", 3}} {
		if only != "" && only != r.phase {
			continue
		}
		run, err := actbenchRun(ctx, e, out, actbench, duration, "dev server", r.phase, r.workers, nil)
		if err != nil {
			return err
		}
		runs = append(runs, run)
	}
	printBenchSummary(out, runs)
	fmt.Fprintf(out, "\nbench-cluster took %s\n", time.Since(start).Round(time.Second))
	return nil
}

// benchCluster starts a cluster of shards history shards for the
// benchmarks and returns it with the flags that point signalbox-actbench
// at it.
func benchCluster(ctx context.Context, e env, out io.Writer, dir string, shards int) (*cluster, []string, error) {
	fmt.Fprintf(out, "== a Temporal cluster on PostgreSQL, %d history shard(s)\n", shards)
	c, err := startCluster(ctx, clusterConfig{serverBin: e.serverBin, sqlTool: e.sqlTool, schemaDir: e.schemaDir,
		databaseURL: e.databaseURL, shards: shards, namespace: namespace, dir: dir, log: out})
	if err != nil {
		return nil, nil, err
	}
	return c, []string{"-temporal-address", c.address, "-temporal-namespace", namespace,
		"-temporal-pid", strconv.Itoa(c.cmd.Process.Pid)}, nil
}

// actbenchRun runs signalbox-actbench once, its output shown as it goes.
func actbenchRun(ctx context.Context, e env, out io.Writer, bin, duration, server, phase string, workers int, extra []string,
	environ ...string) (benchRun, error) {
	args := append([]string{"-phases", phase, "-workers", strconv.Itoa(workers), "-duration", duration, "-json",
		"-start-order", "baseline,signalbox,signalbox,baseline"}, extra...)
	fmt.Fprintf(out, "-- %s: %s\n", server, strings.Join(append(slices.Clone(environ), "signalbox-actbench", strings.Join(args, " ")), " "))
	cmd := exec.CommandContext(ctx, bin, args...)
	var buf bytes.Buffer
	cmd.Stdout = io.MultiWriter(out, &buf)
	cmd.Stderr = out
	cmd.Env = append(append(os.Environ(), "DATABASE_URL="+e.databaseURL, "SIGNALBOX_TEMPORAL_CLI="+e.cli), environ...)
	if err := cmd.Run(); err != nil {
		return benchRun{}, fmt.Errorf("signalbox-actbench %s on %s: %w", phase, server, err)
	}
	raw := buf.Bytes()
	i := bytes.LastIndex(raw, []byte("\n{\n"))
	if i < 0 {
		return benchRun{}, errors.New("signalbox-actbench printed no JSON report")
	}
	run := benchRun{server: server, workers: workers, phase: phase}
	if err := json.Unmarshal(raw[i+1:], &run.fig); err != nil {
		return benchRun{}, fmt.Errorf("signalbox-actbench report: %w", err)
	}
	return run, nil
}

// printBenchSummary prints the figures side by side.
func printBenchSummary(w io.Writer, runs []benchRun) {
	fmt.Fprintln(w, "\nbench-cluster summary (ratio = Signalbox / bare SDK SignalWithStart on the same server, same run; target ≥ 0.90)")
	tw := tabwriter.NewWriter(w, 0, 0, 2, ' ', tabwriter.AlignRight)
	fmt.Fprintln(tw, "server\tworkers\tbare started/s\tsignalbox started/s\tratio\tbare completed/s\tsignalbox completed/s\tratio\t")
	for _, r := range runs {
		if s := r.fig.Start; s != nil {
			fmt.Fprintf(tw, "%s\t%d\t%.1f\t%.1f\t%.2f\t%.1f\t%.1f\t%.2f\t\n", r.server, r.workers,
				s.Baseline.Started, s.Signalbox.Started, ratio(s.Signalbox.Started, s.Baseline.Started),
				s.Baseline.Completed, s.Signalbox.Completed, ratio(s.Signalbox.Completed, s.Baseline.Completed))
		}
	}
	_ = tw.Flush()
	fmt.Fprintln(w, "\ndrain after an ingest burst (absolute rates on this machine)")
	tw = tabwriter.NewWriter(w, 0, 0, 2, ' ', tabwriter.AlignRight)
	fmt.Fprintln(tw, "server\tworkers\tevents\tingest/s\tbacklog at end\tdrain s\tdrain intents/s\tdelivered/s\tcompleted by then\t")
	for _, r := range runs {
		if d := r.fig.Drain; d != nil {
			fmt.Fprintf(tw, "%s\t%d\t%d\t%.0f\t%d\t%.0f\t%.0f\t%.0f\t%d\t\n", r.server, r.workers, d.Events, d.IngestRate,
				d.BacklogAtEnd, d.DrainSec, d.DrainRate, d.DeliveredRate, d.Completed)
		}
	}
	_ = tw.Flush()
}

func ratio(a, b float64) float64 {
	if b == 0 {
		return 0
	}
	return a / b
}
