package decision_test

import (
	"context"
	"encoding/json"
	"testing"
	"time"

	"github.com/google/uuid"
	"github.com/stretchr/testify/require"

	"github.com/signalbox/signalbox/conditions"
	"github.com/signalbox/signalbox/decision"
	"github.com/signalbox/signalbox/definition"
	"github.com/signalbox/signalbox/event"
	"github.com/signalbox/signalbox/intent"
)

// automations is a fixed decision.Automations.
type automations struct {
	env      *conditions.Env
	triggers map[string][]decision.Trigger
}

func (a automations) Automates(uuid.UUID) bool { return true }
func (a automations) Triggers(_ uuid.UUID, name string) []decision.Trigger {
	return a.triggers[name]
}
func (a automations) Conditions() *conditions.Env { return a.env }

var (
	ws      = uuid.MustParse("0b8f3f7e-5c1a-4c36-8c55-2f0f3e4a9d01")
	contact = uuid.MustParse("c3d4e5f6-a7b8-4c9d-8e0f-1a2b3c4d5e6f")
	at      = time.Date(2026, 3, 2, 9, 0, 0, 0, time.UTC)
)

// world builds a group's input around automations given as definitions.
type world struct {
	t    *testing.T
	auto automations
	in   decision.Input
	seq  int
}

func newWorld(t *testing.T) *world {
	env, err := conditions.NewEnv(conditions.Config{})
	require.NoError(t, err)
	w := &world{t: t, auto: automations{env: env, triggers: map[string][]decision.Trigger{}}}
	w.in = decision.Input{Exits: map[decision.ContactEvent][]*decision.Candidate{},
		Waits: map[decision.ContactEvent][]*decision.Wait{}, Contacts: map[uuid.UUID]map[string]any{},
		Automations: w.auto, NewID: func() uuid.UUID { return uuid.Must(uuid.NewV7()) }, Now: at}
	return w
}

// automation adds an automation whose definition is doc.
func (w *world) automation(doc string, enabled bool) uuid.UUID {
	w.t.Helper()
	def, problems := definition.Load([]byte(doc), w.auto.env)
	require.Empty(w.t, problems)
	t := decision.Trigger{AutomationID: uuid.Must(uuid.NewV7()), Version: 3, Enabled: enabled, Definition: *def}
	if c := def.Trigger.Condition; c != "" {
		prog, err := w.auto.env.Compile(c, conditions.KindCondition)
		require.NoError(w.t, err)
		t.Condition, t.ReadsContact = prog, true
	}
	w.auto.triggers[def.Trigger.Event] = append(w.auto.triggers[def.Trigger.Event], t)
	return t.AutomationID
}

// event adds an event of the group, in order.
func (w *world) event(name, props string) event.Event {
	w.seq++
	e := event.Event{ID: uuid.Must(uuid.NewV7()), Name: name, Properties: json.RawMessage(props), OccurredAt: at,
		ReceivedAt: at}
	w.in.Events = append(w.in.Events, decision.Fresh{Item: decision.Item{Index: w.seq - 1}, WorkspaceID: ws,
		ContactID: contact, Event: e})
	return e
}

// decide makes the plan, settles it with won, and returns it.
func (w *world) decide(won func(decision.Claims) decision.Won) *decision.Plan {
	p := decision.Make(context.Background(), w.in)
	if won == nil {
		won = wonAll
	}
	p.Settle(won(p.Claims()))
	return p
}

func wonAll(c decision.Claims) decision.Won {
	w := decision.Won{Once: map[decision.OnceKey]bool{}, Waits: map[decision.WaitKey]bool{}, Exits: map[uuid.UUID]bool{}}
	for k := range c.Once {
		w.Once[k] = true
	}
	for k := range c.Waits {
		w.Waits[k] = true
	}
	for k := range c.Exits {
		w.Exits[k] = true
	}
	return w
}

