package store

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"time"

	"github.com/google/uuid"
	"github.com/jackc/pgx/v5"

	"github.com/signalbox/signalbox/conditions"
	"github.com/signalbox/signalbox/decision"
	"github.com/signalbox/signalbox/event"
	"github.com/signalbox/signalbox/intent"
)

// Backfill modes.
const (
	// BackfillSkipEnrolled skips the events that already enrolled their
	// contact in the automation (live, or by an earlier backfill).
	BackfillSkipEnrolled = "skip_enrolled"
)

// Backfill statuses.
const (
	BackfillRunning   = "running"
	BackfillCompleted = "completed"
	BackfillCancelled = "cancelled"
	BackfillFailed    = "failed"
)

// Backfill is a run of an automation's trigger over events already
// recorded, and how far it got.
type Backfill struct {
	ID           uuid.UUID        `json:"id"`
	WorkspaceID  uuid.UUID        `json:"-"`
	AutomationID uuid.UUID        `json:"automation_id"`
	Since        time.Time        `json:"since"`
	Until        time.Time        `json:"until"`
	Mode         string           `json:"mode"`
	Rate         float64          `json:"rate"`
	Status       string           `json:"status"`
	Total        int64            `json:"total"`
	Processed    int64            `json:"processed"`
	Enrolled     int64            `json:"enrolled"`
	Skipped      map[string]int64 `json:"skipped"`
	Reason       *string          `json:"reason"`
	CreatedAt    time.Time        `json:"created_at"`
	UpdatedAt    time.Time        `json:"updated_at"`
	EndedAt      *time.Time       `json:"ended_at"`
}

const backfillColumns = `id, workspace_id, automation_id, since, until, mode, rate, status, total, processed, enrolled,
	skipped, reason, created_at, updated_at, ended_at`

func scanBackfill(row pgx.Row) (Backfill, error) {
	var b Backfill
	err := row.Scan(&b.ID, &b.WorkspaceID, &b.AutomationID, &b.Since, &b.Until, &b.Mode, &b.Rate, &b.Status, &b.Total,
		&b.Processed, &b.Enrolled, &b.Skipped, &b.Reason, &b.CreatedAt, &b.UpdatedAt, &b.EndedAt)
	return b, notFound(err)
}

// CreateBackfill starts a backfill of an automation of the workspace over
// the events its trigger names that happened in [since, until): the row,
// with how many such events there are, and the intent that starts its
// workflow, in one transaction. ErrNotFound when there is no such
// automation, ErrArchived when it is archived.
func (s *Store) CreateBackfill(ctx context.Context, workspaceID, automationID uuid.UUID, since, until time.Time,
	mode string, rate float64, pageSize int) (Backfill, error) {
	var b Backfill
	err := s.inTx(ctx, func(tx pgx.Tx) error {
		a, err := scanAutomation(tx.QueryRow(ctx, `SELECT `+automationColumns+automationFrom+`
			WHERE a.workspace_id = $1 AND a.id = $2`, workspaceID, automationID))
		if err != nil {
			return err
		}
		if a.ArchivedAt != nil {
			return ErrArchived
		}
		var total int64
		if err := tx.QueryRow(ctx, `SELECT count(*) FROM events WHERE workspace_id = $1 AND name = $2
			AND occurred_at >= $3 AND occurred_at < $4 AND deleted_at IS NULL AND received_at > $5`,
			workspaceID, a.TriggerEvent, since, until, s.cutoff()).Scan(&total); err != nil {
			return fmt.Errorf("count events: %w", err)
		}
		id := NewID()
		b, err = scanBackfill(tx.QueryRow(ctx, `INSERT INTO backfills (id, workspace_id, automation_id, since, until, mode,
				rate, total, status)
			VALUES ($1, $2, $3, $4, $5, $6, $7, $8::bigint, CASE WHEN $8::bigint = 0 THEN 'completed' ELSE 'running' END)
			RETURNING `+backfillColumns, id, workspaceID, automationID, since, until, mode, rate, total))
		if err != nil || total == 0 {
			return err
		}
		payload, err := json.Marshal(intent.Backfill{BackfillID: id, WorkspaceID: workspaceID, PageSize: pageSize, Rate: rate})
		if err != nil {
			return err
		}
		_, err = tx.Exec(ctx, `INSERT INTO outbox (id, workspace_id, workflow_id, kind, payload) VALUES ($1, $2, $3, $4, $5)`,
			NewID(), workspaceID, intent.BackfillWorkflowID(id), intent.KindBackfill, payload)
		return err
	})
	return b, err
}

