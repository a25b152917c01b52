// Command signalbox-actbench measures Signalbox's act path — events turned
// into running enrollments — against the bare Temporal SDK on the same
// servers, in the same run, and reports ratios rather than absolute
// numbers, because the machines it runs on are small, shared and noisy.
//
// It creates a throwaway database on the PostgreSQL server at DATABASE_URL,
// starts a Temporal dev server of its own (the CLI at SIGNALBOX_TEMPORAL_CLI,
// else bin/temporal) with the flags e2e and `make run` use, and runs in this
// process the API over HTTP, the group-commit recorder, the outbox
// dispatcher and workers, wired like `signalbox dev`. Phases:
//
//   - start: enrollments started (and run) per second from events that each
//     trigger a one-step automation, against SignalWithStartWorkflow of a
//     one-activity workflow, with -clients clients that each wait for their
//     workflow to finish before the next request, in runs ordered by
//     -start-order (mirrored: the dev server slows as it fills); and, for
//     information, against a bare workflow with the enrollment's exact
//     shape in Temporal;
//   - latency: 202 of POST /v1/events to the first step's activity, open
//     loop at -rate, against SignalWithStartWorkflow to its first activity;
//   - resume: 202 of a resuming event to the waiting workflow's next
//     activity, against SignalWorkflow to a bare waiting workflow;
//   - ingest: single events per second at -clients with 1 vs -automations
//     enabled automations, and with 0 vs -waits waiting enrollments of other
//     contacts (inserted with COPY), in runs ordered base, loaded, loaded,
//     base; no worker runs, the dispatcher delivers to the dev server.
//
// Every figure is a ratio to a baseline measured in the same run; the
// report also breaks the latencies into stages (outbox, gRPC call,
// Temporal, each activity) and shows where the CPU went.
//
// Usage:
//
//	DATABASE_URL=postgres://postgres@127.0.0.1:5432/postgres \
//	SIGNALBOX_TEMPORAL_CLI=$PWD/bin/temporal go run ./cmd/signalbox-actbench [-duration 10s] [-json]
//
// The exit code is 0 when every request succeeded, even if a target is missed
// (it is a measurement); a failed request or a timeout makes it non-zero.
package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"os"
	"os/signal"
	"slices"
	"strings"
	"syscall"
	"time"
)

func main() {
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	if err := run(ctx, os.Args[1:], os.Getenv, os.Stdout); err != nil {
		if !errors.Is(err, flag.ErrHelp) {
			fmt.Fprintln(os.Stderr, "signalbox-actbench:", err)
		}
		os.Exit(1)
	}
}

// options is the command line.
type options struct {
	databaseURL string
	duration    time.Duration
	warmup      time.Duration
	clients     int
	rate        float64
	automations int
	waits       int
	temporalDB  string
	json        bool
	profileDir  string
	timeout     time.Duration
	phases      map[string]bool
	startOrder  []string
	// A Temporal server of the caller's instead of a dev server of its own
	// (make bench-cluster), its namespace, and its pid for the CPU figures.
	temporalAddress   string
	temporalNamespace string
	temporalPID       int
	// workers is how many workers run each side of the act phases.
	workers int
	// burst is the drain phase's number of triggering events.
	burst int
	// drainComplete makes the drain phase also wait until every enrollment
	// of the burst has ended.
	drainComplete bool
	// actionLatency, when set, makes the drain phase's step a webhook to a
	// receiver of this process that answers after it (a slow action).
	actionLatency time.Duration
}

// phaseNames are the phases -phases may pick, in the order they run.
var phaseNames = []string{"start", "latency", "resume", "ingest", "drain"}

// defaultPhases run unless -phases names others (drain is make
// bench-cluster's).
var defaultPhases = []string{"start", "latency", "resume", "ingest"}