func wonNone(decision.Claims) decision.Won { return decision.Won{} }

// outcomes lists "kind outcome" of every decision, in order.
func outcomes(p *decision.Plan) []string {
	var out []string
	for _, d := range p.Decisions() {
		out = append(out, d.Kind+" "+d.Outcome)
	}
	return out
}

func doc(trigger string) string {
	return `{"name": "n", "trigger": ` + trigger + `, "exit_on": ["churned"],
		"steps": [{"id": "pause", "type": "delay", "duration": "1h"}]}`
}

func TestTriggerOutcomes(t *testing.T) {
	t.Parallel()
	w := newWorld(t)
	every := w.automation(doc(`{"event": "order.placed"}`), true)
	big := w.automation(doc(`{"event": "order.placed", "condition": "event.properties.amount >= 50.0 && contact.email != ''"}`), true)
	broken := w.automation(doc(`{"event": "order.placed", "condition": "int(event.properties.note) > 1"}`), true)
	off := w.automation(doc(`{"event": "order.placed"}`), false)
	w.in.Contacts[contact] = conditions.ContactMap(contact.String(), "ada@example.com", nil, nil, nil)
	e := w.event("order.placed", `{"amount": 20, "note": "x"}`)

	p := w.decide(nil)
	ds := p.Decisions()
	require.Len(t, ds, 4)
	byAuto := map[uuid.UUID]*decision.Decision{}
	for _, d := range ds {
		require.Equal(t, e.ID, d.EventID)
		require.Equal(t, decision.KindTrigger, d.Kind)
		require.Equal(t, 3, d.Version)
		byAuto[d.AutomationID] = d
	}
	require.Equal(t, decision.Enrolled, byAuto[every].Outcome)
	require.NotEqual(t, uuid.Nil, byAuto[every].EnrollmentID)
	require.Equal(t, decision.ConditionFalse, byAuto[big].Outcome)
	require.Equal(t, "event.properties.amount >= 50.0 && contact.email != ''", byAuto[big].Detail["expression"])
	require.Equal(t, map[string]any{"event.properties.amount": 20.0, "contact.email": "ada@example.com"},
		byAuto[big].Detail["values"], "the values the condition read")
	require.Equal(t, decision.ConditionError, byAuto[broken].Outcome)
	require.NotEmpty(t, byAuto[broken].Detail["error"])
	require.Equal(t, decision.AutomationDisabled, byAuto[off].Outcome)

	var counted []string
	enrollments, effects := p.Effects(func(_ decision.Item, kind string) { counted = append(counted, kind) })
	require.Len(t, enrollments, 1)
	require.Equal(t, []string{"churned"}, enrollments[0].ExitOn)
	require.Len(t, effects, 1)
	require.Equal(t, intent.KindStart, effects[0].Kind)
	start := effects[0].Payload.(*intent.Start)
	require.Equal(t, byAuto[every].EnrollmentID, start.EnrollmentID)
	require.Equal(t, e, start.Trigger)
	require.Equal(t, intent.WorkflowID(start.EnrollmentID), effects[0].WorkflowID)
	require.Equal(t, []string{decision.KindTrigger}, counted)
}

func TestDepthLimit(t *testing.T) {
	t.Parallel()
	w := newWorld(t)
	w.automation(doc(`{"event": "x"}`), true)
	w.event("x", `{}`)
	w.in.Events[0].Event.Depth = decision.MaxDepth
	require.Equal(t, []string{"trigger depth_limit"}, outcomes(w.decide(nil)))
}