// GetBackfill reads a backfill of the workspace.
func (s *Store) GetBackfill(ctx context.Context, workspaceID, id uuid.UUID) (Backfill, error) {
	return scanBackfill(s.pool.QueryRow(ctx, `SELECT `+backfillColumns+` FROM backfills WHERE workspace_id = $1 AND id = $2`,
		workspaceID, id))
}

// CancelBackfill asks a running backfill's workflow to stop (through the
// outbox); it is recorded cancelled when the workflow stops. A backfill
// that has ended is answered as it is.
func (s *Store) CancelBackfill(ctx context.Context, workspaceID, id uuid.UUID) (Backfill, error) {
	var b Backfill
	err := s.inTx(ctx, func(tx pgx.Tx) error {
		var err error
		b, err = scanBackfill(tx.QueryRow(ctx, `SELECT `+backfillColumns+` FROM backfills
			WHERE workspace_id = $1 AND id = $2 FOR UPDATE`, workspaceID, id))
		if err != nil || b.Status != BackfillRunning {
			return err
		}
		_, err = tx.Exec(ctx, `INSERT INTO outbox (id, workspace_id, workflow_id, kind, payload) VALUES ($1, $2, $3, 'cancel', '{}')`,
			NewID(), workspaceID, intent.BackfillWorkflowID(id))
		return err
	})
	return b, err
}

// FinishBackfill records how a backfill ended, unless it already has.
func (s *Store) FinishBackfill(ctx context.Context, id uuid.UUID, status, reason string) error {
	_, err := s.pool.Exec(ctx, `UPDATE backfills SET status = $2, reason = nullif($3, ''), ended_at = now(), updated_at = now()
		WHERE id = $1 AND status = 'running'`, id, status, reason)
	return err
}

// backfillLockClass is the first key of the lock that makes the pages of
// backfills of one automation take turns.
const backfillLockClass = 0x4246 // "BF"

