package store

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"strings"
	"time"

	"github.com/google/uuid"
	"github.com/jackc/pgx/v5"

	"github.com/signalbox/signalbox/event"
)

// Enrollment statuses.
const (
	EnrollmentActive    = "active"
	EnrollmentCompleted = "completed"
	EnrollmentExited    = "exited"
	EnrollmentFailed    = "failed"
)

// Enrollment is one contact's run through one version of an automation.
type Enrollment struct {
	ID             uuid.UUID  `json:"id"`
	WorkspaceID    uuid.UUID  `json:"-"`
	AutomationID   uuid.UUID  `json:"automation_id"`
	Version        int        `json:"version"`
	ContactID      uuid.UUID  `json:"contact_id"`
	TriggerEventID uuid.UUID  `json:"trigger_event_id"`
	WorkflowID     string     `json:"workflow_id"`
	Status         string     `json:"status"`
	CurrentStep    *string    `json:"current_step"`
	ExitEventID    *uuid.UUID `json:"exit_event_id"`
	Reason         *string    `json:"reason"`
	StartedAt      time.Time  `json:"started_at"`
	EndedAt        *time.Time `json:"ended_at"`
}

// StepRecord is one line of an enrollment's log.
type StepRecord struct {
	Seq     int             `json:"seq"`
	StepID  string          `json:"step_id"`
	Type    string          `json:"type"`
	Outcome string          `json:"outcome"`
	Detail  json.RawMessage `json:"detail"`
	At      time.Time       `json:"at"`
}

const enrollmentColumns = `id, workspace_id, automation_id, version, contact_id, trigger_event_id, workflow_id, status,
	current_step, exit_event_id, reason, started_at, ended_at`

func scanEnrollment(row pgx.Row) (Enrollment, error) {
	var e Enrollment
	err := row.Scan(&e.ID, &e.WorkspaceID, &e.AutomationID, &e.Version, &e.ContactID, &e.TriggerEventID, &e.WorkflowID,
		&e.Status, &e.CurrentStep, &e.ExitEventID, &e.Reason, &e.StartedAt, &e.EndedAt)
	return e, notFound(err)
}

// GetEnrollment reads an enrollment of the workspace with its step log.
func (s *Store) GetEnrollment(ctx context.Context, workspaceID, id uuid.UUID) (Enrollment, []StepRecord, error) {
	e, err := scanEnrollment(s.pool.QueryRow(ctx, `SELECT `+enrollmentColumns+` FROM enrollments
		WHERE workspace_id = $1 AND id = $2`, workspaceID, id))
	if err != nil {
		return e, nil, err
	}
	rows, err := s.pool.Query(ctx, `SELECT seq, step_id, step_type, outcome, detail, at FROM enrollment_steps
		WHERE enrollment_id = $1 ORDER BY seq`, id)
	if err != nil {
		return e, nil, err
	}
	steps, err := pgx.CollectRows(rows, func(r pgx.CollectableRow) (StepRecord, error) {
		var st StepRecord
		err := r.Scan(&st.Seq, &st.StepID, &st.Type, &st.Outcome, &st.Detail, &st.At)
		return st, err
	})
	return e, steps, err
}

// EnrollmentFilter selects enrollments for ListEnrollments.
type EnrollmentFilter struct {
	AutomationID, ContactID uuid.UUID
	Status                  string
	Before                  uuid.UUID
	Limit                   int
}

// ListEnrollments returns enrollments newest first and whether more follow.
func (s *Store) ListEnrollments(ctx context.Context, workspaceID uuid.UUID, f EnrollmentFilter) ([]Enrollment, bool, error) {
	opt := func(id uuid.UUID) *uuid.UUID {
		if id == uuid.Nil {
			return nil
		}
		return &id
	}
	rows, err := s.pool.Query(ctx, `SELECT `+enrollmentColumns+` FROM enrollments WHERE workspace_id = $1
		AND ($2::uuid IS NULL OR automation_id = $2) AND ($3::uuid IS NULL OR contact_id = $3)
		AND ($4 = '' OR status = $4) AND ($5::uuid IS NULL OR id < $5)
		ORDER BY id DESC LIMIT $6`,
		workspaceID, opt(f.AutomationID), opt(f.ContactID), f.Status, opt(f.Before), f.Limit+1)
	if err != nil {
		return nil, false, err
	}
	out, err := pgx.CollectRows(rows, func(r pgx.CollectableRow) (Enrollment, error) { return scanEnrollment(r) })
	if err != nil {
		return nil, false, err
	}
	out, more := trimPage(out, f.Limit)
	return out, more, nil
}

