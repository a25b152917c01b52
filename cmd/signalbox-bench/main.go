// Command signalbox-bench measures the record path against PostgreSQL on the
// same machine, in the same run, and reports ratios rather than absolute
// numbers, because the machines it runs on are small, shared and noisy.
//
// It creates a throwaway database on the server at -database-url, migrates
// it, starts `signalbox api` as a separate process, and measures:
//
//   - single events over HTTP at -clients concurrent clients, against raw pgx
//     single-row INSERTs (one per transaction) at the same concurrency;
//   - batches via POST /v1/events/batch, against pgx CopyFrom of the same rows,
//     from one client and from -batch-clients clients;
//   - open-loop latency of single events at half the measured maximum rate,
//     taken from each request's scheduled send time;
//   - noisy neighbours: one workspace's single events from -noisy-clients
//     clients alone, beside a workspace sending the same load under its cap,
//     and beside one sending it past its hard cap (every request refused),
//     as ratios to the first; a refusal must cost the neighbour less than an
//     acceptance;
//   - inbound sources: the same single events posted to a source's
//     /in/{token} (no key, a delivery kept each) against POST /v1/events,
//     in alternating windows (see sources.go);
//   - what keeping decisions costs: single events that each write one
//     decision, against a second API on the same database with
//     DECISION_RETENTION=0 (see decisions.go);
//   - what the event catalog costs: single events checked against a
//     20-property schema in enforce mode against the same events without
//     one, and the per-name counters against a second API that skips them
//     (see catalog.go);
//   - the API process's peak RSS.
//
// The baseline writes into bench_events, made with CREATE TABLE ... (LIKE
// events INCLUDING ALL): the same columns, types, checks and indexes as
// events, without the foreign key to contacts. Both tables are truncated
// before every phase so that each starts from the same empty state.
//
// Usage:
//
//	DATABASE_URL=postgres://postgres@127.0.0.1:5432/postgres go run ./cmd/signalbox-bench [-duration 10s] [-json]
//
// For investigating: -phases runs a subset, -rounds N repeats each pair and
// reports the median ratio, -pprof DIR saves CPU profiles of the API (built
// with net/http/pprof through `go build -overlay`, the repository untouched),
// and the API inherits DB_MAX_CONNS, INGEST_COMMITTERS, GOMAXPROCS and a few
// other settings from the environment, so they can be compared run by run.
// The CPU table splits each window's CPU between the API, this process,
// PostgreSQL and the rest of the machine, and gives the events per commit
// (rows per xmin), which shows how well group commit is grouping.
//
// The exit code is 0 when every request succeeded, even if a target is missed
// (it is a measurement); any failed request makes it non-zero.
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
	err := run(ctx, os.Args[1:], os.Getenv, os.Stdout)
	if err != nil && !errors.Is(err, flag.ErrHelp) {
		fmt.Fprintln(os.Stderr, "signalbox-bench:", err)
		stop()
		os.Exit(1)
	}
}

// config is the command line.
type config struct {
	databaseURL  string
	duration     time.Duration
	warmup       time.Duration
	clients      int
	batchClients int
	noisyClients int
	batchSize    int
	contacts     int
	rounds       int
	json         bool
	signalbox    string
	pprofDir     string
	phases       map[string]bool
}

// phaseNames are the phases -phases may pick, in the order they run.
var phaseNames = []string{"single", "batch1", "batchN", "latency", "noisy", "sources", "catalog", "decisions"}