// parseFlags reads the command line; DATABASE_URL is the default server.
func parseFlags(args []string, getenv func(string) string, stderr io.Writer) (options, error) {
	var o options
	fs := flag.NewFlagSet("signalbox-actbench", flag.ContinueOnError)
	fs.SetOutput(stderr)
	fs.StringVar(&o.databaseURL, "database-url", getenv("DATABASE_URL"),
		"PostgreSQL server to measure on (a throwaway database is created there); default $DATABASE_URL")
	fs.DurationVar(&o.duration, "duration", 10*time.Second, "measured time of each run of each phase")
	fs.DurationVar(&o.warmup, "warmup", 2*time.Second, "unmeasured load before each measured run")
	fs.IntVar(&o.clients, "clients", 32, "concurrent clients of the start and ingest phases (both sides)")
	fs.Float64Var(&o.rate, "rate", 20, "events (or signals) per second of the latency and resume phases, open loop")
	fs.IntVar(&o.automations, "automations", 1000, "enabled automations of the ingest phase's second run")
	fs.IntVar(&o.waits, "waits", 100_000, "waiting enrollments of other contacts in the ingest phase's second run")
	fs.StringVar(&o.temporalDB, "temporal-db", "file", "the dev server's SQLite: file (a temporary file, WAL) or memory")
	fs.BoolVar(&o.json, "json", false, "also print the results as JSON")
	fs.StringVar(&o.profileDir, "cpuprofile", "", "write a CPU profile of this process for every measured run into this directory")
	fs.DurationVar(&o.timeout, "timeout", 2*time.Minute, "longest wait for one workflow's step, or for a phase's workflows to finish")
	order := fs.String("start-order", strings.Join(defaultStartOrder, ","),
		"the start phase's runs in order: baseline, shape or signalbox; baseline and signalbox at least once")
	phases := fs.String("phases", strings.Join(defaultPhases, ","), "comma-separated phases to run: "+strings.Join(phaseNames, ", "))
	fs.StringVar(&o.temporalAddress, "temporal-address", "", "an existing Temporal server to measure on instead of a dev server of its own")
	fs.StringVar(&o.temporalNamespace, "temporal-namespace", "default", "the namespace on -temporal-address")
	fs.IntVar(&o.temporalPID, "temporal-pid", 0, "the pid of the server at -temporal-address, for its CPU figures")
	fs.IntVar(&o.workers, "workers", 1, "workers (each with its own pollers) running each side of the act phases")
	fs.IntVar(&o.burst, "burst", 20_000, "triggering events of the drain phase's burst")
	fs.BoolVar(&o.drainComplete, "drain-complete", false,
		"the drain phase also waits until every enrollment of the burst has ended (the workers' drain)")
	fs.DurationVar(&o.actionLatency, "action-latency", 0,
		"the drain phase's step is a webhook to a receiver here that answers after this long (0: an update_contact step)")
	if err := fs.Parse(args); err != nil {
		return o, err
	}
	var errs []error
	o.startOrder = strings.Split(*order, ",")
	for _, side := range o.startOrder {
		if !slices.Contains([]string{"baseline", "shape", "signalbox"}, side) {
			errs = append(errs, fmt.Errorf("-start-order: unknown side %q (want baseline, shape or signalbox)", side))
		}
	}
	for _, side := range []string{"baseline", "signalbox"} {
		if !slices.Contains(o.startOrder, side) {
			errs = append(errs, fmt.Errorf("-start-order: %s never runs", side))
		}
	}
	o.phases = map[string]bool{}
	for _, p := range strings.Split(*phases, ",") {
		if p = strings.TrimSpace(p); !slices.Contains(phaseNames, p) {
			errs = append(errs, fmt.Errorf("-phases: unknown phase %q (want %s)", p, strings.Join(phaseNames, ", ")))
		}
		o.phases[p] = true
	}
	if o.databaseURL == "" {
		errs = append(errs, errors.New("-database-url or DATABASE_URL is required"))
	}
	if o.duration < time.Second {
		errs = append(errs, errors.New("-duration must be at least 1s"))
	}
	if o.warmup < 0 {
		errs = append(errs, errors.New("-warmup must not be negative"))
	}
	if o.clients < 1 {
		errs = append(errs, errors.New("-clients must be at least 1"))
	}
	if o.rate <= 0 || o.rate > 1000 {
		errs = append(errs, errors.New("-rate must be above 0 and at most 1000"))
	}
	if o.automations < 1 {
		errs = append(errs, errors.New("-automations must be at least 1"))
	}
	if o.waits < 0 {
		errs = append(errs, errors.New("-waits must not be negative"))
	}
	if o.temporalDB != "file" && o.temporalDB != "memory" {
		errs = append(errs, errors.New("-temporal-db must be file or memory"))
	}
	if o.actionLatency < 0 {
		errs = append(errs, errors.New("-action-latency must not be negative"))
	}
	if o.workers < 1 {
		errs = append(errs, errors.New("-workers must be at least 1"))
	}
	if o.burst < 1 {
		errs = append(errs, errors.New("-burst must be at least 1"))
	}
	if o.timeout < time.Second {
		errs = append(errs, errors.New("-timeout must be at least 1s"))
	}
	return o, errors.Join(errs...)
}

// run is the whole command; main only supplies the process's state.
func run(ctx context.Context, args []string, getenv func(string) string, stdout io.Writer) error {
	o, err := parseFlags(args, getenv, os.Stderr)
	if err != nil {
		return err
	}
	progress := os.Stderr
	fmt.Fprintln(progress, "setting up: database, Temporal dev server, Signalbox")
	s, err := startSystem(ctx, o, getenv, progress)
	if err != nil {
		return interrupted(ctx, err)
	}
	defer s.close()
	b := &bench{s: s, o: o, progress: progress}
	rep, err := b.measure(ctx)
	if err != nil {
		return interrupted(ctx, err)
	}
	printReport(stdout, rep)
	if o.json {
		if err := printJSON(stdout, rep); err != nil {
			return err
		}
	}
	if rep.Errors > 0 {
		return fmt.Errorf("%d requests failed or timed out; first: %s", rep.Errors, rep.FirstError)
	}
	return nil
}

// interrupted names an error caused by Ctrl-C as such.
func interrupted(ctx context.Context, err error) error {
	if ctx.Err() != nil {
		return errors.New("interrupted")
	}
	return err
}
