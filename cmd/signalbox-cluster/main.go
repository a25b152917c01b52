// Command signalbox-cluster runs Signalbox's production topology on this
// machine without containers: a real Temporal server (built from the Go
// module proxy by scripts/test-cluster.sh) on PostgreSQL persistence with
// several history shards, two `signalbox api` and three `signalbox worker`
// processes. `make test-cluster` runs it.
//
//	signalbox-cluster test    drive triggers, waits and exits through both
//	                          APIs, SIGKILL a worker mid-run, and check that
//	                          every enrollment ends as it should, that the
//	                          surviving workers took over, and that
//	                          `temporal workflow list` finds the enrollments
//	                          by their search attributes
//	signalbox-cluster bench   signalbox-actbench's start phase with 1 and 3
//	                          workers against the bare SDK, and its drain
//	                          phase (a 20,000-event burst), on the cluster and
//	                          then on the dev server; prints a summary
//
// Environment: DATABASE_URL (a PostgreSQL server whose user may CREATE
// DATABASE; throwaway databases are made there and dropped), SIGNALBOX_BIN
// (bin/signalbox), TEMPORAL_SERVER_BIN, TEMPORAL_SQL_TOOL, TEMPORAL_SCHEMA_DIR
// (the module's schema/postgresql/v12), SIGNALBOX_TEMPORAL_CLI (the CLI for
// `temporal workflow list`), CLUSTER_SHARDS (history shards, default 4);
// for bench also SIGNALBOX_ACTBENCH (bin/signalbox-actbench) and
// BENCH_DURATION (each measured run, default 10s) and BENCH_ONLY (start
// or drain: that phase alone; scale: the drain of a 2,000-event burst on
// clusters of 1 and of 4 history shards, each with 1 and with 3 workers).
// Everything it starts, it stops, also on Ctrl-C.
package main

import (
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"os/signal"
	"strconv"
	"syscall"
)

func main() {
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	if err := run(ctx, os.Args[1:], os.Getenv, os.Stdout); err != nil {
		fmt.Fprintln(os.Stderr, "signalbox-cluster:", err)
		os.Exit(1)
	}
}

// env is what the command reads from the environment.
type env struct {
	databaseURL, signalboxBin, serverBin, sqlTool, schemaDir, cli string
	shards                                                        int
	// existing is SIGNALBOX_CLUSTER_ADDRESS: run the test's processes and
	// scenario on a Temporal server already running (its namespace
	// "signalbox" and the search attributes registered) instead of
	// building and starting one.
	existing string
}

func readEnv(getenv func(string) string) (env, error) {
	e := env{databaseURL: getenv("DATABASE_URL"), signalboxBin: getenv("SIGNALBOX_BIN"), serverBin: getenv("TEMPORAL_SERVER_BIN"),
		sqlTool: getenv("TEMPORAL_SQL_TOOL"), schemaDir: getenv("TEMPORAL_SCHEMA_DIR"), cli: getenv("SIGNALBOX_TEMPORAL_CLI"), shards: 4,
		existing: getenv("SIGNALBOX_CLUSTER_ADDRESS")}
	var errs []error
	need := map[string]string{"DATABASE_URL": e.databaseURL, "SIGNALBOX_BIN": e.signalboxBin, "SIGNALBOX_TEMPORAL_CLI": e.cli}
	if e.existing == "" {
		need["TEMPORAL_SERVER_BIN"], need["TEMPORAL_SQL_TOOL"], need["TEMPORAL_SCHEMA_DIR"] = e.serverBin, e.sqlTool, e.schemaDir
	}
	for name, v := range need {
		if v == "" {
			errs = append(errs, fmt.Errorf("%s is not set (scripts/test-cluster.sh sets it)", name))
		}
	}
	if v := getenv("CLUSTER_SHARDS"); v != "" {
		n, err := strconv.Atoi(v)
		if err != nil || n < 1 {
			errs = append(errs, fmt.Errorf("CLUSTER_SHARDS: want a positive number, got %q", v))
		}
		e.shards = n
	}
	return e, errors.Join(errs...)
}

func run(ctx context.Context, args []string, getenv func(string) string, stdout io.Writer) error {
	if len(args) != 1 || (args[0] != "test" && args[0] != "bench") {
		return errors.New("usage: signalbox-cluster test|bench")
	}
	e, err := readEnv(getenv)
	if err != nil {
		return err
	}
	if args[0] == "bench" {
		bin := getenv("SIGNALBOX_ACTBENCH")
		if bin == "" {
			return errors.New("SIGNALBOX_ACTBENCH is not set (scripts/bench-cluster.sh sets it)")
		}
		duration := getenv("BENCH_DURATION")
		if duration == "" {
			duration = "10s"
		}
		return runBench(ctx, e, stdout, bin, duration, getenv("BENCH_ONLY"))
	}
	return runTest(ctx, e, stdout)
}
