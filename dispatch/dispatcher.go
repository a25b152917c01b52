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
	"go.opentelemetry.io/otel/metric"
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

	"github.com/signalbox/signalbox/intent"
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
	// Meter records the intents that failed for good; default the global
	// meter provider.
	Meter metric.MeterProvider
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
	failed metric.Int64Counter

	mu      sync.Mutex
	decoded map[versionKey]struct{}
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
	if cfg.Meter == nil {
		cfg.Meter = otel.GetMeterProvider()
	}
	failed, _ := cfg.Meter.Meter("github.com/signalbox/signalbox/dispatch").Int64Counter("signalbox.outbox.failed",
		metric.WithDescription("Intents Temporal refused for good, by kind and cause; each ended its enrollment failed"))
	return &Dispatcher{store: s, client: c, cfg: cfg, log: log, wake: make(chan struct{}, 1),
		dc: converter.GetDefaultDataConverter(), tracer: otel.Tracer("github.com/signalbox/signalbox/dispatch"),
		failed: failed, decoded: map[versionKey]struct{}{}}
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
			if cause, ok := permanent(err); ok {
				d.fail(ctx, in, cause, err)
				return
			}
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

// permanent says whether Temporal refused an intent for good, and names
// the cause: retrying the same request can only meet the same answer.
// Everything else (unavailable, deadline exceeded, resource exhausted, an
// unreachable server) is transient and backs off.
func permanent(err error) (string, bool) {
	var (
		invalid   *serviceerror.InvalidArgument
		namespace *serviceerror.NamespaceNotFound
		payload   *invalidPayload
	)
	switch {
	case err == nil:
		return "", false
	case errors.As(err, &payload):
		return "invalid_payload", true
	case errors.As(err, &namespace):
		return "namespace_not_found", true
	case errors.As(err, &invalid):
		// Among others: an unregistered search attribute, a payload over
		// the server's blob size limit, a malformed id.
		return "invalid_argument", true
	}
	return "", false
}

// invalidPayload is an intent whose stored payload no longer decodes.
type invalidPayload struct{ err error }

func (e *invalidPayload) Error() string { return "intent payload does not decode: " + e.err.Error() }

// fail settles an intent Temporal refused for good: the intent is marked
// failed, its enrollment ends failed with the cause, the metric counts it,
// and a workflow that may still run for it is terminated, so nothing is
// left half alive. Other workflows' intents are not held back.
func (d *Dispatcher) fail(ctx context.Context, in store.Intent, cause string, err error) {
	ctx = context.WithoutCancel(ctx)
	d.failed.Add(ctx, 1, metric.WithAttributes(attribute.String("kind", in.Kind), attribute.String("cause", cause)))
	ended, ferr := d.store.FailIntent(ctx, in.ID, err.Error())
	if ferr != nil {
		d.log.WarnContext(ctx, "record failed intent", "intent_id", in.ID.String(), "error", ferr.Error())
		return
	}
	d.log.ErrorContext(ctx, "intent refused for good", "intent_id", in.ID.String(), "kind", in.Kind,
		"workflow_id", in.WorkflowID, "cause", cause, "enrollment_failed", ended, "error", err.Error())
	if in.Kind == intent.KindStart {
		return
	}
	tctx, cancel := context.WithTimeout(ctx, 10*time.Second)
	defer cancel()
	terr := d.client.TerminateWorkflow(tctx, in.WorkflowID, "", "signalbox could not deliver an intent: "+cause)
	var nf *serviceerror.NotFound
	if terr != nil && !errors.As(terr, &nf) {
		d.log.WarnContext(ctx, "terminate workflow of failed intent", "workflow_id", in.WorkflowID, "error", terr.Error())
	}
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
	case intent.KindStart:
		return d.start(ctx, in)
	case intent.KindSignal:
		return d.signal(ctx, in)
	case intent.KindCancel:
		return d.cancel(ctx, in)
	case intent.KindBackfill:
		return d.backfill(ctx, in)
	}
	return "unknown_kind", nil
}

// StartOptions are how an enrollment's workflow is started: its
// deterministic id, refused when it ran before (a redelivered start finds
// the first), and the search attributes the Web UI filters by.
func StartOptions(workflowID, taskQueue string, in intent.Start) client.StartWorkflowOptions {
	return client.StartWorkflowOptions{
		ID:                                       workflowID,
		TaskQueue:                                taskQueue,
		WorkflowIDReusePolicy:                    enumspb.WORKFLOW_ID_REUSE_POLICY_REJECT_DUPLICATE,
		WorkflowIDConflictPolicy:                 enumspb.WORKFLOW_ID_CONFLICT_POLICY_FAIL,
		WorkflowExecutionErrorWhenAlreadyStarted: true,
		// Eager start: when this client also runs a worker of the task
		// queue with a free slot (a `signalbox worker` or `dev` process),
		// the server answers the start with the workflow's first task,
		// which that worker runs at once, skipping a trip through the
		// matching service. Otherwise it is an ordinary start.
		EnableEagerStart: true,
		TypedSearchAttributes: temporal.NewSearchAttributes(
			workflows.WorkspaceAttribute.ValueSet(in.WorkspaceID.String()),
			workflows.AutomationAttribute.ValueSet(in.AutomationID.String()),
			workflows.ContactAttribute.ValueSet(in.ContactID.String()),
		),
	}
}

