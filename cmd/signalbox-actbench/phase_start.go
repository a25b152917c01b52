package main

import (
	"context"
	"fmt"
	"os"
	"sync/atomic"
	"time"

	"go.temporal.io/sdk/client"

	"github.com/signalbox/signalbox/definition"
	"github.com/signalbox/signalbox/dispatch"
)

// Automations of the act phases, saved through the API. The step is
// update_contact: cheap, but a real activity with a real database write.
const (
	startEvent      = "bench.start"
	startAutomation = `{"name":"bench-start","trigger":{"event":"bench.start"},
		"steps":[{"id":"step","type":"update_contact","properties":{"started":"true"}}]}`
	waitStartEvent = "bench.wait.start"
	resumeEvent    = "bench.wait.resume"
	waitAutomation = `{"name":"bench-resume","trigger":{"event":"bench.wait.start"},
		"steps":[{"id":"wait","type":"wait_for_event","event":"bench.wait.resume","timeout":"1h",
		          "yes":[{"id":"step","type":"update_contact","properties":{"resumed":"true"}}]}]}`
)

// actTenant is the workspace of the start, latency and resume phases, made
// on first use with both automations enabled.
func (b *bench) actTenant(ctx context.Context) (*tenant, error) {
	if b.act != nil {
		return b.act, nil
	}
	t, err := b.s.newTenant(ctx, "actbench")
	if err != nil {
		return nil, err
	}
	for _, def := range []string{startAutomation, waitAutomation} {
		if _, err := t.automation(ctx, def); err != nil {
			return nil, err
		}
	}
	b.act = t
	return t, nil
}

// startSide is one side's figures in the start phase, pooled over its
// runs. Rates are over the measured windows; costs are CPU per workflow
// over the whole runs (warm-ups, windows and drains), when nothing else
// ran.
type startSide struct {
	Started   float64  `json:"started_per_s"`
	First     float64  `json:"first_activity_per_s"`
	Completed float64  `json:"completed_per_s"`
	DrainSec  float64  `json:"drain_s"`
	Workflows int      `json:"workflows"`
	Window    cpuUsage `json:"cpu_window"`
	// Runs are the side's runs in the order they ran, each with its own
	// rate: how far they differ shows how steady the machine was.
	Runs []startRunFigures `json:"runs"`
	// HistoryEvents is the history length of one of the side's workflows.
	HistoryEvents int64 `json:"history_events"`
	HistoryBytes  int64 `json:"history_bytes"`
	// CPU milliseconds per workflow of each process.
	TemporalMS float64 `json:"temporal_cpu_ms_per_workflow"`
	BenchMS    float64 `json:"bench_cpu_ms_per_workflow"`
	PostgresMS float64 `json:"postgres_cpu_ms_per_workflow"`
}

// startRunFigures is one run of one side: its counts in its window, and
// the CPU it used from its start to the end of its drain.
type startRunFigures struct {
	Order     int      `json:"order"`
	Seconds   float64  `json:"window_s"`
	Started   int      `json:"started"`
	First     int      `json:"first_activity"`
	Completed int      `json:"completed"`
	DrainSec  float64  `json:"drain_s"`
	Workflows int      `json:"workflows"`
	Window    cpuUsage `json:"cpu_window"`
	Run       cpuUsage `json:"cpu_run"`
}

// pool sums a side's runs into its figures.
func (s *startSide) pool() {
	var secs, started, first, completed float64
	var run cpuUsage
	s.Workflows, s.DrainSec, s.Window = 0, 0, cpuUsage{}
	for _, r := range s.Runs {
		secs += r.Seconds
		started += float64(r.Started)
		first += float64(r.First)
		completed += float64(r.Completed)
		s.DrainSec += r.DrainSec
		s.Workflows += r.Workflows
		s.Window = s.Window.plus(r.Window.scaled(r.Seconds))
		run = run.plus(r.Run)
	}
	if secs > 0 {
		s.Started, s.First, s.Completed = started/secs, first/secs, completed/secs
		s.Window = s.Window.scaled(1 / secs)
	}
	if s.Workflows > 0 {
		per := func(sec float64) float64 { return sec * 1000 / float64(s.Workflows) }
		s.TemporalMS, s.BenchMS, s.PostgresMS = per(run.TemporalSec), per(run.BenchSec), per(run.PostgresSec)
	}
}

