package store_test

import (
	"context"
	"encoding/json"
	"testing"
	"time"

	"github.com/google/uuid"
	"github.com/stretchr/testify/require"

	"github.com/signalbox/signalbox/decision"
	"github.com/signalbox/signalbox/event"
	"github.com/signalbox/signalbox/intent"
	"github.com/signalbox/signalbox/store"
	"github.com/signalbox/signalbox/store/storetest"
)

// multiWait is a wait of the enrollment on several events.
func multiWait(e store.Enrollment, mode string, began time.Time) store.Wait {
	w := wait(e, "", began)
	w.Mode = mode
	return w
}

// outcomes counts the wait decisions of the workspace by outcome.
func (f *fixture) waitOutcomes() map[string]int {
	f.t.Helper()
	rows, err := f.s.Pool().Query(context.Background(), `SELECT outcome, count(*) FROM decisions
		WHERE workspace_id = $1 AND kind = 'wait' GROUP BY outcome`, f.ws.ID)
	require.NoError(f.t, err)
	defer rows.Close()
	out := map[string]int{}
	for rows.Next() {
		var (
			o string
			n int
		)
		require.NoError(f.t, rows.Scan(&o, &n))
		out[o] = n
	}
	require.NoError(f.t, rows.Err())
	return out
}

// signal decodes the one signal intent to the enrollment's workflow.
func (f *fixture) signal(e store.Enrollment) intent.Signal {
	f.t.Helper()
	var found []intent.Signal
	for _, in := range f.intents(intent.KindSignal) {
		if in.WorkflowID == e.WorkflowID {
			var p intent.Signal
			require.NoError(f.t, json.Unmarshal(in.Payload, &p))
			found = append(found, p)
		}
	}
	require.Len(f.t, found, 1, "one signal resumes the wait")
	return found[0]
}

func names(events []event.Event) []string {
	var out []string
	for _, e := range events {
		out = append(out, e.Name)
	}
	return out
}

// TestMultiWaitAllResumesOnceUnderConcurrency sends, at once, several
// events of each name an "all" wait awaits, in separate requests, to many
// enrollments: each name is claimed once per wait, and exactly one request
// finds the wait complete and resumes it, with every matched event.
func TestMultiWaitAllResumesOnceUnderConcurrency(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	f := newFixture(t, storetest.New(t, store.Config{}), "signed.up", false)
	const contacts = 4
	emails := []string{"ada@example.com", "bob@example.com", "cy@example.com", "di@example.com"}
	for _, m := range emails {
		f.record(ev(m, "signed.up"))
	}
	list := f.enrollments()
	require.Len(t, list, contacts)
	awaited := []string{"order.paid", "order.packed", "order.shipped"}
	for _, e := range list {
		out, err := f.s.RegisterMultiWait(ctx, multiWait(e, "all", time.Now()), awaited, matchAll)
		require.NoError(t, err)
		require.Nil(t, out.Event)
		require.Empty(t, out.Events)
	}

	// Per contact, three events of each name, all at once.
	results := f.concurrently(contacts*9, func(i int) store.EventInput {
		return ev(emails[i%contacts], awaited[(i/contacts)%3])
	})
	resumed, _ := tally(results, func(r store.EventResult) int { return r.Resumed })
	require.Equal(t, contacts, resumed, "one resume per wait")
	for _, e := range list {
		p := f.signal(e)
		require.Equal(t, "activated", p.StepID)
		require.Equal(t, []string{"order.packed", "order.paid", "order.shipped"}, names(p.Events))
		var claimed []uuid.UUID
		rows, err := f.s.Pool().Query(ctx, `SELECT claimed_event_id FROM enrollment_waits
			WHERE enrollment_id = $1 ORDER BY event_name`, e.ID)
		require.NoError(t, err)
		claimed, err = collectIDs(rows)
		require.NoError(t, err)
		require.Equal(t, []uuid.UUID{p.Events[0].ID, p.Events[1].ID, p.Events[2].ID}, claimed,
			"the signal carries the events the rows hold")
		require.Contains(t, claimed, p.Event.ID, "the completing event is one of them")
	}
	// Requests that read the index after a name was claimed find no row
	// for it (and decide nothing about it); the others lose the claim.
	got := f.waitOutcomes()
	require.Equal(t, contacts, got[decision.Resumed])
	require.Equal(t, 2*contacts, got[decision.WaitMatched])
	require.LessOrEqual(t, got[decision.TakenByOtherEvent], 6*contacts)
}

func collectIDs(rows interface {
	Next() bool
	Scan(...any) error
	Err() error
	Close()
}) ([]uuid.UUID, error) {
	defer rows.Close()
	var out []uuid.UUID
	for rows.Next() {
		var id *uuid.UUID
		if err := rows.Scan(&id); err != nil {
			return nil, err
		}
		if id == nil {
			out = append(out, uuid.Nil)
			continue
		}
		out = append(out, *id)
	}
	return out, rows.Err()
}

