package main

import (
	"context"
	"fmt"
	"math"
	"sync/atomic"
	"time"

	"go.temporal.io/sdk/client"
)

// latencyResult is the latency phase, in milliseconds.
type latencyResult struct {
	// Baseline is SignalWithStartWorkflow called → its first activity runs.
	Baseline summary `json:"baseline"`
	// Signalbox is the 202 of POST /v1/events received → the first step's
	// activity (UpdateContact) runs.
	Signalbox summary `json:"signalbox"`
	// SignalboxFromSend is the same from the request being sent.
	SignalboxFromSend summary `json:"signalbox_from_send"`
	// Stages break both down.
	BaselineStages  []stage  `json:"baseline_stages"`
	SignalboxStages []stage  `json:"signalbox_stages"`
	BaselineCPU     cpuUsage `json:"baseline_cpu"`
	SignalboxCPU    cpuUsage `json:"signalbox_cpu"`
}

// latencyPhase measures, open loop at -rate, how long a new enrollment
// takes to reach its first step, against a bare start reaching its first
// activity. The baseline is timed from the SDK call because that call is
// what the dispatcher makes after the 202: the difference between the two
// is what the outbox costs (wake-up, claim, delivery, marking).
func (b *bench) latencyPhase(ctx context.Context, rep *report) error {
	n, skip := b.openLoopSize()
	fmt.Fprintf(b.progress, "latency phase: %.0f/s open loop, %d requests per side (first %d unmeasured)\n", b.o.rate, n, skip)
	t, err := b.actTenant(ctx)
	if err != nil {
		return err
	}
	var res latencyResult
	p := b.s.probe

	var base latencies
	var baseStages, sbStages stages
	err = b.withWorker(bareWorker, func() error {
		p.reset()
		end := b.watchWindow(ctx, "latency-baseline")
		openLoop(ctx, b.o.rate, n, &b.fail, func(ctx context.Context, i int) error {
			id := fmt.Sprintf("bare-latency-%d", i)
			sent := time.Now()
			if _, err := b.s.tc.SignalWithStartWorkflow(ctx, id, bareSignal, bareInput{Key: id},
				client.StartWorkflowOptions{ID: id, TaskQueue: bareQueue}, bareStepWorkflow, bareInput{Key: id}); err != nil {
				return err
			}
			at, err := p.wait(ctx, markAct(bareStep), id, b.o.timeout)
			if err == nil && i >= skip {
				base.add(at.Sub(sent))
				rpcStages(&baseStages, p, id, "SignalWithStartWorkflowExecution", "SDK called", sent, at, "its activity runs")
			}
			return err
		})
		res.BaselineCPU = end()
		_, err := b.drain(ctx, func() int { return p.count(markStarted, time.Time{}, time.Time{}) })
		return err
	})
	if err != nil {
		return err
	}

	ids, err := copyContacts(ctx, b.s.store, t.ws.ID, "latency", n)
	if err != nil {
		return err
	}
	pool := &contactPool{ids: ids}
	var sb, fromSend latencies
	var accepted atomic.Int64
	err = b.withWorker(enrollmentWorker, func() error {
		p.reset()
		end := b.watchWindow(ctx, "latency-signalbox")
		openLoop(ctx, b.o.rate, n, &b.fail, func(ctx context.Context, i int) error {
			c, err := pool.next()
			if err != nil {
				return err
			}
			sent := time.Now()
			if err := t.event(ctx, startEvent, c, 1, 0); err != nil {
				return err
			}
			acceptedAt := time.Now()
			accepted.Add(1)
			at, err := p.wait(ctx, markAct("UpdateContact"), c.String(), b.o.timeout)
			if err == nil && i >= skip {
				sb.add(at.Sub(acceptedAt))
				fromSend.add(at.Sub(sent))
				sbStages.add("request sent → 202", acceptedAt.Sub(sent))
				rpcStages(&sbStages, p, p.workflowOf(c.String()), "StartWorkflowExecution", "202", acceptedAt, at, "UpdateContact runs")
			}
			return err
		})
		res.SignalboxCPU = end()
		_, err := b.drain(ctx, func() int { return int(accepted.Load()) })
		return err
	})
	if err != nil {
		return err
	}
	res.Baseline, res.Signalbox, res.SignalboxFromSend = base.summary(), sb.summary(), fromSend.summary()
	res.BaselineStages, res.SignalboxStages = baseStages.summaries(), sbStages.summaries()
	rep.Latency = &res
	b.logf("p50 baseline %.1f ms, signalbox %.1f ms", res.Baseline.P50, res.Signalbox.P50)
	return nil
}

// openLoopSize is how many requests an open-loop run sends at -rate over
// the warm-up and the window, and how many of the first are the warm-up.
func (b *bench) openLoopSize() (n, skip int) {
	skip = int(math.Round(b.o.rate * b.o.warmup.Seconds()))
	n = skip + max(int(math.Round(b.o.rate*b.o.duration.Seconds())), 1)
	return n, skip
}

// rpcStages splits from → at around the gRPC call that started or
// signalled the workflow: from → call sent (for Signalbox: the outbox's
// wake-up and claim; nothing for the baseline, whose from is the call), the
// call, and its answer → at (Temporal's matching and workflow task, up to
// the activity running).
func rpcStages(st *stages, p *probe, workflowID, call, fromName string, from, at time.Time, what string) {
	sent, ok1 := p.at(markRPCSent+call, workflowID)
	answered, ok2 := p.at(markRPCAnswered+call, workflowID)
	if !ok1 || !ok2 {
		return
	}
	st.add(fromName+" → "+call+" sent", sent.Sub(from))
	st.add(call+" call", answered.Sub(sent))
	st.add("answered → "+what, at.Sub(answered))
}
