// Package reconcile records the real end of enrollments whose workflow
// closed outside Signalbox: terminated or cancelled from the Temporal Web UI
// or CLI, timed out, failed without recording it, or gone from Temporal
// altogether. Without it such an enrollment would stay "active" for ever.
package reconcile

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"sync"
	"time"

	enumspb "go.temporal.io/api/enums/v1"
	"go.temporal.io/api/serviceerror"
	"go.temporal.io/sdk/client"

	"github.com/signalbox/signalbox/store"
	"github.com/signalbox/signalbox/workflows"
)

// Config tunes a Reconciler. The zero value is usable.
type Config struct {
	// Every is how often each active enrollment is checked; default 10m.
	// Each check is one DescribeWorkflowExecution call, so a deployment
	// with N active enrollments makes about N/Every calls a second.
	Every time.Duration
	// Batch is how many enrollments one round claims; default 100.
	Batch int
	// Parallel is how many checks run at once; default 8.
	Parallel int
}

// Reconciler checks active enrollments against their workflows. Any number
// may run, in any processes: enrollments are claimed with SKIP LOCKED and
// their check time moves on as they are claimed, like a lease.
type Reconciler struct {
	store  *store.Store
	client client.Client
	cfg    Config
	log    *slog.Logger
}

// New makes a Reconciler.
func New(s *store.Store, c client.Client, cfg Config, log *slog.Logger) *Reconciler {
	if cfg.Every <= 0 {
		cfg.Every = 10 * time.Minute
	}
	if cfg.Batch <= 0 {
		cfg.Batch = 100
	}
	if cfg.Parallel <= 0 {
		cfg.Parallel = 8
	}
	return &Reconciler{store: s, client: c, cfg: cfg, log: log}
}

// Run checks until ctx ends: a round whenever the last one found a full
// batch, otherwise one every tenth of Every (at most a minute apart).
func (r *Reconciler) Run(ctx context.Context) {
	pause := min(r.cfg.Every/10, time.Minute)
	for {
		n, err := r.Round(ctx)
		if err != nil && ctx.Err() == nil {
			r.log.WarnContext(ctx, "reconcile round failed", "error", err.Error())
		}
		if err == nil && n == r.cfg.Batch {
			continue
		}
		select {
		case <-ctx.Done():
			return
		case <-time.After(pause):
		}
	}
}

// Round claims one batch of enrollments due for a check, checks them, then
// records the end of stale backfills (whether or not any enrollment was
// due), and says how many enrollments it claimed.
func (r *Reconciler) Round(ctx context.Context) (int, error) {
	due, err := r.store.ClaimUnchecked(ctx, r.cfg.Every, r.cfg.Batch)
	if err != nil {
		return 0, err
	}
	var wg sync.WaitGroup
	sem := make(chan struct{}, r.cfg.Parallel)
	for _, e := range due {
		if e.Pending {
			continue
		}
		wg.Add(1)
		sem <- struct{}{}
		go func() {
			defer wg.Done()
			defer func() { <-sem }()
			if err := r.check(ctx, e); err != nil && ctx.Err() == nil {
				r.log.WarnContext(ctx, "reconcile enrollment", "enrollment_id", e.ID.String(), "error", err.Error())
			}
		}()
	}
	wg.Wait()
	if err := r.backfills(ctx); err != nil {
		return len(due), err
	}
	return len(due), nil
}

// backfills records the end of running backfills whose workflow closed
// outside Signalbox (terminated from the Web UI, say) or is gone, so that
// none shows "running" for ever.
func (r *Reconciler) backfills(ctx context.Context) error {
	stale, err := r.store.StaleBackfills(ctx, r.cfg.Every, r.cfg.Batch)
	if err != nil {
		return err
	}
	for _, b := range stale {
		if b.Pending {
			continue
		}
		status, reason, err := r.backfillClosed(ctx, b.WorkflowID)
		if err != nil {
			if ctx.Err() == nil {
				r.log.WarnContext(ctx, "reconcile backfill", "backfill_id", b.ID.String(), "error", err.Error())
			}
			continue
		}
		if status == "" {
			continue
		}
		if err := r.store.FinishBackfill(ctx, b.ID, status, reason); err != nil {
			return fmt.Errorf("record backfill end: %w", err)
		}
		r.log.InfoContext(ctx, "recorded the end of a backfill whose workflow closed outside Signalbox",
			"backfill_id", b.ID.String(), "status", status, "reason", reason)
	}
	return nil
}

