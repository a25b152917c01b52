package main

import (
	"context"
	"fmt"
	"path"
	"strings"
	"sync"
	"time"

	"go.temporal.io/api/workflowservice/v1"
	"go.temporal.io/sdk/activity"
	"go.temporal.io/sdk/client"
	"go.temporal.io/sdk/interceptor"
	"go.temporal.io/sdk/workflow"
	"google.golang.org/grpc"

	"github.com/signalbox/signalbox/activities"
	"github.com/signalbox/signalbox/workflows"
)

// What a probe mark records.
const (
	// markStarted: the Temporal client's ExecuteWorkflow or
	// SignalWithStartWorkflow returned without error, so the server has
	// persisted the start. For the baseline the caller is the bench; for
	// Signalbox it is the outbox dispatcher.
	markStarted = "started"
	// markFirst: the first activity of a workflow began to run.
	markFirst = "first"
	// markDone: the workflow function returned (outside replay), keyed like
	// markStarted.
	markDone = "done"
)

// Marks of the gRPC calls that start and signal workflows, followed by the
// call's name and keyed by workflow id: sent when the call began, answered
// when it returned.
const (
	markRPCSent     = "rpc-sent:"
	markRPCAnswered = "rpc-answered:"
)

// markAct and markActDone name an activity's first start and first end.
func markAct(name string) string     { return "act:" + name }
func markActDone(name string) string { return "actdone:" + name }

// mark is one observation: what happened, to which key. The key is the
// enrollment's contact id when the workflow or activity input carries one
// (the HTTP side knows the contact from the 202, not the workflow id), and
// the workflow id otherwise (the baseline, and the bookkeeping activities).
type mark struct{ what, key string }

// probeEntry is when a mark was first seen, and a channel closed then.
type probeEntry struct {
	at time.Time
	ch chan struct{}
}

// probe times both sides with the same instruments: a client interceptor
// sees starts succeed, a worker interceptor sees activities begin and end
// and workflows return. The real activities are registered untouched, as
// production registers them, and the baseline's are timed by the same code,
// so the two sides differ only in what they are.
type probe struct {
	interceptor.InterceptorBase
	mu      sync.Mutex
	entries map[mark]*probeEntry
	// workflows maps an enrollment's contact to its workflow id.
	workflows map[string]string
}

func newProbe() *probe {
	return &probe{entries: map[mark]*probeEntry{}, workflows: map[string]string{}}
}

// reset forgets every mark, between phases.
func (p *probe) reset() {
	p.mu.Lock()
	p.entries, p.workflows = map[mark]*probeEntry{}, map[string]string{}
	p.mu.Unlock()
}

// alias notes that key (a contact) is the workflow's.
func (p *probe) alias(key, workflowID string) {
	if key == workflowID {
		return
	}
	p.mu.Lock()
	p.workflows[key] = workflowID
	p.mu.Unlock()
}

// workflowOf returns the workflow id of a key: itself, unless it is an
// enrollment's contact.
func (p *probe) workflowOf(key string) string {
	p.mu.Lock()
	defer p.mu.Unlock()
	if wf, ok := p.workflows[key]; ok {
		return wf
	}
	return key
}

// at returns when a mark was seen, if it was.
func (p *probe) at(what, key string) (time.Time, bool) {
	p.mu.Lock()
	defer p.mu.Unlock()
	if e := p.entries[mark{what, key}]; e != nil && !e.at.IsZero() {
		return e.at, true
	}
	return time.Time{}, false
}

// unary is a gRPC client interceptor that times the calls that start and
// signal workflows, whoever makes them (the bench, the SDK's client or the
// dispatcher's raw WorkflowService calls).
func (p *probe) unary(ctx context.Context, method string, req, reply any, cc *grpc.ClientConn,
	invoker grpc.UnaryInvoker, opts ...grpc.CallOption) error {
	var wf string
	switch r := req.(type) {
	case *workflowservice.StartWorkflowExecutionRequest:
		wf = r.GetWorkflowId()
	case *workflowservice.SignalWithStartWorkflowExecutionRequest:
		wf = r.GetWorkflowId()
	case *workflowservice.SignalWorkflowExecutionRequest:
		wf = r.GetWorkflowExecution().GetWorkflowId()
	}
	sent := time.Now()
	err := invoker(ctx, method, req, reply, cc, opts...)
	if wf != "" && err == nil {
		call := path.Base(method)
		p.record(markRPCSent+call, wf, sent)
		p.record(markRPCAnswered+call, wf, time.Now())
	}
	return err
}

// record notes a mark at time t unless it was seen before.
func (p *probe) record(what, key string, t time.Time) {
	if key == "" {
		return
	}
	p.mu.Lock()
	defer p.mu.Unlock()
	k := mark{what, key}
	e := p.entries[k]
	if e == nil {
		e = &probeEntry{ch: make(chan struct{})}
		p.entries[k] = e
	}
	if e.at.IsZero() {
		e.at = t
		close(e.ch)
	}
}

// wait returns when the mark is first seen, or an error after timeout.
func (p *probe) wait(ctx context.Context, what, key string, timeout time.Duration) (time.Time, error) {
	p.mu.Lock()
	k := mark{what, key}
	e := p.entries[k]
	if e == nil {
		e = &probeEntry{ch: make(chan struct{})}
		p.entries[k] = e
	}
	p.mu.Unlock()
	t := time.NewTimer(timeout)
	defer t.Stop()
	select {
	case <-e.ch:
		return e.at, nil
	case <-ctx.Done():
		return time.Time{}, ctx.Err()
	case <-t.C:
		return time.Time{}, fmt.Errorf("timed out after %s waiting for %s of %s", timeout, what, key)
	}
}

