package store

import (
	"context"
	"encoding/json"
	"fmt"
	"time"

	"github.com/google/uuid"
	"github.com/jackc/pgx/v5"
)

// Decision is a kept decision: what one event did, or did not do, to one
// automation, and why.
type Decision struct {
	ID           uuid.UUID       `json:"id"`
	EventID      uuid.UUID       `json:"event_id"`
	AutomationID uuid.UUID       `json:"automation_id"`
	Version      int             `json:"version"`
	Kind         string          `json:"kind"`
	Outcome      string          `json:"outcome"`
	EnrollmentID *uuid.UUID      `json:"enrollment_id,omitempty"`
	Detail       json.RawMessage `json:"detail"`
	// At is when the event was received.
	At time.Time `json:"at"`
}

const decisionColumns = `id, event_id, automation_id, version, kind, outcome, enrollment_id, detail, at`

func scanDecision(r pgx.CollectableRow) (Decision, error) {
	var d Decision
	err := r.Scan(&d.ID, &d.EventID, &d.AutomationID, &d.Version, &d.Kind, &d.Outcome, &d.EnrollmentID, &d.Detail, &d.At)
	return d, err
}

// EventDecisions returns the decisions kept for an event of the workspace,
// in the order they were made.
func (s *Store) EventDecisions(ctx context.Context, workspaceID, eventID uuid.UUID) ([]Decision, error) {
	rows, err := s.pool.Query(ctx, `SELECT `+decisionColumns+` FROM decisions
		WHERE workspace_id = $1 AND event_id = $2 ORDER BY id`, workspaceID, eventID)
	if err != nil {
		return nil, fmt.Errorf("read decisions: %w", err)
	}
	return pgx.CollectRows(rows, scanDecision)
}

// DecisionFilter selects an automation's decisions.
type DecisionFilter struct {
	Outcome      string
	Since, Until time.Time
	Before       uuid.UUID
	Limit        int
}

// AutomationDecisions returns an automation's kept decisions, newest first,
// and whether more follow.
func (s *Store) AutomationDecisions(ctx context.Context, workspaceID, automationID uuid.UUID, f DecisionFilter) ([]Decision, bool, error) {
	rows, err := s.pool.Query(ctx, `SELECT `+decisionColumns+` FROM decisions
		WHERE workspace_id = $1 AND automation_id = $2 AND ($3 = '' OR outcome = $3)
		  AND ($4::timestamptz IS NULL OR at >= $4) AND ($5::timestamptz IS NULL OR at < $5)
		  AND ($6::uuid IS NULL OR id < $6)
		ORDER BY id DESC LIMIT $7`,
		workspaceID, automationID, f.Outcome, nullTime(f.Since), nullTime(f.Until), nullUUID(f.Before), f.Limit+1)
	if err != nil {
		return nil, false, fmt.Errorf("read decisions: %w", err)
	}
	out, err := pgx.CollectRows(rows, scanDecision)
	if err != nil {
		return nil, false, err
	}
	out, more := trimPage(out, f.Limit)
	return out, more, nil
}

// PurgeDecisions deletes at most limit decisions older than age, oldest
// first.
func (s *Store) PurgeDecisions(ctx context.Context, age time.Duration, limit int) (int64, error) {
	tag, err := s.pool.Exec(ctx, `DELETE FROM decisions WHERE id IN (
		SELECT id FROM decisions WHERE at < now() - $1::interval ORDER BY at LIMIT $2)`, age, limit)
	if err != nil {
		return 0, fmt.Errorf("purge decisions: %w", err)
	}
	return tag.RowsAffected(), nil
}

func nullTime(t time.Time) *time.Time {
	if t.IsZero() {
		return nil
	}
	return &t
}