// RecordStep appends a line to an enrollment's log and moves its current
// step. A retried call with the same seq changes nothing.
func (s *Store) RecordStep(ctx context.Context, enrollmentID uuid.UUID, st StepRecord) error {
	detail := st.Detail
	if len(detail) == 0 {
		detail = json.RawMessage(`{}`)
	}
	// One statement, so one round trip: the line, and the current step
	// when the line is new.
	_, err := s.execGeneric(ctx, `WITH line AS (
			INSERT INTO enrollment_steps (enrollment_id, seq, step_id, step_type, outcome, detail)
			VALUES ($1, $2, $3, $4, $5, $6) ON CONFLICT DO NOTHING RETURNING enrollment_id)
		UPDATE enrollments SET current_step = $3 WHERE id = (SELECT enrollment_id FROM line) AND status = 'active'`,
		enrollmentID, st.Seq, st.StepID, st.Type, st.Outcome, detail)
	if isForeignKeyViolation(err) {
		// The enrollment is gone with its contact: nothing to log.
		return nil
	}
	if err != nil {
		return fmt.Errorf("record step: %w", err)
	}
	return nil
}

// FinishEnrollment ends an enrollment. Completing one whose exit event was
// already recorded ends it as exited: the exit won. The reason of an exit
// comes from the record, where the workflow only knows it was cancelled
// (reason "cancelled"): an exit event, or a cancel from Temporal's UI or
// CLI without one; another reason given with an exit (a termination the
// reconciler found) is kept. It returns the status it ended with;
// finishing twice keeps the first outcome.
func (s *Store) FinishEnrollment(ctx context.Context, enrollmentID uuid.UUID, status, reason string) (string, error) {
	// One statement (its parts see the same snapshot and commit together),
	// so one round trip.
	var final string
	err := s.queryRowGeneric(ctx, []any{&final}, `WITH `+finishCTEs+`
		SELECT status FROM ended`, enrollmentID, status, reason)
	return final, notFound(err)
}

// finishCTEs end enrollment $1 with status $2 and reason $3 (see
// FinishEnrollment); ended returns the status it ended with.
var finishCTEs = finishCTEsFor("$1", "$2", "$3", "")

// finishCTEsFor are the CTEs that end enrollment id with status and reason
// (SQL expressions), only where guard (an SQL condition after AND, or
// "") holds.
func finishCTEsFor(id, status, reason, guard string) string {
	if guard != "" {
		guard = " AND " + guard
	}
	return strings.NewReplacer("{id}", id, "{status}", status, "{reason}", reason, "{guard}", guard).Replace(`ended AS (
			UPDATE enrollments SET
			status = CASE WHEN status <> 'active' THEN status
			              WHEN {status} = 'completed' AND (exit_event_id IS NOT NULL OR exit_reason IS NOT NULL) THEN 'exited'
			              ELSE {status} END,
			reason = CASE WHEN status <> 'active' THEN reason
			              WHEN {status} = 'completed' AND exit_event_id IS NOT NULL THEN 'exit event'
			              WHEN {status} = 'completed' AND exit_reason IS NOT NULL THEN exit_reason
			              WHEN {status} <> 'exited' THEN nullif({reason}, '')
			              WHEN exit_event_id IS NOT NULL THEN 'exit event'
			              WHEN exit_reason IS NOT NULL THEN exit_reason
			              WHEN {reason} NOT IN ('', 'cancelled') THEN {reason}
			              ELSE 'cancelled without an exit event' END,
			ended_at = coalesce(ended_at, now()), current_step = CASE WHEN status = 'active' THEN NULL ELSE current_step END
			WHERE id = {id}{guard} RETURNING status),
		waits AS (DELETE FROM enrollment_waits WHERE enrollment_id = {id}{guard}),
		exits AS (DELETE FROM enrollment_exits WHERE enrollment_id = {id}{guard})`)
}

