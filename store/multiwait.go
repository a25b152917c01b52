package store

import (
	"bytes"
	"context"
	"fmt"
	"slices"
	"strings"
	"time"

	"github.com/google/uuid"
	"github.com/jackc/pgx/v5"

	"github.com/signalbox/signalbox/decision"
	"github.com/signalbox/signalbox/event"
)

// queueMultiClaims claims rows of waits on several events, in three
// statements of the claim batch, so in the same round trip:
//
//  1. lock every row of each wait claimed, in key order (after the waits
//     on one event, as every record transaction does);
//  2. claim the rows (... WHERE claimed_event_id IS NULL); a row of an
//     "any" wait only while no row of the wait is claimed;
//  3. read back every row of the waits, with the events claimed.
//
// The locks make the claims on one wait take turns across concurrent
// transactions, and statements 2 and 3 each see every claim committed
// before them, so exactly one transaction finds an "all" wait complete
// after its own claims: that one resumes it.
func queueMultiClaims(b *pgx.Batch, claims map[decision.WaitKey]uuid.UUID, won decision.Won) {
	if len(claims) == 0 {
		return
	}
	keys := make([]decision.WaitKey, 0, len(claims))
	for k := range claims {
		keys = append(keys, k)
	}
	slices.SortFunc(keys, func(a, b decision.WaitKey) int {
		if c := bytes.Compare(a.EnrollmentID[:], b.EnrollmentID[:]); c != 0 {
			return c
		}
		if c := strings.Compare(a.StepID, b.StepID); c != 0 {
			return c
		}
		return strings.Compare(a.Event, b.Event)
	})
	ids, steps, names, events := make([]uuid.UUID, len(keys)), make([]string, len(keys)), make([]string, len(keys)),
		make([]uuid.UUID, len(keys))
	for i, k := range keys {
		ids[i], steps[i], names[i], events[i] = k.EnrollmentID, k.StepID, k.Event, claims[k]
	}
	b.Queue(`SELECT 1 FROM enrollment_waits w
		WHERE (w.enrollment_id, w.step_id) IN (SELECT * FROM unnest($1::uuid[], $2::text[]))
		ORDER BY w.enrollment_id, w.step_id, w.event_name FOR UPDATE OF w`, ids, steps)
	b.Queue(`UPDATE enrollment_waits w SET claimed_event_id = u.ev
		FROM unnest($1::uuid[], $2::text[], $3::text[], $4::uuid[]) AS u(id, step, name, ev)
		WHERE w.enrollment_id = u.id AND w.step_id = u.step AND w.event_name = u.name AND w.claimed_event_id IS NULL
		  AND (w.mode <> 'any' OR NOT EXISTS (SELECT 1 FROM enrollment_waits s
		    WHERE s.enrollment_id = w.enrollment_id AND s.step_id = w.step_id AND s.claimed_event_id IS NOT NULL))
		RETURNING w.enrollment_id, w.step_id, w.event_name`,
		ids, steps, names, events).Query(func(rows pgx.Rows) error {
		var k decision.WaitKey
		_, err := pgx.ForEachRow(rows, []any{&k.EnrollmentID, &k.StepID, &k.Event}, func() error { won.Waits[k] = true; return nil })
		return err
	})
	b.Queue(`SELECT w.enrollment_id, w.step_id, w.event_name, w.mode,
			e.id, e.name, e.properties, e.occurred_at, e.emit_depth, e.received_at
		FROM enrollment_waits w LEFT JOIN events e ON e.id = w.claimed_event_id
		WHERE (w.enrollment_id, w.step_id) IN (SELECT * FROM unnest($1::uuid[], $2::text[]))
		ORDER BY w.enrollment_id, w.step_id, w.event_name`, ids, steps).Query(func(rows pgx.Rows) error {
		for rows.Next() {
			var (
				k        decision.WaitKey
				mode     string
				id       *uuid.UUID
				name     *string
				props    []byte
				occurred *time.Time
				received *time.Time
				depth    *int16
			)
			if err := rows.Scan(&k.EnrollmentID, &k.StepID, &k.Event, &mode, &id, &name, &props, &occurred, &depth,
				&received); err != nil {
				return err
			}
			st := won.Multi[k.Wait()]
			st.Mode = mode
			st.Names = append(st.Names, k.Event)
			if id != nil {
				ev := event.Event{ID: *id, Name: *name, Properties: props, OccurredAt: *occurred, Depth: int(*depth),
					ReceivedAt: received.UTC()}
				if st.Matched == nil {
					st.Matched = map[string]event.Event{}
				}
				st.Matched[k.Event] = ev
			}
			won.Multi[k.Wait()] = st
		}
		return rows.Err()
	})
}

// waitRows is a wait on several events as its rows in the index hold it.
type waitRows struct {
	found   bool
	mode    string
	expires time.Time
	state   decision.MultiState
}