// startResult is the start phase.
type startResult struct {
	Baseline  startSide `json:"baseline"`
	Signalbox startSide `json:"signalbox"`
	// Shaped is a second, informative baseline: bareShapedFlow, the
	// enrollment's shape in Temporal without its work, started as the
	// dispatcher starts enrollments (ExecuteWorkflow, the same ID policies
	// and search attributes).
	Shaped startSide `json:"shape"`
	// Order is the sides in the order they ran.
	Order []string `json:"order"`
}

// defaultStartOrder is the order of the start phase's runs: baseline and
// Signalbox mirrored, so that what drifts during the phase weighs on both
// alike. The dev server slows as its database fills: four baseline runs
// in a row measured 47, 45, 40 and 34 workflows/s. The enrollment-shaped
// baseline, only informative, runs last.
var defaultStartOrder = []string{"baseline", "signalbox", "signalbox", "baseline", "shape"}

// startPhase measures how many workflows per second each side starts, and
// sustains, with -clients clients, each of which sends its next request
// once the workflow of its previous one has returned. Both sides thus keep
// the same number of workflows in flight, and every rate is one the server
// keeps up with. (Clients that go on as soon as the start is persisted
// measure something else: the dev server then accepts starts at several
// times the rate it runs them, and the window ends with a backlog, on
// both sides; in a trial, 285 starts/s ran their first activity at 8/s.)
// The sides run in -start-order, and each side's figures pool its runs.
func (b *bench) startPhase(ctx context.Context, rep *report) error {
	fmt.Fprintf(b.progress, "start phase: %d clients, %d runs of %s + %s\n", b.o.clients, len(b.o.startOrder), b.o.warmup, b.o.duration)
	t, err := b.actTenant(ctx)
	if err != nil {
		return err
	}
	ids, err := copyContacts(ctx, b.s.store, t.ws.ID, "start", 50_000)
	if err != nil {
		return err
	}
	pool := &contactPool{ids: ids}
	var seq atomic.Int64
	def, problems := definition.Parse([]byte(startAutomation))
	if len(problems) > 0 {
		return fmt.Errorf("start automation: %v", problems)
	}
	var accepted atomic.Int64
	probeCount := func() int { return b.s.probe.count(markStarted, time.Time{}, time.Time{}) }

	type sideSpec struct {
		side   *startSide
		worker workerKind
		op     func(context.Context) error
		want   func() int
		// history names a workflow of the run, to read its length.
		history func() string
	}
	res := startResult{Order: b.o.startOrder}
	specs := map[string]sideSpec{
		// SignalWithStartWorkflow of a one-activity workflow.
		"baseline": {side: &res.Baseline, worker: bareWorker, want: probeCount,
			op: func(ctx context.Context) error {
				id := fmt.Sprintf("bare-start-%d-%d", os.Getpid(), seq.Add(1))
				if _, err := b.s.tc.SignalWithStartWorkflow(ctx, id, bareSignal, bareInput{Key: id},
					client.StartWorkflowOptions{ID: id, TaskQueue: bareQueue}, bareStepWorkflow, bareInput{Key: id}); err != nil {
					return err
				}
				_, err := b.s.probe.wait(ctx, markDone, id, b.o.timeout)
				return err
			},
			history: func() string { return b.s.probe.anyKey(markDone, "bare-start-") }},
		// The enrollment-shaped bare workflow. Its probe key is its
		// input's contact, as for an enrollment.
		"shape": {side: &res.Shaped, worker: bareWorker, want: probeCount,
			op: func(ctx context.Context) error {
				id := fmt.Sprintf("bare-shaped-%d-%d", os.Getpid(), seq.Add(1))
				in := bareShapedInput(def)
				if _, err := b.s.tc.ExecuteWorkflow(ctx, dispatch.StartOptions(id, bareQueue, in), bareShapedWorkflow, in); err != nil {
					return err
				}
				_, err := b.s.probe.wait(ctx, markDone, in.ContactID.String(), b.o.timeout)
				return err
			},
			history: func() string { return b.s.probe.anyKey(markFirst, "bare-shaped-") }},
		// POST /v1/events, each event triggering one enrollment of a
		// distinct contact, then wait for the dispatcher to start it.
		"signalbox": {side: &res.Signalbox, worker: enrollmentWorker,
			want: func() int { return int(accepted.Load()) },
			op: func(ctx context.Context) error {
				c, err := pool.next()
				if err != nil {
					return err
				}
				if err := t.event(ctx, startEvent, c, 1, 0); err != nil {
					return err
				}
				accepted.Add(1)
				_, err = b.s.probe.wait(ctx, markDone, c.String(), b.o.timeout)
				return err
			},
			history: func() string { return b.s.probe.anyKey(markFirst, "enrollment-") }},
	}
	for i, name := range b.o.startOrder {
		spec := specs[name]
		accepted.Store(0)
		err := b.withWorker(spec.worker, func() error {
			run, err := b.startRun(ctx, fmt.Sprintf("start-%d-%s", i+1, name), spec.op, spec.want)
			if err != nil {
				return err
			}
			run.Order = i + 1
			spec.side.Runs = append(spec.side.Runs, run)
			if spec.side.HistoryEvents == 0 {
				spec.side.HistoryEvents, spec.side.HistoryBytes, err = b.historyLength(ctx, spec.history())
			}
			return err
		})
		if err != nil {
			return err
		}
		b.logf("run %d, %s: %.1f started/s", i+1, name, float64(spec.side.Runs[len(spec.side.Runs)-1].Started)/
			spec.side.Runs[len(spec.side.Runs)-1].Seconds)
	}
	for _, spec := range specs {
		spec.side.pool()
	}
	if n, err := activeEnrollments(ctx, b.s.store, t.ws.ID); err != nil || n != 0 {
		return fmt.Errorf("%d enrollments still active after every workflow returned (%v)", n, err)
	}
	rep.Start = &res
	b.logf("baseline %.1f started/s, enrollment-shaped baseline %.1f/s, signalbox %.1f/s",
		res.Baseline.Started, res.Shaped.Started, res.Signalbox.Started)
	return nil
}