// TestMultiWaitAnyResumesOnceUnderConcurrency: events of both names of an
// "any" wait at once; the first claim takes the whole wait.
func TestMultiWaitAnyResumesOnceUnderConcurrency(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	f := newFixture(t, storetest.New(t, store.Config{}), "signed.up", false)
	f.record(ev("ada@example.com", "signed.up"))
	e := f.enrollments()[0]
	_, err := f.s.RegisterMultiWait(ctx, multiWait(e, "any", time.Now()), []string{"chat.started", "call.booked"}, matchAll)
	require.NoError(t, err)

	results := f.concurrently(12, func(i int) store.EventInput {
		return ev("ada@example.com", []string{"chat.started", "call.booked"}[i%2])
	})
	resumed, winner := tally(results, func(r store.EventResult) int { return r.Resumed })
	require.Equal(t, 1, resumed)
	p := f.signal(e)
	require.Equal(t, winner, p.Event.ID)
	require.Len(t, p.Events, 1)
	require.Equal(t, winner, p.Events[0].ID)
	require.Equal(t, 1, f.count(`SELECT count(*) FROM enrollment_waits WHERE workspace_id = $1
		AND claimed_event_id IS NOT NULL`), "one row of the wait is claimed")
	got := f.waitOutcomes()
	require.Equal(t, 1, got[decision.Resumed])
	require.Zero(t, got[decision.WaitMatched])

	// The timer fires afterwards: the wait resumed.
	out, err := f.s.ClearMultiWait(ctx, e.ContactID, e.ID, "activated", true)
	require.NoError(t, err)
	require.NotNil(t, out.Event)
	require.Equal(t, winner, out.Event.ID)
}

// TestMultiWaitAllInOneBatch: both events of an "all" wait in one request;
// the first is matched, the second resumes it; a repeat is taken.
func TestMultiWaitAllInOneBatch(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	f := newFixture(t, storetest.New(t, store.Config{}), "signed.up", false)
	f.record(ev("ada@example.com", "signed.up"))
	e := f.enrollments()[0]
	_, err := f.s.RegisterMultiWait(ctx, multiWait(e, "all", time.Now()), []string{"order.paid", "order.shipped"}, matchAll)
	require.NoError(t, err)

	res := f.record(ev("ada@example.com", "order.shipped"), ev("ada@example.com", "order.shipped"),
		ev("ada@example.com", "order.paid"))
	require.Equal(t, []int{0, 0, 1}, []int{res[0].Resumed, res[1].Resumed, res[2].Resumed})
	p := f.signal(e)
	require.Equal(t, res[2].EventID, p.Event.ID)
	require.Equal(t, []uuid.UUID{res[2].EventID, res[0].EventID}, []uuid.UUID{p.Events[0].ID, p.Events[1].ID})
	require.Equal(t, map[string]int{decision.Resumed: 1, decision.WaitMatched: 1, decision.TakenByOtherEvent: 1},
		f.waitOutcomes())

	var detail map[string]any
	require.NoError(t, f.s.Pool().QueryRow(ctx, `SELECT detail FROM decisions WHERE event_id = $1 AND kind = 'wait'`,
		res[0].EventID).Scan(&detail))
	require.Equal(t, "all", detail["mode"])
	require.Equal(t, []any{"order.paid"}, detail["awaiting"])
	require.Equal(t, map[string]any{"order.shipped": res[0].EventID.String()}, detail["matched"])
}

// TestMultiWaitLooksBack registers an "all" wait after one of its events
// was recorded inside its window (before the workflow reached the step),
// and one of the other name before the window opened: the first counts,
// the second never does; the record path then completes the wait.
func TestMultiWaitLooksBack(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	f := newFixture(t, storetest.New(t, store.Config{}), "signed.up", false)
	early := f.record(ev("ada@example.com", "order.shipped"))[0]
	f.record(ev("ada@example.com", "signed.up"))
	e := f.enrollments()[0]
	began := f.receivedAt(early.EventID).Add(time.Microsecond)
	paid := f.record(ev("ada@example.com", "order.paid"))[0]

	out, err := f.s.RegisterMultiWait(ctx, multiWait(e, "all", began), []string{"order.paid", "order.shipped"}, matchAll)
	require.NoError(t, err)
	require.Nil(t, out.Event, "the shipment before the window does not count")
	require.Equal(t, []uuid.UUID{paid.EventID}, []uuid.UUID{out.Events[0].ID})
	require.Len(t, out.Events, 1)

	// Registering again (a retried activity) finds the same.
	again, err := f.s.RegisterMultiWait(ctx, multiWait(e, "all", began), []string{"order.paid", "order.shipped"}, matchAll)
	require.NoError(t, err)
	require.Equal(t, out.Events, again.Events)

	// A second payment is taken; the shipment completes the wait.
	require.Zero(t, f.record(ev("ada@example.com", "order.paid"))[0].Resumed)
	shipped := f.record(ev("ada@example.com", "order.shipped"))[0]
	require.Equal(t, 1, shipped.Resumed)
	p := f.signal(e)
	require.Equal(t, shipped.EventID, p.Event.ID)
	require.Equal(t, []uuid.UUID{paid.EventID, shipped.EventID}, []uuid.UUID{p.Events[0].ID, p.Events[1].ID})
}

