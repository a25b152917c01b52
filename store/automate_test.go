package store_test

import (
	"context"
	"encoding/json"
	"fmt"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/google/uuid"
	"github.com/stretchr/testify/require"

	"github.com/signalbox/signalbox/store"
	"github.com/signalbox/signalbox/store/storetest"
)

// fakeAutomator stands in for triggers.Matcher: it answers from fixed data
// and counts how often the record path asks it. It is its own
// store.AutomationSet.
type fakeAutomator struct {
	// matches are the automations each event name triggers.
	matches map[string][]store.TriggerMatch
	// off makes Automates report a workspace without automations.
	off atomic.Bool

	loadCalls     atomic.Int64
	triggersCalls atomic.Int64
}

func (f *fakeAutomator) Load(context.Context, []uuid.UUID) (store.AutomationSet, error) {
	f.loadCalls.Add(1)
	return f, nil
}

func (f *fakeAutomator) Automates(uuid.UUID) bool { return !f.off.Load() }

func (f *fakeAutomator) Triggers(_ context.Context, _ uuid.UUID, ev *store.TriggerEvent, _ func() *store.Contact) []store.TriggerMatch {
	f.triggersCalls.Add(1)
	return f.matches[ev.Name]
}

func (f *fakeAutomator) WaitMatches(context.Context, *store.Wait, *store.TriggerEvent, *store.Contact) bool {
	return true
}

func (f *fakeAutomator) WorkflowID(enrollmentID uuid.UUID) string {
	return "wf-" + enrollmentID.String()
}

// testDefinition is what the fake's matches carry as their definition; the
// store only snapshots it into start intents.
const testDefinition = `{"name": "onboarding", "trigger": {"event": "signed.up"},
	"steps": [{"id": "pause", "type": "delay", "duration": "1h"}]}`

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
	a, err := s.CreateAutomation(context.Background(), ws.ID, "onboarding", trigger, json.RawMessage(testDefinition))
	require.NoError(t, err)
	fake := &fakeAutomator{matches: map[string][]store.TriggerMatch{trigger: {{
		AutomationID: a.ID, Version: a.Version, Once: once, ExitOn: exitOn, Definition: json.RawMessage(testDefinition),
	}}}}
	s.SetAutomator(fake)
	return &fixture{t: t, s: s, ws: ws, automation: a.ID, fake: fake}
}

