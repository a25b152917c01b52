package store_test

import (
	"context"
	"encoding/json"
	"fmt"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/google/uuid"
	"github.com/stretchr/testify/require"

	"github.com/signalbox/signalbox/conditions"
	"github.com/signalbox/signalbox/decision"
	"github.com/signalbox/signalbox/definition"
	"github.com/signalbox/signalbox/event"
	"github.com/signalbox/signalbox/intent"
	"github.com/signalbox/signalbox/store"
	"github.com/signalbox/signalbox/store/storetest"
)

// fakeAutomator stands in for triggers.Matcher: it answers from fixed data
// and counts how often the record path asks it. It is its own
// decision.Automations.
type fakeAutomator struct {
	// triggers are the automations each event name triggers.
	triggers map[string][]decision.Trigger
	// ws is the one workspace with automations.
	ws  uuid.UUID
	env *conditions.Env
	// off makes Automates report a workspace without automations.
	off atomic.Bool

	loadCalls     atomic.Int64
	triggersCalls atomic.Int64
}

func (f *fakeAutomator) Load(context.Context, []uuid.UUID) (decision.Automations, error) {
	f.loadCalls.Add(1)
	return f, nil
}

func (f *fakeAutomator) Automates(ws uuid.UUID) bool { return ws == f.ws && !f.off.Load() }

func (f *fakeAutomator) Triggers(ws uuid.UUID, name string) []decision.Trigger {
	f.triggersCalls.Add(1)
	if !f.Automates(ws) {
		return nil
	}
	return f.triggers[name]
}

func (f *fakeAutomator) Conditions() *conditions.Env { return f.env }

// testDefinition is the fake's automation; the store only snapshots it
// into start intents.
const testDefinition = `{"name": "onboarding", "trigger": {"event": "signed.up"%s},
	"exit_on": %s, "steps": [{"id": "pause", "type": "delay", "duration": "1h"}]}`

// fixture is a workspace with one automation behind a fake automator.
type fixture struct {
	t          *testing.T
	s          *store.Store
	ws         store.Workspace
	automation uuid.UUID
	fake       *fakeAutomator
}

// newFixture makes a workspace, an automation row for enrollments to
// reference, and installs a fake automator whose automation triggers on
// trigger with the given options.
func newFixture(t *testing.T, s *store.Store, trigger string, once bool, exitOn ...string) *fixture {
	t.Helper()
	ws, _ := storetest.Workspace(t, s, store.PlanEnterprise)
	freq := ""
	if once {
		freq = `, "frequency": "once"`
	}
	if exitOn == nil {
		exitOn = []string{}
	}
	names, err := json.Marshal(exitOn)
	require.NoError(t, err)
	doc := strings.Replace(fmt.Sprintf(testDefinition, freq, names), `"signed.up"`, strconv.Quote(trigger), 1)
	def, problems := definition.Load([]byte(doc), nil)
	require.Empty(t, problems)
	a, err := s.CreateAutomation(context.Background(), ws.ID, "onboarding", trigger, json.RawMessage(doc))
	require.NoError(t, err)
	env, err := conditions.NewEnv(conditions.Config{})
	require.NoError(t, err)
	fake := &fakeAutomator{ws: ws.ID, env: env, triggers: map[string][]decision.Trigger{trigger: {{
		AutomationID: a.ID, Version: a.Version, Enabled: true, Definition: *def,
	}}}}
	s.SetAutomator(fake)
	return &fixture{t: t, s: s, ws: ws, automation: a.ID, fake: fake}
}

// ev is an event of the contact with email, created if missing.
func ev(email, name string) store.EventInput {
	return store.EventInput{Email: email, CreateIfMissing: true, Name: name,
		Properties: json.RawMessage(`{"plan":"pro"}`), OccurredAt: time.Now().UTC()}
}

// record records events as one request and returns their results.
func (f *fixture) record(events ...store.EventInput) []store.EventResult {
	f.t.Helper()
	out, err := f.s.Record(context.Background(), []*store.RecordRequest{{WorkspaceID: f.ws.ID, Plan: f.ws.Plan,
		Events: events, TraceParent: "00-0af7651916cd43dd8448eb211c80319c-b7ad6b7169203331-01"}})
	require.NoError(f.t, err)
	for _, r := range out[0].Results {
		require.NoError(f.t, r.Err)
	}
	return out[0].Results
}

// count runs a count(*) query with the workspace id as $1.
func (f *fixture) count(query string, args ...any) int {
	f.t.Helper()
	var n int
	require.NoError(f.t, f.s.Pool().QueryRow(context.Background(), query, append([]any{f.ws.ID}, args...)...).Scan(&n))
	return n
}

// enrollments returns the workspace's enrollments, oldest first.
func (f *fixture) enrollments() []store.Enrollment {
	f.t.Helper()
	list, _, err := f.s.ListEnrollments(context.Background(), f.ws.ID, store.EnrollmentFilter{Limit: 100})
	require.NoError(f.t, err)
	for i, j := 0, len(list)-1; i < j; i, j = i+1, j-1 {
		list[i], list[j] = list[j], list[i]
	}
	return list
}

// intents returns the workspace's outbox rows of a kind, oldest first.
func (f *fixture) intents(kind string) []store.Intent {
	f.t.Helper()
	rows, err := f.s.Pool().Query(context.Background(), `SELECT id, workflow_id, payload, coalesce(trace_parent, '')
		FROM outbox WHERE workspace_id = $1 AND kind = $2 ORDER BY id`, f.ws.ID, kind)
	require.NoError(f.t, err)
	defer rows.Close()
	var out []store.Intent
	for rows.Next() {
		in := store.Intent{WorkspaceID: f.ws.ID, Kind: kind}
		require.NoError(f.t, rows.Scan(&in.ID, &in.WorkflowID, &in.Payload, &in.TraceParent))
		out = append(out, in)
	}
	require.NoError(f.t, rows.Err())
	return out
}

