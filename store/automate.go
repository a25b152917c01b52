package store

import (
	"bytes"
	"context"
	"encoding/binary"
	"encoding/json"
	"fmt"
	"slices"
	"time"

	"github.com/google/uuid"
	"github.com/jackc/pgx/v5"

	"github.com/signalbox/signalbox/conditions"
	"github.com/signalbox/signalbox/decision"
)

// Wait is an enrollment waiting for an event, as the wait index holds it.
type Wait = decision.Wait

// Automator loads the automations the record path decides with.
type Automator interface {
	// Load returns the automations of these workspaces as one record
	// transaction will see them. It may query the database (through the
	// pool), so the record path calls it before the transaction begins:
	// never while holding a connection, which under load could exhaust
	// the pool with transactions waiting on each other's loads.
	Load(ctx context.Context, workspaceIDs []uuid.UUID) (decision.Automations, error)
}

// SetAutomator installs the automator the record path consults; without
// one, events trigger nothing.
func (s *Store) SetAutomator(a Automator) { s.automator = a }

// automate reads what the group's new events may do to automations (the
// exit and wait indexes, the contacts conditions read), has the decision
// package decide, claims what the decisions claim, and writes what took
// effect: enrollments, outbox intents, the decisions themselves, and the
// counts in the results. automating names the workspaces that have
// automations; their contacts' wait locks are held since stamp.
func (s *Store) automate(ctx context.Context, tx pgx.Tx, reqs []*RecordRequest, out []RecordOutcome,
	set decision.Automations, at time.Time, automating map[uuid.UUID]bool) error {
	if set == nil {
		return nil
	}
	var fresh []decision.Fresh
	for ri, r := range reqs {
		if !automating[r.WorkspaceID] {
			continue
		}
		for ii, e := range r.Events {
			res := out[ri].Results[ii]
			if res.Err != nil || res.Duplicate {
				continue
			}
			fresh = append(fresh, decision.Fresh{Item: decision.Item{Request: ri, Index: ii}, WorkspaceID: r.WorkspaceID,
				ContactID: res.ContactID, Trace: r.TraceParent, Event: e.event(res.EventID, at)})
		}
	}
	if len(fresh) == 0 {
		return nil
	}
	in, err := s.readIndexes(ctx, tx, fresh, set, at)
	if err != nil {
		return err
	}
	plan := decision.Make(ctx, in)
	won, err := claim(ctx, tx, plan.Claims())
	if err != nil {
		return err
	}
	plan.Settle(won)
	enrollments, effects := plan.Effects(func(it decision.Item, kind string) {
		res := &out[it.Request].Results[it.Index]
		switch kind {
		case decision.KindTrigger:
			res.Triggered++
		case decision.KindWait:
			res.Resumed++
		case decision.KindExit:
			res.Exited++
		}
	})
	if err := s.writeDecided(ctx, tx, enrollments, effects, plan.Decisions()); err != nil {
		return err
	}
	return queueEnrollments(ctx, tx, plan.Queued())
}

