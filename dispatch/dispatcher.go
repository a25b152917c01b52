// Package dispatch delivers the outbox's intents to Temporal: it starts
// enrollment workflows, signals waiting ones and cancels exited ones. The
// record path wakes it right after a commit; a short poll catches anything
// left behind (a crash, Temporal down), so an accepted event's effects are
// never lost, only delayed.
package dispatch

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"sync"
	"time"

	"go.opentelemetry.io/otel"
	"go.opentelemetry.io/otel/attribute"
	"go.opentelemetry.io/otel/propagation"
	"go.opentelemetry.io/otel/trace"
	commonpb "go.temporal.io/api/common/v1"
	enumspb "go.temporal.io/api/enums/v1"
	"go.temporal.io/api/serviceerror"
	"go.temporal.io/api/workflowservice/v1"
	"go.temporal.io/sdk/client"
	"go.temporal.io/sdk/converter"
	"go.temporal.io/sdk/temporal"

	"github.com/google/uuid"

	"github.com/signalbox/signalbox/activities"
	"github.com/signalbox/signalbox/store"
	"github.com/signalbox/signalbox/workflows"
)

// Config tunes a Dispatcher. The zero value is usable.
type Config struct {
	// Poll is how often the outbox is checked without a wake-up; default 1s.
	Poll time.Duration
	// Lease is how long a claimed intent is reserved; default 30s.
	Lease time.Duration
	// Batch is the most intents claimed at once; default 200.
	Batch int
	// Parallel is how many deliveries run at once; default 32.
	Parallel int
	// Namespace is the Temporal namespace; default "default".
	Namespace string
	// Identity names this dispatcher in Temporal's records.
	Identity string
	// TaskQueue is where enrollments start; default workflows.TaskQueue.
	TaskQueue string
}

// Dispatcher delivers intents. Any number may run, in any processes: claims
// are leased rows taken with SKIP LOCKED.
type Dispatcher struct {
	store  *store.Store
	client client.Client
	cfg    Config
	log    *slog.Logger
	wake   chan struct{}
	dc     converter.DataConverter
	tracer trace.Tracer
}

// New makes a Dispatcher.
func New(s *store.Store, c client.Client, cfg Config, log *slog.Logger) *Dispatcher {
	if cfg.Poll <= 0 {
		cfg.Poll = time.Second
	}
	if cfg.Lease <= 0 {
		cfg.Lease = 30 * time.Second
	}
	if cfg.Batch <= 0 {
		cfg.Batch = 200
	}
	if cfg.Parallel <= 0 {
		cfg.Parallel = 32
	}
	if cfg.Namespace == "" {
		cfg.Namespace = "default"
	}
	if cfg.TaskQueue == "" {
		cfg.TaskQueue = workflows.TaskQueue
	}
	if cfg.Identity == "" {
		cfg.Identity = "signalbox-dispatcher"
	}
	return &Dispatcher{store: s, client: c, cfg: cfg, log: log, wake: make(chan struct{}, 1),
		dc: converter.GetDefaultDataConverter(), tracer: otel.Tracer("github.com/signalbox/signalbox/dispatch")}
}

// Wake asks for a delivery round now; it never blocks.
func (d *Dispatcher) Wake() {
	select {
	case d.wake <- struct{}{}:
	default:
	}
}

// Run delivers until ctx ends.
func (d *Dispatcher) Run(ctx context.Context) {
	t := time.NewTicker(d.cfg.Poll)
	defer t.Stop()
	for {
		for ctx.Err() == nil {
			n, err := d.Round(ctx)
			if err != nil && ctx.Err() == nil {
				d.log.WarnContext(ctx, "outbox round failed", "error", err.Error())
				break
			}
			if n == 0 {
				break
			}
		}
		select {
		case <-ctx.Done():
			return
		case <-d.wake:
		case <-t.C:
		}
	}
}

// Round claims and delivers one batch and says how many it claimed.
func (d *Dispatcher) Round(ctx context.Context) (int, error) {
	intents, err := d.store.ClaimIntents(ctx, d.cfg.Batch, d.cfg.Lease)
	if err != nil || len(intents) == 0 {
		return 0, err
	}
	var (
		mu       sync.Mutex
		done     []uuid.UUID
		outcomes []string
		wg       sync.WaitGroup
		sem      = make(chan struct{}, d.cfg.Parallel)
	)
	for _, in := range intents {
		wg.Add(1)
		sem <- struct{}{}
		go func() {
			defer wg.Done()
			defer func() { <-sem }()
			outcome, err := d.deliver(ctx, in)
			if err != nil {
				backoff := min(time.Duration(1<<min(in.Attempts, 8))*100*time.Millisecond, 30*time.Second)
				d.log.WarnContext(ctx, "intent not delivered", "intent_id", in.ID.String(), "kind", in.Kind,
					"workflow_id", in.WorkflowID, "attempts", in.Attempts, "retry_in", backoff.String(), "error", err.Error())
				if rerr := d.store.RetryIntent(context.WithoutCancel(ctx), in.ID, backoff, err.Error()); rerr != nil {
					d.log.WarnContext(ctx, "release intent", "error", rerr.Error())
				}
				return
			}
			mu.Lock()
			done, outcomes = append(done, in.ID), append(outcomes, outcome)
			mu.Unlock()
		}()
	}
	wg.Wait()
	return len(intents), d.store.MarkDelivered(context.WithoutCancel(ctx), done, outcomes)
}

