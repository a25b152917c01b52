package ingest

import (
	"context"
	"errors"
	"sync"
	"time"

	"github.com/google/uuid"

	"github.com/signalbox/signalbox/store"
)

// quotaRefresh is how stale a workspace's usage figure may grow while its
// requests are refused without a transaction before one is let through
// alone to read it again (a lowered count or a new plan shows then).
const quotaRefresh = time.Second

// quotaRoute is where the quota gate sends a request.
type quotaRoute int

const (
	// routeGroup joins a group commit, as every request far from its
	// workspace's cap (or with no cap) does.
	routeGroup quotaRoute = iota
	// routeAlone commits alone, where the exact count under the
	// workspace's quota lock decides: within the margin of the cap, or
	// while this process does not know the workspace's usage yet.
	routeAlone
	// routeRefuse is refused at once: the workspace is known to be at its
	// hard cap.
	routeRefuse
)

// quotaDecision is the gate's answer for one request.
type quotaDecision struct {
	route quotaRoute
	// err is the refusal of routeRefuse.
	err *store.QuotaError
	// period is the month the decision was made in; what the request's
	// commit reports is kept only for that month.
	period time.Time
	// probe marks the one request that goes alone to refresh the figure of
	// a workspace whose requests are otherwise refused.
	probe bool
}

// quotaGate decides a request's quota before it joins a group, so that a
// workspace past its cap never aborts a group of other workspaces' requests
// (which would then all be retried alone). It keeps, per workspace with a
// capped plan, the tracked events of the month as the last commit or exact
// refusal reported them: a sum of the sharded counters read in that
// transaction, hence never above the true count, which only grows within a
// month. So a workspace whose figure has reached its hard cap is over it,
// and its requests are refused without a transaction; one whose figure is
// within store.QuotaMargin of the cap commits alone, one request of this
// process at a time, where the count is exact; the rest join groups, as
// their commits cannot take the workspace past its cap (the store still
// checks, and a group that fails on quota after all, when other replicas
// moved the workspace across the margin in between, is retried request by
// request).
type quotaGate struct {
	now     func() time.Time
	refresh time.Duration

	mu     sync.Mutex
	period time.Time
	usage  map[uuid.UUID]*usageFigure
}

// usageFigure is what the gate knows of one workspace this month.
type usageFigure struct {
	used  int64
	known bool
	// at is when a transaction last reported used.
	at time.Time
	// probing is set while a probe is on its way.
	probing bool
	// turn lets this process's requests of the workspace that commit alone
	// go one at a time: they would queue on the quota lock in PostgreSQL
	// anyway, each holding a connection and a slot for direct commits.
	turn chan struct{}
}

func newQuotaGate(now func() time.Time) *quotaGate {
	return &quotaGate{now: now, refresh: quotaRefresh, usage: map[uuid.UUID]*usageFigure{}}
}

// figure returns the workspace's figure, starting afresh when the month
// has turned since the last call. g.mu must be held.
func (g *quotaGate) figure(ws uuid.UUID, now time.Time) *usageFigure {
	if p := store.Period(now); !p.Equal(g.period) {
		g.period, g.usage = p, map[uuid.UUID]*usageFigure{}
	}
	f := g.usage[ws]
	if f == nil {
		f = &usageFigure{turn: make(chan struct{}, 1)}
		g.usage[ws] = f
	}
	return f
}

// decide routes req by its workspace's figure.
func (g *quotaGate) decide(req *store.RecordRequest) quotaDecision {
	hardCap := req.Plan.HardCap()
	if hardCap <= 0 {
		return quotaDecision{route: routeGroup}
	}
	now := g.now()
	g.mu.Lock()
	defer g.mu.Unlock()
	f := g.figure(req.WorkspaceID, now)
	d := quotaDecision{period: g.period}
	switch {
	case !f.known:
		d.route = routeAlone
	case f.used >= hardCap && mayCount(req):
		if !f.probing && now.Sub(f.at) >= g.refresh {
			f.probing = true
			d.route, d.probe = routeAlone, true
			break
		}
		d.route = routeRefuse
		d.err = &store.QuotaError{Limit: req.Plan.Limit(), HardCap: hardCap, Used: f.used}
	case f.used+int64(len(req.Events)) > hardCap-store.QuotaMargin(hardCap):
		d.route = routeAlone
	default:
		d.route = routeGroup
	}
	return d
}

// mayCount reports whether a request could add to its workspace's count
// whatever is stored: an event without external_id is never a duplicate.
// A request whose every event has one may consist of duplicates, which are
// not counted and so are answered even at the cap; the exact count decides
// it. So may a retry under an Idempotency-Key, which gets its first answer.
func mayCount(req *store.RecordRequest) bool {
	if req.IdempotencyKey != "" {
		return false
	}
	for _, e := range req.Events {
		if e.ExternalID == "" {
			return true
		}
	}
	return false
}

// observe keeps what a transaction reported of req's workspace: its count
// including the request when err is nil, its count before the request when
// err is a *store.QuotaError. Other errors teach nothing, but end a probe.
func (g *quotaGate) observe(req *store.RecordRequest, d quotaDecision, tracked int64, err error) {
	if req.Plan.HardCap() <= 0 {
		return
	}
	used := tracked
	var qe *store.QuotaError
	learnt := err == nil || errors.As(err, &qe)
	if qe != nil {
		used = qe.Used
	}
	now := g.now()
	g.mu.Lock()
	defer g.mu.Unlock()
	f := g.figure(req.WorkspaceID, now)
	if !d.period.Equal(g.period) {
		return // counted in a month that has ended
	}
	if d.probe {
		f.probing = false
	}
	if learnt {
		f.used, f.known, f.at = used, true, now
	}
}

// takeTurn waits until no other request of the workspace commits alone in
// this process; release ends the turn.
func (g *quotaGate) takeTurn(ctx context.Context, ws uuid.UUID) (release func(), err error) {
	g.mu.Lock()
	f := g.figure(ws, g.now())
	g.mu.Unlock()
	select {
	case f.turn <- struct{}{}:
		return func() { <-f.turn }, nil
	case <-ctx.Done():
		return nil, ctx.Err()
	}
}