// readIndexes reads, in one round trip, the active enrollments that exit
// on the group's events and the waits open for them, then the contacts
// whose conditions may read them.
func (s *Store) readIndexes(ctx context.Context, tx pgx.Tx, fresh []decision.Fresh, set decision.Automations,
	at time.Time) (decision.Input, error) {
	in := decision.Input{Events: fresh, Exits: map[decision.ContactEvent][]*decision.Candidate{},
		Waits: map[decision.ContactEvent][]*decision.Wait{}, Contacts: map[uuid.UUID]map[string]any{},
		Automations: set, NewID: NewID, Now: at}
	pairs := map[decision.ContactEvent]bool{}
	for _, f := range fresh {
		pairs[decision.ContactEvent{Contact: f.ContactID, Name: f.Event.Name}] = true
	}
	batch := &pgx.Batch{}
	queueExitCandidates(batch, pairs, in.Exits)
	queueWaits(batch, pairs, at, in.Waits)
	if err := tx.SendBatch(ctx, batch).Close(); err != nil {
		return in, fmt.Errorf("read automation indexes: %w", err)
	}
	// Contacts are read once, for the conditions that may read them.
	var ids []uuid.UUID
	for _, f := range fresh {
		need := false
		for _, w := range in.Waits[decision.ContactEvent{Contact: f.ContactID, Name: f.Event.Name}] {
			need = need || w.Condition != ""
		}
		for _, t := range set.Triggers(f.WorkspaceID, f.Event.Name) {
			need = need || t.ReadsContact
		}
		if need && !slices.Contains(ids, f.ContactID) {
			ids = append(ids, f.ContactID)
		}
	}
	if len(ids) == 0 {
		return in, nil
	}
	if err := s.readWaitSegments(ctx, tx, fresh, set, &in); err != nil {
		return in, err
	}
	rows, err := tx.Query(ctx, `SELECT `+contactColumns+` FROM contacts WHERE id = ANY($1)`, ids)
	if err != nil {
		return in, fmt.Errorf("load contacts: %w", err)
	}
	_, err = pgx.CollectRows(rows, func(r pgx.CollectableRow) (Contact, error) {
		c, err := scanContact(r)
		in.Contacts[c.ID] = conditions.ContactMap(c.ID.String(), c.Email, c.FirstName, c.LastName, c.Properties)
		return c, err
	})
	if err != nil {
		return in, fmt.Errorf("load contacts: %w", err)
	}
	return in, nil
}

func queueExitCandidates(b *pgx.Batch, pairs map[decision.ContactEvent]bool, exits map[decision.ContactEvent][]*decision.Candidate) {
	contacts, names := pairArrays(pairs)
	b.Queue(`SELECT x.contact_id, x.event_name, e.id, e.workflow_id, e.workspace_id, e.automation_id, e.version,
			e.trigger_event_id
		FROM enrollment_exits x JOIN unnest($1::uuid[], $2::text[]) AS p(contact, name)
		  ON x.contact_id = p.contact AND x.event_name = p.name
		JOIN enrollments e ON e.id = x.enrollment_id
		WHERE e.status = 'active' AND e.exit_event_id IS NULL AND e.exit_reason IS NULL ORDER BY e.id`, contacts, names).Query(func(rows pgx.Rows) error {
		var (
			k  decision.ContactEvent
			c  decision.Candidate
			by = map[uuid.UUID]*decision.Candidate{}
		)
		_, err := pgx.ForEachRow(rows, []any{&k.Contact, &k.Name, &c.EnrollmentID, &c.WorkflowID, &c.WorkspaceID,
			&c.AutomationID, &c.Version, &c.TriggerEventID}, func() error {
			// One candidate per enrollment, listed under each of its names.
			cc, ok := by[c.EnrollmentID]
			if !ok {
				copied := c
				cc = &copied
				by[c.EnrollmentID] = cc
			}
			exits[k] = append(exits[k], cc)
			return nil
		})
		return err
	})
}

func pairArrays(pairs map[decision.ContactEvent]bool) ([]uuid.UUID, []string) {
	contacts := make([]uuid.UUID, 0, len(pairs))
	names := make([]string, 0, len(pairs))
	for p := range pairs {
		contacts, names = append(contacts, p.Contact), append(names, p.Name)
	}
	return contacts, names
}

// queueWaits reads the unclaimed waits of the group's contacts for its
// event names that are still open at the group's receipt time.
func queueWaits(b *pgx.Batch, pairs map[decision.ContactEvent]bool, at time.Time, waits map[decision.ContactEvent][]*decision.Wait) {
	contacts, names := pairArrays(pairs)
	// A wait on any of several events is taken once one of its rows is.
	b.Queue(`SELECT w.enrollment_id, w.step_id, w.workflow_id, w.workspace_id, e.automation_id, e.version,
			w.contact_id, w.event_name, w.mode, w.condition, w.trigger, w.began_at,
			coalesce(w.after_event_id, '00000000-0000-0000-0000-000000000000'), w.expires_at
		FROM enrollment_waits w JOIN unnest($1::uuid[], $2::text[]) AS p(contact, name)
		  ON w.contact_id = p.contact AND w.event_name = p.name
		JOIN enrollments e ON e.id = w.enrollment_id
		WHERE w.claimed_event_id IS NULL AND w.expires_at > $3
		  AND (w.mode <> 'any' OR NOT EXISTS (SELECT 1 FROM enrollment_waits s
		    WHERE s.enrollment_id = w.enrollment_id AND s.step_id = w.step_id AND s.claimed_event_id IS NOT NULL))
		ORDER BY w.began_at, w.enrollment_id`,
		contacts, names, at).Query(func(rows pgx.Rows) error {
		var w decision.Wait
		_, err := pgx.ForEachRow(rows, []any{&w.EnrollmentID, &w.StepID, &w.WorkflowID, &w.WorkspaceID, &w.AutomationID,
			&w.Version, &w.ContactID, &w.EventName, &w.Mode, &w.Condition, &w.Trigger, &w.BeganAt, &w.AfterEventID, &w.ExpiresAt},
			func() error {
				k := decision.ContactEvent{Contact: w.ContactID, Name: w.EventName}
				copied := w
				waits[k] = append(waits[k], &copied)
				return nil
			})
		return err
	})
}