// BookStep writes the "done" line of a step an action's activity ran
// (see activities.Bookkeeping), detail showing its result, and with
// Finish ends the enrollment as completed (or exited, when its exit event
// was recorded first; see FinishEnrollment), in one statement. It returns
// the status the enrollment ended with ("" without Finish); an enrollment
// gone with its contact has nothing to record and answers completed.
func (s *Store) BookStep(ctx context.Context, b StepBook, detail json.RawMessage) (string, error) {
	line := StepRecord{Seq: b.Seq, StepID: b.StepID, Type: b.Type, Outcome: "done", Detail: detail}
	if !b.Finish {
		return "", s.RecordStep(ctx, b.EnrollmentID, line)
	}
	if len(detail) == 0 {
		detail = json.RawMessage(`{}`)
	}
	var final string
	err := s.queryRowGeneric(ctx, []any{&final}, `WITH line AS (
			INSERT INTO enrollment_steps (enrollment_id, seq, step_id, step_type, outcome, detail)
			VALUES ($1, $4, $5, $6, 'done', $7) ON CONFLICT DO NOTHING),
		`+finishCTEs+`
		SELECT status FROM ended`, b.EnrollmentID, EnrollmentCompleted, "", b.Seq, b.StepID, b.Type, detail)
	if isForeignKeyViolation(err) || errors.Is(err, pgx.ErrNoRows) {
		return EnrollmentCompleted, nil
	}
	if err != nil {
		return "", fmt.Errorf("book step: %w", err)
	}
	return final, nil
}

// BookedStep reads back the bookkeeping BookStep did for b, for an
// activity attempt that follows one whose result Temporal never got (its
// worker died, or it ran out of time after writing): the step's "done"
// line, with the result it recorded, and with Finish, the status the
// enrollment ended with. ok is false when b was not booked (its line is
// missing, or was written by another step, or, with Finish, the
// enrollment has not ended), so the action runs again, under its own
// idempotency.
func (s *Store) BookedStep(ctx context.Context, b StepBook) (detail json.RawMessage, status string, ok bool, err error) {
	err = s.pool.QueryRow(ctx, `SELECT l.detail, e.status FROM enrollment_steps l
		JOIN enrollments e ON e.id = l.enrollment_id
		WHERE l.enrollment_id = $1 AND l.seq = $2 AND l.step_id = $3 AND l.outcome = 'done'`,
		b.EnrollmentID, b.Seq, b.StepID).Scan(&detail, &status)
	if errors.Is(err, pgx.ErrNoRows) {
		return nil, "", false, nil
	}
	if err != nil {
		return nil, "", false, fmt.Errorf("read booked step: %w", err)
	}
	if !b.Finish {
		return detail, "", true, nil
	}
	if status == EnrollmentActive {
		return nil, "", false, nil
	}
	return detail, status, true, nil
}

// WaitOutcome is what registering or clearing a wait found.
type WaitOutcome struct {
	// Event resumed the wait (found by the look-back, or claimed by the
	// record path); for a wait on all of several events, the last of them.
	Event *event.Event
	// Events are, for a wait on several events, the events it matched, in
	// the order of their names: every one once it is complete, those so far
	// otherwise.
	Events []event.Event
	// Closed says the window had already closed, by PostgreSQL's clock,
	// with no event inside it: the wait timed out.
	Closed bool
	// Remaining is how long the window stays open by PostgreSQL's clock,
	// when ClearWait is asked to close it early (the workflow's timer ran
	// on another clock); the wait goes on.
	Remaining time.Duration
}

