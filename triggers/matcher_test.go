package triggers_test

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"log/slog"
	"testing"
	"time"

	"github.com/google/uuid"
	"github.com/stretchr/testify/require"

	"github.com/signalbox/signalbox/conditions"
	"github.com/signalbox/signalbox/decision"
	"github.com/signalbox/signalbox/definition"
	"github.com/signalbox/signalbox/event"
	"github.com/signalbox/signalbox/store"
	"github.com/signalbox/signalbox/store/storetest"
	"github.com/signalbox/signalbox/triggers"
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
func (w *world) load() decision.Automations {
	w.t.Helper()
	set, err := w.m.Load(context.Background(), []uuid.UUID{w.ws.ID})
	require.NoError(w.t, err)
	return set
}

// matched returns the ids of the automations an event named name enrolls.
func (w *world) matched(name string) []uuid.UUID {
	w.t.Helper()
	return enrolled(w.t, w.load(), w.ws.ID, name, `{}`, nil)
}

// enrolled decides one event with props for a contact (its CEL view, nil
// when unknown), as the record path does, every "once" reservation won,
// and returns the automations it enrolls.
func enrolled(t *testing.T, set decision.Automations, ws uuid.UUID, name, props string, contact map[string]any) []uuid.UUID {
	t.Helper()
	contactID := store.NewID()
	ev := event.Event{ID: store.NewID(), Name: name, Properties: json.RawMessage(props), OccurredAt: time.Now(),
		ReceivedAt: time.Now()}
	in := decision.Input{Events: []decision.Fresh{{WorkspaceID: ws, ContactID: contactID, Event: ev}},
		Exits: map[decision.ContactEvent][]*decision.Candidate{}, Waits: map[decision.ContactEvent][]*decision.Wait{},
		Contacts: map[uuid.UUID]map[string]any{}, Automations: set, NewID: store.NewID, Now: time.Now()}
	if contact != nil {
		in.Contacts[contactID] = contact
	}
	plan := decision.Make(context.Background(), in)
	won := decision.Won{Once: map[decision.OnceKey]bool{}}
	for k := range plan.Claims().Once {
		won.Once[k] = true
	}
	plan.Settle(won)
	var out []uuid.UUID
	for _, d := range plan.Decisions() {
		if d.Kind == decision.KindTrigger && d.Outcome == decision.Enrolled {
			out = append(out, d.AutomationID)
		}
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
	disabledVIP := w.automation(doc("disabled vip", `{"event": "plan.changed", "condition": "contact.properties.vip"}`), false)
	set := w.load()

	contact := func(props string) map[string]any {
		return conditions.ContactMap(uuid.NewString(), "ada@example.com", nil, nil, json.RawMessage(props))
	}
	for _, tc := range []struct {
		name    string
		event   string
		props   string
		contact map[string]any
		want    []uuid.UUID
	}{
		{"int amount at the bound", "order.placed", `{"amount": 50}`, nil, []uuid.UUID{anyOrder.ID, bigOrder.ID}},
		{"double amount above", "order.placed", `{"amount": 50.5}`, nil, []uuid.UUID{anyOrder.ID, bigOrder.ID}},
		{"big amount", "order.placed", `{"amount": 1e6}`, nil, []uuid.UUID{anyOrder.ID, bigOrder.ID}},
		{"double amount below", "order.placed", `{"amount": 49.99}`, nil, []uuid.UUID{anyOrder.ID}},
		{"amount as a string", "order.placed", `{"amount": "60"}`, nil, []uuid.UUID{anyOrder.ID}},
		{"no amount", "order.placed", `{}`, nil, []uuid.UUID{anyOrder.ID}},
		{"vip contact", "plan.changed", `{}`, contact(`{"vip": true}`), []uuid.UUID{vip.ID}},
		{"other contact", "plan.changed", `{}`, contact(`{"vip": false}`), nil},
		{"contact not found", "plan.changed", `{}`, nil, nil},
		{"no automation for the name", "page.viewed", `{}`, contact(`{"vip": true}`), nil},
	} {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			require.ElementsMatch(t, tc.want, enrolled(t, set, w.ws.ID, tc.event, tc.props, tc.contact))
		})
	}
	// Only the condition that reads the contact has it loaded.
	for _, name := range []string{"order.placed", "plan.changed"} {
		for _, tr := range set.Triggers(w.ws.ID, name) {
			require.Equal(t, tr.AutomationID == vip.ID || tr.AutomationID == disabledVIP.ID, tr.ReadsContact, "%s", tr.AutomationID)
		}
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

	got := w.load().Triggers(w.ws.ID, "signed.up")
	require.Len(t, got, 1)
	require.Equal(t, a.ID, got[0].AutomationID)
	require.Equal(t, 2, got[0].Version)
	require.True(t, got[0].Enabled)
	require.True(t, got[0].Definition.Trigger.Once())
	require.Equal(t, []string{"deleted", "churned"}, got[0].Definition.ExitOn)
	raw, err := json.Marshal(got[0].Definition)
	require.NoError(t, err)
	require.JSONEq(t, string(a.Definition), string(raw), "the snapshot is the saved definition")
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
	require.Nil(t, set.Triggers(other, "signed.up"))
}

// TestEventBudgetThroughRecordPath gives a workspace many automations with
// costly trigger conditions that all hold: one event evaluates them under
// one budget, so only the first few enroll, and the next event, in the same
// group commit, still gets its own budget.
func TestEventBudgetThroughRecordPath(t *testing.T) {
	t.Parallel()
	s := storetest.New(t, store.Config{})
	ws, _ := storetest.Workspace(t, s, store.PlanEnterprise)
	// Budget for about five of these conditions per event.
	env, err := conditions.NewEnv(conditions.Config{EventCostBudget: 5 * 350, EventTimeout: -1, Timeout: -1})
	require.NoError(t, err)
	m := triggers.New(s, env, time.Hour, slog.New(slog.NewTextHandler(io.Discard, nil)))
	s.SetAutomator(m)
	w := &world{t: t, s: s, ws: ws, env: env, m: m}
	for i := range 30 {
		w.automation(doc(fmt.Sprintf("costly %d", i),
			`{"event": "cart.updated", "condition": "event.properties.items.all(i, i >= 0)"}`), true)
	}
	items := make([]int, 100)
	props, err := json.Marshal(map[string]any{"items": items})
	require.NoError(t, err)
	ev := func(email string) store.EventInput {
		return store.EventInput{Email: email, CreateIfMissing: true, Name: "cart.updated", Properties: props,
			OccurredAt: time.Now().UTC()}
	}
	out, err := s.Record(context.Background(), []*store.RecordRequest{
		{WorkspaceID: ws.ID, Plan: ws.Plan, Events: []store.EventInput{ev("a@example.com")}},
		{WorkspaceID: ws.ID, Plan: ws.Plan, Events: []store.EventInput{ev("b@example.com")}},
	})
	require.NoError(t, err)
	for _, o := range out {
		n := o.Results[0].Triggered
		require.Positive(t, n)
		require.Less(t, n, 10, "the budget stops the event's conditions well before all 30")
	}
}
