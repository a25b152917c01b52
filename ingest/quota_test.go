package ingest

import (
	"context"
	"errors"
	"testing"
	"time"

	"github.com/google/uuid"
	"github.com/stretchr/testify/require"

	"github.com/signalbox/signalbox/store"
)

// clock is a settable time for the gate.
type clock struct{ t time.Time }

func (c *clock) now() time.Time { return c.t }

func request(ws uuid.UUID, plan store.Plan, externalIDs ...string) *store.RecordRequest {
	req := &store.RecordRequest{WorkspaceID: ws, Plan: plan}
	if len(externalIDs) == 0 {
		externalIDs = []string{""}
	}
	for _, ext := range externalIDs {
		req.Events = append(req.Events, store.EventInput{Name: "x", Email: "a@example.com", ExternalID: ext})
	}
	return req
}

func TestQuotaGateRoutes(t *testing.T) {
	t.Parallel()
	clk := &clock{t: time.Date(2026, 3, 14, 12, 0, 0, 0, time.UTC)}
	g := newQuotaGate(clk.now)
	ws := uuid.New()
	starter := store.PlanStarter // cap 62,500, margin 10,000
	hardCap := starter.HardCap()

	// No cap: always grouped, nothing kept.
	require.Equal(t, routeGroup, g.decide(request(ws, store.PlanEnterprise)).route)
	require.Empty(t, g.usage)

	// Unknown usage: alone, where the count is exact.
	d := g.decide(request(ws, starter))
	require.Equal(t, routeAlone, d.route)
	g.observe(request(ws, starter), d, 100, nil)

	// Far from the cap: grouped.
	require.Equal(t, routeGroup, g.decide(request(ws, starter)).route)
	// A request that would reach into the margin: alone.
	g.observe(request(ws, starter), d, hardCap-store.QuotaMargin(hardCap)-1, nil)
	require.Equal(t, routeGroup, g.decide(request(ws, starter)).route)
	require.Equal(t, routeAlone, g.decide(request(ws, starter, "", "")).route)

	// A refusal from the store teaches the count before the request.
	g.observe(request(ws, starter), d, 0, &store.QuotaError{Limit: 50_000, HardCap: hardCap, Used: hardCap - 1})
	require.Equal(t, routeAlone, g.decide(request(ws, starter)).route)

	// At the cap: refused at once with the figure, unless every event has
	// an external_id (duplicates are not counted, so the store decides).
	g.observe(request(ws, starter), d, hardCap, nil)
	d = g.decide(request(ws, starter))
	require.Equal(t, routeRefuse, d.route)
	require.Equal(t, &store.QuotaError{Limit: 50_000, HardCap: hardCap, Used: hardCap}, d.err)
	require.Equal(t, routeRefuse, g.decide(request(ws, starter, "a", "")).route)
	require.Equal(t, routeAlone, g.decide(request(ws, starter, "a", "b")).route)

	// A larger plan has room again at once.
	require.Equal(t, routeGroup, g.decide(request(ws, store.PlanScale)).route)

	// Workspaces are apart.
	require.Equal(t, routeAlone, g.decide(request(uuid.New(), starter)).route)
}

// TestQuotaGateProbes checks that a workspace refused at once still has one
// request a second go through alone, so that a lowered count shows.
func TestQuotaGateProbes(t *testing.T) {
	t.Parallel()
	clk := &clock{t: time.Date(2026, 3, 14, 12, 0, 0, 0, time.UTC)}
	g := newQuotaGate(clk.now)
	ws := uuid.New()
	plan := store.PlanStarter
	g.observe(request(ws, plan), g.decide(request(ws, plan)), plan.HardCap(), nil)
	require.Equal(t, routeRefuse, g.decide(request(ws, plan)).route)

	clk.t = clk.t.Add(quotaRefresh)
	probe := g.decide(request(ws, plan))
	require.Equal(t, routeAlone, probe.route)
	require.True(t, probe.probe)
	// One probe at a time; the others are still refused.
	require.Equal(t, routeRefuse, g.decide(request(ws, plan)).route)

	// A probe that failed for another reason teaches nothing but lets the
	// next one go.
	g.observe(request(ws, plan), probe, 0, errors.New("connection reset"))
	probe = g.decide(request(ws, plan))
	require.True(t, probe.probe)
	// Refused again: refused at once for another second.
	g.observe(request(ws, plan), probe, 0, &store.QuotaError{Limit: plan.Limit(), HardCap: plan.HardCap(), Used: plan.HardCap()})
	require.Equal(t, routeRefuse, g.decide(request(ws, plan)).route)

	// Someone lowered the count: the next probe is accepted and the
	// workspace's requests group again.
	clk.t = clk.t.Add(quotaRefresh)
	probe = g.decide(request(ws, plan))
	require.True(t, probe.probe)
	g.observe(request(ws, plan), probe, 10, nil)
	require.Equal(t, routeGroup, g.decide(request(ws, plan)).route)
}

// TestQuotaGateMonth checks that a new calendar month starts from nothing,
// and that a commit decided in the old month does not count in the new.
func TestQuotaGateMonth(t *testing.T) {
	t.Parallel()
	clk := &clock{t: time.Date(2026, 3, 31, 23, 59, 59, 0, time.UTC)}
	g := newQuotaGate(clk.now)
	ws := uuid.New()
	plan := store.PlanStarter
	g.observe(request(ws, plan), g.decide(request(ws, plan)), plan.HardCap(), nil)
	late := g.decide(request(ws, plan))
	require.Equal(t, routeRefuse, late.route)
	old := quotaDecision{route: routeAlone, period: late.period}

	clk.t = clk.t.Add(2 * time.Second)
	d := g.decide(request(ws, plan))
	require.Equal(t, routeAlone, d.route, "April: unknown again")
	g.observe(request(ws, plan), old, plan.HardCap(), nil)
	require.Equal(t, routeAlone, g.decide(request(ws, plan)).route, "March's count is not April's")
	g.observe(request(ws, plan), d, 1, nil)
	require.Equal(t, routeGroup, g.decide(request(ws, plan)).route)
}

func TestQuotaGateTurns(t *testing.T) {
	t.Parallel()
	g := newQuotaGate(time.Now)
	ws := uuid.New()
	release, err := g.takeTurn(context.Background(), ws)
	require.NoError(t, err)
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Millisecond)
	defer cancel()
	_, err = g.takeTurn(ctx, ws)
	require.ErrorIs(t, err, context.DeadlineExceeded, "one turn at a time per workspace")
	other, err := g.takeTurn(context.Background(), uuid.New())
	require.NoError(t, err, "another workspace has its own turn")
	other()
	release()
	release, err = g.takeTurn(context.Background(), ws)
	require.NoError(t, err)
	release()
}