// deliver sends one intent. A nil error with an outcome means the intent is
// settled, including final answers such as "the workflow already ended".
func (d *Dispatcher) deliver(ctx context.Context, in store.Intent) (string, error) {
	if in.TraceParent != "" {
		ctx = propagation.TraceContext{}.Extract(ctx, propagation.MapCarrier{"traceparent": in.TraceParent})
	}
	ctx, span := d.tracer.Start(ctx, "outbox."+in.Kind, trace.WithAttributes(
		attribute.String("signalbox.workflow_id", in.WorkflowID), attribute.String("signalbox.intent_id", in.ID.String())))
	defer span.End()
	ctx, cancel := context.WithTimeout(ctx, 10*time.Second)
	defer cancel()
	switch in.Kind {
	case store.IntentStart:
		return d.start(ctx, in)
	case store.IntentSignal:
		return d.signal(ctx, in)
	case store.IntentCancel:
		return d.cancel(ctx, in)
	}
	return "unknown_kind", nil
}

// StartOptions are how an enrollment's workflow is started: its
// deterministic id, refused when it ran before (a redelivered start finds
// the first), and the search attributes the Web UI filters by.
func StartOptions(workflowID, taskQueue string, in workflows.EnrollmentInput) client.StartWorkflowOptions {
	return client.StartWorkflowOptions{
		ID:                                       workflowID,
		TaskQueue:                                taskQueue,
		WorkflowIDReusePolicy:                    enumspb.WORKFLOW_ID_REUSE_POLICY_REJECT_DUPLICATE,
		WorkflowIDConflictPolicy:                 enumspb.WORKFLOW_ID_CONFLICT_POLICY_FAIL,
		WorkflowExecutionErrorWhenAlreadyStarted: true,
		TypedSearchAttributes: temporal.NewSearchAttributes(
			workflows.WorkspaceAttribute.ValueSet(in.WorkspaceID),
			workflows.AutomationAttribute.ValueSet(in.AutomationID),
			workflows.ContactAttribute.ValueSet(in.ContactID),
		),
	}
}

func (d *Dispatcher) start(ctx context.Context, in store.Intent) (string, error) {
	// A start intent's payload (store.StartIntent) has the workflow
	// input's JSON shape, so it decodes straight into it.
	var p workflows.EnrollmentInput
	if err := json.Unmarshal(in.Payload, &p); err != nil {
		// A stored definition that no longer decodes cannot improve.
		d.log.ErrorContext(ctx, "start intent does not decode", "intent_id", in.ID.String(), "error", err.Error())
		return "invalid_payload", nil
	}
	_, err := d.client.ExecuteWorkflow(ctx, StartOptions(in.WorkflowID, d.cfg.TaskQueue, p), workflows.EnrollmentWorkflow, p)
	var started *serviceerror.WorkflowExecutionAlreadyStarted
	if errors.As(err, &started) {
		return "already_started", nil
	}
	if err != nil {
		return "", fmt.Errorf("start workflow: %w", err)
	}
	return "started", nil
}

func (d *Dispatcher) signal(ctx context.Context, in store.Intent) (string, error) {
	var p store.SignalIntent
	if err := json.Unmarshal(in.Payload, &p); err != nil {
		return "invalid_payload", nil
	}
	input, err := d.dc.ToPayloads(workflows.EventSignalInput{EnrollmentID: p.EnrollmentID.String(), StepID: p.StepID,
		Event: activities.EventFrom(p.Event)})
	if err != nil {
		return "", err
	}
	// The outbox intent id is the request id: a retried delivery after a
	// lost answer is recognised by Temporal, not signalled twice.
	_, err = d.client.WorkflowService().SignalWorkflowExecution(ctx, &workflowservice.SignalWorkflowExecutionRequest{
		Namespace:         d.cfg.Namespace,
		WorkflowExecution: &commonpb.WorkflowExecution{WorkflowId: in.WorkflowID},
		SignalName:        workflows.EventSignal,
		Input:             input,
		Identity:          d.cfg.Identity,
		RequestId:         in.ID.String(),
	})
	var nf *serviceerror.NotFound
	if errors.As(err, &nf) {
		return "not_running", nil
	}
	if err != nil {
		return "", fmt.Errorf("signal workflow: %w", err)
	}
	return "signalled", nil
}

func (d *Dispatcher) cancel(ctx context.Context, in store.Intent) (string, error) {
	_, err := d.client.WorkflowService().RequestCancelWorkflowExecution(ctx, &workflowservice.RequestCancelWorkflowExecutionRequest{
		Namespace:         d.cfg.Namespace,
		WorkflowExecution: &commonpb.WorkflowExecution{WorkflowId: in.WorkflowID},
		Identity:          d.cfg.Identity,
		RequestId:         in.ID.String(),
		Reason:            "exit event",
	})
	var nf *serviceerror.NotFound
	if errors.As(err, &nf) {
		return "not_running", nil
	}
	if err != nil {
		return "", fmt.Errorf("cancel workflow: %w", err)
	}
	return "cancelled", nil
}