// wait returns a wait of enrollment e for name that began at began.
func wait(e store.Enrollment, name string, began time.Time) store.Wait {
	return store.Wait{EnrollmentID: e.ID, StepID: "activated", WorkflowID: e.WorkflowID, WorkspaceID: e.WorkspaceID,
		ContactID: e.ContactID, EventName: name, Trigger: json.RawMessage(`{}`), BeganAt: began,
		ExpiresAt: began.Add(time.Hour)}
}

// matchAll accepts every event a wait's look-back finds.
func matchAll(event.Event) bool { return true }

func TestRecordEnrollsOnTrigger(t *testing.T) {
	t.Parallel()
	f := newFixture(t, storetest.New(t, store.Config{}), "signed.up", false, "churned", "deleted")

	res := f.record(ev("ada@example.com", "page.viewed"), ev("ada@example.com", "signed.up"))
	require.Zero(t, res[0].Triggered)
	require.Equal(t, 1, res[1].Triggered)

	list := f.enrollments()
	require.Len(t, list, 1)
	e := list[0]
	require.Equal(t, f.automation, e.AutomationID)
	require.Equal(t, 1, e.Version)
	require.Equal(t, res[1].ContactID, e.ContactID)
	require.Equal(t, res[1].EventID, e.TriggerEventID)
	require.Equal(t, intent.WorkflowID(e.ID), e.WorkflowID)
	require.Equal(t, store.EnrollmentActive, e.Status)
	require.Nil(t, e.ExitEventID)

	rows, err := f.s.Pool().Query(context.Background(),
		`SELECT event_name FROM enrollment_exits WHERE enrollment_id = $1 AND contact_id = $2 ORDER BY event_name`,
		e.ID, e.ContactID)
	require.NoError(t, err)
	var names []string
	for rows.Next() {
		var n string
		require.NoError(t, rows.Scan(&n))
		names = append(names, n)
	}
	require.NoError(t, rows.Err())
	require.Equal(t, []string{"churned", "deleted"}, names)

	starts := f.intents(intent.KindStart)
	require.Len(t, starts, 1)
	require.Equal(t, e.WorkflowID, starts[0].WorkflowID)
	require.Equal(t, "00-0af7651916cd43dd8448eb211c80319c-b7ad6b7169203331-01", starts[0].TraceParent)
	var p intent.Start
	require.NoError(t, json.Unmarshal(starts[0].Payload, &p))
	require.Equal(t, e.ID, p.EnrollmentID)
	require.Equal(t, f.ws.ID, p.WorkspaceID)
	require.Equal(t, f.automation, p.AutomationID)
	require.Equal(t, 1, p.Version)
	require.Equal(t, e.ContactID, p.ContactID)
	require.Equal(t, "onboarding", p.Definition.Name)
	require.Equal(t, "pause", p.Definition.Steps[0].ID)
	require.Equal(t, res[1].EventID, p.Trigger.ID)
	require.Equal(t, "signed.up", p.Trigger.Name)
	require.JSONEq(t, `{"plan":"pro"}`, string(p.Trigger.Properties))
	require.Zero(t, f.count(`SELECT count(*) FROM outbox WHERE workspace_id = $1 AND kind <> 'start'`))
}

func TestRecordOnceEnrollsFirstEventOnly(t *testing.T) {
	t.Parallel()
	f := newFixture(t, storetest.New(t, store.Config{}), "signed.up", true)

	// Two events in one request, then one more in another.
	res := f.record(ev("ada@example.com", "signed.up"), ev("ada@example.com", "signed.up"))
	require.Equal(t, 1, res[0].Triggered)
	require.Zero(t, res[1].Triggered)
	require.Zero(t, f.record(ev("ada@example.com", "signed.up"))[0].Triggered)
	// Once is per contact.
	require.Equal(t, 1, f.record(ev("bob@example.com", "signed.up"))[0].Triggered)

	list := f.enrollments()
	require.Len(t, list, 2)
	var once uuid.UUID
	require.NoError(t, f.s.Pool().QueryRow(context.Background(),
		`SELECT enrollment_id FROM enrollment_once WHERE automation_id = $1 AND contact_id = $2`,
		f.automation, res[0].ContactID).Scan(&once))
	require.Equal(t, list[0].ID, once)
	require.Len(t, f.intents(intent.KindStart), 2)
}

func TestRecordOnceUnderConcurrency(t *testing.T) {
	t.Parallel()
	f := newFixture(t, storetest.New(t, store.Config{}), "signed.up", true)
	contact := f.record(ev("ada@example.com", "page.viewed"))[0].ContactID

	const n = 8
	var (
		wg        sync.WaitGroup
		start     = make(chan struct{})
		triggered atomic.Int64
		errs      = make(chan error, n)
	)
	for range n {
		wg.Go(func() {
			<-start
			out, err := f.s.Record(context.Background(), []*store.RecordRequest{{WorkspaceID: f.ws.ID, Plan: f.ws.Plan,
				Events: []store.EventInput{{ContactID: contact, Name: "signed.up", Properties: json.RawMessage(`{}`),
					OccurredAt: time.Now()}}}})
			if err != nil {
				errs <- err
				return
			}
			triggered.Add(int64(out[0].Results[0].Triggered))
		})
	}
	close(start)
	wg.Wait()
	close(errs)
	for err := range errs {
		require.NoError(t, err)
	}
	require.EqualValues(t, 1, triggered.Load())
	require.Len(t, f.enrollments(), 1)
	require.Len(t, f.intents(intent.KindStart), 1)
}

func TestRecordDuplicateEnrollsNobody(t *testing.T) {
	t.Parallel()
	f := newFixture(t, storetest.New(t, store.Config{}), "order.placed", false)
	ev := ev("ada@example.com", "order.placed")
	ev.ExternalID = "order-1"

	require.Equal(t, 1, f.record(ev)[0].Triggered)
	ev.OccurredAt = ev.OccurredAt.Add(time.Second) // a newer repeat updates the event
	res := f.record(ev)
	require.True(t, res[0].Duplicate)
	require.Zero(t, res[0].Triggered)
	require.Len(t, f.enrollments(), 1)
	require.Len(t, f.intents(intent.KindStart), 1)
}

