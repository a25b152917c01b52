package conditions

import (
	"context"
	"time"
)

// Budget bounds the CEL work spent on one event across every condition
// the record path evaluates for it (trigger and wait conditions). A record
// transaction commits many workspaces' events together, so one workspace's
// expensive conditions must not hold everyone's commit: once an event's
// budget is spent, its remaining conditions are not evaluated and count as
// not met, failing with ErrBudget. The budget's deadline bounds the event's
// wall-clock time the same way. A Budget is for one goroutine.
type Budget struct {
	remaining uint64
}

type budgetKey struct{}

// EventBudget returns ctx carrying a fresh budget for one event's
// conditions, with the Env's event deadline; call cancel when the event is
// done.
func (e *Env) EventBudget(ctx context.Context) (context.Context, context.CancelFunc) {
	ctx = context.WithValue(ctx, budgetKey{}, &Budget{remaining: e.cfg.EventCostBudget})
	if e.cfg.EventTimeout > 0 {
		return context.WithTimeout(ctx, e.cfg.EventTimeout)
	}
	return context.WithCancel(ctx)
}

// BudgetLeft reports the cost left in ctx's event budget, and whether ctx
// carries one.
func BudgetLeft(ctx context.Context) (uint64, bool) {
	b, ok := ctx.Value(budgetKey{}).(*Budget)
	if !ok {
		return 0, false
	}
	return b.remaining, true
}

// spend takes cost from ctx's budget, if it carries one.
func spend(ctx context.Context, cost uint64) {
	if b, ok := ctx.Value(budgetKey{}).(*Budget); ok {
		b.remaining -= min(cost, b.remaining)
	}
}

// spent reports whether ctx's budget, if any, is used up.
func spent(ctx context.Context) bool {
	b, ok := ctx.Value(budgetKey{}).(*Budget)
	return ok && b.remaining == 0
}

// Defaults of the event budget: about ten evaluations at the runtime cost
// limit (some 150 ms of CPU), and a fifth of a second.
const (
	DefaultEventCostBudget = 10 * DefaultCostLimit
	DefaultEventTimeout    = 200 * time.Millisecond
)
