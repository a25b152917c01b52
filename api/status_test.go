package api_test

import (
	"context"
	"log/slog"
	"net/http"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/signalbox/signalbox/api"
	"github.com/signalbox/signalbox/backlog"
	"github.com/signalbox/signalbox/conditions"
	"github.com/signalbox/signalbox/store"
	"github.com/signalbox/signalbox/store/storetest"
	"github.com/signalbox/signalbox/triggers"
)

// TestBacklogIsVisible checks that undelivered intents (no dispatcher runs
// here, so every start waits) show in GET /v1/status for their workspace
// only, and in /readyz and /metrics for every workspace, while /readyz
// stays ready.
func TestBacklogIsVisible(t *testing.T) {
	t.Parallel()
	var mon *backlog.Monitor
	st := storetest.Isolated(t, store.Config{})
	env, err := conditions.NewEnv(conditions.Config{})
	require.NoError(t, err)
	st.SetAutomator(triggers.New(st, env, time.Second, slog.New(slog.DiscardHandler)))
	h := newHarnessOn(t, st, func(cfg *api.Config) {
		mon, err = backlog.New(cfg.Store, time.Hour, cfg.Meter, slog.New(slog.DiscardHandler))
		require.NoError(t, err)
		cfg.Backlog = mon
	})
	anon := &client{h: h}
	a, b := h.workspace(store.PlanStarter), h.workspace(store.PlanStarter)

	// Before the first reading /readyz says only that it is ready.
	require.Equal(t, map[string]any{"status": "ready"}, anon.expect(http.StatusOK, "GET", "/readyz", nil))
	empty := map[string]any{
		"pending":            float64(0),
		"pending_by_kind":    map[string]any{"start": float64(0), "signal": float64(0), "cancel": float64(0), "backfill": float64(0)},
		"oldest_created_at":  nil,
		"oldest_age_seconds": float64(0),
	}
	status := a.expect(http.StatusOK, "GET", "/v1/status", nil)
	require.Equal(t, a.ws.ID.String(), status["workspace_id"])
	require.Equal(t, empty, status["outbox"])

	id := a.expect(http.StatusCreated, "POST", "/v1/automations", followUp)["id"].(string)
	a.expect(http.StatusOK, "POST", "/v1/automations/"+id+"/enable", nil)
	before := time.Now()
	for _, email := range []string{"ann@example.com", "bob@example.com", "cat@example.com"} {
		r := a.event(map[string]any{"name": "purchase.completed", "email": email, "create_if_missing": true,
			"properties": map[string]any{"amount": 60.0, "orderId": email}})
		require.EqualValues(t, 1, r["workflows_triggered"], "%v", r)
	}

	out := a.expect(http.StatusOK, "GET", "/v1/status", nil)["outbox"].(map[string]any)
	require.EqualValues(t, 3, out["pending"])
	require.Equal(t, map[string]any{"start": float64(3), "signal": float64(0), "cancel": float64(0), "backfill": float64(0)},
		out["pending_by_kind"])
	oldest, err := time.Parse(time.RFC3339Nano, out["oldest_created_at"].(string))
	require.NoError(t, err)
	require.WithinDuration(t, before, oldest, 5*time.Second)
	require.GreaterOrEqual(t, out["oldest_age_seconds"].(float64), 0.0)
	// Another workspace sees only its own (empty) backlog.
	require.Equal(t, empty, b.expect(http.StatusOK, "GET", "/v1/status", nil)["outbox"])

	// /readyz and the gauges show the periodic reading, and stay ready.
	require.NoError(t, mon.Refresh(context.Background()))
	ready := anon.expect(http.StatusOK, "GET", "/readyz", nil)
	require.Equal(t, "ready", ready["status"])
	rb := ready["outbox"].(map[string]any)
	require.EqualValues(t, 3, rb["pending"])
	require.EqualValues(t, 3, rb["pending_by_kind"].(map[string]any)["start"])
	require.NotEmpty(t, rb["read_at"])
	require.NotNil(t, rb["oldest_created_at"])

	r := anon.do("GET", "/metrics", nil)
	require.Equal(t, http.StatusOK, r.Status)
	require.Contains(t, string(r.Body), `signalbox_outbox_pending{kind="start"`)
	require.Regexp(t, `signalbox_outbox_pending\{kind="start"[^}]*\} 3\n`, string(r.Body))
	require.Regexp(t, `signalbox_outbox_pending\{kind="cancel"[^}]*\} 0\n`, string(r.Body))
	require.Regexp(t, `signalbox_outbox_oldest_age_seconds(\{[^}]*\})? [0-9.e+-]+\n`, string(r.Body))

	// It is behind the API key like every /v1 endpoint.
	anon.problem(http.StatusUnauthorized, "unauthorized", "GET", "/v1/status", nil)
}
