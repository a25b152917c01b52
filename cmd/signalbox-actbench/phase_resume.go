package main

import (
	"context"
	"errors"
	"fmt"
	"sync"
	"time"

	"go.temporal.io/sdk/client"
)

// resumeResult is the resume phase, in milliseconds.
type resumeResult struct {
	// Baseline is SignalWorkflow called → the waiting workflow's next
	// activity runs.
	Baseline summary `json:"baseline"`
	// Signalbox is the 202 of the resuming event → the enrollment's next
	// activity runs (the "yes" line of its step log: it has left the
	// wait; the signal is the record path's won claim, so nothing is
	// cleared).
	Signalbox summary `json:"signalbox"`
	// SignalboxStep is the same to the yes branch's step (UpdateContact),
	// after the wait's bookkeeping.
	SignalboxStep summary `json:"signalbox_step"`
	// Waiting is how many workflows waited on each side.
	Waiting int `json:"waiting"`
	// Stages break both down.
	BaselineStages  []stage  `json:"baseline_stages"`
	SignalboxStages []stage  `json:"signalbox_stages"`
	BaselineCPU     cpuUsage `json:"baseline_cpu"`
	SignalboxCPU    cpuUsage `json:"signalbox_cpu"`
}

// settle is how long a phase lets workflows that have logged their wait
// reach it: the log line is written by an activity, and the workflow task
// that follows it is what blocks on the signal.
const settle = time.Second

// resumePhase enrolls contacts in wait_for_event (1h) then update_contact,
// waits until every one has logged "waiting", then sends the resuming
// events open loop at -rate; the baseline does the same with a bare
// workflow that runs an activity, waits on a signal or a timer, then runs
// another activity.
func (b *bench) resumePhase(ctx context.Context, rep *report) error {
	n, skip := b.openLoopSize()
	fmt.Fprintf(b.progress, "resume phase: %d waiting workflows per side, resumed at %.0f/s (first %d unmeasured)\n", n, b.o.rate, skip)
	t, err := b.actTenant(ctx)
	if err != nil {
		return err
	}
	res := resumeResult{Waiting: n}
	p := b.s.probe

	var base latencies
	var baseStages, sbStages stages
	err = b.withWorker(bareWorker, func() error {
		p.reset()
		ids := make([]string, n)
		for i := range ids {
			ids[i] = fmt.Sprintf("bare-wait-%d", i)
		}
		if err := parallel(ctx, 16, len(ids), func(i int) error {
			_, err := b.s.tc.ExecuteWorkflow(ctx, client.StartWorkflowOptions{ID: ids[i], TaskQueue: bareQueue},
				bareWaitWorkflow, bareInput{Key: ids[i]})
			return err
		}); err != nil {
			return err
		}
		if err := b.waitUntil(ctx, "baseline workflows waiting", func() (bool, error) {
			return p.count(markActDone(bareRegister), time.Time{}, time.Time{}) >= n, nil
		}); err != nil {
			return err
		}
		time.Sleep(settle)
		end := b.watchWindow(ctx, "resume-baseline")
		openLoop(ctx, b.o.rate, n, &b.fail, func(ctx context.Context, i int) error {
			sent := time.Now()
			if err := b.s.tc.SignalWorkflow(ctx, ids[i], "", bareSignal, bareInput{Key: ids[i]}); err != nil {
				return err
			}
			at, err := p.wait(ctx, markAct(bareStep), ids[i], b.o.timeout)
			if err == nil && i >= skip {
				base.add(at.Sub(sent))
				rpcStages(&baseStages, p, ids[i], "SignalWorkflowExecution", "SDK called", sent, at, "next activity runs")
			}
			return err
		})
		res.BaselineCPU = end()
		_, err := b.drain(ctx, func() int { return n })
		return err
	})
	if err != nil {
		return err
	}

	contacts, err := copyContacts(ctx, b.s.store, t.ws.ID, "resume", n)
	if err != nil {
		return err
	}
	var left, step latencies
	err = b.withWorker(enrollmentWorker, func() error {
		p.reset()
		if err := t.eventBatch(ctx, waitStartEvent, contacts); err != nil {
			return err
		}
		if err := b.waitUntil(ctx, "enrollments waiting", func() (bool, error) {
			k, err := countStepOutcomes(ctx, b.s.store, t.ws.ID, "wait", "waiting")
			return k >= n, err
		}); err != nil {
			return err
		}
		time.Sleep(settle)
		end := b.watchWindow(ctx, "resume-signalbox")
		openLoop(ctx, b.o.rate, n, &b.fail, func(ctx context.Context, i int) error {
			c := contacts[i].String()
			if err := t.event(ctx, resumeEvent, contacts[i], 0, 1); err != nil {
				return err
			}
			accepted := time.Now()
			// The "yes" line is the enrollment's second (after "waiting").
			at, err := p.wait(ctx, markAct("RecordStep"), stepKey(p.workflowOf(c), 2), b.o.timeout)
			if err != nil {
				return err
			}
			at2, err := p.wait(ctx, markAct("UpdateContact"), c, b.o.timeout)
			if err == nil && i >= skip {
				left.add(at.Sub(accepted))
				step.add(at2.Sub(accepted))
				b.resumeStages(&sbStages, c, accepted, at, at2)
			}
			return err
		})
		res.SignalboxCPU = end()
		_, err := b.drain(ctx, func() int { return n })
		return err
	})
	if err != nil {
		return err
	}
	res.Baseline, res.Signalbox, res.SignalboxStep = base.summary(), left.summary(), step.summary()
	res.BaselineStages, res.SignalboxStages = baseStages.summaries(), sbStages.summaries()
	rep.Resume = &res
	b.logf("p50 baseline %.1f ms, signalbox %.1f ms (to the step %.1f ms)", res.Baseline.P50, res.Signalbox.P50, res.SignalboxStep.P50)
	return nil
}

// resumeStages breaks a resumed enrollment's way from the 202 to its next
// step into the signal's delivery and each activity and workflow task on
// the way: the "yes" line of the log (RecordStep, the enrollment's second
// line after "waiting"), then UpdateContact.
func (b *bench) resumeStages(st *stages, contact string, accepted, left, stepped time.Time) {
	p := b.s.probe
	wf := p.workflowOf(contact)
	rpcStages(st, p, wf, "SignalWorkflowExecution", "202", accepted, left, "RecordStep (yes) runs")
	logDone, ok := p.at(markActDone("RecordStep"), stepKey(wf, 2))
	if !ok {
		return
	}
	st.add("RecordStep runs", logDone.Sub(left))
	st.add("→ UpdateContact runs", stepped.Sub(logDone))
}

// parallel runs f(i) for i in [0, n) on at most width goroutines and
// returns every error.
func parallel(ctx context.Context, width, n int, f func(i int) error) error {
	var (
		wg   sync.WaitGroup
		mu   sync.Mutex
		errs []error
		sem  = make(chan struct{}, width)
	)
	for i := range n {
		if ctx.Err() != nil {
			break
		}
		sem <- struct{}{}
		wg.Add(1)
		go func() {
			defer wg.Done()
			defer func() { <-sem }()
			if err := f(i); err != nil {
				mu.Lock()
				errs = append(errs, err)
				mu.Unlock()
			}
		}()
	}
	wg.Wait()
	if err := ctx.Err(); err != nil {
		return err
	}
	return errors.Join(errs...)
}
