package triggers_test

import (
	"context"
	"encoding/json"
	"io"
	"log/slog"
	"sync/atomic"
	"testing"
	"time"

	"github.com/google/uuid"
	"github.com/stretchr/testify/require"

	"github.com/signalbox/signalbox/conditions"
	"github.com/signalbox/signalbox/definition"
	"github.com/signalbox/signalbox/store"
	"github.com/signalbox/signalbox/store/storetest"
	"github.com/signalbox/signalbox/triggers"
	"github.com/signalbox/signalbox/workflows"
)

func TestMain(m *testing.M) { storetest.Main(m) }

// world is a workspace and a Matcher over it.
type world struct {
	t   *testing.T
	s   *store.Store
	ws  store.Workspace
	env *conditions.Env
	m   *triggers.Matcher
}

func newWorld(t *testing.T, ttl time.Duration) *world {
	t.Helper()
	s := storetest.New(t, store.Config{})
	ws, _ := storetest.Workspace(t, s, store.PlanEnterprise)
	env, err := conditions.NewEnv(conditions.Config{})
	require.NoError(t, err)
	return &world{t: t, s: s, ws: ws, env: env,
		m: triggers.New(s, env, ttl, slog.New(slog.NewTextHandler(io.Discard, nil)))}
}

// automation saves a definition as the API does: loaded and checked, then
// stored in its normalised form; enabled when asked.
func (w *world) automation(doc string, enabled bool) store.Automation {
	w.t.Helper()
	ctx := context.Background()
	def, problems := definition.Load([]byte(doc), w.env)
	require.Empty(w.t, problems)
	canonical, err := json.Marshal(def)
	require.NoError(w.t, err)
	a, err := w.s.CreateAutomation(ctx, w.ws.ID, def.Name, def.Trigger.Event, canonical)
	require.NoError(w.t, err)
	if enabled {
		a, err = w.s.SetAutomationEnabled(ctx, w.ws.ID, a.ID, true)
		require.NoError(w.t, err)
	}
	return a
}

// load returns the matcher's answers for the world's workspace.
func (w *world) load() store.AutomationSet {
	w.t.Helper()
	set, err := w.m.Load(context.Background(), []uuid.UUID{w.ws.ID})
	require.NoError(w.t, err)
	return set
}

// matched returns the ids of the automations an event named name triggers.
func (w *world) matched(name string) []uuid.UUID {
	w.t.Helper()
	ev := &store.TriggerEvent{ID: store.NewID(), Name: name, Properties: json.RawMessage(`{}`), OccurredAt: time.Now()}
	return automationIDs(w.load().Triggers(context.Background(), w.ws.ID, ev, func() *store.Contact { return nil }))
}

func automationIDs(ms []store.TriggerMatch) []uuid.UUID {
	var out []uuid.UUID
	for _, m := range ms {
		out = append(out, m.AutomationID)
	}
	return out
}

// doc is an automation definition with one delay step.
func doc(name, trigger string) string {
	return `{"name": "` + name + `", "trigger": ` + trigger + `,
		"steps": [{"id": "pause", "type": "delay", "duration": "1h"}]}`
}

func TestTriggers(t *testing.T) {
	t.Parallel()
	w := newWorld(t, time.Hour)
	anyOrder := w.automation(doc("any order", `{"event": "order.placed"}`), true)
	bigOrder := w.automation(doc("big order", `{"event": "order.placed", "condition": "event.properties.amount >= 50"}`), true)
	vip := w.automation(doc("vip", `{"event": "plan.changed", "condition": "contact.properties.vip == true"}`), true)
	w.automation(doc("disabled", `{"event": "order.placed"}`), false)
	w.automation(doc("disabled vip", `{"event": "plan.changed", "condition": "contact.properties.vip"}`), false)
	set := w.load()

	contact := func(props string) *store.Contact {
		return &store.Contact{ID: uuid.New(), WorkspaceID: w.ws.ID, Email: "ada@example.com",
			Properties: json.RawMessage(props)}
	}
	for _, tc := range []struct {
		name    string
		event   string
		props   string
		contact *store.Contact
		want    []uuid.UUID
		loads   int64
	}{
		{"int amount at the bound", "order.placed", `{"amount": 50}`, nil, []uuid.UUID{anyOrder.ID, bigOrder.ID}, 0},
		{"double amount above", "order.placed", `{"amount": 50.5}`, nil, []uuid.UUID{anyOrder.ID, bigOrder.ID}, 0},
		{"big amount", "order.placed", `{"amount": 1e6}`, nil, []uuid.UUID{anyOrder.ID, bigOrder.ID}, 0},
		{"double amount below", "order.placed", `{"amount": 49.99}`, nil, []uuid.UUID{anyOrder.ID}, 0},
		{"amount as a string", "order.placed", `{"amount": "60"}`, nil, []uuid.UUID{anyOrder.ID}, 0},
		{"no amount", "order.placed", `{}`, nil, []uuid.UUID{anyOrder.ID}, 0},
		{"vip contact", "plan.changed", `{}`, contact(`{"vip": true}`), []uuid.UUID{vip.ID}, 1},
		{"other contact", "plan.changed", `{}`, contact(`{"vip": false}`), nil, 1},
		{"contact not found", "plan.changed", `{}`, nil, nil, 1},
		{"no automation for the name", "page.viewed", `{}`, contact(`{"vip": true}`), nil, 0},
	} {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			var loads atomic.Int64
			ev := &store.TriggerEvent{ID: store.NewID(), Name: tc.event, Properties: json.RawMessage(tc.props),
				OccurredAt: time.Now()}
			got := set.Triggers(context.Background(), w.ws.ID, ev, func() *store.Contact {
				loads.Add(1)
				return tc.contact
			})
			require.ElementsMatch(t, tc.want, automationIDs(got))
			require.Equal(t, tc.loads, loads.Load(), "contact loads")
		})
	}
}