// RegisterWait writes a wait to the index the record path reads, and looks
// back for an event of that contact and name inside the wait's window that
// match accepts and no other wait of the enrollment took. Both run under
// the contact's wait lock, held exclusively, which record transactions
// hold shared from before they read the clock until they commit: an event
// inside the window is either seen here or sees the wait, never neither.
// A matching event claims the wait. When none is found and the window has
// already closed by PostgreSQL's clock, the wait is not left in the index
// and the outcome says Closed. Calling it again for the same wait is
// harmless: a claim made meanwhile is returned.
func (s *Store) RegisterWait(ctx context.Context, w Wait, match func(event.Event) bool) (WaitOutcome, error) {
	var out WaitOutcome
	err := s.inTx(ctx, func(tx pgx.Tx) error {
		clock, err := lockWait(ctx, tx, w.ContactID)
		if err != nil {
			return err
		}
		var claimed *uuid.UUID
		err = tx.QueryRow(ctx, `INSERT INTO enrollment_waits (enrollment_id, step_id, workspace_id, contact_id, event_name,
				condition, trigger, workflow_id, began_at, after_event_id, expires_at)
			VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11)
			ON CONFLICT (enrollment_id, step_id, event_name) DO UPDATE SET expires_at = excluded.expires_at
			RETURNING claimed_event_id`,
			w.EnrollmentID, w.StepID, w.WorkspaceID, w.ContactID, w.EventName, w.Condition, w.Trigger, w.WorkflowID,
			w.BeganAt, nullUUID(w.AfterEventID), w.ExpiresAt).Scan(&claimed)
		if isForeignKeyViolation(err) {
			return ErrNotFound
		}
		if err != nil {
			return fmt.Errorf("register wait: %w", err)
		}
		if claimed != nil {
			ev, err := loadTriggerEvent(ctx, tx, *claimed)
			out.Event = &ev
			return err
		}
		candidates, err := lookBack(ctx, tx, w, []string{w.EventName})
		if err != nil {
			return err
		}
		for _, ev := range candidates {
			if match(ev) {
				out.Event = &ev
				_, err := tx.Exec(ctx, `UPDATE enrollment_waits SET claimed_event_id = $3
					WHERE enrollment_id = $1 AND step_id = $2`, w.EnrollmentID, w.StepID, ev.ID)
				return err
			}
		}
		if !clock.Before(w.ExpiresAt) {
			out.Closed = true
			return dropWait(ctx, tx, w.EnrollmentID, w.StepID)
		}
		return nil
	})
	return out, err
}

// ClearWait ends a wait whose timer fired. If an event claimed it, the
// event resumes the enrollment after all and is returned (the row stays,
// so later waits of the enrollment know the event is taken). Otherwise the
// wait is removed and times out, unless strict is set and PostgreSQL's
// clock has not reached the window's end: then nothing changes and
// Remaining says how long the window stays open. The contact's wait lock
// is held, as RegisterWait holds it, so a record transaction that read the
// clock before the end has committed its claim before this decides.
func (s *Store) ClearWait(ctx context.Context, contactID, enrollmentID uuid.UUID, stepID string, strict bool) (WaitOutcome, error) {
	var out WaitOutcome
	err := s.inTx(ctx, func(tx pgx.Tx) error {
		clock, err := lockWait(ctx, tx, contactID)
		if err != nil {
			return err
		}
		var (
			claimed *uuid.UUID
			expires time.Time
		)
		err = tx.QueryRow(ctx, `SELECT claimed_event_id, expires_at FROM enrollment_waits
			WHERE enrollment_id = $1 AND step_id = $2`, enrollmentID, stepID).Scan(&claimed, &expires)
		if errors.Is(err, pgx.ErrNoRows) {
			return nil
		}
		if err != nil {
			return err
		}
		if claimed != nil {
			ev, err := loadTriggerEvent(ctx, tx, *claimed)
			out.Event = &ev
			return err
		}
		return endWait(ctx, tx, enrollmentID, stepID, clock, expires, strict, &out)
	})
	return out, err
}

// lookBack reads the events of the wait's contact with one of names
// received inside its window so far (after the event that opened it), in
// receipt order, leaving out those another wait of the enrollment took.
func lookBack(ctx context.Context, tx pgx.Tx, w Wait, names []string) ([]event.Event, error) {
	rows, err := tx.Query(ctx, `SELECT id, name, properties, occurred_at, emit_depth, received_at FROM events e
		WHERE contact_id = $1 AND name = ANY($2) AND deleted_at IS NULL
		  AND (received_at > $3 OR received_at = $3 AND ($4::uuid IS NULL OR id > $4)) AND received_at < $5
		  AND NOT EXISTS (SELECT 1 FROM enrollment_waits o WHERE o.enrollment_id = $6 AND o.claimed_event_id = e.id)
		ORDER BY received_at, id LIMIT 1000`,
		w.ContactID, names, w.BeganAt, nullUUID(w.AfterEventID), w.ExpiresAt, w.EnrollmentID)
	if err != nil {
		return nil, fmt.Errorf("look back: %w", err)
	}
	candidates, err := pgx.CollectRows(rows, scanTriggerEvent)
	if err != nil {
		return nil, fmt.Errorf("look back: %w", err)
	}
	return candidates, nil
}

