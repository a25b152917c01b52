package store

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"time"

	"github.com/google/uuid"
	"github.com/jackc/pgx/v5"
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
	_, err := s.pool.Exec(ctx, `WITH line AS (
			INSERT INTO enrollment_steps (enrollment_id, seq, step_id, step_type, outcome, detail)
			VALUES ($1, $2, $3, $4, $5, $6) ON CONFLICT DO NOTHING RETURNING enrollment_id)
		UPDATE enrollments SET current_step = $3 WHERE id = (SELECT enrollment_id FROM line) AND status = 'active'`,
		enrollmentID, st.Seq, st.StepID, st.Type, st.Outcome, detail)
	if err != nil {
		return fmt.Errorf("record step: %w", err)
	}
	return nil
}

// FinishEnrollment ends an enrollment. Completing one whose exit event was
// already recorded ends it as exited: the exit won. The reason of an exit
// comes from the record, where the workflow only knows it was cancelled:
// an exit event, or a cancel from Temporal's UI or CLI without one. It
// returns the status it ended with; finishing twice keeps the first
// outcome.
func (s *Store) FinishEnrollment(ctx context.Context, enrollmentID uuid.UUID, status, reason string) (string, error) {
	// One statement (its parts see the same snapshot and commit together),
	// so one round trip.
	var final string
	err := s.pool.QueryRow(ctx, `WITH ended AS (
			UPDATE enrollments SET
			status = CASE WHEN status <> 'active' THEN status
			              WHEN $2 = 'completed' AND exit_event_id IS NOT NULL THEN 'exited' ELSE $2 END,
			reason = CASE WHEN status <> 'active' THEN reason
			              WHEN $2 <> 'exited' THEN nullif($3, '')
			              WHEN exit_event_id IS NOT NULL THEN 'exit event'
			              ELSE 'cancelled without an exit event' END,
			ended_at = coalesce(ended_at, now()), current_step = CASE WHEN status = 'active' THEN NULL ELSE current_step END
			WHERE id = $1 RETURNING status),
		waits AS (DELETE FROM enrollment_waits WHERE enrollment_id = $1),
		exits AS (DELETE FROM enrollment_exits WHERE enrollment_id = $1)
		SELECT status FROM ended`, enrollmentID, status, reason).Scan(&final)
	return final, notFound(err)
}

// RegisterWait writes a wait to the index the record path reads, then looks
// back for an event of that contact and name recorded since the wait began
// that match accepts. Both run under the contact's wait lock, which the
// record path holds shared, so an event is either seen here or sees the
// wait: none slips between. It returns the matching event, if any, which
// then claims the wait. Calling it again for the same wait is harmless.
func (s *Store) RegisterWait(ctx context.Context, w Wait, match func(TriggerEvent) bool) (*TriggerEvent, error) {
	var found *TriggerEvent
	err := s.inTx(ctx, func(tx pgx.Tx) error {
		if _, err := tx.Exec(ctx, `SELECT pg_advisory_xact_lock($1)`, lockKey(w.ContactID)); err != nil {
			return fmt.Errorf("lock contact: %w", err)
		}
		var claimed *uuid.UUID
		err := tx.QueryRow(ctx, `INSERT INTO enrollment_waits (enrollment_id, step_id, workspace_id, contact_id, event_name,
				condition, trigger, workflow_id, began_at, expires_at)
			VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10)
			ON CONFLICT (enrollment_id, step_id) DO UPDATE SET expires_at = excluded.expires_at
			RETURNING claimed_event_id`,
			w.EnrollmentID, w.StepID, w.WorkspaceID, w.ContactID, w.EventName, w.Condition, w.Trigger, w.WorkflowID,
			w.BeganAt, w.ExpiresAt).Scan(&claimed)
		if err != nil {
			return fmt.Errorf("register wait: %w", err)
		}
		if claimed != nil {
			ev, err := loadTriggerEvent(ctx, tx, *claimed)
			found = &ev
			return err
		}
		rows, err := tx.Query(ctx, `SELECT id, name, properties, occurred_at, emit_depth FROM events
			WHERE contact_id = $1 AND name = $2 AND received_at >= $3 AND deleted_at IS NULL
			ORDER BY received_at, id LIMIT 1000`, w.ContactID, w.EventName, w.BeganAt)
		if err != nil {
			return fmt.Errorf("look back: %w", err)
		}
		candidates, err := pgx.CollectRows(rows, scanTriggerEvent)
		if err != nil {
			return fmt.Errorf("look back: %w", err)
		}
		for _, ev := range candidates {
			if match(ev) {
				found = &ev
				_, err := tx.Exec(ctx, `UPDATE enrollment_waits SET claimed_event_id = $3
					WHERE enrollment_id = $1 AND step_id = $2`, w.EnrollmentID, w.StepID, ev.ID)
				return err
			}
		}
		return nil
	})
	return found, err
}

// ClearWait removes a wait that timed out. If an event claimed it first,
// the event resumes the enrollment after all, and ClearWait returns it.
func (s *Store) ClearWait(ctx context.Context, enrollmentID uuid.UUID, stepID string) (*TriggerEvent, error) {
	var found *TriggerEvent
	err := s.inTx(ctx, func(tx pgx.Tx) error {
		var claimed *uuid.UUID
		err := tx.QueryRow(ctx, `DELETE FROM enrollment_waits WHERE enrollment_id = $1 AND step_id = $2
			RETURNING claimed_event_id`, enrollmentID, stepID).Scan(&claimed)
		if errors.Is(err, pgx.ErrNoRows) || err == nil && claimed == nil {
			return nil
		}
		if err != nil {
			return err
		}
		ev, err := loadTriggerEvent(ctx, tx, *claimed)
		found = &ev
		return err
	})
	return found, err
}

func scanTriggerEvent(r pgx.CollectableRow) (TriggerEvent, error) {
	var ev TriggerEvent
	var depth int16
	err := r.Scan(&ev.ID, &ev.Name, &ev.Properties, &ev.OccurredAt, &depth)
	ev.Depth = int(depth)
	return ev, err
}

func loadTriggerEvent(ctx context.Context, tx pgx.Tx, id uuid.UUID) (TriggerEvent, error) {
	rows, err := tx.Query(ctx, `SELECT id, name, properties, occurred_at, emit_depth FROM events WHERE id = $1`, id)
	if err != nil {
		return TriggerEvent{}, err
	}
	ev, err := pgx.CollectExactlyOneRow(rows, scanTriggerEvent)
	return ev, notFound(err)
}

// WebhookSecret returns the workspace's key for signing outbound webhooks.
func (s *Store) WebhookSecret(ctx context.Context, workspaceID uuid.UUID) ([]byte, error) {
	var secret []byte
	err := s.pool.QueryRow(ctx, `SELECT webhook_secret FROM workspaces WHERE id = $1`, workspaceID).Scan(&secret)
	return secret, notFound(err)
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