func TestRecordExitEvent(t *testing.T) {
	t.Parallel()

	t.Run("later request", func(t *testing.T) {
		t.Parallel()
		f := newFixture(t, storetest.New(t, store.Config{}), "signed.up", false, "churned")
		f.record(ev("ada@example.com", "signed.up"))
		res := f.record(ev("ada@example.com", "churned"), ev("ada@example.com", "churned"))
		require.Equal(t, 1, res[0].Exited)
		require.Zero(t, res[1].Exited, "an enrollment exits once")

		e := f.enrollments()[0]
		require.NotNil(t, e.ExitEventID)
		require.Equal(t, res[0].EventID, *e.ExitEventID)
		cancels := f.intents(intent.KindCancel)
		require.Len(t, cancels, 1)
		require.Equal(t, e.WorkflowID, cancels[0].WorkflowID)
		var p intent.Cancel
		require.NoError(t, json.Unmarshal(cancels[0].Payload, &p))
		require.Equal(t, intent.Cancel{EnrollmentID: e.ID, EventID: &res[0].EventID}, p)
	})

	t.Run("same request", func(t *testing.T) {
		t.Parallel()
		f := newFixture(t, storetest.New(t, store.Config{}), "signed.up", false, "churned")
		res := f.record(ev("ada@example.com", "signed.up"), ev("ada@example.com", "churned"))
		require.Equal(t, 1, res[0].Triggered)
		require.Equal(t, 1, res[1].Exited)
		e := f.enrollments()[0]
		require.NotNil(t, e.ExitEventID)
		require.Equal(t, res[1].EventID, *e.ExitEventID)
		// The start comes before the cancel, so a dispatcher delivers them in order.
		starts, cancels := f.intents(intent.KindStart), f.intents(intent.KindCancel)
		require.Len(t, cancels, 1)
		require.Less(t, starts[0].ID.String(), cancels[0].ID.String())
	})

	t.Run("another contact", func(t *testing.T) {
		t.Parallel()
		f := newFixture(t, storetest.New(t, store.Config{}), "signed.up", false, "churned")
		f.record(ev("ada@example.com", "signed.up"))
		require.Zero(t, f.record(ev("bob@example.com", "churned"))[0].Exited)
		require.Nil(t, f.enrollments()[0].ExitEventID)
		require.Empty(t, f.intents(intent.KindCancel))
	})

	t.Run("trigger is an exit event", func(t *testing.T) {
		t.Parallel()
		f := newFixture(t, storetest.New(t, store.Config{}), "signed.up", false, "signed.up")
		first := f.record(ev("ada@example.com", "signed.up"))[0]
		require.Equal(t, 1, first.Triggered)
		require.Zero(t, first.Exited, "an event never exits the enrollment it starts")
		require.Nil(t, f.enrollments()[0].ExitEventID)

		// The next one starts another enrollment and exits the first only,
		// also within one request.
		res := f.record(ev("ada@example.com", "signed.up"), ev("ada@example.com", "signed.up"))
		require.Equal(t, []int{1, 1}, []int{res[0].Triggered, res[0].Exited})
		require.Equal(t, []int{1, 1}, []int{res[1].Triggered, res[1].Exited})
		list := f.enrollments()
		require.Len(t, list, 3)
		require.Equal(t, res[0].EventID, *list[0].ExitEventID)
		require.Equal(t, res[1].EventID, *list[1].ExitEventID)
		require.Nil(t, list[2].ExitEventID)
		require.Len(t, f.intents(intent.KindCancel), 2)
	})
}

func TestRecordResumesWait(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	f := newFixture(t, storetest.New(t, store.Config{}), "signed.up", false)
	f.record(ev("ada@example.com", "signed.up"))
	e := f.enrollments()[0]

	found, err := f.s.RegisterWait(ctx, wait(e, "project.created", time.Now()), matchAll)
	require.NoError(t, err)
	require.Equal(t, store.WaitOutcome{}, found)

	// Another contact's event never resumes it.
	require.Zero(t, f.record(ev("bob@example.com", "project.created"))[0].Resumed)

	first := f.record(ev("ada@example.com", "project.created"))[0]
	require.Equal(t, 1, first.Resumed)
	require.Zero(t, f.record(ev("ada@example.com", "project.created"))[0].Resumed, "a wait resumes once")
	require.Equal(t, first.EventID, f.claimed(e.ID))

	signals := f.intents(intent.KindSignal)
	require.Len(t, signals, 1)
	require.Equal(t, e.WorkflowID, signals[0].WorkflowID)
	var p intent.Signal
	require.NoError(t, json.Unmarshal(signals[0].Payload, &p))
	require.Equal(t, e.ID, p.EnrollmentID)
	require.Equal(t, "activated", p.StepID)
	require.Equal(t, first.EventID, p.Event.ID)
	require.Equal(t, "project.created", p.Event.Name)
	require.False(t, p.Event.ReceivedAt.IsZero(), "the signal carries the receipt, where the next window opens")

	// Registering the same wait again reports the claim.
	again, err := f.s.RegisterWait(ctx, wait(e, "project.created", time.Now()), matchAll)
	require.NoError(t, err)
	require.NotNil(t, again.Event)
	require.Equal(t, first.EventID, again.Event.ID)

	// The wait's timer fires after the claim: the event resumes it after
	// all, and stays taken.
	for range 2 {
		out, err := f.s.ClearWait(ctx, e.ContactID, e.ID, "activated", true)
		require.NoError(t, err)
		require.NotNil(t, out.Event)
		require.Equal(t, first.EventID, out.Event.ID)
		require.Equal(t, "project.created", out.Event.Name)
	}
}

// claimed returns the event that claimed the enrollment's "activated" wait.
func (f *fixture) claimed(enrollment uuid.UUID) uuid.UUID {
	f.t.Helper()
	var claimed *uuid.UUID
	require.NoError(f.t, f.s.Pool().QueryRow(context.Background(), `SELECT claimed_event_id FROM enrollment_waits
		WHERE enrollment_id = $1 AND step_id = 'activated'`, enrollment).Scan(&claimed))
	require.NotNil(f.t, claimed)
	return *claimed
}

