package store

import (
	"context"
	"encoding/binary"
	"encoding/json"
	"fmt"
	"slices"
	"time"

	"github.com/google/uuid"
	"github.com/jackc/pgx/v5"
)

// MaxEmitDepth stops loops of automations that emit events which trigger
// automations: an event this many emit_event steps away from an application
// event is recorded but triggers nothing.
const MaxEmitDepth = 5

// TriggerEvent is an event as automations see it.
type TriggerEvent struct {
	ID         uuid.UUID       `json:"id"`
	Name       string          `json:"name"`
	Properties json.RawMessage `json:"properties"`
	OccurredAt time.Time       `json:"occurred_at"`
	// Depth counts the emit_event steps that led to this event.
	Depth int `json:"depth,omitempty"`
}

// TriggerMatch is an enabled automation that an event starts.
type TriggerMatch struct {
	AutomationID uuid.UUID
	Version      int
	Once         bool
	ExitOn       []string
	Definition   json.RawMessage
}

// Wait is an enrollment waiting for an event.
type Wait struct {
	EnrollmentID uuid.UUID
	StepID       string
	WorkflowID   string
	WorkspaceID  uuid.UUID
	ContactID    uuid.UUID
	EventName    string
	Condition    string
	Trigger      json.RawMessage
	BeganAt      time.Time
	ExpiresAt    time.Time
}

// Automator decides what new events do to automations.
type Automator interface {
	// Load returns the automations of these workspaces as one record
	// transaction will see them. It may query the database (through the
	// pool), so the record path calls it before the transaction begins:
	// never while holding a connection, which under load could exhaust
	// the pool with transactions waiting on each other's loads.
	Load(ctx context.Context, workspaceIDs []uuid.UUID) (AutomationSet, error)
	// WaitMatches reports whether the event meets a waiting enrollment's
	// condition.
	WaitMatches(ctx context.Context, w *Wait, ev *TriggerEvent, contact *Contact) bool
	// WorkflowID names the Temporal workflow of an enrollment.
	WorkflowID(enrollmentID uuid.UUID) string
}

// AutomationSet answers from memory for the workspaces it was loaded for.
type AutomationSet interface {
	// Automates reports whether the workspace has any automation, enabled
	// or not; a workspace without one has no enrollments to resume or
	// exit, and its events skip that work entirely.
	Automates(workspaceID uuid.UUID) bool
	// Triggers returns the enabled automations whose trigger the event
	// meets; contact loads the event's contact, for conditions that read it.
	Triggers(ctx context.Context, workspaceID uuid.UUID, ev *TriggerEvent, contact func() *Contact) []TriggerMatch
}

// SetAutomator installs the automator the record path consults; without
// one, events trigger nothing.
func (s *Store) SetAutomator(a Automator) { s.automator = a }

// Intent kinds in the outbox.
const (
	IntentStart  = "start"
	IntentSignal = "signal"
	IntentCancel = "cancel"
)

// StartIntent is the payload of a start intent: everything the enrollment
// workflow needs, snapshotted when the event was recorded.
type StartIntent struct {
	EnrollmentID uuid.UUID       `json:"enrollment_id"`
	WorkspaceID  uuid.UUID       `json:"workspace_id"`
	AutomationID uuid.UUID       `json:"automation_id"`
	Version      int             `json:"version"`
	ContactID    uuid.UUID       `json:"contact_id"`
	Definition   json.RawMessage `json:"definition"`
	Trigger      TriggerEvent    `json:"trigger"`
}

// SignalIntent is the payload of a signal intent: an event that resumes a
// waiting enrollment.
type SignalIntent struct {
	EnrollmentID uuid.UUID    `json:"enrollment_id"`
	StepID       string       `json:"step_id"`
	Event        TriggerEvent `json:"event"`
}

// CancelIntent is the payload of a cancel intent: an exit event.
type CancelIntent struct {
	EnrollmentID uuid.UUID `json:"enrollment_id"`
	EventID      uuid.UUID `json:"event_id"`
}

// freshEvent is an event recorded (not a duplicate) in this transaction.
type freshEvent struct {
	ref     itemRef
	ws      uuid.UUID
	contact uuid.UUID
	ev      TriggerEvent
}