func TestOnce(t *testing.T) {
	t.Parallel()
	w := newWorld(t)
	w.automation(doc(`{"event": "signed.up", "frequency": "once"}`), true)
	w.event("signed.up", `{}`)
	w.event("signed.up", `{}`)

	// In the group: the first enrolls, the second finds it.
	p := w.decide(nil)
	require.Equal(t, []string{"trigger enrolled", "trigger once_already"}, outcomes(p))
	require.Equal(t, p.Decisions()[0].EnrollmentID, p.Decisions()[1].EnrollmentID)

	// A concurrent transaction held the reservation: neither enrolls, and
	// the earlier enrollment is named.
	earlier := uuid.Must(uuid.NewV7())
	p = w.decide(func(c decision.Claims) decision.Won {
		won := decision.Won{Earlier: map[decision.OnceKey]uuid.UUID{}}
		for k := range c.Once {
			won.Earlier[k] = earlier
		}
		return won
	})
	require.Equal(t, []string{"trigger once_already", "trigger once_already"}, outcomes(p))
	require.Equal(t, earlier, p.Decisions()[0].EnrollmentID)
	enrollments, effects := p.Effects(func(decision.Item, string) { t.Error("nothing took effect") })
	require.Empty(t, enrollments)
	require.Empty(t, effects)
}

func TestWaitsAndExits(t *testing.T) {
	t.Parallel()
	w := newWorld(t)
	automation := uuid.Must(uuid.NewV7())
	waiting := &decision.Wait{EnrollmentID: uuid.Must(uuid.NewV7()), StepID: "review", WorkflowID: "wf-1", WorkspaceID: ws,
		AutomationID: automation, Version: 2, ContactID: contact, EventName: "review.submitted",
		Condition: "event.properties.stars > 3", Trigger: json.RawMessage(`{}`),
		BeganAt: at.Add(-time.Hour), ExpiresAt: at.Add(time.Hour)}
	picky := &decision.Wait{EnrollmentID: uuid.Must(uuid.NewV7()), StepID: "review", WorkflowID: "wf-2", WorkspaceID: ws,
		AutomationID: automation, Version: 2, ContactID: contact, EventName: "review.submitted",
		Condition: "event.properties.stars > 10", Trigger: json.RawMessage(`{}`),
		BeganAt: at.Add(-time.Hour), ExpiresAt: at.Add(time.Hour)}
	k := decision.ContactEvent{Contact: contact, Name: "review.submitted"}
	w.in.Waits[k] = []*decision.Wait{waiting, picky}
	leaving := &decision.Candidate{EnrollmentID: uuid.Must(uuid.NewV7()), WorkflowID: "wf-3", WorkspaceID: ws,
		AutomationID: automation, Version: 2, TriggerEventID: uuid.Must(uuid.NewV7())}
	w.in.Exits[decision.ContactEvent{Contact: contact, Name: "churned"}] = []*decision.Candidate{leaving}

	first := w.event("review.submitted", `{"stars": 5}`)
	w.event("review.submitted", `{"stars": 5}`)
	exit := w.event("churned", `{}`)
	w.event("churned", `{}`)

	p := w.decide(nil)
	require.Equal(t, []string{"wait resumed", "wait wait_condition_false", "wait taken_by_other_event",
		"wait wait_condition_false", "exit exited", "exit taken_by_other_event"}, outcomes(p))
	var counted []string
	_, effects := p.Effects(func(_ decision.Item, kind string) { counted = append(counted, kind) })
	require.Len(t, effects, 2)
	require.Equal(t, intent.Signal{EnrollmentID: waiting.EnrollmentID, StepID: "review", Event: first}, effects[0].Payload)
	require.Equal(t, intent.Cancel{EnrollmentID: leaving.EnrollmentID, EventID: &exit.ID}, effects[1].Payload)
	require.Equal(t, []string{decision.KindWait, decision.KindExit}, counted)

	// Claims a concurrent transaction won first take no effect.
	waiting2 := *waiting
	leaving2 := *leaving
	w.in.Waits[k] = []*decision.Wait{&waiting2}
	w.in.Exits[decision.ContactEvent{Contact: contact, Name: "churned"}] = []*decision.Candidate{&leaving2}
	p = w.decide(wonNone)
	require.Equal(t, []string{"wait taken_by_other_event", "wait taken_by_other_event", "exit taken_by_other_event",
		"exit taken_by_other_event"}, outcomes(p))
	_, effects = p.Effects(func(decision.Item, string) { t.Error("nothing took effect") })
	require.Empty(t, effects)
}

