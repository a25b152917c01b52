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

// Automation is a saved automation at its current version.
type Automation struct {
	ID           uuid.UUID
	WorkspaceID  uuid.UUID
	Name         string
	Enabled      bool
	Version      int
	TriggerEvent string
	Definition   json.RawMessage
	CreatedAt    time.Time
	UpdatedAt    time.Time
	// ArchivedAt is when it was deleted through the API: it enrolls no one
	// and can no longer be changed.
	ArchivedAt *time.Time
}

// ErrArchived is returned when an archived automation would be changed.
var ErrArchived = errors.New("automation archived")

// AutomationVersion is one saved definition of an automation.
type AutomationVersion struct {
	AutomationID uuid.UUID
	Version      int
	// Enabled says whether the automation enrolls (CurrentAutomations).
	Enabled      bool
	TriggerEvent string
	Definition   json.RawMessage
}

const automationColumns = `a.id, a.workspace_id, a.name, a.enabled, a.current_version, v.trigger_event, v.definition,
	a.created_at, a.updated_at, a.archived_at`

const automationFrom = ` FROM automations a JOIN automation_versions v ON v.automation_id = a.id AND v.version = a.current_version`

func scanAutomation(row pgx.Row) (Automation, error) {
	var a Automation
	err := row.Scan(&a.ID, &a.WorkspaceID, &a.Name, &a.Enabled, &a.Version, &a.TriggerEvent, &a.Definition,
		&a.CreatedAt, &a.UpdatedAt, &a.ArchivedAt)
	return a, notFound(err)
}

// CreateAutomation saves a new, disabled automation at version 1. It
// returns ErrConflict when the workspace already has one of that name.
func (s *Store) CreateAutomation(ctx context.Context, workspaceID uuid.UUID, name, triggerEvent string, def json.RawMessage) (Automation, error) {
	var a Automation
	err := s.inTx(ctx, func(tx pgx.Tx) error {
		id := NewID()
		_, err := tx.Exec(ctx, `INSERT INTO automations (id, workspace_id, name, current_version) VALUES ($1, $2, $3, 1)`,
			id, workspaceID, name)
		if isUniqueViolation(err) {
			return ErrConflict
		}
		if err != nil {
			return fmt.Errorf("insert automation: %w", err)
		}
		if _, err := tx.Exec(ctx, `INSERT INTO automation_versions (automation_id, version, definition, trigger_event)
			VALUES ($1, 1, $2, $3)`, id, def, triggerEvent); err != nil {
			return fmt.Errorf("insert automation version: %w", err)
		}
		a, err = scanAutomation(tx.QueryRow(ctx, `SELECT `+automationColumns+automationFrom+` WHERE a.id = $1`, id))
		return err
	})
	return a, err
}

// UpdateAutomation saves a new version of an automation; enrollments
// already running finish on the version they started with.
func (s *Store) UpdateAutomation(ctx context.Context, workspaceID, id uuid.UUID, name, triggerEvent string, def json.RawMessage) (Automation, error) {
	var a Automation
	err := s.inTx(ctx, func(tx pgx.Tx) error {
		var version int
		var archived bool
		err := tx.QueryRow(ctx, `SELECT archived_at IS NOT NULL FROM automations WHERE workspace_id = $1 AND id = $2
			FOR UPDATE`, workspaceID, id).Scan(&archived)
		if err != nil {
			return notFound(err)
		}
		if archived {
			return ErrArchived
		}
		err = tx.QueryRow(ctx, `UPDATE automations SET current_version = current_version + 1, name = $3, updated_at = now()
			WHERE workspace_id = $1 AND id = $2 RETURNING current_version`, workspaceID, id, name).Scan(&version)
		if isUniqueViolation(err) {
			return ErrConflict
		}
		if err != nil {
			return notFound(err)
		}
		if _, err := tx.Exec(ctx, `INSERT INTO automation_versions (automation_id, version, definition, trigger_event)
			VALUES ($1, $2, $3, $4)`, id, version, def, triggerEvent); err != nil {
			return fmt.Errorf("insert automation version: %w", err)
		}
		a, err = scanAutomation(tx.QueryRow(ctx, `SELECT `+automationColumns+automationFrom+` WHERE a.id = $1`, id))
		return err
	})
	return a, err
}

// GetAutomation reads an automation of the workspace at its current version.
func (s *Store) GetAutomation(ctx context.Context, workspaceID, id uuid.UUID) (Automation, error) {
	return scanAutomation(s.pool.QueryRow(ctx, `SELECT `+automationColumns+automationFrom+`
		WHERE a.workspace_id = $1 AND a.id = $2`, workspaceID, id))
}