// event is an event of the contact with email, created if missing.
func event(email, name string) store.EventInput {
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
func matchAll(store.TriggerEvent) bool { return true }

func TestRecordEnrollsOnTrigger(t *testing.T) {
	t.Parallel()
	f := newFixture(t, storetest.New(t, store.Config{}), "signed.up", false, "churned", "deleted")

	res := f.record(event("ada@example.com", "page.viewed"), event("ada@example.com", "signed.up"))
	require.Zero(t, res[0].Triggered)
	require.Equal(t, 1, res[1].Triggered)

	list := f.enrollments()
	require.Len(t, list, 1)
	e := list[0]
	require.Equal(t, f.automation, e.AutomationID)
	require.Equal(t, 1, e.Version)
	require.Equal(t, res[1].ContactID, e.ContactID)
	require.Equal(t, res[1].EventID, e.TriggerEventID)
	require.Equal(t, "wf-"+e.ID.String(), e.WorkflowID)
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

	starts := f.intents(store.IntentStart)
	require.Len(t, starts, 1)
	require.Equal(t, e.WorkflowID, starts[0].WorkflowID)
	require.Equal(t, "00-0af7651916cd43dd8448eb211c80319c-b7ad6b7169203331-01", starts[0].TraceParent)
	var p store.StartIntent
	require.NoError(t, json.Unmarshal(starts[0].Payload, &p))
	require.Equal(t, e.ID, p.EnrollmentID)
	require.Equal(t, f.ws.ID, p.WorkspaceID)
	require.Equal(t, f.automation, p.AutomationID)
	require.Equal(t, 1, p.Version)
	require.Equal(t, e.ContactID, p.ContactID)
	require.JSONEq(t, testDefinition, string(p.Definition))
	require.Equal(t, res[1].EventID, p.Trigger.ID)
	require.Equal(t, "signed.up", p.Trigger.Name)
	require.JSONEq(t, `{"plan":"pro"}`, string(p.Trigger.Properties))
	require.Zero(t, f.count(`SELECT count(*) FROM outbox WHERE workspace_id = $1 AND kind <> 'start'`))
}

func TestRecordOnceEnrollsFirstEventOnly(t *testing.T) {
	t.Parallel()
	f := newFixture(t, storetest.New(t, store.Config{}), "signed.up", true)

	// Two events in one request, then one more in another.
	res := f.record(event("ada@example.com", "signed.up"), event("ada@example.com", "signed.up"))
	require.Equal(t, 1, res[0].Triggered)
	require.Zero(t, res[1].Triggered)
	require.Zero(t, f.record(event("ada@example.com", "signed.up"))[0].Triggered)
	// Once is per contact.
	require.Equal(t, 1, f.record(event("bob@example.com", "signed.up"))[0].Triggered)

	list := f.enrollments()
	require.Len(t, list, 2)
	var once uuid.UUID
	require.NoError(t, f.s.Pool().QueryRow(context.Background(),
		`SELECT enrollment_id FROM enrollment_once WHERE automation_id = $1 AND contact_id = $2`,
		f.automation, res[0].ContactID).Scan(&once))
	require.Equal(t, list[0].ID, once)
	require.Len(t, f.intents(store.IntentStart), 2)
}

func TestRecordOnceUnderConcurrency(t *testing.T) {
	t.Parallel()
	f := newFixture(t, storetest.New(t, store.Config{}), "signed.up", true)
	contact := f.record(event("ada@example.com", "page.viewed"))[0].ContactID

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
	require.Len(t, f.intents(store.IntentStart), 1)
}

func TestRecordDuplicateEnrollsNobody(t *testing.T) {
	t.Parallel()
	f := newFixture(t, storetest.New(t, store.Config{}), "order.placed", false)
	ev := event("ada@example.com", "order.placed")
	ev.ExternalID = "order-1"

	require.Equal(t, 1, f.record(ev)[0].Triggered)
	ev.OccurredAt = ev.OccurredAt.Add(time.Second) // a newer repeat updates the event
	res := f.record(ev)
	require.True(t, res[0].Duplicate)
	require.Zero(t, res[0].Triggered)
	require.Len(t, f.enrollments(), 1)
	require.Len(t, f.intents(store.IntentStart), 1)
}

func TestRecordExitEvent(t *testing.T) {
	t.Parallel()

	t.Run("later request", func(t *testing.T) {
		t.Parallel()
		f := newFixture(t, storetest.New(t, store.Config{}), "signed.up", false, "churned")
		f.record(event("ada@example.com", "signed.up"))
		res := f.record(event("ada@example.com", "churned"), event("ada@example.com", "churned"))
		require.Equal(t, 1, res[0].Exited)
		require.Zero(t, res[1].Exited, "an enrollment exits once")

		e := f.enrollments()[0]
		require.NotNil(t, e.ExitEventID)
		require.Equal(t, res[0].EventID, *e.ExitEventID)
		cancels := f.intents(store.IntentCancel)
		require.Len(t, cancels, 1)
		require.Equal(t, e.WorkflowID, cancels[0].WorkflowID)
		var p store.CancelIntent
		require.NoError(t, json.Unmarshal(cancels[0].Payload, &p))
		require.Equal(t, store.CancelIntent{EnrollmentID: e.ID, EventID: res[0].EventID}, p)
	})

	t.Run("same request", func(t *testing.T) {
		t.Parallel()
		f := newFixture(t, storetest.New(t, store.Config{}), "signed.up", false, "churned")
		res := f.record(event("ada@example.com", "signed.up"), event("ada@example.com", "churned"))
		require.Equal(t, 1, res[0].Triggered)
		require.Equal(t, 1, res[1].Exited)
		e := f.enrollments()[0]
		require.NotNil(t, e.ExitEventID)
		require.Equal(t, res[1].EventID, *e.ExitEventID)
		// The start comes before the cancel, so a dispatcher delivers them in order.
		starts, cancels := f.intents(store.IntentStart), f.intents(store.IntentCancel)
		require.Len(t, cancels, 1)
		require.Less(t, starts[0].ID.String(), cancels[0].ID.String())
	})

	t.Run("another contact", func(t *testing.T) {
		t.Parallel()
		f := newFixture(t, storetest.New(t, store.Config{}), "signed.up", false, "churned")
		f.record(event("ada@example.com", "signed.up"))
		require.Zero(t, f.record(event("bob@example.com", "churned"))[0].Exited)
		require.Nil(t, f.enrollments()[0].ExitEventID)
		require.Empty(t, f.intents(store.IntentCancel))
	})

	t.Run("trigger is an exit event", func(t *testing.T) {
		t.Parallel()
		f := newFixture(t, storetest.New(t, store.Config{}), "signed.up", false, "signed.up")
		first := f.record(event("ada@example.com", "signed.up"))[0]
		require.Equal(t, 1, first.Triggered)
		require.Zero(t, first.Exited, "an event never exits the enrollment it starts")
		require.Nil(t, f.enrollments()[0].ExitEventID)

		// The next one starts another enrollment and exits the first only,
		// also within one request.
		res := f.record(event("ada@example.com", "signed.up"), event("ada@example.com", "signed.up"))
		require.Equal(t, []int{1, 1}, []int{res[0].Triggered, res[0].Exited})
		require.Equal(t, []int{1, 1}, []int{res[1].Triggered, res[1].Exited})
		list := f.enrollments()
		require.Len(t, list, 3)
		require.Equal(t, res[0].EventID, *list[0].ExitEventID)
		require.Equal(t, res[1].EventID, *list[1].ExitEventID)
		require.Nil(t, list[2].ExitEventID)
		require.Len(t, f.intents(store.IntentCancel), 2)
	})
}

func TestRecordResumesWait(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	f := newFixture(t, storetest.New(t, store.Config{}), "signed.up", false)
	f.record(event("ada@example.com", "signed.up"))
	e := f.enrollments()[0]

	found, err := f.s.RegisterWait(ctx, wait(e, "project.created", time.Now()), matchAll)
	require.NoError(t, err)
	require.Nil(t, found)

	// Another contact's event never resumes it.
	require.Zero(t, f.record(event("bob@example.com", "project.created"))[0].Resumed)

	first := f.record(event("ada@example.com", "project.created"))[0]
	require.Equal(t, 1, first.Resumed)
	require.Zero(t, f.record(event("ada@example.com", "project.created"))[0].Resumed, "a wait resumes once")

	var claimed *uuid.UUID
	require.NoError(t, f.s.Pool().QueryRow(ctx, `SELECT claimed_event_id FROM enrollment_waits
		WHERE enrollment_id = $1 AND step_id = 'activated'`, e.ID).Scan(&claimed))
	require.NotNil(t, claimed)
	require.Equal(t, first.EventID, *claimed)

	signals := f.intents(store.IntentSignal)
	require.Len(t, signals, 1)
	require.Equal(t, e.WorkflowID, signals[0].WorkflowID)
	var p store.SignalIntent
	require.NoError(t, json.Unmarshal(signals[0].Payload, &p))
	require.Equal(t, e.ID, p.EnrollmentID)
	require.Equal(t, "activated", p.StepID)
	require.Equal(t, first.EventID, p.Event.ID)
	require.Equal(t, "project.created", p.Event.Name)

	// Registering the same wait again reports the claim.
	again, err := f.s.RegisterWait(ctx, wait(e, "project.created", time.Now()), matchAll)
	require.NoError(t, err)
	require.NotNil(t, again)
	require.Equal(t, first.EventID, again.ID)

	// The wait's timer fires after the claim: the event resumes it after all.
	ev, err := f.s.ClearWait(ctx, e.ID, "activated")
	require.NoError(t, err)
	require.NotNil(t, ev)
	require.Equal(t, first.EventID, ev.ID)
	require.Equal(t, "project.created", ev.Name)
	ev, err = f.s.ClearWait(ctx, e.ID, "activated")
	require.NoError(t, err)
	require.Nil(t, ev)
}

func TestClearWaitUnclaimed(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	f := newFixture(t, storetest.New(t, store.Config{}), "signed.up", false)
	f.record(event("ada@example.com", "signed.up"))
	e := f.enrollments()[0]
	_, err := f.s.RegisterWait(ctx, wait(e, "project.created", time.Now()), matchAll)
	require.NoError(t, err)

	ev, err := f.s.ClearWait(ctx, e.ID, "activated")
	require.NoError(t, err)
	require.Nil(t, ev)
	// The wait is gone: a matching event resumes nothing.
	require.Zero(t, f.record(event("ada@example.com", "project.created"))[0].Resumed)
}

func TestRegisterWaitLooksBack(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	f := newFixture(t, storetest.New(t, store.Config{}), "signed.up", false)
	f.record(event("ada@example.com", "signed.up"))
	e := f.enrollments()[0]

	before := f.record(event("ada@example.com", "project.created"))[0]
	var received time.Time
	require.NoError(t, f.s.Pool().QueryRow(ctx, `SELECT received_at FROM events WHERE id = $1`, before.EventID).Scan(&received))
	began := received.Add(time.Microsecond)
	f.record(event("bob@example.com", "project.created"))
	f.record(event("ada@example.com", "page.viewed"))
	rejected := f.record(event("ada@example.com", "project.created"))[0]
	after := f.record(event("ada@example.com", "project.created"))[0]

	var seen []uuid.UUID
	found, err := f.s.RegisterWait(ctx, wait(e, "project.created", began), func(ev store.TriggerEvent) bool {
		seen = append(seen, ev.ID)
		return ev.ID != rejected.EventID
	})
	require.NoError(t, err)
	require.NotNil(t, found)
	require.Equal(t, after.EventID, found.ID)
	require.Equal(t, []uuid.UUID{rejected.EventID, after.EventID}, seen,
		"only the contact's events of that name since the wait began, oldest first")

	var claimed uuid.UUID
	require.NoError(t, f.s.Pool().QueryRow(ctx, `SELECT claimed_event_id FROM enrollment_waits
		WHERE enrollment_id = $1 AND step_id = 'activated'`, e.ID).Scan(&claimed))
	require.Equal(t, after.EventID, claimed)
	// Claimed by the look-back, the wait is not resumed again.
	require.Zero(t, f.record(event("ada@example.com", "project.created"))[0].Resumed)
	require.Empty(t, f.intents(store.IntentSignal), "the workflow learns of a look-back match from RegisterWait")
}

func TestRecordEmitDepth(t *testing.T) {
	t.Parallel()
	for _, tc := range []struct {
		depth     int
		triggered int
	}{
		{0, 1},
		{store.MaxEmitDepth - 1, 1},
		{store.MaxEmitDepth, 0},
		{store.MaxEmitDepth + 1, 0},
	} {
		t.Run(fmt.Sprintf("depth %d", tc.depth), func(t *testing.T) {
			t.Parallel()
			ev := event("ada@example.com", "signed.up")
			ev.EmitDepth = tc.depth
			f := newFixture(t, storetest.New(t, store.Config{}), "signed.up", false)
			require.Equal(t, tc.triggered, f.record(ev)[0].Triggered)
			require.Len(t, f.enrollments(), tc.triggered)
			require.EqualValues(t, tc.triggered, f.fake.triggersCalls.Load())
		})
	}
}

func TestRecordWithoutAutomations(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	f := newFixture(t, storetest.New(t, store.Config{}), "signed.up", false, "churned")
	f.record(event("ada@example.com", "signed.up"))
	e := f.enrollments()[0]
	_, err := f.s.RegisterWait(ctx, wait(e, "project.created", time.Now()), matchAll)
	require.NoError(t, err)

	f.fake.off.Store(true)
	f.fake.triggersCalls.Store(0)
	res := f.record(event("ada@example.com", "signed.up"), event("ada@example.com", "project.created"),
		event("ada@example.com", "churned"))
	for _, r := range res {
		require.Zero(t, r.Triggered+r.Resumed+r.Exited)
	}
	require.Zero(t, f.fake.triggersCalls.Load())
	require.Len(t, f.enrollments(), 1)
	require.Zero(t, f.count(`SELECT count(*) FROM outbox WHERE workspace_id = $1 AND kind <> 'start'`))
	require.Equal(t, 1, f.count(`SELECT count(*) FROM enrollment_waits WHERE workspace_id = $1 AND claimed_event_id IS NULL`))
}

func TestFinishEnrollment(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	f := newFixture(t, storetest.New(t, store.Config{}), "signed.up", false, "churned")
	f.record(event("ada@example.com", "signed.up"), event("bob@example.com", "signed.up"))
	list := f.enrollments()
	exited, done := list[0], list[1]
	for _, e := range list {
		_, err := f.s.RegisterWait(ctx, wait(e, "project.created", time.Now()), matchAll)
		require.NoError(t, err)
	}
	require.Equal(t, 1, f.record(event("ada@example.com", "churned"))[0].Exited)

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
		require.Nil(t, got.Reason)
		require.Zero(t, f.count(`SELECT count(*) FROM enrollment_waits WHERE workspace_id = $1 AND enrollment_id = $2`, e.ID))
		require.Zero(t, f.count(`SELECT count(*) FROM enrollment_exits x JOIN enrollments e ON e.id = x.enrollment_id
			WHERE e.workspace_id = $1 AND x.enrollment_id = $2`, e.ID))
	}
	// A finished enrollment's exit event no longer finds it.
	require.Zero(t, f.record(event("bob@example.com", "churned"))[0].Exited)

	// The reason of an exit comes from the record: an exit event, or a
	// cancel from Temporal with none.
	f.record(event("cy@example.com", "signed.up"), event("di@example.com", "signed.up"))
	require.Equal(t, 1, f.record(event("di@example.com", "churned"))[0].Exited)
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