// TestClearMultiWait times out an "all" wait with one of its two events:
// strictly before the window's end it goes on; after, it is removed and
// says what it had matched.
func TestClearMultiWait(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	f := newFixture(t, storetest.New(t, store.Config{}), "signed.up", false)
	f.record(ev("ada@example.com", "signed.up"))
	e := f.enrollments()[0]
	_, err := f.s.RegisterMultiWait(ctx, multiWait(e, "all", time.Now()), []string{"order.paid", "order.shipped"}, matchAll)
	require.NoError(t, err)
	paid := f.record(ev("ada@example.com", "order.paid"))[0]
	require.Zero(t, paid.Resumed)

	out, err := f.s.ClearMultiWait(ctx, e.ContactID, e.ID, "activated", true)
	require.NoError(t, err)
	require.Nil(t, out.Event)
	require.Greater(t, out.Remaining, 59*time.Minute)

	out, err = f.s.ClearMultiWait(ctx, e.ContactID, e.ID, "activated", false)
	require.NoError(t, err)
	require.Nil(t, out.Event)
	require.Zero(t, out.Remaining)
	require.Len(t, out.Events, 1)
	require.Equal(t, paid.EventID, out.Events[0].ID)
	require.Zero(t, f.count(`SELECT count(*) FROM enrollment_waits WHERE workspace_id = $1`))
	require.Zero(t, f.record(ev("ada@example.com", "order.shipped"))[0].Resumed, "the wait is gone")

	// A closed window with nothing complete in it times out at once.
	began := time.Now().Add(-2 * time.Hour)
	w := multiWait(e, "all", began)
	w.StepID, w.ExpiresAt = "later", began.Add(time.Hour)
	closed, err := f.s.RegisterMultiWait(ctx, w, []string{"order.paid", "order.shipped"}, matchAll)
	require.NoError(t, err)
	require.True(t, closed.Closed)
	require.Zero(t, f.count(`SELECT count(*) FROM enrollment_waits WHERE workspace_id = $1`))
}

// TestMultiWaitWindowClosedWhileDown registers "all" waits whose windows
// closed before the workflow got to them (Temporal was down): one holds
// both events inside the window and resumes at once, the other holds one
// of them and times out at once; an event after the window never counts.
func TestMultiWaitWindowClosedWhileDown(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	f := newFixture(t, storetest.New(t, store.Config{}), "signed.up", false)
	f.record(ev("ada@example.com", "signed.up"), ev("bob@example.com", "signed.up"))
	list := f.enrollments()
	backdate := func(id uuid.UUID, ago string) {
		_, err := f.s.Pool().Exec(ctx, `UPDATE events SET received_at = now() - $2::interval WHERE id = $1`, id, ago)
		require.NoError(t, err)
	}
	adaPaid := f.record(ev("ada@example.com", "order.paid"))[0]
	adaShipped := f.record(ev("ada@example.com", "order.shipped"))[0]
	bobPaid := f.record(ev("bob@example.com", "order.paid"))[0]
	f.record(ev("bob@example.com", "order.shipped")) // now: after bob's window
	backdate(adaPaid.EventID, "90 minutes")
	backdate(adaShipped.EventID, "80 minutes")
	backdate(bobPaid.EventID, "90 minutes")
	began := time.Now().Add(-2 * time.Hour)

	for _, e := range list {
		w := multiWait(e, "all", began)
		w.ExpiresAt = began.Add(time.Hour)
		out, err := f.s.RegisterMultiWait(ctx, w, []string{"order.paid", "order.shipped"}, matchAll)
		require.NoError(t, err)
		if e.ContactID == adaPaid.ContactID {
			require.False(t, out.Closed)
			require.NotNil(t, out.Event)
			require.Equal(t, adaShipped.EventID, out.Event.ID, "the later of the two")
			require.Len(t, out.Events, 2)
		} else {
			require.True(t, out.Closed)
			require.Nil(t, out.Event)
			require.Equal(t, []string{"order.paid"}, names(out.Events))
		}
	}
	require.Equal(t, 2, f.count(`SELECT count(*) FROM enrollment_waits WHERE workspace_id = $1`),
		"ada's claimed rows stay; bob's closed wait is not left in the index")
}