func TestTriggerMatch(t *testing.T) {
	t.Parallel()
	w := newWorld(t, time.Hour)
	a := w.automation(`{"name": "welcome", "trigger": {"event": "signed.up", "frequency": "once"},
		"exit_on": ["deleted", "churned"], "steps": [{"id": "pause", "type": "delay", "duration": "1h"}]}`, true)
	ctx := context.Background()
	a, err := w.s.UpdateAutomation(ctx, w.ws.ID, a.ID, a.Name, "signed.up", a.Definition)
	require.NoError(t, err)
	w.m.Invalidate(w.ws.ID)

	ev := &store.TriggerEvent{ID: store.NewID(), Name: "signed.up", Properties: json.RawMessage(`{}`), OccurredAt: time.Now()}
	got := w.load().Triggers(ctx, w.ws.ID, ev, func() *store.Contact { return nil })
	require.Len(t, got, 1)
	require.Equal(t, a.ID, got[0].AutomationID)
	require.Equal(t, 2, got[0].Version)
	require.True(t, got[0].Once)
	require.Equal(t, []string{"deleted", "churned"}, got[0].ExitOn)
	require.JSONEq(t, string(a.Definition), string(got[0].Definition))
	var def definition.Automation
	require.NoError(t, json.Unmarshal(got[0].Definition, &def), "the snapshot decodes as the workflow will decode it")
}

func TestInvalidate(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	w := newWorld(t, time.Hour)
	a := w.automation(doc("welcome", `{"event": "signed.up"}`), false)
	require.Empty(t, w.matched("signed.up"))

	_, err := w.s.SetAutomationEnabled(ctx, w.ws.ID, a.ID, true)
	require.NoError(t, err)
	require.Empty(t, w.matched("signed.up"), "the cached answer holds until invalidated")
	w.m.Invalidate(w.ws.ID)
	require.Equal(t, []uuid.UUID{a.ID}, w.matched("signed.up"))

	_, err = w.s.SetAutomationEnabled(ctx, w.ws.ID, a.ID, false)
	require.NoError(t, err)
	w.m.Invalidate(w.ws.ID)
	require.Empty(t, w.matched("signed.up"), "a disabled automation stops matching at once")
}

func TestCacheExpires(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	const ttl = 300 * time.Millisecond
	w := newWorld(t, ttl)
	a := w.automation(doc("welcome", `{"event": "signed.up"}`), false)
	loaded := time.Now()
	require.Empty(t, w.matched("signed.up"))

	// Another replica enables it: this one sees it once the TTL has passed.
	_, err := w.s.SetAutomationEnabled(ctx, w.ws.ID, a.ID, true)
	require.NoError(t, err)
	got := w.matched("signed.up")
	if time.Since(loaded) < ttl {
		require.Empty(t, got, "the cached answer holds within the TTL")
	}
	require.Eventually(t, func() bool { return len(w.matched("signed.up")) == 1 }, 5*time.Second, 20*time.Millisecond)
}

func TestAutomates(t *testing.T) {
	t.Parallel()
	w := newWorld(t, time.Hour)
	other := uuid.New()
	set := w.load()
	require.False(t, set.Automates(w.ws.ID), "a workspace without automations")

	w.automation(doc("draft", `{"event": "signed.up"}`), false)
	require.False(t, w.load().Automates(w.ws.ID), "cached until invalidated")
	w.m.Invalidate(w.ws.ID)
	set = w.load()
	require.True(t, set.Automates(w.ws.ID), "a disabled automation still counts")
	require.Empty(t, w.matched("signed.up"))

	// The set answers only for the workspaces it was loaded for.
	require.False(t, set.Automates(other))
	ev := &store.TriggerEvent{ID: store.NewID(), Name: "signed.up", Properties: json.RawMessage(`{}`)}
	require.Nil(t, set.Triggers(context.Background(), other, ev, func() *store.Contact { return nil }))
}

func TestWaitMatches(t *testing.T) {
	t.Parallel()
	w := newWorld(t, time.Hour)
	ev := &store.TriggerEvent{ID: store.NewID(), Name: "order.placed", Properties: json.RawMessage(`{"amount": 80}`),
		OccurredAt: time.Now()}
	contact := &store.Contact{ID: uuid.New(), Email: "ada@example.com", Properties: json.RawMessage(`{"vip": true}`)}
	for _, tc := range []struct {
		name      string
		condition string
		contact   *store.Contact
		want      bool
	}{
		{"no condition", "", nil, true},
		{"event above the trigger", "event.properties.amount > trigger.properties.amount", nil, true},
		{"event below", "event.properties.amount > 100", nil, false},
		{"contact", "contact.properties.vip", contact, true},
		{"contact not loaded", "contact.properties.vip", nil, false},
		{"does not compile", "event.properties.amount >", nil, false},
	} {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			wt := &store.Wait{WorkflowID: "wf", EventName: "order.placed", Condition: tc.condition,
				Trigger: json.RawMessage(`{"name": "signed.up", "properties": {"amount": 50}}`)}
			require.Equal(t, tc.want, w.m.WaitMatches(context.Background(), wt, ev, tc.contact))
		})
	}
}

func TestWorkflowID(t *testing.T) {
	t.Parallel()
	m := triggers.New(nil, nil, time.Hour, slog.New(slog.NewTextHandler(io.Discard, nil)))
	id := store.NewID()
	require.Equal(t, workflows.WorkflowID(id.String()), m.WorkflowID(id))
}
