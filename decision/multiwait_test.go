package decision_test

import (
	"encoding/json"
	"testing"
	"time"

	"github.com/google/uuid"
	"github.com/stretchr/testify/require"

	"github.com/signalbox/signalbox/decision"
	"github.com/signalbox/signalbox/event"
	"github.com/signalbox/signalbox/intent"
)

// multi lists the rows of one wait on several events under their names.
func (w *world) multi(mode string, names ...string) uuid.UUID {
	enrollment := uuid.Must(uuid.NewV7())
	for _, n := range names {
		row := &decision.Wait{EnrollmentID: enrollment, StepID: "both", WorkflowID: "wf-m", WorkspaceID: ws,
			AutomationID: uuid.Nil, Version: 1, ContactID: contact, EventName: n, Mode: mode, Trigger: json.RawMessage(`{}`),
			BeganAt: at.Add(-time.Hour), ExpiresAt: at.Add(time.Hour)}
		k := decision.ContactEvent{Contact: contact, Name: n}
		w.in.Waits[k] = append(w.in.Waits[k], row)
	}
	return enrollment
}

// wonAsDatabase wins every claim and reports the wait's rows as the
// database would after them, with the rows claimed before the group.
func wonAsDatabase(enrollment uuid.UUID, mode string, names []string, before map[string]event.Event,
	group map[uuid.UUID]event.Event) func(decision.Claims) decision.Won {
	return func(c decision.Claims) decision.Won {
		won := wonAll(c)
		st := decision.MultiState{Mode: mode, Names: names, Matched: map[string]event.Event{}}
		for n, e := range before {
			st.Matched[n] = e
		}
		for k, ev := range c.Waits {
			st.Matched[k.Event] = group[ev]
		}
		won.Multi = map[decision.WaitKey]decision.MultiState{{EnrollmentID: enrollment, StepID: "both"}: st}
		return won
	}
}

func TestMultiWaitAllInGroup(t *testing.T) {
	t.Parallel()
	w := newWorld(t)
	names := []string{"order.paid", "order.shipped"}
	enrollment := w.multi("all", names...)
	shipped := w.event("order.shipped", `{}`)
	again := w.event("order.shipped", `{}`)
	paid := w.event("order.paid", `{"amount": 80}`)

	p := w.decide(wonAsDatabase(enrollment, "all", names, nil, map[uuid.UUID]event.Event{shipped.ID: shipped, paid.ID: paid}))
	require.Equal(t, []string{"wait wait_matched", "wait taken_by_other_event", "wait resumed"}, outcomes(p))
	d := p.Decisions()
	require.Equal(t, map[string]any{"step_id": "both", "mode": "all", "matched": map[string]any{"order.shipped": shipped.ID},
		"awaiting": []string{"order.paid"}}, d[0].Detail)
	require.Equal(t, map[string]any{"step_id": "both", "mode": "all",
		"matched": map[string]any{"order.shipped": shipped.ID, "order.paid": paid.ID}}, d[2].Detail)
	_ = again
	var counted int
	_, effects := p.Effects(func(decision.Item, string) { counted++ })
	require.Equal(t, 1, counted, "only the completing event counts as a resume")
	require.Equal(t, []decision.Effect{{Item: d[2].Item, WorkspaceID: ws, WorkflowID: "wf-m", Kind: intent.KindSignal,
		Payload: intent.Signal{EnrollmentID: enrollment, StepID: "both", Event: paid, Events: []event.Event{paid, shipped}}}},
		effects)
}

// TestMultiWaitAllNeedsAnother: one name matched in the group, the other
// still missing in the database: matched, nothing resumes.
func TestMultiWaitAllNeedsAnother(t *testing.T) {
	t.Parallel()
	w := newWorld(t)
	names := []string{"order.paid", "order.shipped"}
	enrollment := w.multi("all", names...)
	paid := w.event("order.paid", `{}`)
	p := w.decide(wonAsDatabase(enrollment, "all", names, nil, map[uuid.UUID]event.Event{paid.ID: paid}))
	require.Equal(t, []string{"wait wait_matched"}, outcomes(p))
	_, effects := p.Effects(func(decision.Item, string) {})
	require.Empty(t, effects)

	// The other name was claimed by an earlier request: this one completes.
	w2 := newWorld(t)
	enrollment = w2.multi("all", names...)
	paid = w2.event("order.paid", `{}`)
	shipped := event.Event{ID: uuid.Must(uuid.NewV7()), Name: "order.shipped", ReceivedAt: at.Add(-time.Minute)}
	p = w2.decide(wonAsDatabase(enrollment, "all", names, map[string]event.Event{"order.shipped": shipped},
		map[uuid.UUID]event.Event{paid.ID: paid}))
	require.Equal(t, []string{"wait resumed"}, outcomes(p))
	_, effects = p.Effects(func(decision.Item, string) {})
	require.Equal(t, []event.Event{paid, shipped}, effects[0].Payload.(intent.Signal).Events)
}

// TestMultiWaitAnyInGroup: the first event of any name takes the wait; the
// others of the group are taken by it.
func TestMultiWaitAnyInGroup(t *testing.T) {
	t.Parallel()
	w := newWorld(t)
	names := []string{"call.booked", "chat.started"}
	enrollment := w.multi("any", names...)
	chat := w.event("chat.started", `{}`)
	w.event("call.booked", `{}`)
	p := w.decide(wonAsDatabase(enrollment, "any", names, nil, map[uuid.UUID]event.Event{chat.ID: chat}))
	require.Equal(t, []string{"wait resumed", "wait taken_by_other_event"}, outcomes(p))
	require.Len(t, p.Claims().Waits, 0, "settled plans claim nothing more")
	_, effects := p.Effects(func(decision.Item, string) {})
	require.Equal(t, []event.Event{chat}, effects[0].Payload.(intent.Signal).Events)

	// Lost to a concurrent request: taken by another event.
	w2 := newWorld(t)
	w2.multi("any", names...)
	w2.event("call.booked", `{}`)
	require.Equal(t, []string{"wait taken_by_other_event"}, outcomes(w2.decide(wonNone)))
}

// TestMultiWaitExitWins: an exit event earlier in the group ends the
// enrollment; its wait on several events is not resumed or matched.
func TestMultiWaitExitWins(t *testing.T) {
	t.Parallel()
	w := newWorld(t)
	names := []string{"order.paid", "order.shipped"}
	enrollment := w.multi("all", names...)
	leaving := &decision.Candidate{EnrollmentID: enrollment, WorkflowID: "wf-m", WorkspaceID: ws, Version: 1,
		TriggerEventID: uuid.Must(uuid.NewV7())}
	w.in.Exits[decision.ContactEvent{Contact: contact, Name: "order.cancelled"}] = []*decision.Candidate{leaving}
	w.event("order.paid", `{}`)
	cancelled := w.event("order.cancelled", `{}`)
	w.event("order.shipped", `{}`)
	p := w.decide(wonAll)
	require.Equal(t, []string{"wait wait_matched", "exit exited", "wait exited"}, outcomes(p))
	require.Equal(t, cancelled.ID, p.Decisions()[2].Detail["exit_event_id"])
	_, effects := p.Effects(func(decision.Item, string) {})
	require.Len(t, effects, 1)
	require.Equal(t, intent.KindCancel, effects[0].Kind)
}
