package workflows

import (
	"errors"
	"time"

	"go.temporal.io/sdk/temporal"
	"go.temporal.io/sdk/workflow"

	"github.com/signalbox/signalbox/activities"
	"github.com/signalbox/signalbox/intent"
	"github.com/signalbox/signalbox/store"
)

// BackfillWorkflow is the registered type of the backfill workflow.
const BackfillWorkflow = "Backfill"

// backfillPagesPerRun bounds one run's history: after this many pages the
// workflow continues as new with the same input (the cursor is in the
// database, not in the history).
const backfillPagesPerRun = 200

// backfillPage runs one page: a database transaction, retried for as long
// as it takes (a page is idempotent: the cursor moves with its writes), a
// vanished backfill or automation stops it.
var backfillPage = workflow.ActivityOptions{
	StartToCloseTimeout: time.Minute,
	RetryPolicy: &temporal.RetryPolicy{
		InitialInterval:    time.Second,
		BackoffCoefficient: 2,
		MaximumInterval:    time.Minute,
		NonRetryableErrorTypes: []string{activities.ErrTypeInvalid, activities.ErrTypeNotFound,
			activities.ErrTypeRejected},
	},
}

// Backfill runs an automation's trigger over events already recorded, page
// by page, at most in.Rate events a second. Progress lives in the
// backfills row, so a worker killed mid-page loses nothing: the page's
// activity is retried and starts from the last committed cursor. A cancel
// (POST /v1/backfills/{id}/cancel) stops it between pages.
func Backfill(ctx workflow.Context, in intent.Backfill) error {
	ctx = workflow.WithActivityOptions(ctx, backfillPage)
	var acts *activities.Activities
	for range backfillPagesPerRun {
		var res activities.BackfillPageResult
		err := workflow.ExecuteActivity(ctx, acts.BackfillPage, activities.BackfillPageInput{
			BackfillID: in.BackfillID, WorkspaceID: in.WorkspaceID, PageSize: in.PageSize}).Get(ctx, &res)
		if err == nil && res.Done {
			return nil
		}
		if err == nil && in.Rate > 0 && res.Taken > 0 {
			err = workflow.Sleep(ctx, time.Duration(float64(res.Taken)/in.Rate*float64(time.Second)))
		}
		if err != nil {
			return finishBackfill(ctx, in, err)
		}
	}
	return workflow.NewContinueAsNewError(ctx, BackfillWorkflow, in)
}

// finishBackfill records why the workflow stopped early: a cancel, or a
// page that cannot succeed.
func finishBackfill(ctx workflow.Context, in intent.Backfill, cause error) error {
	status, reason := store.BackfillFailed, cause.Error()
	var app *temporal.ApplicationError
	if errors.As(cause, &app) {
		reason = app.Message()
	}
	if temporal.IsCanceledError(cause) {
		status, reason = store.BackfillCancelled, "cancelled on request"
	}
	// A cancelled context runs no activity: finish on a fresh one.
	fctx, _ := workflow.NewDisconnectedContext(ctx)
	fctx = workflow.WithActivityOptions(fctx, backfillPage)
	var acts *activities.Activities
	if err := workflow.ExecuteActivity(fctx, acts.FinishBackfill, activities.FinishBackfillInput{
		BackfillID: in.BackfillID, Status: status, Reason: reason}).Get(fctx, nil); err != nil {
		return err
	}
	return cause
}