// startKeys are the fields of a start intent the dispatcher itself needs.
type startKeys struct {
	WorkspaceID  uuid.UUID `json:"workspace_id"`
	AutomationID uuid.UUID `json:"automation_id"`
	Version      int       `json:"version"`
	ContactID    uuid.UUID `json:"contact_id"`
}

// maxDecoded bounds the automation versions remembered as decoding.
const maxDecoded = 10_000

// decodes says whether a start intent of this automation version decoded
// whole before in this process.
func (d *Dispatcher) decodes(k startKeys) bool {
	d.mu.Lock()
	defer d.mu.Unlock()
	_, ok := d.decoded[versionKey{k.AutomationID, k.Version}]
	return ok
}

// remember records that a start intent of this automation version decoded.
func (d *Dispatcher) remember(k startKeys) {
	d.mu.Lock()
	defer d.mu.Unlock()
	if len(d.decoded) >= maxDecoded {
		clear(d.decoded)
	}
	d.decoded[versionKey{k.AutomationID, k.Version}] = struct{}{}
}

// versionKey names an automation version, whose definition never changes.
type versionKey struct {
	automation uuid.UUID
	version    int
}

func (d *Dispatcher) start(ctx context.Context, in store.Intent) (string, error) {
	// A start intent's payload is the workflow's input itself, and goes to
	// Temporal as it is stored (JSON), not decoded and encoded again. What
	// must not reach a workflow is an input it cannot decode: a stored
	// definition that no longer decodes (one saved by an older Signalbox
	// whose rules have since tightened) cannot improve, and the workflow
	// would fail its first task for ever. So the first intent of each
	// automation version is decoded whole, here, once per process: a
	// version's definition never changes, and the rest of the input was
	// written by the record path's own encoder.
	var k startKeys
	if err := json.Unmarshal(in.Payload, &k); err != nil {
		return "", &invalidPayload{err}
	}
	if !d.decodes(k) {
		var p intent.Start
		if err := json.Unmarshal(in.Payload, &p); err != nil {
			return "", &invalidPayload{err}
		}
		d.remember(k)
	}
	input := converter.NewRawValue(&commonpb.Payload{
		Metadata: map[string][]byte{converter.MetadataEncoding: []byte(converter.MetadataEncodingJSON)},
		Data:     in.Payload,
	})
	opts := StartOptions(in.WorkflowID, d.cfg.TaskQueue,
		intent.Start{WorkspaceID: k.WorkspaceID, AutomationID: k.AutomationID, ContactID: k.ContactID})
	_, err := d.client.ExecuteWorkflow(ctx, opts, workflows.EnrollmentWorkflow, input)
	var started *serviceerror.WorkflowExecutionAlreadyStarted
	if errors.As(err, &started) {
		return "already_started", nil
	}
	if err != nil {
		return "", fmt.Errorf("start workflow: %w", err)
	}
	return "started", nil
}

// backfill starts a backfill's workflow; like an enrollment's, a
// redelivered start finds the first.
func (d *Dispatcher) backfill(ctx context.Context, in store.Intent) (string, error) {
	var p intent.Backfill
	if err := json.Unmarshal(in.Payload, &p); err != nil {
		return "", &invalidPayload{err}
	}
	_, err := d.client.ExecuteWorkflow(ctx, client.StartWorkflowOptions{
		ID:                                       in.WorkflowID,
		TaskQueue:                                d.cfg.TaskQueue,
		WorkflowIDReusePolicy:                    enumspb.WORKFLOW_ID_REUSE_POLICY_REJECT_DUPLICATE,
		WorkflowIDConflictPolicy:                 enumspb.WORKFLOW_ID_CONFLICT_POLICY_FAIL,
		WorkflowExecutionErrorWhenAlreadyStarted: true,
		TypedSearchAttributes: temporal.NewSearchAttributes(
			workflows.WorkspaceAttribute.ValueSet(p.WorkspaceID.String())),
	}, workflows.BackfillWorkflow, p)
	var started *serviceerror.WorkflowExecutionAlreadyStarted
	if errors.As(err, &started) {
		return "already_started", nil
	}
	if err != nil {
		return "", fmt.Errorf("start backfill workflow: %w", err)
	}
	return "started", nil
}

func (d *Dispatcher) signal(ctx context.Context, in store.Intent) (string, error) {
	var p intent.Signal
	if err := json.Unmarshal(in.Payload, &p); err != nil {
		return "", &invalidPayload{err}
	}
	input, err := d.dc.ToPayloads(p)
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