// BackfillPage runs the automation's trigger over the backfill's next page
// of at most limit events, in one transaction: the events after its cursor,
// the decisions on them (set holds the automation, compiled), the
// enrollments and start intents of those that enroll, and the progress,
// cursor included. An event that already enrolled its contact in the
// automation is skipped (already_enrolled), so a page retried after a
// crash, or a second backfill, never enrolls it twice. It returns how many
// events the page took and whether the backfill is done.
func (s *Store) BackfillPage(ctx context.Context, id uuid.UUID, limit int, set decision.Automations) (int, bool, error) {
	var (
		n    int
		done bool
	)
	err := s.inTx(ctx, func(tx pgx.Tx) error {
		var (
			b        Backfill
			trigger  string
			cursorAt *time.Time
			cursorID *uuid.UUID
			clock    time.Time
		)
		err := tx.QueryRow(ctx, `SELECT b.workspace_id, b.automation_id, b.status, b.since, b.until, b.cursor_at, b.cursor_id,
				v.trigger_event, clock_timestamp()
			FROM backfills b JOIN automations a ON a.id = b.automation_id
			JOIN automation_versions v ON v.automation_id = a.id AND v.version = a.current_version
			WHERE b.id = $1 FOR UPDATE OF b`, id).
			Scan(&b.WorkspaceID, &b.AutomationID, &b.Status, &b.Since, &b.Until, &cursorAt, &cursorID, &trigger, &clock)
		if err != nil {
			return notFound(err)
		}
		if b.Status != BackfillRunning {
			done = true
			return nil
		}
		if _, err := tx.Exec(ctx, `SELECT pg_advisory_xact_lock($1, hashtext($2::text))`, backfillLockClass,
			b.AutomationID); err != nil {
			return err
		}
		rows, err := tx.Query(ctx, `SELECT e.id, e.name, e.properties, e.occurred_at, e.emit_depth, e.received_at, e.contact_id,
				EXISTS (SELECT 1 FROM enrollments n WHERE n.automation_id = $2 AND n.trigger_event_id = e.id)
			FROM events e WHERE e.workspace_id = $1 AND e.name = $3 AND e.occurred_at >= $4 AND e.occurred_at < $5
			  AND e.deleted_at IS NULL AND e.received_at > $6
			  AND ($7::timestamptz IS NULL OR (e.occurred_at, e.id) > ($7, $8::uuid))
			ORDER BY e.occurred_at, e.id LIMIT $9`,
			b.WorkspaceID, b.AutomationID, trigger, b.Since, b.Until, s.cutoff(), cursorAt, cursorID, limit)
		if err != nil {
			return fmt.Errorf("read page: %w", err)
		}
		type row struct {
			ev       event.Event
			contact  uuid.UUID
			enrolled bool
		}
		page, err := pgx.CollectRows(rows, func(r pgx.CollectableRow) (row, error) {
			var (
				x     row
				depth int16
			)
			err := r.Scan(&x.ev.ID, &x.ev.Name, &x.ev.Properties, &x.ev.OccurredAt, &depth, &x.ev.ReceivedAt, &x.contact, &x.enrolled)
			x.ev.Depth = int(depth)
			return x, err
		})
		if err != nil {
			return fmt.Errorf("read page: %w", err)
		}
		n = len(page)
		skipped := map[string]int64{}
		in := decision.Input{Exits: map[decision.ContactEvent][]*decision.Candidate{},
			Waits: map[decision.ContactEvent][]*decision.Wait{}, Contacts: map[uuid.UUID]map[string]any{},
			Automations: set, NewID: NewID, Now: clock}
		var contacts []uuid.UUID
		for i, x := range page {
			if x.enrolled {
				skipped["already_enrolled"]++
				continue
			}
			in.Events = append(in.Events, decision.Fresh{Item: decision.Item{Index: i}, WorkspaceID: b.WorkspaceID,
				ContactID: x.contact, Event: x.ev})
			contacts = append(contacts, x.contact)
		}
		if len(contacts) > 0 {
			crows, err := tx.Query(ctx, `SELECT `+contactColumns+` FROM contacts WHERE id = ANY($1)`, contacts)
			if err != nil {
				return fmt.Errorf("load contacts: %w", err)
			}
			if _, err := pgx.CollectRows(crows, func(r pgx.CollectableRow) (Contact, error) {
				c, err := scanContact(r)
				in.Contacts[c.ID] = conditions.ContactMap(c.ID.String(), c.Email, c.FirstName, c.LastName, c.Properties)
				return c, err
			}); err != nil {
				return fmt.Errorf("load contacts: %w", err)
			}
		}
		plan := decision.Make(ctx, in)
		won, err := claim(ctx, tx, plan.Claims())
		if err != nil {
			return err
		}
		plan.Settle(won)
		var enrolled int64
		enrollments, effects := plan.Effects(func(decision.Item, string) { enrolled++ })
		for _, d := range plan.Decisions() {
			if d.Outcome != decision.Enrolled {
				skipped[d.Outcome]++
			}
		}
		if err := s.writeDecided(ctx, tx, enrollments, effects, plan.Decisions()); err != nil {
			return err
		}
		if err := queueEnrollments(ctx, tx, plan.Queued()); err != nil {
			return err
		}
		done = n < limit
		var lastAt *time.Time
		var lastID *uuid.UUID
		if n > 0 {
			lastAt, lastID = &page[n-1].ev.OccurredAt, &page[n-1].ev.ID
		}
		raw, err := json.Marshal(skipped)
		if err != nil {
			return err
		}
		_, err = tx.Exec(ctx, `UPDATE backfills SET processed = processed + $2, enrolled = enrolled + $3,
				skipped = (SELECT coalesce(jsonb_object_agg(k, v), '{}') FROM (
					SELECT k, sum(v)::bigint AS v FROM (
						SELECT key AS k, value::bigint AS v FROM jsonb_each_text(skipped)
						UNION ALL SELECT key, value::bigint FROM jsonb_each_text($4::jsonb)) t GROUP BY k) s),
				cursor_at = coalesce($5, cursor_at), cursor_id = coalesce($6, cursor_id), updated_at = now(),
				status = CASE WHEN $7 THEN 'completed' ELSE status END,
				ended_at = CASE WHEN $7 THEN now() ELSE ended_at END
			WHERE id = $1`, id, n, enrolled, raw, lastAt, lastID, done)
		return err
	})
	if errors.Is(err, pgx.ErrNoRows) {
		return 0, false, ErrNotFound
	}
	return n, done, err
}

// ListBackfills returns an automation's backfills, newest first, at most
// limit of them.
func (s *Store) ListBackfills(ctx context.Context, workspaceID, automationID uuid.UUID, limit int) ([]Backfill, error) {
	rows, err := s.pool.Query(ctx, `SELECT `+backfillColumns+` FROM backfills WHERE workspace_id = $1 AND automation_id = $2
		ORDER BY id DESC LIMIT $3`, workspaceID, automationID, limit)
	if err != nil {
		return nil, err
	}
	return pgx.CollectRows(rows, func(r pgx.CollectableRow) (Backfill, error) { return scanBackfill(r) })
}
