package store

import (
	"context"
	"encoding/json"
	"fmt"
	"time"

	"github.com/google/uuid"
	"github.com/jackc/pgx/v5"
)

// SavedVersion is one saved definition of an automation.
type SavedVersion struct {
	Version      int             `json:"version"`
	TriggerEvent string          `json:"trigger_event"`
	Definition   json.RawMessage `json:"definition,omitempty"`
	CreatedAt    time.Time       `json:"created_at"`
	// Current says it is the version new enrollments start on.
	Current bool `json:"current"`
}

// AutomationVersions lists the saved versions of an automation of the
// workspace, newest first, without their definitions. ErrNotFound when
// there is no such automation.
func (s *Store) AutomationVersions(ctx context.Context, workspaceID, id uuid.UUID) ([]SavedVersion, error) {
	rows, err := s.pool.Query(ctx, `SELECT v.version, v.trigger_event, v.created_at, v.version = a.current_version
		FROM automation_versions v JOIN automations a ON a.id = v.automation_id
		WHERE a.workspace_id = $1 AND a.id = $2 ORDER BY v.version DESC`, workspaceID, id)
	if err != nil {
		return nil, fmt.Errorf("read versions: %w", err)
	}
	out, err := pgx.CollectRows(rows, func(r pgx.CollectableRow) (SavedVersion, error) {
		var v SavedVersion
		err := r.Scan(&v.Version, &v.TriggerEvent, &v.CreatedAt, &v.Current)
		return v, err
	})
	if err == nil && len(out) == 0 {
		return nil, ErrNotFound
	}
	return out, err
}

// AutomationVersionAt reads one saved version of an automation, with its
// definition.
func (s *Store) AutomationVersionAt(ctx context.Context, workspaceID, id uuid.UUID, version int) (SavedVersion, error) {
	var v SavedVersion
	err := s.pool.QueryRow(ctx, `SELECT v.version, v.trigger_event, v.definition, v.created_at, v.version = a.current_version
		FROM automation_versions v JOIN automations a ON a.id = v.automation_id
		WHERE a.workspace_id = $1 AND a.id = $2 AND v.version = $3`, workspaceID, id, version).
		Scan(&v.Version, &v.TriggerEvent, &v.Definition, &v.CreatedAt, &v.Current)
	return v, notFound(err)
}

// Counts is a figure over all time and over the last 24 hours.
type Counts struct {
	All     int64 `json:"all"`
	Last24h int64 `json:"last_24h"`
}

// StepStats is what an automation's enrollments did at one step, from
// their logs: how many reached it, finished it (done, or down yes or no),
// failed at it, went yes or no (a wait or branch), timed out (a wait's
// no), and are at it now.
type StepStats struct {
	StepID    string `json:"step_id"`
	Type      string `json:"type"`
	Entered   Counts `json:"entered"`
	Completed Counts `json:"completed"`
	Failed    Counts `json:"failed"`
	Yes       Counts `json:"yes"`
	No        Counts `json:"no"`
	TimedOut  Counts `json:"timed_out"`
	Now       int64  `json:"now"`
}

// AutomationStats counts an automation's enrollments by status (all time,
// and started in the last 24 hours) and what they did at each step (lines
// of their logs, all time and written in the last 24 hours), with how many
// active enrollments are at each step now.
func (s *Store) AutomationStats(ctx context.Context, workspaceID, id uuid.UUID) (map[string]Counts, []StepStats, error) {
	byStatus := map[string]Counts{}
	var steps []StepStats
	now := map[string]int64{}
	b := &pgx.Batch{}
	b.Queue(`SELECT status, count(*), count(*) FILTER (WHERE started_at > now() - interval '24 hours')
		FROM enrollments WHERE workspace_id = $1 AND automation_id = $2 GROUP BY status`, workspaceID, id).
		Query(func(rows pgx.Rows) error {
			var (
				status string
				c      Counts
			)
			_, err := pgx.ForEachRow(rows, []any{&status, &c.All, &c.Last24h}, func() error {
				byStatus[status] = c
				return nil
			})
			return err
		})
	b.Queue(`SELECT l.step_id, min(l.step_type),
			count(DISTINCT l.enrollment_id), count(DISTINCT l.enrollment_id) FILTER (WHERE l.at > now() - interval '24 hours'),
			count(*) FILTER (WHERE l.outcome IN ('done', 'yes', 'no')),
			count(*) FILTER (WHERE l.outcome IN ('done', 'yes', 'no') AND l.at > now() - interval '24 hours'),
			count(*) FILTER (WHERE l.outcome = 'failed'),
			count(*) FILTER (WHERE l.outcome = 'failed' AND l.at > now() - interval '24 hours'),
			count(*) FILTER (WHERE l.outcome = 'yes'),
			count(*) FILTER (WHERE l.outcome = 'yes' AND l.at > now() - interval '24 hours'),
			count(*) FILTER (WHERE l.outcome = 'no'),
			count(*) FILTER (WHERE l.outcome = 'no' AND l.at > now() - interval '24 hours'),
			count(*) FILTER (WHERE l.outcome = 'no' AND l.detail->>'reason' IN ('timeout', 'window closed')),
			count(*) FILTER (WHERE l.outcome = 'no' AND l.detail->>'reason' IN ('timeout', 'window closed')
			                 AND l.at > now() - interval '24 hours')
		FROM enrollment_steps l JOIN enrollments e ON e.id = l.enrollment_id
		WHERE e.workspace_id = $1 AND e.automation_id = $2
		GROUP BY l.step_id ORDER BY min(l.at)`, workspaceID, id).Query(func(rows pgx.Rows) error {
		var st StepStats
		_, err := pgx.ForEachRow(rows, []any{&st.StepID, &st.Type, &st.Entered.All, &st.Entered.Last24h,
			&st.Completed.All, &st.Completed.Last24h, &st.Failed.All, &st.Failed.Last24h, &st.Yes.All, &st.Yes.Last24h,
			&st.No.All, &st.No.Last24h, &st.TimedOut.All, &st.TimedOut.Last24h}, func() error {
			steps = append(steps, st)
			return nil
		})
		return err
	})
	b.Queue(`SELECT current_step, count(*) FROM enrollments
		WHERE workspace_id = $1 AND automation_id = $2 AND status = 'active' AND current_step IS NOT NULL
		GROUP BY 1`, workspaceID, id).Query(func(rows pgx.Rows) error {
		var (
			step string
			n    int64
		)
		_, err := pgx.ForEachRow(rows, []any{&step, &n}, func() error { now[step] = n; return nil })
		return err
	})
	if err := s.pool.SendBatch(ctx, b).Close(); err != nil {
		return nil, nil, fmt.Errorf("automation stats: %w", err)
	}
	for i := range steps {
		steps[i].Now = now[steps[i].StepID]
	}
	return byStatus, steps, nil
}