// claim takes what the plan claims with conditional writes, in one round
// trip: "once" reservations (INSERT ... ON CONFLICT DO NOTHING), waits to
// resume (... WHERE claimed_event_id IS NULL) and enrollments to end (...
// WHERE exit_event_id IS NULL). A claim a concurrent transaction took
// first is lost: its write waits for that commit, then finds the row
// taken. Rows are taken in key order, as every transaction takes them, to
// avoid deadlocks.
func claim(ctx context.Context, tx pgx.Tx, c decision.Claims) (decision.Won, error) {
	won := decision.Won{Once: map[decision.OnceKey]bool{}, Earlier: map[decision.OnceKey]uuid.UUID{},
		Waits: map[decision.WaitKey]bool{}, Multi: map[decision.WaitKey]decision.MultiState{}, Exits: map[uuid.UUID]bool{}}
	// Limits first: an enrollment a limit skips takes no "once"
	// reservation (a queued one does: it will start).
	var err error
	if won.Limited, err = claimLimits(ctx, tx, c.Limits); err != nil {
		return won, err
	}
	for _, l := range c.Limits {
		if _, refused := won.Limited[l.EnrollmentID]; refused && !l.Limits.Queues() {
			delete(c.Once, decision.OnceKey{AutomationID: l.AutomationID, ContactID: l.ContactID})
		}
	}
	b := &pgx.Batch{}
	if len(c.Once) > 0 {
		keys := make([]decision.OnceKey, 0, len(c.Once))
		for k := range c.Once {
			keys = append(keys, k)
		}
		slices.SortFunc(keys, func(a, b decision.OnceKey) int {
			if c := bytes.Compare(a.AutomationID[:], b.AutomationID[:]); c != 0 {
				return c
			}
			return bytes.Compare(a.ContactID[:], b.ContactID[:])
		})
		autos, contacts, ids := make([]uuid.UUID, len(keys)), make([]uuid.UUID, len(keys)), make([]uuid.UUID, len(keys))
		for i, k := range keys {
			autos[i], contacts[i], ids[i] = k.AutomationID, k.ContactID, c.Once[k]
		}
		b.Queue(`INSERT INTO enrollment_once (automation_id, contact_id, enrollment_id)
			SELECT * FROM unnest($1::uuid[], $2::uuid[], $3::uuid[])
			ON CONFLICT DO NOTHING RETURNING automation_id, contact_id`, autos, contacts, ids).Query(func(rows pgx.Rows) error {
			var k decision.OnceKey
			_, err := pgx.ForEachRow(rows, []any{&k.AutomationID, &k.ContactID}, func() error { won.Once[k] = true; return nil })
			return err
		})
		// The reservations held by others, and by whom.
		b.Queue(`SELECT o.automation_id, o.contact_id, o.enrollment_id FROM enrollment_once o
			JOIN unnest($1::uuid[], $2::uuid[], $3::uuid[]) AS u(a, c, e) ON o.automation_id = u.a AND o.contact_id = u.c
			WHERE o.enrollment_id <> u.e`, autos, contacts, ids).Query(func(rows pgx.Rows) error {
			var (
				k decision.OnceKey
				e uuid.UUID
			)
			_, err := pgx.ForEachRow(rows, []any{&k.AutomationID, &k.ContactID, &e}, func() error { won.Earlier[k] = e; return nil })
			return err
		})
	}
	if len(c.Exits) > 0 {
		ids, events := make([]uuid.UUID, 0, len(c.Exits)), make([]uuid.UUID, 0, len(c.Exits))
		for id, ev := range c.Exits {
			ids, events = append(ids, id), append(events, ev)
		}
		b.Queue(`WITH c AS (
				SELECT e.id, u.ev FROM enrollments e JOIN unnest($1::uuid[], $2::uuid[]) AS u(id, ev) ON e.id = u.id
				WHERE e.exit_event_id IS NULL AND e.exit_reason IS NULL AND e.status = 'active' ORDER BY e.id FOR UPDATE OF e)
			UPDATE enrollments e SET exit_event_id = c.ev FROM c
			WHERE e.id = c.id AND e.exit_event_id IS NULL AND e.exit_reason IS NULL AND e.status = 'active' RETURNING e.id`,
			ids, events).Query(func(rows pgx.Rows) error {
			var id uuid.UUID
			_, err := pgx.ForEachRow(rows, []any{&id}, func() error { won.Exits[id] = true; return nil })
			return err
		})
	}
	single := map[decision.WaitKey]uuid.UUID{}
	multi := map[decision.WaitKey]uuid.UUID{}
	for k, ev := range c.Waits {
		if k.Event == "" {
			single[k] = ev
		} else {
			multi[k] = ev
		}
	}
	if len(single) > 0 {
		ids, steps, events := make([]uuid.UUID, 0, len(single)), make([]string, 0, len(single)), make([]uuid.UUID, 0, len(single))
		for k, ev := range single {
			ids, steps, events = append(ids, k.EnrollmentID), append(steps, k.StepID), append(events, ev)
		}
		b.Queue(`WITH c AS (
				SELECT w.enrollment_id, w.step_id, u.ev FROM enrollment_waits w
				JOIN unnest($1::uuid[], $2::text[], $3::uuid[]) AS u(id, step, ev)
				  ON w.enrollment_id = u.id AND w.step_id = u.step
				WHERE w.claimed_event_id IS NULL ORDER BY w.enrollment_id, w.step_id FOR UPDATE OF w)
			UPDATE enrollment_waits w SET claimed_event_id = c.ev FROM c
			WHERE w.enrollment_id = c.enrollment_id AND w.step_id = c.step_id AND w.claimed_event_id IS NULL
			RETURNING w.enrollment_id, w.step_id`,
			ids, steps, events).Query(func(rows pgx.Rows) error {
			var k decision.WaitKey
			_, err := pgx.ForEachRow(rows, []any{&k.EnrollmentID, &k.StepID}, func() error { won.Waits[k] = true; return nil })
			return err
		})
	}
	queueMultiClaims(b, multi, won)
	if b.Len() == 0 {
		return won, nil
	}
	if err := tx.SendBatch(ctx, b).Close(); err != nil {
		return won, fmt.Errorf("claim once, resumes and exits: %w", err)
	}
	return won, nil
}