// readWaitRows reads every row of a wait with the events claimed, under
// the contact's wait lock.
func readWaitRows(ctx context.Context, tx pgx.Tx, enrollmentID uuid.UUID, stepID string) (waitRows, error) {
	rows, err := tx.Query(ctx, `SELECT w.event_name, w.mode, w.expires_at,
			e.id, e.name, e.properties, e.occurred_at, e.emit_depth, e.received_at
		FROM enrollment_waits w LEFT JOIN events e ON e.id = w.claimed_event_id
		WHERE w.enrollment_id = $1 AND w.step_id = $2 ORDER BY w.event_name`, enrollmentID, stepID)
	if err != nil {
		return waitRows{}, fmt.Errorf("read wait: %w", err)
	}
	defer rows.Close()
	out := waitRows{state: decision.MultiState{Matched: map[string]event.Event{}}}
	for rows.Next() {
		var (
			name, mode         string
			id                 *uuid.UUID
			evName             *string
			props              []byte
			occurred, received *time.Time
			depth              *int16
		)
		if err := rows.Scan(&name, &mode, &out.expires, &id, &evName, &props, &occurred, &depth, &received); err != nil {
			return waitRows{}, fmt.Errorf("read wait: %w", err)
		}
		out.found, out.mode = true, mode
		out.state.Mode = mode
		out.state.Names = append(out.state.Names, name)
		if id != nil {
			out.state.Matched[name] = event.Event{ID: *id, Name: *evName, Properties: props, OccurredAt: *occurred,
				Depth: int(*depth), ReceivedAt: received.UTC()}
		}
	}
	return out, rows.Err()
}

// outcome is what a wait on several events found: its matched events and,
// when complete, the last of them (by receipt, then id) as the one that
// resumed it.
func (r waitRows) outcome() WaitOutcome {
	out := WaitOutcome{Events: r.state.Events()}
	if !r.state.Complete() {
		return out
	}
	for i := range out.Events {
		e := out.Events[i]
		if out.Event == nil || e.ReceivedAt.After(out.Event.ReceivedAt) ||
			e.ReceivedAt.Equal(out.Event.ReceivedAt) && bytes.Compare(e.ID[:], out.Event.ID[:]) > 0 {
			out.Event = &e
		}
	}
	return out
}

// RegisterMultiWait is RegisterWait for a wait on several events (w.Mode
// "any" or "all"): one row per name, then the look-back over the window
// for the names not yet claimed, earliest events first; for "any" the
// first match claims the wait, for "all" the first match of each name
// claims its row. The outcome's Events are the matched events; Event is
// set once the wait is complete (the last of them). When the window has
// closed by PostgreSQL's clock without completing it, the rows are
// removed and the outcome says Closed.
func (s *Store) RegisterMultiWait(ctx context.Context, w Wait, names []string, match func(event.Event) bool) (WaitOutcome, error) {
	var out WaitOutcome
	err := s.inTx(ctx, func(tx pgx.Tx) error {
		clock, err := lockWait(ctx, tx, w.ContactID)
		if err != nil {
			return err
		}
		_, err = tx.Exec(ctx, `INSERT INTO enrollment_waits (enrollment_id, step_id, workspace_id, contact_id, event_name,
				mode, condition, trigger, workflow_id, began_at, after_event_id, expires_at)
			SELECT $1, $2, $3, $4, name, $6, $7, $8, $9, $10, $11, $12 FROM unnest($5::text[]) AS name
			ON CONFLICT (enrollment_id, step_id, event_name) DO UPDATE SET expires_at = excluded.expires_at`,
			w.EnrollmentID, w.StepID, w.WorkspaceID, w.ContactID, names, w.Mode, w.Condition, w.Trigger, w.WorkflowID,
			w.BeganAt, nullUUID(w.AfterEventID), w.ExpiresAt)
		if isForeignKeyViolation(err) {
			return ErrNotFound
		}
		if err != nil {
			return fmt.Errorf("register wait: %w", err)
		}
		r, err := readWaitRows(ctx, tx, w.EnrollmentID, w.StepID)
		if err != nil {
			return err
		}
		if r.state.Complete() {
			out = r.outcome()
			return nil
		}
		var open []string
		for _, n := range r.state.Names {
			if _, ok := r.state.Matched[n]; !ok {
				open = append(open, n)
			}
		}
		candidates, err := lookBack(ctx, tx, w, open)
		if err != nil {
			return err
		}
		for _, ev := range candidates {
			if _, taken := r.state.Matched[ev.Name]; taken || !match(ev) {
				continue
			}
			if _, err := tx.Exec(ctx, `UPDATE enrollment_waits SET claimed_event_id = $4
				WHERE enrollment_id = $1 AND step_id = $2 AND event_name = $3 AND claimed_event_id IS NULL`,
				w.EnrollmentID, w.StepID, ev.Name, ev.ID); err != nil {
				return fmt.Errorf("claim wait: %w", err)
			}
			r.state.Matched[ev.Name] = ev
			if r.state.Complete() {
				break
			}
		}
		out = r.outcome()
		if out.Event == nil && !clock.Before(w.ExpiresAt) {
			out.Closed = true
			return dropWait(ctx, tx, w.EnrollmentID, w.StepID)
		}
		return nil
	})
	return out, err
}

// ClearMultiWait is ClearWait for a wait on several events: complete (its
// claims made by the record path meanwhile), it resumes after all and the
// rows stay; otherwise its rows are removed and it times out, with the
// events it had matched, unless strict is set and PostgreSQL's clock has
// not reached the window's end.
func (s *Store) ClearMultiWait(ctx context.Context, contactID, enrollmentID uuid.UUID, stepID string, strict bool) (WaitOutcome, error) {
	var out WaitOutcome
	err := s.inTx(ctx, func(tx pgx.Tx) error {
		clock, err := lockWait(ctx, tx, contactID)
		if err != nil {
			return err
		}
		r, err := readWaitRows(ctx, tx, enrollmentID, stepID)
		if err != nil || !r.found {
			return err
		}
		out = r.outcome()
		if out.Event != nil {
			return nil
		}
		return endWait(ctx, tx, enrollmentID, stepID, clock, r.expires, strict, &out)
	})
	return out, err
}
