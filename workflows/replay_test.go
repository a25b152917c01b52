package workflows_test

import (
	"path/filepath"
	"testing"
	"time"

	"github.com/stretchr/testify/require"
	"go.temporal.io/sdk/worker"
	"go.temporal.io/sdk/workflow"

	"github.com/signalbox/signalbox/workflows"
)

// historyDir holds histories of real enrollments, recorded on a Temporal dev
// server by TestGenerateHistories.
const historyDir = "testdata/histories"

// histories lists the saved histories, failing when there are none, so that
// the replay tests cannot pass by checking nothing.
func histories(t *testing.T) []string {
	t.Helper()
	paths, err := filepath.Glob(filepath.Join(historyDir, "*.json"))
	require.NoError(t, err)
	require.NotEmpty(t, paths, "no histories in %s; see its README.md", historyDir)
	return paths
}

// TestReplayHistories proves that the interpreter as it is now makes the
// same decisions as the one that recorded each history: every behaviour
// change must go behind workflow.GetVersion or this fails.
func TestReplayHistories(t *testing.T) {
	t.Parallel()
	for _, path := range histories(t) {
		t.Run(filepath.Base(path), func(t *testing.T) {
			t.Parallel()
			require.NoError(t, replay(path))
		})
	}
}

// replay replays one history against the enrollment workflow of its type
// (workflows.EnrollmentV1Workflow for v1 to v3).
func replay(path string) error {
	r := worker.NewWorkflowReplayer()
	workflows.Config{}.Register(r)
	return r.ReplayWorkflowHistoryFromJSONFile(quietLogger(), path)
}

// TestReplayDetectsChange shows the replay test can fail: an interpreter
// that sleeps before its first step, unversioned, does not replay.
func TestReplayDetectsChange(t *testing.T) {
	t.Parallel()
	changed := func(ctx workflow.Context, in workflows.EnrollmentInput) (workflows.EnrollmentResult, error) {
		if err := workflow.Sleep(ctx, time.Second); err != nil {
			return workflows.EnrollmentResult{}, err
		}
		return workflows.Enrollment(ctx, in)
	}
	for _, path := range histories(t) {
		r := worker.NewWorkflowReplayer()
		r.RegisterWorkflowWithOptions(changed, workflow.RegisterOptions{Name: workflows.EnrollmentWorkflow})
		r.RegisterWorkflowWithOptions(changed, workflow.RegisterOptions{Name: workflows.EnrollmentV1Workflow})
		err := r.ReplayWorkflowHistoryFromJSONFile(quietLogger(), path)
		require.Error(t, err, path)
	}
}