// writeDecided writes the enrollments the group started, the intents its
// decisions wrote, and the decisions themselves, each table once, all in
// one round trip (a batch of INSERT ... SELECT FROM unnest statements): the
// transaction holds its contacts' locks for one exchange with PostgreSQL
// here, not one (or, for COPY, two) per table.
func (s *Store) writeDecided(ctx context.Context, tx pgx.Tx, enrollments []decision.Enrollment, effects []decision.Effect,
	decisions []*decision.Decision) error {
	b := &pgx.Batch{}
	if len(enrollments) > 0 {
		var (
			ids, workspaces, automations, contacts, triggers []uuid.UUID
			versions                                         []int32
			workflows                                        []string
			exitEvents                                       []*uuid.UUID
			exitIDs, exitContacts                            []uuid.UUID
			exitNames                                        []string
		)
		for _, e := range enrollments {
			st := e.Start
			ids = append(ids, st.EnrollmentID)
			workspaces = append(workspaces, st.WorkspaceID)
			automations = append(automations, st.AutomationID)
			versions = append(versions, int32(st.Version))
			contacts = append(contacts, st.ContactID)
			triggers = append(triggers, st.Trigger.ID)
			workflows = append(workflows, e.WorkflowID)
			exitEvents = append(exitEvents, e.ExitEventID)
			for _, name := range e.ExitOn {
				exitIDs = append(exitIDs, st.EnrollmentID)
				exitContacts = append(exitContacts, st.ContactID)
				exitNames = append(exitNames, name)
			}
		}
		b.Queue(`INSERT INTO enrollments (id, workspace_id, automation_id, version, contact_id, trigger_event_id, workflow_id,
				exit_event_id)
			SELECT * FROM unnest($1::uuid[], $2::uuid[], $3::uuid[], $4::integer[], $5::uuid[], $6::uuid[], $7::text[], $8::uuid[])`,
			ids, workspaces, automations, versions, contacts, triggers, workflows, exitEvents)
		if len(exitIDs) > 0 {
			b.Queue(`INSERT INTO enrollment_exits (enrollment_id, contact_id, event_name)
				SELECT * FROM unnest($1::uuid[], $2::uuid[], $3::text[])`, exitIDs, exitContacts, exitNames)
		}
	}
	if len(effects) > 0 {
		var (
			ids, workspaces       []uuid.UUID
			workflows, kinds, raw []string
			traces                []*string
		)
		for _, e := range effects {
			payload, err := json.Marshal(e.Payload)
			if err != nil {
				return fmt.Errorf("encode %s intent: %w", e.Kind, err)
			}
			ids = append(ids, NewID())
			workspaces = append(workspaces, e.WorkspaceID)
			workflows = append(workflows, e.WorkflowID)
			kinds = append(kinds, e.Kind)
			raw = append(raw, string(payload))
			traces = append(traces, nullString(e.Trace))
		}
		b.Queue(`INSERT INTO outbox (id, workspace_id, workflow_id, kind, payload, trace_parent)
			SELECT * FROM unnest($1::uuid[], $2::uuid[], $3::text[], $4::text[], $5::jsonb[], $6::text[])`,
			ids, workspaces, workflows, kinds, raw, traces)
	}
	if len(decisions) > 0 && !s.skipDecisions {
		var (
			ids, workspaces, events, automations []uuid.UUID
			versions                             []int32
			kinds, outcomes, details             []string
			enrolled                             []*uuid.UUID
			at                                   []time.Time
		)
		for _, d := range decisions {
			ids = append(ids, d.ID)
			workspaces = append(workspaces, d.WorkspaceID)
			events = append(events, d.EventID)
			automations = append(automations, d.AutomationID)
			versions = append(versions, int32(d.Version))
			kinds = append(kinds, d.Kind)
			outcomes = append(outcomes, d.Outcome)
			enrolled = append(enrolled, nullUUID(d.EnrollmentID))
			details = append(details, string(d.DetailJSON()))
			at = append(at, d.At)
		}
		b.Queue(`INSERT INTO decisions (id, workspace_id, event_id, automation_id, version, kind, outcome, enrollment_id, detail, at)
			SELECT * FROM unnest($1::uuid[], $2::uuid[], $3::uuid[], $4::uuid[], $5::integer[], $6::text[], $7::text[],
				$8::uuid[], $9::jsonb[], $10::timestamptz[])`,
			ids, workspaces, events, automations, versions, kinds, outcomes, enrolled, details, at)
	}
	if b.Len() == 0 {
		return nil
	}
	if err := tx.SendBatch(ctx, b).Close(); err != nil {
		return fmt.Errorf("write enrollments, intents and decisions: %w", err)
	}
	return nil
}

// waitLockClass is the first key of the advisory locks that order a wait's
// registration (exclusive) against record transactions (shared) for the
// same contacts, apart from the quota lock's class.
const waitLockClass = 0x5754 // "WT"

// waitLockStripes bounds the wait locks: a contact maps to one of this many
// keys, so a transaction of 1,000 contacts takes at most this many entries
// in PostgreSQL's lock table. Record transactions only ever share them;
// a registration waits for those in flight on its stripe.
const waitLockStripes = 128

// waitStripe maps a contact to its wait lock. The last bytes of a UUIDv7
// are random, so contacts spread evenly.
func waitStripe(contact uuid.UUID) int32 {
	return int32(binary.BigEndian.Uint32(contact[12:]) % waitLockStripes)
}