// GetAutomationByName reads an automation of the workspace by its name.
func (s *Store) GetAutomationByName(ctx context.Context, workspaceID uuid.UUID, name string) (Automation, error) {
	return scanAutomation(s.pool.QueryRow(ctx, `SELECT `+automationColumns+automationFrom+`
		WHERE a.workspace_id = $1 AND a.name = $2 AND a.archived_at IS NULL`, workspaceID, name))
}

// ListAutomations returns the workspace's automations (the archived ones
// when archived is set, the others otherwise), newest first, after the
// cursor id when one is given, and whether more follow.
func (s *Store) ListAutomations(ctx context.Context, workspaceID, before uuid.UUID, limit int, archived bool) ([]Automation, bool, error) {
	var cursor *uuid.UUID
	if before != uuid.Nil {
		cursor = &before
	}
	rows, err := s.pool.Query(ctx, `SELECT `+automationColumns+automationFrom+`
		WHERE a.workspace_id = $1 AND ($2::uuid IS NULL OR a.id < $2) AND (a.archived_at IS NOT NULL) = $4
		ORDER BY a.id DESC LIMIT $3`,
		workspaceID, cursor, limit+1, archived)
	if err != nil {
		return nil, false, err
	}
	out, err := pgx.CollectRows(rows, func(r pgx.CollectableRow) (Automation, error) { return scanAutomation(r) })
	if err != nil {
		return nil, false, err
	}
	out, more := trimPage(out, limit)
	return out, more, nil
}

// SetAutomationEnabled turns an automation on or off. Disabling stops new
// enrollments; running ones go on.
func (s *Store) SetAutomationEnabled(ctx context.Context, workspaceID, id uuid.UUID, enabled bool) (Automation, error) {
	tag, err := s.pool.Exec(ctx, `UPDATE automations SET enabled = $3, updated_at = now()
		WHERE workspace_id = $1 AND id = $2 AND (archived_at IS NULL OR NOT $3)`, workspaceID, id, enabled)
	if err != nil {
		return Automation{}, err
	}
	if tag.RowsAffected() == 0 {
		a, err := s.GetAutomation(ctx, workspaceID, id)
		if err == nil && a.ArchivedAt != nil {
			return a, ErrArchived
		}
		return Automation{}, ErrNotFound
	}
	return s.GetAutomation(ctx, workspaceID, id)
}

// CurrentAutomations returns every automation of the workspace, enabled or
// not, at its current version; trigger caches hold the result.
func (s *Store) CurrentAutomations(ctx context.Context, workspaceID uuid.UUID) ([]AutomationVersion, error) {
	rows, err := s.pool.Query(ctx, `SELECT a.id, a.current_version, a.enabled, v.trigger_event, v.definition`+automationFrom+`
		WHERE a.workspace_id = $1 AND a.archived_at IS NULL ORDER BY a.id`, workspaceID)
	if err != nil {
		return nil, err
	}
	return pgx.CollectRows(rows, func(r pgx.CollectableRow) (AutomationVersion, error) {
		var v AutomationVersion
		err := r.Scan(&v.AutomationID, &v.Version, &v.Enabled, &v.TriggerEvent, &v.Definition)
		return v, err
	})
}

// HasAutomations reports whether the workspace has any automation at all.
func (s *Store) HasAutomations(ctx context.Context, workspaceID uuid.UUID) (bool, error) {
	var ok bool
	err := s.pool.QueryRow(ctx, `SELECT EXISTS (SELECT 1 FROM automations WHERE workspace_id = $1)`, workspaceID).Scan(&ok)
	return ok, err
}

// ArchiveAutomation archives an automation: it enrolls no one from now on,
// can no longer be changed, and its name is free for another. Archiving an
// archived one changes nothing.
func (s *Store) ArchiveAutomation(ctx context.Context, workspaceID, id uuid.UUID) (Automation, error) {
	tag, err := s.pool.Exec(ctx, `UPDATE automations SET archived_at = coalesce(archived_at, now()), enabled = false,
		updated_at = now() WHERE workspace_id = $1 AND id = $2`, workspaceID, id)
	if err != nil {
		return Automation{}, err
	}
	if tag.RowsAffected() == 0 {
		return Automation{}, ErrNotFound
	}
	return s.GetAutomation(ctx, workspaceID, id)
}
