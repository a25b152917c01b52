package workflows_test

import (
	"context"
	"testing"
	"time"

	"github.com/google/uuid"
	"github.com/stretchr/testify/mock"
	"github.com/stretchr/testify/require"
	"go.temporal.io/sdk/temporal"
	"go.temporal.io/sdk/testsuite"
	"go.temporal.io/sdk/workflow"

	"github.com/signalbox/signalbox/activities"
	"github.com/signalbox/signalbox/intent"
	"github.com/signalbox/signalbox/store"
	"github.com/signalbox/signalbox/workflows"
)

func backfillEnv(t *testing.T) *testsuite.TestWorkflowEnvironment {
	t.Helper()
	var suite testsuite.WorkflowTestSuite
	env := suite.NewTestWorkflowEnvironment()
	env.SetTestTimeout(time.Minute) // wall clock; the default 3 s is short on a loaded machine
	env.RegisterWorkflowWithOptions(workflows.Backfill, workflow.RegisterOptions{Name: workflows.BackfillWorkflow})
	var acts *activities.Activities
	env.RegisterActivity(acts.BackfillPage)
	env.RegisterActivity(acts.FinishBackfill)
	return env
}

// TestBackfillPacesPages runs pages until one says done, sleeping between
// them for as long as the rate asks.
func TestBackfillPacesPages(t *testing.T) {
	env := backfillEnv(t)
	var acts *activities.Activities
	taken := []int{50, 50, 7}
	page := 0
	env.OnActivity(acts.BackfillPage, mock.Anything, mock.Anything).Return(
		func(_ context.Context, in activities.BackfillPageInput) (activities.BackfillPageResult, error) {
			require.Equal(t, 50, in.PageSize)
			n := taken[page]
			page++
			return activities.BackfillPageResult{Taken: n, Done: page == len(taken)}, nil
		})
	var timers []time.Duration
	env.SetOnTimerScheduledListener(func(_ string, d time.Duration) { timers = append(timers, d) })
	env.ExecuteWorkflow(workflows.BackfillWorkflow, intent.Backfill{BackfillID: uuid.New(), PageSize: 50, Rate: 25})
	require.True(t, env.IsWorkflowCompleted())
	require.NoError(t, env.GetWorkflowError())
	require.Equal(t, 3, page)
	require.Equal(t, []time.Duration{2 * time.Second, 2 * time.Second}, timers, "50 events at 25/s take 2 s")
}

// TestBackfillContinuesAsNew keeps one run's history bounded.
func TestBackfillContinuesAsNew(t *testing.T) {
	env := backfillEnv(t)
	var acts *activities.Activities
	env.OnActivity(acts.BackfillPage, mock.Anything, mock.Anything).Return(activities.BackfillPageResult{Taken: 1}, nil)
	env.ExecuteWorkflow(workflows.BackfillWorkflow, intent.Backfill{BackfillID: uuid.New(), PageSize: 1, Rate: 1000})
	require.True(t, env.IsWorkflowCompleted())
	require.True(t, workflow.IsContinueAsNewError(env.GetWorkflowError()))
}

// TestBackfillRecordsWhyItStopped: a page that cannot succeed ends the
// backfill failed with the reason; a cancel ends it cancelled.
func TestBackfillRecordsWhyItStopped(t *testing.T) {
	var acts *activities.Activities
	for name, tc := range map[string]struct {
		page   func(env *testsuite.TestWorkflowEnvironment)
		status string
		reason string
	}{
		"failed": {page: func(env *testsuite.TestWorkflowEnvironment) {
			env.OnActivity(acts.BackfillPage, mock.Anything, mock.Anything).Return(activities.BackfillPageResult{},
				temporal.NewNonRetryableApplicationError("the automation was archived", activities.ErrTypeRejected, nil))
		}, status: store.BackfillFailed, reason: "the automation was archived"},
		"cancelled": {page: func(env *testsuite.TestWorkflowEnvironment) {
			env.OnActivity(acts.BackfillPage, mock.Anything, mock.Anything).Return(activities.BackfillPageResult{Taken: 10}, nil)
			env.RegisterDelayedCallback(env.CancelWorkflow, time.Second)
		}, status: store.BackfillCancelled, reason: "cancelled on request"},
	} {
		t.Run(name, func(t *testing.T) {
			env := backfillEnv(t)
			tc.page(env)
			var finished []activities.FinishBackfillInput
			env.OnActivity(acts.FinishBackfill, mock.Anything, mock.Anything).Return(
				func(_ context.Context, in activities.FinishBackfillInput) error {
					finished = append(finished, in)
					return nil
				})
			id := uuid.New()
			env.ExecuteWorkflow(workflows.BackfillWorkflow, intent.Backfill{BackfillID: id, PageSize: 10, Rate: 1})
			require.True(t, env.IsWorkflowCompleted())
			require.Error(t, env.GetWorkflowError())
			require.Equal(t, []activities.FinishBackfillInput{{BackfillID: id, Status: tc.status, Reason: tc.reason}}, finished)
		})
	}
}