// backfillClosed says how a backfill's workflow ended, or "" while it runs.
func (r *Reconciler) backfillClosed(ctx context.Context, workflowID string) (string, string, error) {
	ctx, cancel := context.WithTimeout(ctx, 10*time.Second)
	defer cancel()
	desc, err := r.client.DescribeWorkflowExecution(ctx, workflowID, "")
	var nf *serviceerror.NotFound
	if errors.As(err, &nf) {
		return store.BackfillFailed, "workflow not found in Temporal", nil
	}
	if err != nil {
		return "", "", fmt.Errorf("describe workflow: %w", err)
	}
	info := desc.GetWorkflowExecutionInfo()
	switch info.GetStatus() {
	case enumspb.WORKFLOW_EXECUTION_STATUS_RUNNING, enumspb.WORKFLOW_EXECUTION_STATUS_CONTINUED_AS_NEW,
		enumspb.WORKFLOW_EXECUTION_STATUS_UNSPECIFIED:
		return "", "", nil
	}
	status, reason, err := r.closedAs(ctx, workflowID, info.GetExecution().GetRunId())
	if err != nil {
		return "", "", err
	}
	// An enrollment's words for how a workflow closed, in a backfill's.
	switch {
	case status == store.EnrollmentExited && reason == "cancelled":
		return store.BackfillCancelled, "", nil
	case status == store.EnrollmentExited:
		return store.BackfillFailed, reason, nil
	case status == store.EnrollmentCompleted:
		return store.BackfillFailed, "workflow completed without recording the backfill's end", nil
	}
	return store.BackfillFailed, reason, nil
}

// check looks the enrollment's workflow up and, if it closed, records how.
func (r *Reconciler) check(ctx context.Context, e store.UncheckedEnrollment) error {
	ctx, cancel := context.WithTimeout(ctx, 10*time.Second)
	defer cancel()
	desc, err := r.client.DescribeWorkflowExecution(ctx, e.WorkflowID, "")
	var nf *serviceerror.NotFound
	if errors.As(err, &nf) {
		return r.end(ctx, e, store.EnrollmentFailed, "workflow not found in Temporal")
	}
	if err != nil {
		return fmt.Errorf("describe workflow: %w", err)
	}
	info := desc.GetWorkflowExecutionInfo()
	switch info.GetStatus() {
	case enumspb.WORKFLOW_EXECUTION_STATUS_RUNNING, enumspb.WORKFLOW_EXECUTION_STATUS_CONTINUED_AS_NEW,
		enumspb.WORKFLOW_EXECUTION_STATUS_UNSPECIFIED:
		return nil
	}
	status, reason, err := r.closedAs(ctx, e.WorkflowID, info.GetExecution().GetRunId())
	if err != nil {
		return err
	}
	return r.end(ctx, e, status, reason)
}

// closedAs reads a closed workflow's close event into an enrollment status
// and reason.
func (r *Reconciler) closedAs(ctx context.Context, workflowID, runID string) (string, string, error) {
	it := r.client.GetWorkflowHistory(ctx, workflowID, runID, false, enumspb.HISTORY_EVENT_FILTER_TYPE_CLOSE_EVENT)
	if !it.HasNext() {
		return "", "", errors.New("closed workflow has no close event")
	}
	ev, err := it.Next()
	if err != nil {
		return "", "", fmt.Errorf("read close event: %w", err)
	}
	switch ev.GetEventType() {
	case enumspb.EVENT_TYPE_WORKFLOW_EXECUTION_COMPLETED:
		// The workflow ran to its end but its own record of it was lost.
		status := store.EnrollmentCompleted
		var res workflows.EnrollmentResult
		if p := ev.GetWorkflowExecutionCompletedEventAttributes().GetResult(); p != nil {
			if err := client.NewValue(p).Get(&res); err == nil && res.Status != "" {
				status = res.Status
			}
		}
		return status, "", nil
	case enumspb.EVENT_TYPE_WORKFLOW_EXECUTION_FAILED:
		f := ev.GetWorkflowExecutionFailedEventAttributes().GetFailure()
		return store.EnrollmentFailed, "workflow failed in Temporal: " + f.GetMessage(), nil
	case enumspb.EVENT_TYPE_WORKFLOW_EXECUTION_CANCELED:
		return store.EnrollmentExited, "cancelled", nil
	case enumspb.EVENT_TYPE_WORKFLOW_EXECUTION_TERMINATED:
		reason := ev.GetWorkflowExecutionTerminatedEventAttributes().GetReason()
		if reason == "" {
			reason = "no reason given"
		}
		return store.EnrollmentExited, "terminated in Temporal: " + reason, nil
	case enumspb.EVENT_TYPE_WORKFLOW_EXECUTION_TIMED_OUT:
		return store.EnrollmentFailed, "workflow timed out in Temporal", nil
	}
	return "", "", fmt.Errorf("unexpected close event %s", ev.GetEventType())
}

func (r *Reconciler) end(ctx context.Context, e store.UncheckedEnrollment, status, reason string) error {
	final, err := r.store.FinishEnrollment(ctx, e.ID, status, reason)
	if errors.Is(err, store.ErrNotFound) {
		return nil
	}
	if err != nil {
		return fmt.Errorf("record end: %w", err)
	}
	r.log.InfoContext(ctx, "recorded the end of an enrollment whose workflow closed outside Signalbox",
		"enrollment_id", e.ID.String(), "workflow_id", e.WorkflowID, "status", final, "reason", reason)
	return nil
}
