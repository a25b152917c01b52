// Command signalbox-segbench measures segments and event analytics on a
// generated data set, against hand-written SQL on the same database in the
// same run, and reports ratios beside the absolute figures.
//
// It creates a throwaway database on the server at DATABASE_URL, migrates
// it, and loads with COPY -contacts contacts and -events events over -days
// days (occurred_at spread evenly, newest now), -names names whose shares
// follow Zipf's law (the busiest about a fifth, the median about 1%), and
// goal values on a fifth of the events (three in five purchases; one
// purchase in twenty a refund). The rollups are then built from the events
// (store.RebuildRollups) and everything is VACUUM ANALYZEd, so the baseline
// queries get index-only scans at their best.
//
// Every figure is measured through the real HTTP API (an in-process
// server), alternating with its baseline query round by round:
//
//   - the 90-day daily chart of the busiest, a mean-volume and the median
//     name (stats, tz UTC and Europe/Paris) vs two GROUP BYs on events:
//     SELECT date_trunc('day', occurred_at), count(*) ... GROUP BY 1 (the
//     issue's), and the query of the chart's meaning (per local day: count,
//     distinct contacts and goal sum of the live, unexpired events); before
//     each round one event of that name is recorded, so the current day's
//     bucket is always stale and is recomputed, as on a live dashboard.
//     The first (cold) request is reported apart, and store.EventStats
//     called directly (no HTTP) beside the API.
//   - the segment count "performed NAME >= 3 times in 30 days AND purchase
//     sum >= 100 in 90 days" vs a hand-written SQL query of the same meaning.
//   - top contacts of a name over 30 days (p50).
//   - single-event ingest through POST /v1/events at -clients clients with
//     the rollups kept vs a second API on the same database whose store
//     skips them (store.Config.SkipRollups), alternating -ingest-rounds
//     pairs of -ingest-window each (the side that goes first alternates);
//     the ratio is the median of the per-pair ratios.
//
// Usage:
//
//	DATABASE_URL=postgres://postgres@127.0.0.1:5432/postgres go run ./cmd/signalbox-segbench [-events 1000000]
package main

import (
	"context"
	"flag"
	"fmt"
	"os"
	"os/signal"
	"runtime/pprof"
	"syscall"
)

func main() {
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	if err := run(ctx, os.Args[1:], os.Getenv); err != nil {
		fmt.Fprintln(os.Stderr, "signalbox-segbench:", err)
		os.Exit(1)
	}
}

// options are the command's flags.
type options struct {
	contacts, events, names, days int
	rounds                        int
	clients                       int
	ingestRounds                  int
	ingestWindow                  string
	keep                          bool
	reuse                         string
	phases                        string
	cpuProfile                    string
}

func run(ctx context.Context, args []string, getenv func(string) string) error {
	fs := flag.NewFlagSet("signalbox-segbench", flag.ContinueOnError)
	var o options
	fs.IntVar(&o.contacts, "contacts", 100_000, "contacts to generate")
	fs.IntVar(&o.events, "events", 1_000_000, "events to generate")
	fs.IntVar(&o.names, "names", 50, "event names")
	fs.IntVar(&o.days, "days", 90, "days the events span")
	fs.IntVar(&o.rounds, "rounds", 30, "rounds of each read measurement")
	fs.IntVar(&o.clients, "clients", 16, "concurrent clients of the ingest phase")
	fs.IntVar(&o.ingestRounds, "ingest-rounds", 5, "rounds of each side of the ingest phase")
	fs.StringVar(&o.ingestWindow, "ingest-window", "4s", "length of one ingest round")
	fs.BoolVar(&o.keep, "keep", false, "keep the database (its name is printed)")
	fs.StringVar(&o.reuse, "reuse", "", "run on a database kept by an earlier -keep run instead of loading a new one")
	fs.StringVar(&o.phases, "phases", "chart,segment,top,ingest", "phases to run, comma-separated")
	fs.StringVar(&o.cpuProfile, "cpuprofile", "", "write a CPU profile of the whole run (the in-process API included) to this file")
	if err := fs.Parse(args); err != nil {
		return err
	}
	if o.cpuProfile != "" {
		f, err := os.Create(o.cpuProfile)
		if err != nil {
			return err
		}
		defer f.Close()
		if err := pprof.StartCPUProfile(f); err != nil {
			return err
		}
		defer pprof.StopCPUProfile()
	}
	url := getenv("DATABASE_URL")
	if url == "" {
		return fmt.Errorf("DATABASE_URL is required")
	}
	return bench(ctx, url, o)
}