func TestClearWaitUnclaimed(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	f := newFixture(t, storetest.New(t, store.Config{}), "signed.up", false)
	f.record(ev("ada@example.com", "signed.up"))
	e := f.enrollments()[0]
	_, err := f.s.RegisterWait(ctx, wait(e, "project.created", time.Now()), matchAll)
	require.NoError(t, err)

	// Strict, before the window's end by PostgreSQL's clock: the wait goes
	// on, and the answer says for how long.
	out, err := f.s.ClearWait(ctx, e.ContactID, e.ID, "activated", true)
	require.NoError(t, err)
	require.Nil(t, out.Event)
	require.Greater(t, out.Remaining, 59*time.Minute)
	require.LessOrEqual(t, out.Remaining, time.Hour)
	require.Equal(t, 1, f.count(`SELECT count(*) FROM enrollment_waits WHERE workspace_id = $1`))

	out, err = f.s.ClearWait(ctx, e.ContactID, e.ID, "activated", false)
	require.NoError(t, err)
	require.Equal(t, store.WaitOutcome{}, out)
	// The wait is gone: a matching event resumes nothing.
	require.Zero(t, f.record(ev("ada@example.com", "project.created"))[0].Resumed)
}

func TestRegisterWaitLooksBack(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	f := newFixture(t, storetest.New(t, store.Config{}), "signed.up", false)
	f.record(ev("ada@example.com", "signed.up"))
	e := f.enrollments()[0]

	before := f.record(ev("ada@example.com", "project.created"))[0]
	began := f.receivedAt(before.EventID).Add(time.Microsecond)
	f.record(ev("bob@example.com", "project.created"))
	f.record(ev("ada@example.com", "page.viewed"))
	rejected := f.record(ev("ada@example.com", "project.created"))[0]
	after := f.record(ev("ada@example.com", "project.created"))[0]

	var seen []uuid.UUID
	found, err := f.s.RegisterWait(ctx, wait(e, "project.created", began), func(ev event.Event) bool {
		seen = append(seen, ev.ID)
		return ev.ID != rejected.EventID
	})
	require.NoError(t, err)
	require.NotNil(t, found.Event)
	require.Equal(t, after.EventID, found.Event.ID)
	require.True(t, f.receivedAt(after.EventID).Equal(found.Event.ReceivedAt))
	require.Equal(t, []uuid.UUID{rejected.EventID, after.EventID}, seen,
		"only the contact's events of that name since the wait began, oldest first")

	require.Equal(t, after.EventID, f.claimed(e.ID))
	// Claimed by the look-back, the wait is not resumed again.
	require.Zero(t, f.record(ev("ada@example.com", "project.created"))[0].Resumed)
	require.Empty(t, f.intents(intent.KindSignal), "the workflow learns of a look-back match from RegisterWait")
}

// receivedAt reads an event's receipt time.
func (f *fixture) receivedAt(id uuid.UUID) time.Time {
	f.t.Helper()
	var at time.Time
	require.NoError(f.t, f.s.Pool().QueryRow(context.Background(), `SELECT received_at FROM events WHERE id = $1`, id).Scan(&at))
	return at
}

// TestWaitWindowInOneRequest records the awaited event in the trigger's
// own request, before and after the trigger: events of one transaction
// share a receipt time, and only those after the trigger in the request
// fall inside a window that opens at the trigger.
func TestWaitWindowInOneRequest(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	f := newFixture(t, storetest.New(t, store.Config{}), "signed.up", false)
	res := f.record(ev("ada@example.com", "project.created"), ev("ada@example.com", "signed.up"),
		ev("ada@example.com", "project.created"))
	early, trigger, late := res[0], res[1], res[2]
	require.True(t, f.receivedAt(early.EventID).Equal(f.receivedAt(trigger.EventID)))
	e := f.enrollments()[0]
	var p intent.Start
	require.NoError(t, json.Unmarshal(f.intents(intent.KindStart)[0].Payload, &p))
	require.True(t, f.receivedAt(trigger.EventID).Equal(p.Trigger.ReceivedAt), "the start carries the trigger's receipt")

	w := wait(e, "project.created", p.Trigger.ReceivedAt)
	w.AfterEventID = trigger.EventID
	found, err := f.s.RegisterWait(ctx, w, matchAll)
	require.NoError(t, err)
	require.NotNil(t, found.Event)
	require.Equal(t, late.EventID, found.Event.ID, "the event before the trigger does not count")

	// A second wait of the enrollment opening at that event finds nothing:
	// the early event is before it, the late one is taken.
	w2 := wait(e, "project.created", found.Event.ReceivedAt)
	w2.StepID, w2.AfterEventID = "again", late.EventID
	again, err := f.s.RegisterWait(ctx, w2, matchAll)
	require.NoError(t, err)
	require.Nil(t, again.Event)
}

// TestWaitWindowClosesOnDatabaseClock registers waits whose windows have
// closed: one holds an event inside it (recorded while the workflow could
// not run) and resumes at once; the other has none and times out at once,
// leaving nothing in the index. An event after the window never counts.
func TestWaitWindowClosesOnDatabaseClock(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	f := newFixture(t, storetest.New(t, store.Config{}), "signed.up", false)
	f.record(ev("ada@example.com", "signed.up"), ev("bob@example.com", "signed.up"))
	list := f.enrollments()
	inside := f.record(ev("ada@example.com", "project.created"))[0]
	after := f.record(ev("bob@example.com", "project.created"))[0]
	// Backdate: ada's event came 90 minutes ago, bob's just now.
	_, err := f.s.Pool().Exec(ctx, `UPDATE events SET received_at = now() - interval '90 minutes' WHERE id = $1`, inside.EventID)
	require.NoError(t, err)
	began := time.Now().Add(-2 * time.Hour)

	for i, want := range []uuid.UUID{inside.EventID, uuid.Nil} {
		w := wait(list[i], "project.created", began)
		w.ExpiresAt = began.Add(time.Hour)
		out, err := f.s.RegisterWait(ctx, w, matchAll)
		require.NoError(t, err)
		if want == uuid.Nil {
			require.Nil(t, out.Event, "bob's event came after the window (%s)", after.EventID)
			require.True(t, out.Closed)
		} else {
			require.NotNil(t, out.Event)
			require.Equal(t, want, out.Event.ID)
			require.False(t, out.Closed)
		}
	}
	require.Equal(t, 1, f.count(`SELECT count(*) FROM enrollment_waits WHERE workspace_id = $1`),
		"the closed wait is not left in the index")
}

