package conditions

import (
	"context"
	"encoding/json"
	"testing"
	"time"

	"github.com/google/uuid"
	"github.com/stretchr/testify/require"

	"github.com/signalbox/signalbox/definition"
	"github.com/signalbox/signalbox/event"
)

// TestMatchedEventsAreBound reads the events a wait on several events
// matched, by name, the way the yes steps of such a wait do.
func TestMatchedEventsAreBound(t *testing.T) {
	t.Parallel()
	env := newTestEnv(t)
	paid := event.Event{ID: uuid.New(), Name: "order.paid", Properties: json.RawMessage(`{"amount": 80}`),
		OccurredAt: time.Date(2026, 3, 1, 9, 0, 0, 0, time.UTC)}
	shipped := event.Event{ID: uuid.New(), Name: "order.shipped", Properties: json.RawMessage(`{"carrier": "ups"}`)}
	vars := Vars{Events: map[string]map[string]any{"order.paid": EventMap(paid), "order.shipped": EventMap(shipped)}}

	prog, err := env.Compile(`events["order.paid"].properties.amount >= 50.0 && events["order.shipped"].properties.carrier == "ups"`, KindCondition)
	require.NoError(t, err)
	ok, err := prog.EvalBool(context.Background(), vars)
	require.NoError(t, err)
	require.True(t, ok)

	prog, err = env.Compile(`events["order.paid"].occurred_at < timestamp("2026-03-02T00:00:00Z") && "order.refunded" in events`, KindCondition)
	require.NoError(t, err)
	ok, err = prog.EvalBool(context.Background(), vars)
	require.NoError(t, err)
	require.False(t, ok)

	// Outside such yes steps nothing is bound: a read is a missing key.
	_, err = prog.EvalBool(context.Background(), Vars{})
	require.NoError(t, err)
	prog, err = env.Compile(`events["order.paid"].properties.amount`, KindValue)
	require.NoError(t, err)
	_, err = prog.EvalValue(context.Background(), Vars{})
	require.ErrorIs(t, err, ErrNoSuchKey)
}

func TestMatchedEventsNamesTheReads(t *testing.T) {
	t.Parallel()
	env := newTestEnv(t)
	for expr, want := range map[string][]string{
		`events["order.paid"].properties.amount + events.signup.properties.n`: {"order.paid", "signup"},
		`"order.paid" in events`:                {},
		`events[contact.properties.which].name`: {},
	} {
		reads, names := env.MatchedEvents(expr)
		require.True(t, reads, expr)
		require.ElementsMatch(t, want, names, expr)
	}
	reads, _ := env.MatchedEvents(`event.properties.events > 1`)
	require.False(t, reads)
}

// TestValidateMatchedEvents refuses, at save time, events read where no
// wait on several events binds them, or names no enclosing wait awaits.
func TestValidateMatchedEvents(t *testing.T) {
	t.Parallel()
	env := newTestEnv(t)
	doc := `{"name": "n", "trigger": {"event": "checkout.started", "condition": "size(events) == 0"},
	  "steps": [
	    {"id": "w", "type": "wait_for_event", "events": ["order.paid", "order.shipped"], "mode": "all", "timeout": "1h",
	     "condition": "events.x.name == \"x\"",
	     "yes": [{"id": "b", "type": "branch", "condition": "events[\"order.paid\"].properties.amount > 1.0",
	              "yes": [{"id": "h", "type": "webhook", "url": "https://example.com",
	                       "body": {"a": "events[\"order.payed\"].name"}}]}],
	     "no": [{"id": "n", "type": "update_contact", "properties": {"p": "events[\"order.paid\"].name"}}]},
	    {"id": "after", "type": "update_contact", "properties": {"q": "size(events)"}}
	  ]}`
	_, problems := definition.Load([]byte(doc), env)
	require.Equal(t, []definition.Problem{
		{Pointer: "/steps/0/condition", Detail: "events is bound only in the yes steps of a wait_for_event step that lists events"},
		{Pointer: "/steps/0/no/0/properties/p", Detail: "events is bound only in the yes steps of a wait_for_event step that lists events"},
		{Pointer: "/steps/0/yes/0/yes/0/body/a", Detail: `events["order.payed"]: no enclosing wait_for_event step awaits "order.payed" (it awaits order.paid, order.shipped)`},
		{Pointer: "/steps/1/properties/q", Detail: "events is bound only in the yes steps of a wait_for_event step that lists events"},
		{Pointer: "/trigger/condition", Detail: "events is bound only in the yes steps of a wait_for_event step that lists events"},
	}, problems)
}
