package main

import (
	"context"
	"fmt"
	"io"
	"os"
	"slices"
	"strconv"
	"text/tabwriter"
	"time"
)

// scaleBurst is the burst of each run of the scale bench: a tenth of the
// drain phase's, so that four runs, each until every enrollment has ended,
// fit in minutes on a small machine.
const scaleBurst = 2000

// scaleVariant is what the burst's enrollments do.
type scaleVariant struct {
	actions string
	args    []string
	environ []string
}

// slowActions makes each enrollment's step a webhook whose receiver takes
// 250 ms to answer, with 4 activities at once per worker: a worker then
// finishes at most 16 enrollments a second, fewer than the cluster can
// start on this machine, so the workers are what the drain waits for, as
// with slow webhook receivers in production, and more of them drain it
// faster. (With fast actions on 2 cores the Temporal server and its
// PostgreSQL are what it waits for, and more workers only add their own
// load.)
var slowActions = scaleVariant{actions: "webhook 250ms, 4 at once", args: []string{"-action-latency", "250ms"},
	environ: []string{"WORKER_CONCURRENCY=4"}}

// runScale is `BENCH_ONLY=scale`: the drain of a burst on clusters of 1
// and of 4 history shards, each with 1 and with 3 workers, and on 4 shards
// the same with slow actions (slowActions), to show what more shards and
// more workers buy on this machine: how fast the outbox
// empties, and how fast every enrollment of the burst has ended (each run
// waits for that, so that no workflow is left for the next run's workers).
// Each cluster is made afresh (the shard count is fixed at a cluster's
// creation).
func runScale(ctx context.Context, e env, out io.Writer, actbench, duration string) error {
	dir, err := os.MkdirTemp("", "signalbox-bench-scale-")
	if err != nil {
		return err
	}
	defer os.RemoveAll(dir)
	start := time.Now()
	var runs []benchRun
	for _, shards := range []int{1, 4} {
		c, args, err := benchCluster(ctx, e, out, dir, shards)
		if err != nil {
			return err
		}
		args = append(args, "-burst", strconv.Itoa(scaleBurst), "-drain-complete")
		variants := []scaleVariant{{actions: "update_contact"}}
		if shards == 4 {
			variants = append(variants, slowActions)
		}
		for _, v := range variants {
			for _, workers := range []int{1, 3} {
				run, err := actbenchRun(ctx, e, out, actbench, duration, fmt.Sprintf("cluster (%d shards)", shards), "drain",
					workers, append(slices.Clone(args), v.args...), v.environ...)
				if err != nil {
					c.stop()
					return err
				}
				run.actions = v.actions
				runs = append(runs, run)
			}
		}
		c.stop()
	}
	fmt.Fprintf(out, "\nscale: drain of a burst of %d triggering events (absolute rates on this machine)\n", scaleBurst)
	tw := tabwriter.NewWriter(out, 0, 0, 2, ' ', tabwriter.AlignRight)
	fmt.Fprintln(tw, "server\tactions\tworkers\tingest/s\tbacklog at end\toutbox drain s\tintents/s\tall ended s\tenrollments/s\t")
	for _, r := range runs {
		if d := r.fig.Drain; d != nil {
			fmt.Fprintf(tw, "%s\t%s\t%d\t%.0f\t%d\t%.0f\t%.1f\t%.0f\t%.1f\t\n", r.server, r.actions, r.workers, d.IngestRate, d.BacklogAtEnd,
				d.DrainSec, d.DrainRate, d.AllEndedSec, d.AllEndedRate)
		}
	}
	_ = tw.Flush()
	fmt.Fprintf(out, "\nbench-cluster scale took %s\n", time.Since(start).Round(time.Second))
	return nil
}
