package api

import (
	"context"
	"time"

	enumspb "go.temporal.io/api/enums/v1"
	"go.temporal.io/sdk/client"

	"github.com/signalbox/signalbox/workflows"
)

// liveTimeout bounds the reads of a running enrollment's state from
// Temporal; past it, the answer says what the database knows.
const liveTimeout = 2 * time.Second

// liveEnrollment is a running enrollment as Temporal sees it: the step it
// is on (kept by the workflow from the moment the step begins, before any
// log line), and, while that step's activity is retrying, its attempt, the
// last error and when the next attempt runs.
type liveEnrollment struct {
	CurrentStep   string     `json:"-"`
	StepType      string     `json:"step_type,omitempty"`
	StepSince     *time.Time `json:"step_since,omitempty"`
	Waiting       string     `json:"waiting_for,omitempty"`
	Attempt       int32      `json:"attempt,omitempty"`
	LastError     string     `json:"last_error,omitempty"`
	NextAttemptAt *time.Time `json:"next_attempt_at,omitempty"`
}

// live reads an enrollment's workflow state from Temporal, or returns
// false when it cannot (no client, Temporal or the workers unreachable
// within liveTimeout).
func live(ctx context.Context, tc client.Client, workflowID string) (liveEnrollment, bool) {
	if tc == nil {
		return liveEnrollment{}, false
	}
	ctx, cancel := context.WithTimeout(ctx, liveTimeout)
	defer cancel()
	v, err := tc.QueryWorkflow(ctx, workflowID, "", workflows.CurrentStepQuery)
	if err != nil {
		return liveEnrollment{}, false
	}
	var st workflows.StepState
	if err := v.Get(&st); err != nil || st.StepID == "" {
		return liveEnrollment{}, false
	}
	out := liveEnrollment{CurrentStep: st.StepID, StepType: st.Type, Waiting: st.Waiting}
	if !st.Since.IsZero() {
		since := st.Since.UTC()
		out.StepSince = &since
	}
	desc, err := tc.DescribeWorkflowExecution(ctx, workflowID, "")
	if err != nil {
		return out, true
	}
	// An action step runs one activity at a time; bookkeeping runs as
	// local activities, which Temporal does not list.
	for _, pa := range desc.GetPendingActivities() {
		if pa.GetAttempt() < 2 && pa.GetLastFailure() == nil {
			continue
		}
		out.Attempt = pa.GetAttempt()
		out.LastError = pa.GetLastFailure().GetMessage()
		if next := pa.GetNextAttemptScheduleTime(); next != nil && pa.GetState() == enumspb.PENDING_ACTIVITY_STATE_SCHEDULED {
			t := next.AsTime().UTC()
			out.NextAttemptAt = &t
		}
	}
	return out, true
}