// TestRecordExitsOnce sends every exit event of an enrollment in one batch,
// then in concurrent requests: it exits once, and the counts say so.
func TestRecordExitsOnce(t *testing.T) {
	t.Parallel()

	t.Run("one batch", func(t *testing.T) {
		t.Parallel()
		f := newFixture(t, storetest.New(t, store.Config{}), "signed.up", false, "churned", "deleted")
		f.record(ev("ada@example.com", "signed.up"))
		res := f.record(ev("ada@example.com", "deleted"), ev("ada@example.com", "churned"))
		require.Equal(t, 1, res[0].Exited+res[1].Exited)
		require.Equal(t, 1, res[0].Exited, "the first exit event in the batch wins")
		require.Equal(t, res[0].EventID, *f.enrollments()[0].ExitEventID)
		require.Len(t, f.intents(intent.KindCancel), 1)
	})

	t.Run("started in the same batch", func(t *testing.T) {
		t.Parallel()
		f := newFixture(t, storetest.New(t, store.Config{}), "signed.up", false, "churned", "deleted")
		res := f.record(ev("ada@example.com", "signed.up"), ev("ada@example.com", "churned"),
			ev("ada@example.com", "deleted"))
		require.Equal(t, []int{1, 1, 0}, []int{res[0].Triggered, res[1].Exited, res[2].Exited})
		require.Equal(t, res[1].EventID, *f.enrollments()[0].ExitEventID)
		require.Len(t, f.intents(intent.KindCancel), 1)
	})

	t.Run("concurrent requests", func(t *testing.T) {
		t.Parallel()
		f := newFixture(t, storetest.New(t, store.Config{}), "signed.up", false, "churned", "deleted")
		f.record(ev("ada@example.com", "signed.up"))
		results := f.concurrently(12, func(i int) store.EventInput {
			return ev("ada@example.com", []string{"churned", "deleted"}[i%2])
		})
		exited, winner := tally(results, func(r store.EventResult) int { return r.Exited })
		require.Equal(t, 1, exited)
		require.Equal(t, winner, *f.enrollments()[0].ExitEventID, "the stored exit event is the one that counted")
		cancels := f.intents(intent.KindCancel)
		require.Len(t, cancels, 1)
		var p intent.Cancel
		require.NoError(t, json.Unmarshal(cancels[0].Payload, &p))
		require.Equal(t, winner, *p.EventID)
	})
}

// tally sums a count over results and names the last event it counted.
func tally(results []store.EventResult, count func(store.EventResult) int) (int, uuid.UUID) {
	total, last := 0, uuid.Nil
	for _, r := range results {
		if n := count(r); n > 0 {
			total, last = total+n, r.EventID
		}
	}
	return total, last
}

// concurrently records n single-event requests at once and returns their
// results.
func (f *fixture) concurrently(n int, ev func(i int) store.EventInput) []store.EventResult {
	f.t.Helper()
	results := make([]store.EventResult, n)
	errs := make([]error, n)
	var wg sync.WaitGroup
	start := make(chan struct{})
	for i := range n {
		wg.Add(1)
		go func() {
			defer wg.Done()
			<-start
			out, err := f.s.Record(context.Background(), []*store.RecordRequest{{WorkspaceID: f.ws.ID, Plan: f.ws.Plan,
				Events: []store.EventInput{ev(i)}}})
			if err == nil {
				results[i] = out[0].Results[0]
			}
			errs[i] = err
		}()
	}
	close(start)
	wg.Wait()
	for _, err := range errs {
		require.NoError(f.t, err)
	}
	return results
}

// TestRecordResumesOnceUnderConcurrency sends several matching events at
// once to one waiting enrollment: one resumes it, the counts add up to one,
// and the one signal carries the event stored as the claim.
func TestRecordResumesOnceUnderConcurrency(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	f := newFixture(t, storetest.New(t, store.Config{}), "signed.up", false)
	f.record(ev("ada@example.com", "signed.up"))
	e := f.enrollments()[0]
	_, err := f.s.RegisterWait(ctx, wait(e, "project.created", time.Now()), matchAll)
	require.NoError(t, err)

	results := f.concurrently(12, func(int) store.EventInput { return ev("ada@example.com", "project.created") })
	resumed, winner := tally(results, func(r store.EventResult) int { return r.Resumed })
	require.Equal(t, 1, resumed)
	require.Equal(t, winner, f.claimed(e.ID))
	signals := f.intents(intent.KindSignal)
	require.Len(t, signals, 1)
	var p intent.Signal
	require.NoError(t, json.Unmarshal(signals[0].Payload, &p))
	require.Equal(t, winner, p.Event.ID)
}

