package workflows

import (
	"time"

	"go.temporal.io/sdk/temporal"
	"go.temporal.io/sdk/workflow"

	"github.com/signalbox/signalbox/activities"
)

// Config tunes the enrollment workflow of one worker. The zero value is
// usable.
type Config struct {
	// BookkeepingLimit bounds how long a bookkeeping local activity (the
	// step log, a wait's registration, a branch condition, the finish) is
	// retried before the step fails and the enrollment ends failed; default
	// DefaultBookkeepingLimit. It should outlast a database restart or
	// failover: an enrollment that reaches bookkeeping during a longer
	// outage fails.
	BookkeepingLimit time.Duration
}

// DefaultBookkeepingLimit is Config.BookkeepingLimit's default.
const DefaultBookkeepingLimit = time.Hour

// bookkeeping is the local activity options under c: quick database writes
// and reads, retried with backoff for about the limit (counted in
// attempts, so the last attempt's error is the one reported), and cut off
// at twice the limit however long attempts hang; invalid input and a
// vanished enrollment fail at once.
func (c Config) bookkeeping() workflow.LocalActivityOptions {
	limit := c.BookkeepingLimit
	if limit <= 0 {
		limit = DefaultBookkeepingLimit
	}
	const (
		initial = 200 * time.Millisecond
		longest = 30 * time.Second
	)
	attempts, waited := int32(1), time.Duration(0)
	for next := initial; waited+next <= limit; next = min(2*next, longest) {
		waited += next
		attempts++
	}
	return workflow.LocalActivityOptions{
		ScheduleToCloseTimeout: 2 * limit,
		StartToCloseTimeout:    min(15*time.Second, limit),
		RetryPolicy: &temporal.RetryPolicy{
			InitialInterval:        initial,
			BackoffCoefficient:     2,
			MaximumInterval:        longest,
			MaximumAttempts:        attempts,
			NonRetryableErrorTypes: []string{activities.ErrTypeInvalid, activities.ErrTypeNotFound},
		},
	}
}

// actions runs side effects on the outside world: webhooks and email get a
// minute per attempt and back off from a second to ten minutes, for up to a
// day, before the enrollment fails; permanent failures stop at once.
var actions = workflow.ActivityOptions{
	StartToCloseTimeout:    time.Minute,
	ScheduleToCloseTimeout: 24 * time.Hour,
	RetryPolicy: &temporal.RetryPolicy{
		InitialInterval:    time.Second,
		BackoffCoefficient: 2,
		MaximumInterval:    10 * time.Minute,
		NonRetryableErrorTypes: []string{activities.ErrTypeInvalid, activities.ErrTypeRefused,
			activities.ErrTypeRejected, activities.ErrTypeNotFound},
	},
}