// exitCandidate is an active enrollment that an exit event may end.
type exitCandidate struct {
	enrollment uuid.UUID
	workflowID string
	ws         uuid.UUID
	trigger    uuid.UUID // the event that started it
	exiting    bool
}

type contactEvent struct {
	contact uuid.UUID
	name    string
}

// automate turns the transaction's new events into enrollments, resumes and
// exits, written to the outbox with them, in item order as if the events
// had come one after another.
func (s *Store) automate(ctx context.Context, tx pgx.Tx, reqs []*RecordRequest, out []RecordOutcome, set AutomationSet) (int, error) {
	if set == nil {
		return 0, nil
	}
	var fresh []freshEvent
	for ri, r := range reqs {
		if !set.Automates(r.WorkspaceID) {
			continue
		}
		for ii, e := range r.Events {
			res := out[ri].Results[ii]
			if res.Err != nil || res.Duplicate {
				continue
			}
			fresh = append(fresh, freshEvent{ref: itemRef{ri, ii}, ws: r.WorkspaceID, contact: res.ContactID,
				ev: TriggerEvent{ID: res.EventID, Name: e.Name, Properties: e.Properties, OccurredAt: e.OccurredAt, Depth: e.EmitDepth}})
		}
	}
	if len(fresh) == 0 {
		return 0, nil
	}
	// Hold each contact's wait lock (shared) until commit: a wait being
	// registered takes it exclusively, so either this transaction sees the
	// wait or the registration's look-back sees this event.
	// The lock and both index reads go in one round trip, in this order.
	pairs := map[contactEvent]bool{}
	for _, f := range fresh {
		pairs[contactEvent{f.contact, f.ev.Name}] = true
	}
	batch := &pgx.Batch{}
	queueLock(batch, fresh, "pg_advisory_xact_lock_shared")
	exits := map[contactEvent][]*exitCandidate{}
	queueExitCandidates(batch, pairs, exits)
	waits := map[contactEvent][]*waitState{}
	queueWaits(batch, pairs, waits)
	if err := tx.SendBatch(ctx, batch).Close(); err != nil {
		return 0, fmt.Errorf("read automation indexes: %w", err)
	}
	var err error
	contacts := map[uuid.UUID]*Contact{}
	if len(waits) > 0 {
		if contacts, err = loadContacts(ctx, tx, waits); err != nil {
			return 0, err
		}
	}

	var (
		w       intentWriter
		claimed []claim
		onceKey = map[[2]uuid.UUID]bool{}
	)
	// Decide "once" for the whole group up front, in one statement.
	matches := make([][]TriggerMatch, len(fresh))
	for i, f := range fresh {
		if f.ev.Depth >= MaxEmitDepth {
			continue
		}
		contact := func() *Contact {
			if c, ok := contacts[f.contact]; ok {
				return c
			}
			c, err := scanContact(tx.QueryRow(ctx, `SELECT `+contactColumns+` FROM contacts WHERE id = $1`, f.contact))
			if err != nil {
				return nil
			}
			contacts[f.contact] = &c
			return &c
		}
		matches[i] = set.Triggers(ctx, f.ws, &f.ev, contact)
	}
	onceOK, err := claimOnce(ctx, tx, fresh, matches)
	if err != nil {
		return 0, err
	}

	for i, f := range fresh {
		res := &out[f.ref.req].Results[f.ref.item]
		// Exits first: an event never exits the enrollment it starts.
		for _, c := range exits[contactEvent{f.contact, f.ev.Name}] {
			if c.exiting || c.trigger == f.ev.ID {
				continue
			}
			c.exiting = true
			w.exit(c, f.ev.ID, reqs[f.ref.req].TraceParent)
			res.Exited++
		}
		for _, wt := range waits[contactEvent{f.contact, f.ev.Name}] {
			if wt.claimed || exitingEnrollment(exits, wt.EnrollmentID) {
				continue
			}
			if !s.automator.WaitMatches(ctx, &wt.Wait, &f.ev, contacts[f.contact]) {
				continue
			}
			wt.claimed = true
			claimed = append(claimed, claim{wt.EnrollmentID, wt.StepID, f.ev.ID})
			w.add(f.ws, wt.WorkflowID, IntentSignal, SignalIntent{EnrollmentID: wt.EnrollmentID, StepID: wt.StepID, Event: f.ev},
				reqs[f.ref.req].TraceParent)
			res.Resumed++
		}
		for _, m := range matches[i] {
			if m.Once {
				k := [2]uuid.UUID{m.AutomationID, f.contact}
				if !onceOK[k] || onceKey[k] {
					continue
				}
				onceKey[k] = true
			}
			enrollment := NewID()
			wfID := s.automator.WorkflowID(enrollment)
			w.enroll(enrollment, f, m, wfID)
			w.add(f.ws, wfID, IntentStart, StartIntent{EnrollmentID: enrollment, WorkspaceID: f.ws,
				AutomationID: m.AutomationID, Version: m.Version, ContactID: f.contact, Definition: m.Definition, Trigger: f.ev},
				reqs[f.ref.req].TraceParent)
			// Later events of the group may exit it.
			for _, name := range m.ExitOn {
				k := contactEvent{f.contact, name}
				exits[k] = append(exits[k], &exitCandidate{enrollment: enrollment, workflowID: wfID, ws: f.ws, trigger: f.ev.ID})
			}
			res.Triggered++
		}
	}
	if err := w.flush(ctx, tx, claimed); err != nil {
		return 0, err
	}
	return len(w.outbox), nil
}

