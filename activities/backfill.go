package activities

import (
	"context"
	"errors"
	"fmt"

	"github.com/google/uuid"

	"github.com/signalbox/signalbox/store"
	"github.com/signalbox/signalbox/triggers"
)

// BackfillPageInput names the backfill whose next page to run.
type BackfillPageInput struct {
	BackfillID  uuid.UUID `json:"backfill_id"`
	WorkspaceID uuid.UUID `json:"workspace_id"`
	PageSize    int       `json:"page_size"`
}

// BackfillPageResult says how many events the page took and whether the
// backfill is done.
type BackfillPageResult struct {
	Taken int  `json:"taken"`
	Done  bool `json:"done"`
}

// BackfillPage runs the automation's trigger, at its current version, over
// the backfill's next page of events. The page and the cursor move in one
// transaction, so a retry after a crash takes up where the last committed
// page left off and an event never enrolls twice.
func (a *Activities) BackfillPage(ctx context.Context, in BackfillPageInput) (BackfillPageResult, error) {
	b, err := a.Store.GetBackfill(ctx, in.WorkspaceID, in.BackfillID)
	if errors.Is(err, store.ErrNotFound) {
		return BackfillPageResult{}, permanent(ErrTypeNotFound, err)
	}
	if err != nil {
		return BackfillPageResult{}, err
	}
	if b.Status != store.BackfillRunning {
		return BackfillPageResult{Done: true}, nil
	}
	au, err := a.Store.GetAutomation(ctx, in.WorkspaceID, b.AutomationID)
	if errors.Is(err, store.ErrNotFound) {
		return BackfillPageResult{}, permanent(ErrTypeNotFound, errors.New("the automation was deleted"))
	}
	if err != nil {
		return BackfillPageResult{}, err
	}
	if au.ArchivedAt != nil {
		return BackfillPageResult{}, permanent(ErrTypeRejected, errors.New("the automation was archived"))
	}
	// A backfill runs whether the automation is enabled or not: running
	// one before enabling it is how history is caught up first.
	t, err := triggers.Compile(a.Env, store.AutomationVersion{AutomationID: au.ID, Version: au.Version, Enabled: true,
		TriggerEvent: au.TriggerEvent, Definition: au.Definition})
	if err != nil {
		return BackfillPageResult{}, permanent(ErrTypeInvalid, err)
	}
	size := in.PageSize
	if size <= 0 {
		size = 100
	}
	n, done, err := a.Store.BackfillPage(ctx, in.BackfillID, size, triggers.One(a.Env, in.WorkspaceID, t))
	if err != nil {
		return BackfillPageResult{}, fmt.Errorf("backfill page: %w", err)
	}
	return BackfillPageResult{Taken: n, Done: done}, nil
}

// FinishBackfillInput records how a backfill's workflow ended.
type FinishBackfillInput struct {
	BackfillID uuid.UUID `json:"backfill_id"`
	Status     string    `json:"status"`
	Reason     string    `json:"reason"`
}

// FinishBackfill records a backfill cancelled or failed (a completed one
// is recorded by its last page).
func (a *Activities) FinishBackfill(ctx context.Context, in FinishBackfillInput) error {
	return a.Store.FinishBackfill(ctx, in.BackfillID, in.Status, in.Reason)
}