// TestExitBeforeResume puts an exit event before the awaited event in one
// group: the exit wins, and the wait is not resumed.
func TestExitBeforeResume(t *testing.T) {
	t.Parallel()
	w := newWorld(t)
	enrollment := uuid.Must(uuid.NewV7())
	w.in.Waits[decision.ContactEvent{Contact: contact, Name: "review.submitted"}] = []*decision.Wait{{
		EnrollmentID: enrollment, StepID: "review", WorkflowID: "wf", WorkspaceID: ws, ContactID: contact,
		EventName: "review.submitted", BeganAt: at.Add(-time.Hour), ExpiresAt: at.Add(time.Hour)}}
	w.in.Exits[decision.ContactEvent{Contact: contact, Name: "churned"}] = []*decision.Candidate{{
		EnrollmentID: enrollment, WorkflowID: "wf", WorkspaceID: ws}}
	w.event("churned", `{}`)
	w.event("review.submitted", `{}`)
	require.Equal(t, []string{"exit exited", "wait exited"}, outcomes(w.decide(nil)))
}

// TestEnrollmentExitedInItsGroup starts an enrollment and exits it in the
// same group: the exit is written with it, claimed from no one, and an
// event never exits the enrollment it starts.
func TestEnrollmentExitedInItsGroup(t *testing.T) {
	t.Parallel()
	w := newWorld(t)
	w.automation(`{"name": "n", "trigger": {"event": "churned"}, "exit_on": ["churned"],
		"steps": [{"id": "pause", "type": "delay", "duration": "1h"}]}`, true)
	first := w.event("churned", `{}`)
	second := w.event("churned", `{}`)
	p := w.decide(nil)
	require.Equal(t, []string{"trigger enrolled", "exit exited", "trigger enrolled"}, outcomes(p))
	require.Empty(t, p.Claims().Exits, "an exit of the group's own enrollment claims nothing")
	enrollments, effects := p.Effects(func(decision.Item, string) {})
	require.Len(t, enrollments, 2)
	require.Equal(t, second.ID, *enrollments[0].ExitEventID)
	require.Nil(t, enrollments[1].ExitEventID)
	kinds := []string{}
	for _, e := range effects {
		kinds = append(kinds, e.Kind)
	}
	require.Equal(t, []string{intent.KindStart, intent.KindCancel, intent.KindStart}, kinds, "a start before its cancel")
	require.Equal(t, first.ID, effects[0].Payload.(*intent.Start).Trigger.ID)
}

// TestWaitWindow resumes only waits whose window covers the event: an
// event at the window's opening counts only after the event that opened it.
func TestWaitWindow(t *testing.T) {
	t.Parallel()
	opener := uuid.Must(uuid.NewV7())
	after := uuid.Must(uuid.NewV7())
	earlier := uuid.MustParse("00000000-0000-7000-8000-000000000001") // an id before the opener's
	w := decision.Wait{BeganAt: at, AfterEventID: opener, ExpiresAt: at.Add(time.Minute)}
	require.False(t, w.Covers(opener, at), "the event that opened it")
	require.True(t, w.Covers(after, at), "after it in its transaction")
	require.False(t, w.Covers(earlier, at), "before it in its transaction")
	require.True(t, w.Covers(earlier, at.Add(time.Second)), "received later, whatever its id")
	require.False(t, w.Covers(after, at.Add(-time.Microsecond)), "received before")
	require.False(t, w.Covers(after, at.Add(time.Minute)), "at the close")
	w.AfterEventID = uuid.Nil
	require.True(t, w.Covers(opener, at), "a window opened by a delay counts its first instant")
}