// TestWaitLocksAreStriped holds one wait stripe exclusively, as a wait's
// registration does, while a batch of 1,000 contacts is recorded: the
// batch waits for it holding at most waitLockStripes advisory locks, not
// one per contact.
func TestWaitLocksAreStriped(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	f := newFixture(t, storetest.New(t, store.Config{}), "signed.up", false)
	f.record(ev("ada@example.com", "signed.up"))
	e := f.enrollments()[0]

	tx, err := f.s.Pool().Begin(ctx)
	require.NoError(t, err)
	defer func() { _ = tx.Rollback(ctx) }()
	class, stripe := store.WaitLockKey(e.ContactID)
	_, err = tx.Exec(ctx, `SELECT pg_advisory_xact_lock($1, $2)`, class, stripe)
	require.NoError(t, err)

	events := make([]store.EventInput, 1000)
	for i := range events {
		events[i] = ev(fmt.Sprintf("c%d@example.com", i), "page.viewed")
	}
	events[500] = ev("ada@example.com", "page.viewed")
	done := make(chan error, 1)
	go func() {
		_, err := f.s.Record(ctx, []*store.RecordRequest{{WorkspaceID: f.ws.ID, Plan: f.ws.Plan, Events: events}})
		done <- err
	}()
	var held int
	require.Eventually(t, func() bool {
		// The batch's backend waits on the stripe; count what it holds.
		require.NoError(t, f.s.Pool().QueryRow(ctx, `SELECT count(*) FROM pg_locks l
			WHERE l.locktype = 'advisory' AND l.granted AND l.classid = $1
			  AND l.pid IN (SELECT pid FROM pg_locks WHERE locktype = 'advisory' AND NOT granted)`, class).Scan(&held))
		return held > 0
	}, 10*time.Second, 10*time.Millisecond)
	require.LessOrEqual(t, held, store.WaitLockStripes)
	select {
	case err := <-done:
		t.Fatalf("the batch did not wait for the registration: %v", err)
	default:
	}
	require.NoError(t, tx.Rollback(ctx))
	require.NoError(t, <-done)
}

func TestRecordEmitDepth(t *testing.T) {
	t.Parallel()
	for _, tc := range []struct {
		depth     int
		triggered int
		outcome   string
	}{
		{0, 1, decision.Enrolled},
		{decision.MaxDepth - 1, 1, decision.Enrolled},
		{decision.MaxDepth, 0, decision.DepthLimit},
		{decision.MaxDepth + 1, 0, decision.DepthLimit},
	} {
		t.Run(fmt.Sprintf("depth %d", tc.depth), func(t *testing.T) {
			t.Parallel()
			in := ev("ada@example.com", "signed.up")
			in.EmitDepth = tc.depth
			f := newFixture(t, storetest.New(t, store.Config{}), "signed.up", false)
			res := f.record(in)[0]
			require.Equal(t, tc.triggered, res.Triggered)
			require.Len(t, f.enrollments(), tc.triggered)
			require.Equal(t, 1, f.count(`SELECT count(*) FROM decisions WHERE workspace_id = $1 AND event_id = $2
				AND kind = 'trigger' AND outcome = $3`, res.EventID, tc.outcome), "the decision is kept")
		})
	}
}

func TestRecordWithoutAutomations(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	f := newFixture(t, storetest.New(t, store.Config{}), "signed.up", false, "churned")
	f.record(ev("ada@example.com", "signed.up"))
	e := f.enrollments()[0]
	_, err := f.s.RegisterWait(ctx, wait(e, "project.created", time.Now()), matchAll)
	require.NoError(t, err)

	// A workspace that has no automation at all skips every index read.
	other, _ := storetest.Workspace(t, f.s, store.PlanEnterprise)
	out, err := f.s.Record(ctx, []*store.RecordRequest{{WorkspaceID: other.ID, Plan: other.Plan,
		Events: []store.EventInput{ev("ada@example.com", "signed.up")}}})
	require.NoError(t, err)
	require.Zero(t, out[0].Intents)

	// A cached set that has not yet seen the workspace's automations (another
	// replica made them) starts nothing, but the waits and exits that exist
	// are still honoured: they do not depend on the cache.
	f.fake.off.Store(true)
	res := f.record(ev("ada@example.com", "signed.up"), ev("ada@example.com", "project.created"),
		ev("ada@example.com", "churned"))
	require.Equal(t, []int{0, 1, 1}, []int{res[0].Triggered, res[1].Resumed, res[2].Exited})
	require.Len(t, f.enrollments(), 1)
}

// exitedAndWaiting enrolls two contacts, both waiting; the first one's
// exit event is recorded.
func exitedAndWaiting(t *testing.T) (f *fixture, exited, waiting store.Enrollment) {
	t.Helper()
	ctx := context.Background()
	f = newFixture(t, storetest.New(t, store.Config{}), "signed.up", false, "churned")
	f.record(ev("ada@example.com", "signed.up"), ev("bob@example.com", "signed.up"))
	list := f.enrollments()
	for _, e := range list {
		_, err := f.s.RegisterWait(ctx, wait(e, "project.created", time.Now()), matchAll)
		require.NoError(t, err)
	}
	require.Equal(t, 1, f.record(ev("ada@example.com", "churned"))[0].Exited)
	return f, list[0], list[1]
}

func TestFinishEnrollment(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	f, exited, done := exitedAndWaiting(t)
	list := []store.Enrollment{exited, done}

	// The workflow completes before the cancel reaches it: the exit wins.
	status, err := f.s.FinishEnrollment(ctx, exited.ID, store.EnrollmentCompleted, "")
	require.NoError(t, err)
	require.Equal(t, store.EnrollmentExited, status)
	status, err = f.s.FinishEnrollment(ctx, exited.ID, store.EnrollmentFailed, "too late")
	require.NoError(t, err)
	require.Equal(t, store.EnrollmentExited, status, "finishing twice keeps the first outcome")

	status, err = f.s.FinishEnrollment(ctx, done.ID, store.EnrollmentCompleted, "")
	require.NoError(t, err)
	require.Equal(t, store.EnrollmentCompleted, status)

	for _, e := range list {
		got, _, err := f.s.GetEnrollment(ctx, f.ws.ID, e.ID)
		require.NoError(t, err)
		require.NotNil(t, got.EndedAt)
		if e.ID == exited.ID {
			require.Equal(t, "exit event", *got.Reason, "an exit that won over completion says so")
		} else {
			require.Nil(t, got.Reason)
		}
		require.Zero(t, f.count(`SELECT count(*) FROM enrollment_waits WHERE workspace_id = $1 AND enrollment_id = $2`, e.ID))
		require.Zero(t, f.count(`SELECT count(*) FROM enrollment_exits x JOIN enrollments e ON e.id = x.enrollment_id
			WHERE e.workspace_id = $1 AND x.enrollment_id = $2`, e.ID))
	}
	// A finished enrollment's exit event no longer finds it.
	require.Zero(t, f.record(ev("bob@example.com", "churned"))[0].Exited)

	// The reason of an exit comes from the record: an exit event, or a
	// cancel from Temporal with none.
	f.record(ev("cy@example.com", "signed.up"), ev("di@example.com", "signed.up"))
	require.Equal(t, 1, f.record(ev("di@example.com", "churned"))[0].Exited)
	for _, e := range f.enrollments() {
		if e.Status != store.EnrollmentActive {
			continue
		}
		status, err = f.s.FinishEnrollment(ctx, e.ID, store.EnrollmentExited, "cancelled")
		require.NoError(t, err)
		require.Equal(t, store.EnrollmentExited, status)
		got, _, err := f.s.GetEnrollment(ctx, f.ws.ID, e.ID)
		require.NoError(t, err)
		if got.ExitEventID != nil {
			require.Equal(t, "exit event", *got.Reason)
		} else {
			require.Equal(t, "cancelled without an exit event", *got.Reason)
		}
	}

	_, err = f.s.FinishEnrollment(ctx, uuid.New(), store.EnrollmentCompleted, "")
	require.ErrorIs(t, err, store.ErrNotFound)
}