// endWait ends a wait no event resumed, for ClearWait and ClearMultiWait:
// with strict set and the window still open by PostgreSQL's clock it goes
// on, for Remaining; otherwise its rows go and it times out.
func endWait(ctx context.Context, tx pgx.Tx, enrollmentID uuid.UUID, stepID string, clock, expires time.Time, strict bool,
	out *WaitOutcome) error {
	if strict && clock.Before(expires) {
		out.Remaining = expires.Sub(clock)
		return nil
	}
	return dropWait(ctx, tx, enrollmentID, stepID)
}

// dropWait removes a wait's rows from the index the record path reads (a
// wait on several events has one per event).
func dropWait(ctx context.Context, tx pgx.Tx, enrollmentID uuid.UUID, stepID string) error {
	_, err := tx.Exec(ctx, `DELETE FROM enrollment_waits WHERE enrollment_id = $1 AND step_id = $2`, enrollmentID, stepID)
	return err
}

// lockWait takes a contact's wait lock exclusively and then reads
// PostgreSQL's clock, in one round trip.
func lockWait(ctx context.Context, tx pgx.Tx, contactID uuid.UUID) (time.Time, error) {
	var clock time.Time
	b := &pgx.Batch{}
	b.Queue(`SELECT pg_advisory_xact_lock($1, $2)`, waitLockClass, waitStripe(contactID))
	b.Queue(`SELECT clock_timestamp()`).QueryRow(func(row pgx.Row) error { return row.Scan(&clock) })
	if err := tx.SendBatch(ctx, b).Close(); err != nil {
		return time.Time{}, fmt.Errorf("lock waits of contact: %w", err)
	}
	return clock, nil
}

func nullUUID(id uuid.UUID) *uuid.UUID {
	if id == uuid.Nil {
		return nil
	}
	return &id
}

func scanTriggerEvent(r pgx.CollectableRow) (event.Event, error) {
	var ev event.Event
	var depth int16
	err := r.Scan(&ev.ID, &ev.Name, &ev.Properties, &ev.OccurredAt, &depth, &ev.ReceivedAt)
	ev.Depth = int(depth)
	ev.ReceivedAt = ev.ReceivedAt.UTC()
	return ev, err
}

func loadTriggerEvent(ctx context.Context, tx pgx.Tx, id uuid.UUID) (event.Event, error) {
	rows, err := tx.Query(ctx, `SELECT id, name, properties, occurred_at, emit_depth, received_at FROM events WHERE id = $1`, id)
	if err != nil {
		return event.Event{}, err
	}
	ev, err := pgx.CollectExactlyOneRow(rows, scanTriggerEvent)
	return ev, notFound(err)
}

// WebhookSecret returns the workspace's key for signing outbound webhooks.
func (s *Store) WebhookSecret(ctx context.Context, workspaceID uuid.UUID) ([]byte, error) {
	k, err := s.WebhookSecrets(ctx, workspaceID)
	return k.Current, err
}

// EffectDone reports whether a step's side effect already happened, and
// with what result.
func (s *Store) EffectDone(ctx context.Context, workflowID, stepID string) (json.RawMessage, bool, error) {
	var result json.RawMessage
	err := s.pool.QueryRow(ctx, `SELECT result FROM step_effects WHERE workflow_id = $1 AND step_id = $2`,
		workflowID, stepID).Scan(&result)
	if errors.Is(err, pgx.ErrNoRows) {
		return nil, false, nil
	}
	return result, err == nil, err
}

