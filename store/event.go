package store

import (
	"context"
	"encoding/json"
	"time"

	"github.com/google/uuid"
	"github.com/jackc/pgx/v5"
)

// Event is one recorded event on a contact's timeline.
type Event struct {
	ID          uuid.UUID       `json:"id"`
	WorkspaceID uuid.UUID       `json:"-"`
	ContactID   uuid.UUID       `json:"contact_id"`
	Name        string          `json:"name"`
	Properties  json.RawMessage `json:"properties"`
	ExternalID  *string         `json:"external_id"`
	GoalType    *string         `json:"goal_type"`
	GoalValue   *float64        `json:"goal_value"`
	OccurredAt  time.Time       `json:"occurred_at"`
	ReceivedAt  time.Time       `json:"received_at"`
	DeletedAt   *time.Time      `json:"deleted_at,omitempty"`
}

const eventColumns = `id, workspace_id, contact_id, name, properties, external_id, goal_type,
	goal_value::float8, occurred_at, received_at, deleted_at`

func scanEvent(row pgx.Row) (Event, error) {
	var e Event
	err := row.Scan(&e.ID, &e.WorkspaceID, &e.ContactID, &e.Name, &e.Properties, &e.ExternalID, &e.GoalType,
		&e.GoalValue, &e.OccurredAt, &e.ReceivedAt, &e.DeletedAt)
	return e, notFound(err)
}

// cutoff is the receipt time before which events have expired.
func (s *Store) cutoff() time.Time { return s.now().Add(-s.retention) }

// GetEvent reads one unexpired event of the workspace, soft-deleted or not
// (DeletedAt says which), so a deleted event can still be looked at and
// restored.
func (s *Store) GetEvent(ctx context.Context, workspaceID, id uuid.UUID) (Event, error) {
	return scanEvent(s.pool.QueryRow(ctx, `SELECT `+eventColumns+` FROM events
		WHERE workspace_id = $1 AND id = $2 AND received_at > $3`, workspaceID, id, s.cutoff()))
}

// EventCursor marks a position in a newest-first listing of events.
type EventCursor struct {
	OccurredAt time.Time
	ID         uuid.UUID
}

// EventFilter selects events for ListEvents.
type EventFilter struct {
	Name      string
	ContactID uuid.UUID
	// Email selects the contact by address; a contact that does not exist
	// simply has no events.
	Email          string
	Since, Until   time.Time
	After          *EventCursor
	Limit          int
	IncludeDeleted bool
}

// ListEvents returns unexpired events newest first (by occurred_at, then id)
// and the cursor of the next page, nil on the last one.
func (s *Store) ListEvents(ctx context.Context, workspaceID uuid.UUID, f EventFilter) ([]Event, *EventCursor, error) {
	var (
		contact      *uuid.UUID
		since, until *time.Time
		afterAt      *time.Time
		afterID      *uuid.UUID
	)
	if f.ContactID != uuid.Nil {
		contact = &f.ContactID
	}
	if !f.Since.IsZero() {
		since = &f.Since
	}
	if !f.Until.IsZero() {
		until = &f.Until
	}
	if f.After != nil {
		afterAt, afterID = &f.After.OccurredAt, &f.After.ID
	}
	// The filters are written so that the planner can still use the
	// (workspace, occurred_at, id) and (contact, occurred_at, id) indexes: a
	// row comparison on the sort key lets the scan start at the cursor.
	rows, err := s.pool.Query(ctx, `SELECT `+eventColumns+` FROM events
		WHERE workspace_id = $1 AND received_at > $2
		  AND ($3 OR deleted_at IS NULL)
		  AND ($4 = '' OR name = $4)
		  AND ($5::uuid IS NULL OR contact_id = $5)
		  AND ($6 = '' OR contact_id = (SELECT id FROM contacts WHERE workspace_id = $1 AND email = $6))
		  AND ($7::timestamptz IS NULL OR occurred_at >= $7)
		  AND ($8::timestamptz IS NULL OR occurred_at < $8)
		  AND ($9::timestamptz IS NULL OR (occurred_at, id) < ($9, $10::uuid))
		ORDER BY occurred_at DESC, id DESC LIMIT $11`,
		workspaceID, s.cutoff(), f.IncludeDeleted, f.Name, contact, f.Email, since, until, afterAt, afterID, f.Limit+1)
	if err != nil {
		return nil, nil, err
	}
	out, err := pgx.CollectRows(rows, func(r pgx.CollectableRow) (Event, error) { return scanEvent(r) })
	if err != nil {
		return nil, nil, err
	}
	if len(out) <= f.Limit {
		return out, nil, nil
	}
	out = out[:f.Limit]
	last := out[len(out)-1]
	return out, &EventCursor{OccurredAt: last.OccurredAt, ID: last.ID}, nil
}

// DeleteEvent soft-deletes an event: it leaves the log and the timeline but
// can be restored until it expires. Deleting twice is harmless.
func (s *Store) DeleteEvent(ctx context.Context, workspaceID, id uuid.UUID) error {
	tag, err := s.pool.Exec(ctx, `UPDATE events SET deleted_at = coalesce(deleted_at, now())
		WHERE workspace_id = $1 AND id = $2 AND received_at > $3`, workspaceID, id, s.cutoff())
	if err != nil {
		return err
	}
	if tag.RowsAffected() == 0 {
		return ErrNotFound
	}
	return nil
}

// RestoreEvent undoes a soft delete and returns the event.
func (s *Store) RestoreEvent(ctx context.Context, workspaceID, id uuid.UUID) (Event, error) {
	return scanEvent(s.pool.QueryRow(ctx, `UPDATE events SET deleted_at = NULL
		WHERE workspace_id = $1 AND id = $2 AND received_at > $3 RETURNING `+eventColumns,
		workspaceID, id, s.cutoff()))
}

// PurgeExpired hard-deletes at most limit expired events, oldest first, and
// says how many it removed. Each call walks only the old end of the
// received_at index, so its cost does not grow with the table; the sweeper
// calls it until it returns less than limit.
func (s *Store) PurgeExpired(ctx context.Context, limit int) (int64, error) {
	tag, err := s.pool.Exec(ctx, `DELETE FROM events WHERE id IN (
		SELECT id FROM events WHERE received_at <= $1 ORDER BY received_at LIMIT $2)`, s.cutoff(), limit)
	if err != nil {
		return 0, err
	}
	return tag.RowsAffected(), nil
}