func exitingEnrollment(exits map[contactEvent][]*exitCandidate, id uuid.UUID) bool {
	for _, cs := range exits {
		for _, c := range cs {
			if c.enrollment == id && c.exiting {
				return true
			}
		}
	}
	return false
}

// lockKey maps a contact to an advisory lock key.
func lockKey(contact uuid.UUID) int64 { return int64(binary.BigEndian.Uint64(contact[8:])) }

func contactLockKeys(fresh []freshEvent) []int64 {
	seen := map[int64]bool{}
	var keys []int64
	for _, f := range fresh {
		if k := lockKey(f.contact); !seen[k] {
			seen[k] = true
			keys = append(keys, k)
		}
	}
	slices.Sort(keys)
	return keys
}

// queueLock takes each contact's wait lock, in key order.
func queueLock(b *pgx.Batch, fresh []freshEvent, fn string) {
	b.Queue(`SELECT `+fn+`(k) FROM unnest($1::bigint[]) AS k ORDER BY k`, contactLockKeys(fresh))
}

func pairArrays(pairs map[contactEvent]bool) ([]uuid.UUID, []string) {
	contacts := make([]uuid.UUID, 0, len(pairs))
	names := make([]string, 0, len(pairs))
	for p := range pairs {
		contacts, names = append(contacts, p.contact), append(names, p.name)
	}
	return contacts, names
}

func queueExitCandidates(b *pgx.Batch, pairs map[contactEvent]bool, exits map[contactEvent][]*exitCandidate) {
	contacts, names := pairArrays(pairs)
	b.Queue(`SELECT x.contact_id, x.event_name, e.id, e.workflow_id, e.workspace_id, e.trigger_event_id
		FROM enrollment_exits x JOIN unnest($1::uuid[], $2::text[]) AS p(contact, name)
		  ON x.contact_id = p.contact AND x.event_name = p.name
		JOIN enrollments e ON e.id = x.enrollment_id
		WHERE e.status = 'active' AND e.exit_event_id IS NULL ORDER BY e.id`, contacts, names).Query(func(rows pgx.Rows) error {
		var (
			k contactEvent
			c exitCandidate
		)
		_, err := pgx.ForEachRow(rows, []any{&k.contact, &k.name, &c.enrollment, &c.workflowID, &c.ws, &c.trigger}, func() error {
			cc := c
			exits[k] = append(exits[k], &cc)
			return nil
		})
		return err
	})
}

// waitState is a wait as the record path tracks it within a group.
type waitState struct {
	Wait
	claimed bool
}

