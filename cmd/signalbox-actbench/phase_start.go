package main

import (
	"context"
	"fmt"
	"sync/atomic"
	"time"

	"github.com/google/uuid"
	enumspb "go.temporal.io/api/enums/v1"
	"go.temporal.io/sdk/client"
	"go.temporal.io/sdk/temporal"

	"github.com/signalbox/signalbox/workflows"
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

// startSide is one side's figures in the start phase. Rates are over the
// measured window; costs are CPU per workflow over the whole run (warm-up,
// window and drain), when nothing else ran.
type startSide struct {
	Started   float64  `json:"started_per_s"`
	First     float64  `json:"first_activity_per_s"`
	Completed float64  `json:"completed_per_s"`
	DrainSec  float64  `json:"drain_s"`
	Workflows int      `json:"workflows"`
	Window    cpuUsage `json:"cpu_window"`
	// HistoryEvents is the history length of one of the side's workflows.
	HistoryEvents int64 `json:"history_events"`
	HistoryBytes  int64 `json:"history_bytes"`
	// CPU milliseconds per workflow of each process.
	TemporalMS float64 `json:"temporal_cpu_ms_per_workflow"`
	BenchMS    float64 `json:"bench_cpu_ms_per_workflow"`
	PostgresMS float64 `json:"postgres_cpu_ms_per_workflow"`
}

// startResult is the start phase.
type startResult struct {
	Baseline  startSide `json:"baseline"`
	Signalbox startSide `json:"signalbox"`
	// Shaped is a second, informative baseline: bareShapedFlow, started
	// as the dispatcher starts enrollments (ExecuteWorkflow, the same ID
	// policies and search attributes).
	Shaped startSide `json:"shaped"`
}

// startPhase measures how many workflows per second each side starts, and
// sustains, with -clients clients, each of which sends its next request
// once the workflow of its previous one has returned. Both sides thus keep
// the same number of workflows in flight, and every rate is one the server
// keeps up with. (Clients that go on as soon as the start is persisted
// measure something else: the dev server then accepts starts at several
// times the rate it runs them, and the window ends with a backlog, on
// both sides; in a trial, 285 starts/s ran their first activity at 8/s.)
func (b *bench) startPhase(ctx context.Context, rep *report) error {
	fmt.Fprintf(b.progress, "start phase: %d clients, %s + %s per side\n", b.o.clients, b.o.warmup, b.o.duration)
	t, err := b.actTenant(ctx)
	if err != nil {
		return err
	}
	var res startResult

	// Baseline: SignalWithStartWorkflow of a one-activity workflow.
	err = b.withWorker(bareWorker, func() error {
		var seq atomic.Int64
		res.Baseline, err = b.startRun(ctx, "start-baseline", func(ctx context.Context) error {
			id := fmt.Sprintf("bare-start-%d", seq.Add(1))
			if _, err := b.s.tc.SignalWithStartWorkflow(ctx, id, bareSignal, bareInput{Key: id},
				client.StartWorkflowOptions{ID: id, TaskQueue: bareQueue}, bareStepWorkflow, bareInput{Key: id}); err != nil {
				return err
			}
			_, err := b.s.probe.wait(ctx, markDone, id, b.o.timeout)
			return err
		}, func() int { return b.s.probe.count(markStarted, time.Time{}, time.Time{}) })
		if err == nil {
			res.Baseline.HistoryEvents, res.Baseline.HistoryBytes, err = b.historyLength(ctx, "bare-start-1")
		}
		if err != nil {
			return err
		}
		// The enrollment-shaped bare workflow.
		seq.Store(0)
		res.Shaped, err = b.startRun(ctx, "start-shaped", func(ctx context.Context) error {
			id := fmt.Sprintf("bare-shaped-%d", seq.Add(1))
			if _, err := b.s.tc.ExecuteWorkflow(ctx, client.StartWorkflowOptions{
				ID: id, TaskQueue: bareQueue,
				WorkflowIDReusePolicy:                    enumspb.WORKFLOW_ID_REUSE_POLICY_REJECT_DUPLICATE,
				WorkflowIDConflictPolicy:                 enumspb.WORKFLOW_ID_CONFLICT_POLICY_FAIL,
				WorkflowExecutionErrorWhenAlreadyStarted: true,
				TypedSearchAttributes: temporal.NewSearchAttributes(
					workflows.WorkspaceAttribute.ValueSet(uuid.NewString()),
					workflows.AutomationAttribute.ValueSet(uuid.NewString()),
					workflows.ContactAttribute.ValueSet(uuid.NewString())),
			}, bareShapedWorkflow, bareInput{Key: id}); err != nil {
				return err
			}
			_, err := b.s.probe.wait(ctx, markDone, id, b.o.timeout)
			return err
		}, func() int { return b.s.probe.count(markStarted, time.Time{}, time.Time{}) })
		if err == nil {
			res.Shaped.HistoryEvents, res.Shaped.HistoryBytes, err = b.historyLength(ctx, "bare-shaped-1")
		}
		return err
	})
	if err != nil {
		return err
	}

	// Signalbox: POST /v1/events, each event triggering one enrollment of a
	// distinct contact, then wait for the dispatcher to start it.
	ids, err := copyContacts(ctx, b.s.store, t.ws.ID, "start", 50_000)
	if err != nil {
		return err
	}
	pool := &contactPool{ids: ids}
	var accepted atomic.Int64
	err = b.withWorker(enrollmentWorker, func() error {
		res.Signalbox, err = b.startRun(ctx, "start-signalbox", func(ctx context.Context) error {
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
		}, func() int { return int(accepted.Load()) })
		if err == nil {
			res.Signalbox.HistoryEvents, res.Signalbox.HistoryBytes, err = b.historyLength(ctx, b.s.probe.anyKey(markFirst, "enrollment-"))
		}
		return err
	})
	if err != nil {
		return err
	}
	if n, err := activeEnrollments(ctx, b.s.store, t.ws.ID); err != nil || n != 0 {
		return fmt.Errorf("%d enrollments still active after every workflow returned (%v)", n, err)
	}
	rep.Start = &res
	b.logf("baseline %.1f started/s, enrollment-shaped baseline %.1f/s, signalbox %.1f/s",
		res.Baseline.Started, res.Shaped.Started, res.Signalbox.Started)
	return nil
}

// startRun runs one side: the closed loop, then a drain until every
// workflow it started has returned; want says how many that is.
func (b *bench) startRun(ctx context.Context, name string, op func(context.Context) error, want func() int) (startSide, error) {
	p := b.s.probe
	p.reset()
	var side startSide
	before := sampleCPU(b.s.devPID)
	endWindow := b.watchWindow(ctx, name)
	w, _ := closedLoop(ctx, b.o.clients, b.o.warmup, b.o.duration, &b.fail, op)
	side.Window = endWindow()
	drain, err := b.drain(ctx, want)
	if err != nil {
		return side, err
	}
	after := sampleCPU(b.s.devPID)
	side.Started = float64(p.count(markStarted, w.from, w.to)) / w.seconds()
	side.First = float64(p.count(markFirst, w.from, w.to)) / w.seconds()
	side.Completed = float64(p.count(markDone, w.from, w.to)) / w.seconds()
	side.DrainSec = drain.Seconds()
	side.Workflows = want()
	if side.Workflows > 0 {
		run := before.usage(after)
		per := func(sec float64) float64 { return sec * 1000 / float64(side.Workflows) }
		side.TemporalMS, side.BenchMS, side.PostgresMS = per(run.TemporalSec), per(run.BenchSec), per(run.PostgresSec)
	}
	return side, nil
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
