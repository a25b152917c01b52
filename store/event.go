package store

import (
	"context"
	"encoding/json"
	"fmt"
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
	// Declared says whether the event's name is declared in the catalog
	// now (it follows declarations made after the event arrived).
	Declared bool `json:"declared"`
	// SchemaVersion is the version of its type's schema the event was
	// checked against when it arrived; nil when the type had none.
	SchemaVersion *int `json:"schema_version"`
	// SchemaErrors lists how it broke that schema (flag mode); nil when it
	// conformed or was not checked.
	SchemaErrors []SchemaViolation `json:"schema_errors"`
}

// eventColumns reads an event from table alias events; declared is the
// name's declaration now, a primary-key probe of event_types.
const eventColumns = `id, workspace_id, contact_id, name, properties, external_id, goal_type,
	goal_value::float8, occurred_at, received_at, deleted_at,
	EXISTS (SELECT 1 FROM event_types t WHERE t.workspace_id = events.workspace_id AND t.name = events.name),
	schema_version, schema_errors`

func scanEvent(row pgx.Row) (Event, error) {
	var e Event
	err := row.Scan(&e.ID, &e.WorkspaceID, &e.ContactID, &e.Name, &e.Properties, &e.ExternalID, &e.GoalType,
		&e.GoalValue, &e.OccurredAt, &e.ReceivedAt, &e.DeletedAt, &e.Declared, &e.SchemaVersion, &e.SchemaErrors)
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
	// Declared, when set, keeps events whose name is declared (true) or
	// not (false), as the catalog stands now.
	Declared *bool
	// SchemaValid, when set, keeps events checked against a schema that
	// conformed (true) or that did not (false).
	SchemaValid *bool
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
		  AND ($12::bool IS NULL OR $12 = EXISTS (SELECT 1 FROM event_types t WHERE t.workspace_id = $1 AND t.name = events.name))
		  AND ($13::bool IS NULL OR ($13 AND schema_version IS NOT NULL AND schema_errors IS NULL)
		       OR (NOT $13 AND schema_errors IS NOT NULL))
		ORDER BY occurred_at DESC, id DESC LIMIT $11`,
		workspaceID, s.cutoff(), f.IncludeDeleted, f.Name, contact, f.Email, since, until, afterAt, afterID, f.Limit+1,
		f.Declared, f.SchemaValid)
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
// can be restored until it expires. Deleting twice is harmless. The
// catalog's count of its name drops in the same statement, once.
func (s *Store) DeleteEvent(ctx context.Context, workspaceID, id uuid.UUID) error {
	var n int
	err := s.pool.QueryRow(ctx, `WITH old AS (
			SELECT id, name, received_at, deleted_at FROM events
			WHERE workspace_id = $1 AND id = $2 AND received_at > $3 FOR UPDATE),
		upd AS (UPDATE events e SET deleted_at = coalesce(old.deleted_at, now()) FROM old WHERE e.id = old.id RETURNING e.id),
		cnt AS (`+fmt.Sprintf(bumpNameCounts, `SELECT $1, name, date_trunc('hour', received_at, 'UTC'), $4::smallint, -1,
			received_at, received_at FROM old WHERE deleted_at IS NULL`)+`)
		SELECT count(*) FROM upd`, workspaceID, id, s.cutoff(), nameCountShard()).Scan(&n)
	if err != nil {
		return err
	}
	if n == 0 {
		return ErrNotFound
	}
	return nil
}

// RestoreEvent undoes a soft delete and returns the event; the catalog's
// count of its name goes back up in the same statement, once.
func (s *Store) RestoreEvent(ctx context.Context, workspaceID, id uuid.UUID) (Event, error) {
	return scanEvent(s.pool.QueryRow(ctx, `WITH old AS (
			SELECT id, name, received_at, deleted_at FROM events
			WHERE workspace_id = $1 AND id = $2 AND received_at > $3 FOR UPDATE),
		cnt AS (`+fmt.Sprintf(bumpNameCounts, `SELECT $1, name, date_trunc('hour', received_at, 'UTC'), $4::smallint, 1,
			received_at, received_at FROM old WHERE deleted_at IS NOT NULL`)+`)
		UPDATE events SET deleted_at = NULL FROM old WHERE events.id = old.id RETURNING `+qualifiedEventColumns,
		workspaceID, id, s.cutoff(), nameCountShard()))
}

// qualifiedEventColumns is eventColumns where another table of the
// statement has the same column names.
const qualifiedEventColumns = `events.id, events.workspace_id, events.contact_id, events.name, events.properties,
	events.external_id, events.goal_type, events.goal_value::float8, events.occurred_at, events.received_at,
	events.deleted_at,
	EXISTS (SELECT 1 FROM event_types t WHERE t.workspace_id = events.workspace_id AND t.name = events.name),
	events.schema_version, events.schema_errors`

// PurgeExpired hard-deletes at most limit expired events, oldest first, and
// says how many it removed. Each call walks only the old end of the
// received_at index, so its cost does not grow with the table; the sweeper
// calls it until it returns less than limit. The catalog's counts lose the
// purged events that were not soft-deleted in the same statement.
func (s *Store) PurgeExpired(ctx context.Context, limit int) (int64, error) {
	var n int64
	err := s.pool.QueryRow(ctx, `WITH gone AS (
			DELETE FROM events WHERE id IN (
				SELECT id FROM events WHERE received_at <= $1 ORDER BY received_at LIMIT $2)
			RETURNING workspace_id, name, received_at, deleted_at),
		cnt AS (`+fmt.Sprintf(bumpNameCounts, `SELECT workspace_id, name, date_trunc('hour', received_at, 'UTC'),
			$3::smallint, -count(*), min(received_at), max(received_at)
			FROM gone WHERE deleted_at IS NULL GROUP BY 1, 2, 3 ORDER BY 1, 2, 3`)+`)
		SELECT count(*) FROM gone`, s.cutoff(), limit, nameCountShard()).Scan(&n)
	return n, err
}