func queueWaits(b *pgx.Batch, pairs map[contactEvent]bool, waits map[contactEvent][]*waitState) {
	contacts, names := pairArrays(pairs)
	b.Queue(`SELECT w.enrollment_id, w.step_id, w.workflow_id, w.workspace_id, w.contact_id, w.event_name,
			w.condition, w.trigger, w.began_at, w.expires_at
		FROM enrollment_waits w JOIN unnest($1::uuid[], $2::text[]) AS p(contact, name)
		  ON w.contact_id = p.contact AND w.event_name = p.name
		WHERE w.claimed_event_id IS NULL AND w.expires_at > now() ORDER BY w.began_at, w.enrollment_id`,
		contacts, names).Query(func(rows pgx.Rows) error {
		var w Wait
		_, err := pgx.ForEachRow(rows, []any{&w.EnrollmentID, &w.StepID, &w.WorkflowID, &w.WorkspaceID, &w.ContactID,
			&w.EventName, &w.Condition, &w.Trigger, &w.BeganAt, &w.ExpiresAt}, func() error {
			k := contactEvent{w.ContactID, w.EventName}
			waits[k] = append(waits[k], &waitState{Wait: w})
			return nil
		})
		return err
	})
}

func loadContacts(ctx context.Context, tx pgx.Tx, waits map[contactEvent][]*waitState) (map[uuid.UUID]*Contact, error) {
	var ids []uuid.UUID
	for k := range waits {
		ids = append(ids, k.contact)
	}
	rows, err := tx.Query(ctx, `SELECT `+contactColumns+` FROM contacts WHERE id = ANY($1)`, ids)
	if err != nil {
		return nil, fmt.Errorf("load contacts: %w", err)
	}
	out := map[uuid.UUID]*Contact{}
	_, err = pgx.CollectRows(rows, func(r pgx.CollectableRow) (Contact, error) {
		c, err := scanContact(r)
		out[c.ID] = &c
		return c, err
	})
	return out, err
}

// claimOnce reserves (automation, contact) pairs of "once" automations and
// reports which this transaction won; a concurrent transaction that
// reserved one first makes it lose.
func claimOnce(ctx context.Context, tx pgx.Tx, fresh []freshEvent, matches [][]TriggerMatch) (map[[2]uuid.UUID]bool, error) {
	want := map[[2]uuid.UUID]bool{}
	for i, f := range fresh {
		for _, m := range matches[i] {
			if m.Once {
				want[[2]uuid.UUID{m.AutomationID, f.contact}] = true
			}
		}
	}
	won := map[[2]uuid.UUID]bool{}
	if len(want) == 0 {
		return won, nil
	}
	keys := make([][2]uuid.UUID, 0, len(want))
	for k := range want {
		keys = append(keys, k)
	}
	slices.SortFunc(keys, func(a, b [2]uuid.UUID) int {
		if c := slices.Compare(a[0][:], b[0][:]); c != 0 {
			return c
		}
		return slices.Compare(a[1][:], b[1][:])
	})
	autos := make([]uuid.UUID, len(keys))
	contacts := make([]uuid.UUID, len(keys))
	for i, k := range keys {
		autos[i], contacts[i] = k[0], k[1]
	}
	rows, err := tx.Query(ctx, `INSERT INTO enrollment_once (automation_id, contact_id, enrollment_id)
		SELECT a, c, $3 FROM unnest($1::uuid[], $2::uuid[]) AS u(a, c)
		ON CONFLICT DO NOTHING RETURNING automation_id, contact_id`, autos, contacts, uuid.Nil)
	if err != nil {
		return nil, fmt.Errorf("claim once: %w", err)
	}
	var k [2]uuid.UUID
	var a, c uuid.UUID
	if _, err := pgx.ForEachRow(rows, []any{&a, &c}, func() error {
		k = [2]uuid.UUID{a, c}
		won[k] = true
		return nil
	}); err != nil {
		return nil, fmt.Errorf("claim once: %w", err)
	}
	return won, nil
}

// claim marks a wait as resumed by an event.
type claim struct {
	enrollment uuid.UUID
	step       string
	event      uuid.UUID
}

// intentWriter gathers a group's rows and writes each table once.
type intentWriter struct {
	outbox      [][]any
	enrollments [][]any
	exitRows    [][]any
	once        [][]any // automation, contact, enrollment
	exitedIDs   []uuid.UUID
	exitEvents  []uuid.UUID
}