// parseFlags reads the command line; DATABASE_URL is the default database.
func parseFlags(args []string, getenv func(string) string, stderr io.Writer) (config, error) {
	var c config
	fs := flag.NewFlagSet("signalbox-bench", flag.ContinueOnError)
	fs.SetOutput(stderr)
	fs.StringVar(&c.databaseURL, "database-url", getenv("DATABASE_URL"),
		"PostgreSQL server to measure on (a throwaway database is created there); default $DATABASE_URL")
	fs.DurationVar(&c.duration, "duration", 10*time.Second, "measured time of each phase")
	fs.DurationVar(&c.warmup, "warmup", 2*time.Second, "unmeasured warm-up before each phase")
	fs.IntVar(&c.clients, "clients", 64, "concurrent clients for single events (and the baseline)")
	fs.IntVar(&c.batchClients, "batch-clients", 4, "concurrent clients for the second batch phase (0 skips it)")
	fs.IntVar(&c.noisyClients, "noisy-clients", 32, "concurrent clients per workspace in the noisy-neighbour phase")
	fs.IntVar(&c.batchSize, "batch-size", 1000, "events per batch (1 to 1000)")
	fs.IntVar(&c.contacts, "contacts", 10000, "contacts created beforehand; events are spread over them")
	fs.IntVar(&c.rounds, "rounds", 1, "repeat every baseline/signalbox pair this many times and report the median ratio")
	fs.BoolVar(&c.json, "json", false, "also print the results as JSON")
	fs.StringVar(&c.signalbox, "signalbox", "", "signalbox binary to run (default: go build ./cmd/signalbox into a temp dir)")
	fs.StringVar(&c.pprofDir, "pprof", "", "build the API with net/http/pprof and save CPU profiles of the signalbox phases to this directory")
	phases := fs.String("phases", strings.Join(phaseNames, ","),
		"comma-separated phases to run: single, batch1, batchN (-batch-clients clients), latency (needs single), noisy, sources, catalog, decisions")
	if err := fs.Parse(args); err != nil {
		return c, err
	}
	var errs []error
	c.phases = map[string]bool{}
	for _, p := range strings.Split(*phases, ",") {
		if p = strings.TrimSpace(p); !slices.Contains(phaseNames, p) {
			errs = append(errs, fmt.Errorf("-phases: unknown phase %q (want %s)", p, strings.Join(phaseNames, ", ")))
		}
		c.phases[p] = true
	}
	if c.phases["latency"] && !c.phases["single"] {
		errs = append(errs, errors.New("-phases: latency needs single, whose rate it halves"))
	}
	if c.databaseURL == "" {
		errs = append(errs, errors.New("-database-url or DATABASE_URL is required"))
	}
	if c.duration < time.Second {
		errs = append(errs, errors.New("-duration must be at least 1s"))
	}
	if c.warmup < 0 {
		errs = append(errs, errors.New("-warmup must not be negative"))
	}
	if c.clients < 1 {
		errs = append(errs, errors.New("-clients must be at least 1"))
	}
	if c.noisyClients < 1 {
		errs = append(errs, errors.New("-noisy-clients must be at least 1"))
	}
	if c.batchClients < 0 {
		errs = append(errs, errors.New("-batch-clients must not be negative"))
	}
	if c.batchSize < 1 || c.batchSize > 1000 {
		errs = append(errs, errors.New("-batch-size must be 1 to 1000"))
	}
	if c.contacts < 1 {
		errs = append(errs, errors.New("-contacts must be at least 1"))
	}
	if c.rounds < 1 {
		errs = append(errs, errors.New("-rounds must be at least 1"))
	}
	if c.pprofDir != "" && c.signalbox != "" {
		errs = append(errs, errors.New("-pprof builds its own binary; drop -signalbox"))
	}
	return c, errors.Join(errs...)
}

// run is the whole command; main only supplies the process's state.
func run(ctx context.Context, args []string, getenv func(string) string, stdout io.Writer) error {
	cfg, err := parseFlags(args, getenv, os.Stderr)
	if err != nil {
		return err
	}
	b := &bench{cfg: cfg, progress: os.Stderr, getenv: getenv}
	defer b.cleanup()
	if err := b.setup(ctx); err != nil {
		if ctx.Err() != nil {
			return errors.New("interrupted")
		}
		return err
	}
	rep, err := b.measure(ctx)
	if ctx.Err() != nil {
		return errors.New("interrupted")
	}
	if err != nil {
		return err
	}
	printReport(stdout, rep)
	if cfg.json {
		if err := printJSON(stdout, rep); err != nil {
			return err
		}
	}
	if rep.Errors > 0 {
		fmt.Fprintf(stdout, "\n!!! %d REQUESTS FAILED: the figures above are not valid. First error: %s\n", rep.Errors, rep.FirstError)
		if tail := b.api.logTail(); tail != "" {
			fmt.Fprintf(stdout, "--- last API log lines ---\n%s\n", tail)
		}
		return fmt.Errorf("%d requests failed", rep.Errors)
	}
	return nil
}