// TestPurgeEndedAndDecisions sweeps enrollments that ended long ago (with
// their logs and effects, but not their "once" reservation) and old
// decisions, and leaves the rest.
func TestPurgeEndedAndDecisions(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	f := newFixture(t, storetest.New(t, store.Config{}), "signed.up", true)
	f.record(ev("old@example.com", "signed.up"), ev("new@example.com", "signed.up"), ev("run@example.com", "signed.up"))
	list := f.enrollments()
	old, recent := list[0], list[1]
	for _, e := range []store.Enrollment{old, recent} {
		require.NoError(t, f.s.RecordStep(ctx, e.ID, store.StepRecord{Seq: 1, StepID: "pause", Type: "delay", Outcome: "done"}))
		require.NoError(t, f.s.MarkEffectDone(ctx, e.WorkflowID, "pause", nil))
		_, err := f.s.FinishEnrollment(ctx, e.ID, store.EnrollmentCompleted, "")
		require.NoError(t, err)
	}
	_, err := f.s.Pool().Exec(ctx, `UPDATE enrollments SET ended_at = now() - interval '500 days' WHERE id = $1`, old.ID)
	require.NoError(t, err)
	_, err = f.s.Pool().Exec(ctx, `UPDATE decisions SET at = now() - interval '40 days' WHERE enrollment_id = $1`, old.ID)
	require.NoError(t, err)

	n, err := f.s.PurgeEnded(ctx, 400*24*time.Hour, 1000)
	require.NoError(t, err)
	require.EqualValues(t, 1, n)
	n, err = f.s.PurgeDecisions(ctx, 30*24*time.Hour, 1000)
	require.NoError(t, err)
	require.EqualValues(t, 1, n)

	require.Len(t, f.enrollments(), 2, "the recent one and the running one stay")
	require.Zero(t, f.count(`SELECT count(*) FROM enrollment_steps s JOIN enrollments e ON e.id = s.enrollment_id
		WHERE e.workspace_id = $1 AND e.id = $2`, old.ID))
	require.Zero(t, f.count(`SELECT count(*) FROM step_effects WHERE workflow_id = $2 AND $1::uuid IS NOT NULL`, old.WorkflowID))
	require.Equal(t, 1, f.count(`SELECT count(*) FROM step_effects WHERE workflow_id = $2 AND $1::uuid IS NOT NULL`, recent.WorkflowID))
	require.Equal(t, 3, f.count(`SELECT count(*) FROM enrollment_once o JOIN automations a ON a.id = o.automation_id
		WHERE a.workspace_id = $1`), "once reservations outlive their enrollments")
	require.Equal(t, 2, f.count(`SELECT count(*) FROM decisions WHERE workspace_id = $1`))
	// The contact enrolled once long ago is still never enrolled again.
	require.Zero(t, f.record(ev("old@example.com", "signed.up"))[0].Triggered)
}

// TestBookStepFinishes writes an enrollment's last line and ends it in
// one statement, as an action's activity does for the last step: the exit
// still wins over completion, a repeat keeps the first line and outcome,
// and an enrollment gone with its contact answers completed.
func TestBookStepFinishes(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	f, exited, done := exitedAndWaiting(t)
	list := []store.Enrollment{exited, done}

	book := func(id uuid.UUID) store.StepBook {
		return store.StepBook{EnrollmentID: id, Seq: 1, StepID: "tag", Type: "update_contact", Finish: true}
	}
	detail := json.RawMessage(`{"properties":{"stage":"x"}}`)
	status, err := f.s.BookStep(ctx, book(exited.ID), detail)
	require.NoError(t, err)
	require.Equal(t, store.EnrollmentExited, status, "the exit event recorded first wins")
	status, err = f.s.BookStep(ctx, book(done.ID), detail)
	require.NoError(t, err)
	require.Equal(t, store.EnrollmentCompleted, status)
	status, err = f.s.BookStep(ctx, book(done.ID), json.RawMessage(`{"properties":{"stage":"y"}}`))
	require.NoError(t, err)
	require.Equal(t, store.EnrollmentCompleted, status)

	for _, e := range list {
		got, steps, err := f.s.GetEnrollment(ctx, f.ws.ID, e.ID)
		require.NoError(t, err)
		require.NotNil(t, got.EndedAt)
		require.Nil(t, got.CurrentStep)
		require.Len(t, steps, 1)
		require.Equal(t, "tag", steps[0].StepID)
		require.JSONEq(t, `{"properties":{"stage":"x"}}`, string(steps[0].Detail), "a repeat keeps the first line")
		require.Zero(t, f.count(`SELECT count(*) FROM enrollment_waits WHERE workspace_id = $1 AND enrollment_id = $2`, e.ID))
	}

	// Gone with its contact: nothing to record.
	f.record(ev("cy@example.com", "signed.up"))
	var gone store.Enrollment
	for _, e := range f.enrollments() {
		if e.Status == store.EnrollmentActive {
			gone = e
		}
	}
	_, err = f.s.DeleteContact(ctx, f.ws.ID, gone.ContactID)
	require.NoError(t, err)
	status, err = f.s.BookStep(ctx, book(gone.ID), detail)
	require.NoError(t, err)
	require.Equal(t, store.EnrollmentCompleted, status)
}