// MarkEffectDone records that a step's side effect happened.
func (s *Store) MarkEffectDone(ctx context.Context, workflowID, stepID string, result json.RawMessage) error {
	if len(result) == 0 {
		result = json.RawMessage(`{}`)
	}
	_, err := s.pool.Exec(ctx, `INSERT INTO step_effects (workflow_id, step_id, result) VALUES ($1, $2, $3)
		ON CONFLICT DO NOTHING`, workflowID, stepID, result)
	return err
}

// ErrNotActive is returned when an enrollment that has ended would be
// ended again.
var ErrNotActive = errors.New("enrollment not active")

// ExitEnrollment ends an active enrollment of the workspace on request:
// the reason is kept, and its workflow is cancelled through the outbox in
// the same transaction; it ends as exited with that reason (even if it
// completes meanwhile: the exit won). Asking again while it ends changes
// nothing. ErrNotActive when it has ended, ErrNotFound when there is none.
func (s *Store) ExitEnrollment(ctx context.Context, workspaceID, id uuid.UUID, reason string) (Enrollment, error) {
	var e Enrollment
	err := s.inTx(ctx, func(tx pgx.Tx) error {
		var err error
		e, err = scanEnrollment(tx.QueryRow(ctx, `SELECT `+enrollmentColumns+` FROM enrollments
			WHERE workspace_id = $1 AND id = $2 FOR UPDATE`, workspaceID, id))
		if err != nil {
			return err
		}
		if e.Status != EnrollmentActive {
			return ErrNotActive
		}
		tag, err := tx.Exec(ctx, `WITH exiting AS (
				UPDATE enrollments SET exit_reason = $3
				WHERE id = $1 AND status = 'active' AND exit_event_id IS NULL AND exit_reason IS NULL
				RETURNING id, workspace_id, workflow_id)
			INSERT INTO outbox (id, workspace_id, workflow_id, kind, payload)
			SELECT $2, workspace_id, workflow_id, 'cancel', jsonb_build_object('enrollment_id', id, 'event_id', NULL)
			FROM exiting`, id, NewID(), reason)
		if err != nil {
			return fmt.Errorf("exit enrollment: %w", err)
		}
		_ = tag
		return nil
	})
	return e, err
}

// ExitActive ends every active enrollment of an automation of the
// workspace, with reason, as ExitEnrollment ends one, and says how many.
func (s *Store) ExitActive(ctx context.Context, workspaceID, automationID uuid.UUID, reason string) (int, error) {
	tag, err := s.pool.Exec(ctx, `WITH exiting AS (
			UPDATE enrollments SET exit_reason = $3
			WHERE workspace_id = $1 AND automation_id = $2 AND status = 'active'
			  AND exit_event_id IS NULL AND exit_reason IS NULL
			RETURNING id, workspace_id, workflow_id)
		INSERT INTO outbox (id, workspace_id, workflow_id, kind, payload)
		SELECT gen_random_uuid(), workspace_id, workflow_id, 'cancel', jsonb_build_object('enrollment_id', id, 'event_id', NULL)
		FROM exiting ORDER BY id`, workspaceID, automationID, reason)
	if err != nil {
		return 0, fmt.Errorf("exit active enrollments: %w", err)
	}
	return int(tag.RowsAffected()), nil
}

// PurgeEnded deletes at most limit enrollments that ended more than age
// ago, oldest first, with their step logs and index rows (by cascade) and
// the record of their steps' side effects. "Once" reservations stay: a
// contact enrolled once is never enrolled again.
func (s *Store) PurgeEnded(ctx context.Context, age time.Duration, limit int) (int64, error) {
	var n int64
	err := s.pool.QueryRow(ctx, `WITH gone AS (
			DELETE FROM enrollments WHERE id IN (
				SELECT id FROM enrollments WHERE status <> 'active' AND ended_at < now() - $1::interval
				ORDER BY ended_at LIMIT $2)
			RETURNING workflow_id),
		effects AS (DELETE FROM step_effects WHERE workflow_id IN (SELECT workflow_id FROM gone))
		SELECT count(*) FROM gone`, age, limit).Scan(&n)
	if err != nil {
		return 0, fmt.Errorf("purge ended enrollments: %w", err)
	}
	return n, nil
}