func (w *intentWriter) add(ws uuid.UUID, workflowID, kind string, payload any, trace string) {
	raw, _ := json.Marshal(payload)
	w.outbox = append(w.outbox, []any{NewID(), ws, workflowID, kind, json.RawMessage(raw), nullString(trace)})
}

func (w *intentWriter) enroll(id uuid.UUID, f freshEvent, m TriggerMatch, workflowID string) {
	w.enrollments = append(w.enrollments, []any{id, f.ws, m.AutomationID, m.Version, f.contact, f.ev.ID, workflowID})
	for _, name := range m.ExitOn {
		w.exitRows = append(w.exitRows, []any{id, f.contact, name})
	}
	if m.Once {
		w.once = append(w.once, []any{m.AutomationID, f.contact, id})
	}
}

func (w *intentWriter) exit(c *exitCandidate, event uuid.UUID, trace string) {
	w.exitedIDs = append(w.exitedIDs, c.enrollment)
	w.exitEvents = append(w.exitEvents, event)
	w.add(c.ws, c.workflowID, IntentCancel, CancelIntent{EnrollmentID: c.enrollment, EventID: event}, trace)
}

func (w *intentWriter) flush(ctx context.Context, tx pgx.Tx, claimed []claim) error {
	if len(w.enrollments) > 0 {
		if _, err := tx.CopyFrom(ctx, pgx.Identifier{"enrollments"},
			[]string{"id", "workspace_id", "automation_id", "version", "contact_id", "trigger_event_id", "workflow_id"},
			pgx.CopyFromRows(w.enrollments)); err != nil {
			return fmt.Errorf("insert enrollments: %w", err)
		}
	}
	if len(w.exitRows) > 0 {
		if _, err := tx.CopyFrom(ctx, pgx.Identifier{"enrollment_exits"},
			[]string{"enrollment_id", "contact_id", "event_name"}, pgx.CopyFromRows(w.exitRows)); err != nil {
			return fmt.Errorf("insert enrollment exits: %w", err)
		}
	}
	if len(w.once) > 0 {
		autos, contacts, ids := make([]uuid.UUID, len(w.once)), make([]uuid.UUID, len(w.once)), make([]uuid.UUID, len(w.once))
		for i, r := range w.once {
			autos[i], contacts[i], ids[i] = r[0].(uuid.UUID), r[1].(uuid.UUID), r[2].(uuid.UUID)
		}
		if _, err := tx.Exec(ctx, `UPDATE enrollment_once o SET enrollment_id = u.e
			FROM unnest($1::uuid[], $2::uuid[], $3::uuid[]) AS u(a, c, e)
			WHERE o.automation_id = u.a AND o.contact_id = u.c`, autos, contacts, ids); err != nil {
			return fmt.Errorf("record once enrollments: %w", err)
		}
	}
	if len(w.exitedIDs) > 0 {
		if _, err := tx.Exec(ctx, `UPDATE enrollments e SET exit_event_id = u.ev
			FROM unnest($1::uuid[], $2::uuid[]) AS u(id, ev) WHERE e.id = u.id AND e.exit_event_id IS NULL`,
			w.exitedIDs, w.exitEvents); err != nil {
			return fmt.Errorf("mark exits: %w", err)
		}
	}
	if len(claimed) > 0 {
		ids, steps, events := make([]uuid.UUID, len(claimed)), make([]string, len(claimed)), make([]uuid.UUID, len(claimed))
		for i, c := range claimed {
			ids[i], steps[i], events[i] = c.enrollment, c.step, c.event
		}
		if _, err := tx.Exec(ctx, `UPDATE enrollment_waits w SET claimed_event_id = u.ev
			FROM unnest($1::uuid[], $2::text[], $3::uuid[]) AS u(id, step, ev)
			WHERE w.enrollment_id = u.id AND w.step_id = u.step`, ids, steps, events); err != nil {
			return fmt.Errorf("claim waits: %w", err)
		}
	}
	if len(w.outbox) > 0 {
		if _, err := tx.CopyFrom(ctx, pgx.Identifier{"outbox"},
			[]string{"id", "workspace_id", "workflow_id", "kind", "payload", "trace_parent"}, pgx.CopyFromRows(w.outbox)); err != nil {
			return fmt.Errorf("write outbox: %w", err)
		}
	}
	return nil
}