// count is how many marks of a kind were seen in [from, to); a zero to
// means no upper bound.
func (p *probe) count(what string, from, to time.Time) int {
	p.mu.Lock()
	defer p.mu.Unlock()
	n := 0
	for k, e := range p.entries {
		if k.what != what || e.at.IsZero() || e.at.Before(from) || (!to.IsZero() && !e.at.Before(to)) {
			continue
		}
		n++
	}
	return n
}

// anyKey returns the key of some mark of a kind whose key has the prefix,
// or "".
func (p *probe) anyKey(what, prefix string) string {
	p.mu.Lock()
	defer p.mu.Unlock()
	for k := range p.entries {
		if k.what == what && strings.HasPrefix(k.key, prefix) {
			return k.key
		}
	}
	return ""
}

// InterceptClient implements interceptor.ClientInterceptor.
func (p *probe) InterceptClient(next interceptor.ClientOutboundInterceptor) interceptor.ClientOutboundInterceptor {
	return &probeClient{ClientOutboundInterceptorBase: interceptor.ClientOutboundInterceptorBase{Next: next}, p: p}
}

// InterceptActivity implements interceptor.WorkerInterceptor.
func (p *probe) InterceptActivity(ctx context.Context, next interceptor.ActivityInboundInterceptor) interceptor.ActivityInboundInterceptor {
	return &probeActivity{ActivityInboundInterceptorBase: interceptor.ActivityInboundInterceptorBase{Next: next}, p: p}
}

// InterceptWorkflow implements interceptor.WorkerInterceptor.
func (p *probe) InterceptWorkflow(ctx workflow.Context, next interceptor.WorkflowInboundInterceptor) interceptor.WorkflowInboundInterceptor {
	return &probeWorkflow{WorkflowInboundInterceptorBase: interceptor.WorkflowInboundInterceptorBase{Next: next}, p: p}
}

type probeClient struct {
	interceptor.ClientOutboundInterceptorBase
	p *probe
}

func (c *probeClient) ExecuteWorkflow(ctx context.Context, in *interceptor.ClientExecuteWorkflowInput) (client.WorkflowRun, error) {
	run, err := c.Next.ExecuteWorkflow(ctx, in)
	if err == nil {
		key := startKey(in.Options.ID, in.Args)
		c.p.alias(key, in.Options.ID)
		c.p.record(markStarted, key, time.Now())
	}
	return run, err
}

func (c *probeClient) SignalWithStartWorkflow(ctx context.Context, in *interceptor.ClientSignalWithStartWorkflowInput) (client.WorkflowRun, error) {
	run, err := c.Next.SignalWithStartWorkflow(ctx, in)
	if err == nil {
		c.p.record(markStarted, startKey(in.Options.ID, in.Args), time.Now())
	}
	return run, err
}

// startKey is the contact of an enrollment, else the workflow id.
func startKey(workflowID string, args []any) string {
	if len(args) > 0 {
		if in, ok := args[0].(workflows.EnrollmentInput); ok {
			return in.ContactID.String()
		}
	}
	return workflowID
}

type probeActivity struct {
	interceptor.ActivityInboundInterceptorBase
	p *probe
}

func (a *probeActivity) ExecuteActivity(ctx context.Context, in *interceptor.ExecuteActivityInput) (any, error) {
	info := activity.GetInfo(ctx)
	now := time.Now()
	name, key := info.ActivityType.Name, activityKey(info.WorkflowExecution.ID, in.Args)
	a.p.alias(key, info.WorkflowExecution.ID)
	a.p.record(markFirst, info.WorkflowExecution.ID, now)
	a.p.record(markAct(name), key, now)
	res, err := a.Next.ExecuteActivity(ctx, in)
	if err == nil {
		a.p.record(markActDone(name), key, time.Now())
	}
	return res, err
}

// activityKey is the contact of an activity that acts on one, else the
// workflow id.
func activityKey(workflowID string, args []any) string {
	for _, arg := range args {
		switch in := arg.(type) {
		case activities.UpdateContactInput:
			return in.Scope.ContactID.String()
		case activities.WaitInput:
			return in.Scope.ContactID.String()
		case activities.RecordStepInput:
			// An enrollment logs many lines; each is its own mark.
			return stepKey(workflowID, in.Seq)
		}
	}
	return workflowID
}

// stepKey names the mark of an enrollment's seq-th log line.
func stepKey(workflowID string, seq int) string { return fmt.Sprintf("%s#%d", workflowID, seq) }

type probeWorkflow struct {
	interceptor.WorkflowInboundInterceptorBase
	p *probe
}

func (w *probeWorkflow) ExecuteWorkflow(ctx workflow.Context, in *interceptor.ExecuteWorkflowInput) (any, error) {
	res, err := w.Next.ExecuteWorkflow(ctx, in)
	if !workflow.IsReplaying(ctx) {
		// A side channel only: the time never reaches the workflow's history.
		w.p.record(markDone, startKey(workflow.GetInfo(ctx).WorkflowExecution.ID, in.Args), time.Now())
	}
	return res, err
}
