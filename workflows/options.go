package workflows

import (
	"time"

	"go.temporal.io/sdk/temporal"
	"go.temporal.io/sdk/workflow"

	"github.com/signalbox/signalbox/activities"
)

// localBookkeeping runs the local activities that keep the enrollment's
// own records: quick database writes and reads, retried until they succeed.
var localBookkeeping = workflow.LocalActivityOptions{
	StartToCloseTimeout: 15 * time.Second,
	RetryPolicy: &temporal.RetryPolicy{
		InitialInterval:        200 * time.Millisecond,
		BackoffCoefficient:     2,
		MaximumInterval:        30 * time.Second,
		NonRetryableErrorTypes: []string{activities.ErrTypeInvalid},
	},
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