// startRun runs one side once: the closed loop, then a drain until every
// workflow it started has returned; want says how many that is.
func (b *bench) startRun(ctx context.Context, name string, op func(context.Context) error, want func() int) (startRunFigures, error) {
	p := b.s.probe
	p.reset()
	var run startRunFigures
	before := sampleCPU(b.s.devPID)
	endWindow := b.watchWindow(ctx, name)
	w, _ := closedLoop(ctx, b.o.clients, b.o.warmup, b.o.duration, &b.fail, op)
	run.Window = endWindow()
	drain, err := b.drain(ctx, want)
	if err != nil {
		return run, err
	}
	run.Run = before.usage(sampleCPU(b.s.devPID))
	run.Seconds = w.seconds()
	run.Started = p.count(markStarted, w.from, w.to)
	run.First = p.count(markFirst, w.from, w.to)
	run.Completed = p.count(markDone, w.from, w.to)
	run.DrainSec = drain.Seconds()
	run.Workflows = want()
	return run, nil
}

// historyLength reads how many events a workflow's history has, and how
// many bytes.
func (b *bench) historyLength(ctx context.Context, workflowID string) (events, size int64, err error) {
	if workflowID == "" {
		return 0, 0, fmt.Errorf("no workflow to describe")
	}
	d, err := b.s.tc.DescribeWorkflowExecution(ctx, workflowID, "")
	if err != nil {
		return 0, 0, fmt.Errorf("describe %s: %w", workflowID, err)
	}
	info := d.GetWorkflowExecutionInfo()
	return info.GetHistoryLength(), info.GetHistorySizeBytes(), nil
}
