package store

import (
	"context"
	"encoding/json"
	"time"

	"github.com/google/uuid"
	"github.com/jackc/pgx/v5"
)

// Source is an inbound webhook source. Its definition (paths, fixed event
// name, verification with its secret) is the source package's document,
// kept as given: the store runs SQL and nothing else.
type Source struct {
	ID          uuid.UUID
	WorkspaceID uuid.UUID
	Name        string
	// Token is the last segment of the source's URL, /in/{token}.
	Token      string
	Enabled    bool
	Definition json.RawMessage
	CreatedAt  time.Time
	UpdatedAt  time.Time
}

const sourceColumns = `id, workspace_id, name, token, enabled, definition, created_at, updated_at`

func scanSource(row pgx.Row) (Source, error) {
	var s Source
	err := row.Scan(&s.ID, &s.WorkspaceID, &s.Name, &s.Token, &s.Enabled, &s.Definition, &s.CreatedAt, &s.UpdatedAt)
	return s, notFound(err)
}

// CreateSource stores a new source.
func (s *Store) CreateSource(ctx context.Context, workspaceID uuid.UUID, name, token string, enabled bool, def json.RawMessage) (Source, error) {
	return scanSource(s.pool.QueryRow(ctx, `INSERT INTO sources (id, workspace_id, name, token, enabled, definition)
		VALUES ($1, $2, $3, $4, $5, $6) RETURNING `+sourceColumns, NewID(), workspaceID, name, token, enabled, def))
}

// GetSource reads one source of the workspace; ErrNotFound if it does not
// exist or was deleted.
func (s *Store) GetSource(ctx context.Context, workspaceID, id uuid.UUID) (Source, error) {
	return scanSource(s.pool.QueryRow(ctx, `SELECT `+sourceColumns+` FROM sources
		WHERE workspace_id = $1 AND id = $2 AND deleted_at IS NULL`, workspaceID, id))
}

// SourceByToken reads the live source whose URL ends in token, of any
// workspace, with its workspace's plan (for the quota); ErrNotFound if none.
func (s *Store) SourceByToken(ctx context.Context, token string) (Source, Plan, error) {
	var src Source
	var plan Plan
	err := s.pool.QueryRow(ctx, `SELECT s.id, s.workspace_id, s.name, s.token, s.enabled, s.definition, s.created_at,
			s.updated_at, w.plan
		FROM sources s JOIN workspaces w ON w.id = s.workspace_id
		WHERE s.token = $1 AND s.deleted_at IS NULL`, token).Scan(&src.ID, &src.WorkspaceID, &src.Name, &src.Token,
		&src.Enabled, &src.Definition, &src.CreatedAt, &src.UpdatedAt, &plan)
	return src, plan, notFound(err)
}

// ListSources returns the workspace's sources, newest first, after the
// cursor id when one is given, and whether more follow.
func (s *Store) ListSources(ctx context.Context, workspaceID, before uuid.UUID, limit int) ([]Source, bool, error) {
	var cursor *uuid.UUID
	if before != uuid.Nil {
		cursor = &before
	}
	rows, err := s.pool.Query(ctx, `SELECT `+sourceColumns+` FROM sources
		WHERE workspace_id = $1 AND deleted_at IS NULL AND ($2::uuid IS NULL OR id < $2)
		ORDER BY id DESC LIMIT $3`, workspaceID, cursor, limit+1)
	if err != nil {
		return nil, false, err
	}
	out, err := pgx.CollectRows(rows, func(r pgx.CollectableRow) (Source, error) { return scanSource(r) })
	if err != nil {
		return nil, false, err
	}
	out, more := trimPage(out, limit)
	return out, more, nil
}

// UpdateSource saves a source's name, state and definition.
func (s *Store) UpdateSource(ctx context.Context, workspaceID, id uuid.UUID, name string, enabled bool, def json.RawMessage) (Source, error) {
	return scanSource(s.pool.QueryRow(ctx, `UPDATE sources SET name = $3, enabled = $4, definition = $5, updated_at = now()
		WHERE workspace_id = $1 AND id = $2 AND deleted_at IS NULL RETURNING `+sourceColumns,
		workspaceID, id, name, enabled, def))
}

// RotateSourceToken gives the source a new token; the old one is unknown
// from the commit on.
func (s *Store) RotateSourceToken(ctx context.Context, workspaceID, id uuid.UUID, token string) (Source, error) {
	return scanSource(s.pool.QueryRow(ctx, `UPDATE sources SET token = $3, updated_at = now()
		WHERE workspace_id = $1 AND id = $2 AND deleted_at IS NULL RETURNING `+sourceColumns,
		workspaceID, id, token))
}

// DeleteSource deletes a source: its URL is unknown from the commit on, and
// the sweeper removes its deliveries, then the row (PurgeDeliveries). The
// token is changed too, so that the deleted row never answers for it.
func (s *Store) DeleteSource(ctx context.Context, workspaceID, id uuid.UUID) error {
	tag, err := s.pool.Exec(ctx, `UPDATE sources SET deleted_at = now(), enabled = false, token = 'deleted:' || id::text
		WHERE workspace_id = $1 AND id = $2 AND deleted_at IS NULL`, workspaceID, id)
	if err != nil {
		return err
	}
	if tag.RowsAffected() == 0 {
		return ErrNotFound
	}
	return nil
}