// TestBookedStepReadsBack reads what BookStep wrote, as an activity's
// retry does: nothing before it, the line's result after it, and with
// Finish how the enrollment ended; another step's line, or a line without
// the end a finishing step asks for, is not this step's booking.
func TestBookedStepReadsBack(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	f, exited, active := exitedAndWaiting(t)
	book := func(id uuid.UUID, seq int, finish bool) store.StepBook {
		return store.StepBook{EnrollmentID: id, Seq: seq, StepID: "hook", Type: "webhook", Finish: finish}
	}
	detail := json.RawMessage(`{"status":204,"webhook_id":"msg_1"}`)
	for _, b := range []store.StepBook{book(active.ID, 1, false), book(active.ID, 1, true), book(exited.ID, 1, true)} {
		_, _, ok, err := f.s.BookedStep(ctx, b)
		require.NoError(t, err)
		require.False(t, ok, "nothing booked yet")
	}

	// A middle step: the line alone.
	_, err := f.s.BookStep(ctx, book(active.ID, 1, false), detail)
	require.NoError(t, err)
	got, status, ok, err := f.s.BookedStep(ctx, book(active.ID, 1, false))
	require.NoError(t, err)
	require.True(t, ok)
	require.JSONEq(t, string(detail), string(got))
	require.Empty(t, status)
	_, _, ok, err = f.s.BookedStep(ctx, book(active.ID, 1, true))
	require.NoError(t, err)
	require.False(t, ok, "a finishing step's booking ends the enrollment too")
	other := book(active.ID, 1, false)
	other.StepID = "other"
	_, _, ok, err = f.s.BookedStep(ctx, other)
	require.NoError(t, err)
	require.False(t, ok, "the line at that seq is another step's")

	// Last steps: the line and the end.
	for _, c := range []struct {
		e    store.Enrollment
		want string
	}{{active, store.EnrollmentCompleted}, {exited, store.EnrollmentExited}} {
		_, err := f.s.BookStep(ctx, book(c.e.ID, 2, true), detail)
		require.NoError(t, err)
		got, status, ok, err := f.s.BookedStep(ctx, book(c.e.ID, 2, true))
		require.NoError(t, err)
		require.True(t, ok)
		require.JSONEq(t, string(detail), string(got))
		require.Equal(t, c.want, status)
	}
}

// TestUpdateContactOnceBooks writes an update_contact step's log line, and
// for a last step the enrollment's end, in the statement that applies the
// patch; a repeat books nothing and changes nothing.
func TestUpdateContactOnceBooks(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	f := newFixture(t, storetest.New(t, store.Config{}), "signed.up", false, "churned")
	f.record(ev("ada@example.com", "signed.up"), ev("bob@example.com", "signed.up"))
	list := f.enrollments()
	mid, last := list[0], list[1]
	set := func(v string) func(store.Contact) (store.ContactPatch, json.RawMessage, error) {
		return func(store.Contact) (store.ContactPatch, json.RawMessage, error) {
			res := json.RawMessage(`{"properties":{"stage":"` + v + `"}}`)
			return store.ContactPatch{Set: json.RawMessage(`{"stage":"` + v + `"}`)}, res, nil
		}
	}

	// A step in the middle: its line, and the current step.
	eff, err := f.s.UpdateContactOnce(ctx, f.ws.ID, mid.ContactID, mid.WorkflowID, "tag",
		&store.StepBook{EnrollmentID: mid.ID, Seq: 1, Type: "update_contact"}, set("a"))
	require.NoError(t, err)
	require.Equal(t, store.StepEffect{Result: json.RawMessage(`{"properties":{"stage":"a"}}`), Booked: true}, eff)
	got, steps, err := f.s.GetEnrollment(ctx, f.ws.ID, mid.ID)
	require.NoError(t, err)
	require.Equal(t, store.EnrollmentActive, got.Status)
	require.Equal(t, "tag", *got.CurrentStep)
	require.Len(t, steps, 1)
	require.Equal(t, []any{1, "tag", "update_contact", "done"},
		[]any{steps[0].Seq, steps[0].StepID, steps[0].Type, steps[0].Outcome})
	require.JSONEq(t, `{"properties":{"stage":"a"}}`, string(steps[0].Detail))

	// Run again: the recorded result, nothing booked or changed.
	eff, err = f.s.UpdateContactOnce(ctx, f.ws.ID, mid.ContactID, mid.WorkflowID, "tag",
		&store.StepBook{EnrollmentID: mid.ID, Seq: 1, Type: "update_contact"}, set("b"))
	require.NoError(t, err)
	require.True(t, eff.Repeat)
	require.False(t, eff.Booked)
	c, err := f.s.GetContact(ctx, f.ws.ID, mid.ContactID)
	require.NoError(t, err)
	require.JSONEq(t, `{"stage":"a"}`, string(c.Properties))

	// The last step ends the enrollment; an exit event recorded first wins.
	require.Equal(t, 1, f.record(ev("bob@example.com", "churned"))[0].Exited)
	eff, err = f.s.UpdateContactOnce(ctx, f.ws.ID, last.ContactID, last.WorkflowID, "tag",
		&store.StepBook{EnrollmentID: last.ID, Seq: 3, Type: "update_contact", Finish: true}, set("c"))
	require.NoError(t, err)
	require.True(t, eff.Booked)
	require.Equal(t, store.EnrollmentExited, eff.Status)
	got, steps, err = f.s.GetEnrollment(ctx, f.ws.ID, last.ID)
	require.NoError(t, err)
	require.Equal(t, store.EnrollmentExited, got.Status)
	require.Equal(t, "exit event", *got.Reason)
	require.Nil(t, got.CurrentStep)
	require.Len(t, steps, 1)
	require.Equal(t, 3, steps[0].Seq)
}
