package main

import (
	"context"
	"fmt"
	"time"

	"github.com/google/uuid"
	"github.com/jackc/pgx/v5"

	"github.com/signalbox/signalbox/store"
	"github.com/signalbox/signalbox/workflows"
)

// The harness's own SQL lives here, as a test's would: the throwaway
// database, bulk fixtures written with COPY for setup speed (contacts, and
// the enrollments and waits of other contacts for the flatness phase), and
// the counts that tell when a phase's enrollments are where it needs them.
// Everything measured goes through the API.

// serverVersion reads PostgreSQL's short version string.
func serverVersion(ctx context.Context, s *store.Store) string {
	var v string
	if err := s.Pool().QueryRow(ctx, `SHOW server_version`).Scan(&v); err != nil {
		return "unknown"
	}
	return v
}

// copyContacts creates n contacts of a workspace with COPY and returns
// their ids. Emails are prefix-i@actbench.example.
func copyContacts(ctx context.Context, s *store.Store, workspaceID uuid.UUID, prefix string, n int) ([]uuid.UUID, error) {
	ids := make([]uuid.UUID, n)
	rows := make([][]any, n)
	for i := range rows {
		ids[i] = store.NewID()
		rows[i] = []any{ids[i], workspaceID, fmt.Sprintf("%s-%d@actbench.example", prefix, i)}
	}
	if _, err := s.Pool().CopyFrom(ctx, pgx.Identifier{"contacts"}, []string{"id", "workspace_id", "email"},
		pgx.CopyFromRows(rows)); err != nil {
		return nil, fmt.Errorf("copy contacts: %w", err)
	}
	return ids, nil
}

// waitFixture is a set of active enrollments, one per contact, that can be
// made to wait for an event by inserting their index rows.
type waitFixture struct {
	workspaceID, automationID uuid.UUID
	event                     string
	contacts, enrollments     []uuid.UUID
}

// copyEnrollments creates one active enrollment of the automation for each
// contact, as the record path would have (the FK targets of waits).
func copyEnrollments(ctx context.Context, s *store.Store, f *waitFixture) error {
	f.enrollments = make([]uuid.UUID, len(f.contacts))
	rows := make([][]any, len(f.contacts))
	for i, c := range f.contacts {
		f.enrollments[i] = store.NewID()
		rows[i] = []any{f.enrollments[i], f.workspaceID, f.automationID, 1, c, store.NewID(),
			workflows.WorkflowID(f.enrollments[i].String())}
	}
	_, err := s.Pool().CopyFrom(ctx, pgx.Identifier{"enrollments"},
		[]string{"id", "workspace_id", "automation_id", "version", "contact_id", "trigger_event_id", "workflow_id"},
		pgx.CopyFromRows(rows))
	if err != nil {
		return fmt.Errorf("copy enrollments: %w", err)
	}
	return analyze(ctx, s, "contacts", "enrollments")
}

// copyWaits makes every enrollment of the fixture wait for its event, as
// RegisterWait would, for a day.
func copyWaits(ctx context.Context, s *store.Store, f *waitFixture) error {
	now := time.Now()
	rows := make([][]any, len(f.enrollments))
	for i, e := range f.enrollments {
		rows[i] = []any{e, "wait", f.workspaceID, f.contacts[i], f.event, "", []byte(`{}`),
			workflows.WorkflowID(e.String()), now, now.Add(24 * time.Hour)}
	}
	_, err := s.Pool().CopyFrom(ctx, pgx.Identifier{"enrollment_waits"},
		[]string{"enrollment_id", "step_id", "workspace_id", "contact_id", "event_name", "condition", "trigger",
			"workflow_id", "began_at", "expires_at"},
		pgx.CopyFromRows(rows))
	if err != nil {
		return fmt.Errorf("copy waits: %w", err)
	}
	return analyze(ctx, s, "enrollment_waits")
}

// clearWaits empties the wait index (only the fixture's rows are in it
// when it is called).
func clearWaits(ctx context.Context, s *store.Store) error {
	if _, err := s.Pool().Exec(ctx, `TRUNCATE enrollment_waits`); err != nil {
		return fmt.Errorf("truncate waits: %w", err)
	}
	return analyze(ctx, s, "enrollment_waits")
}

// analyze refreshes planner statistics after a bulk load, as autovacuum
// would shortly after.
func analyze(ctx context.Context, s *store.Store, tables ...string) error {
	for _, t := range tables {
		if _, err := s.Pool().Exec(ctx, `ANALYZE `+pgx.Identifier{t}.Sanitize()); err != nil {
			return fmt.Errorf("analyze %s: %w", t, err)
		}
	}
	return nil
}

// countStepOutcomes counts the step-log lines of a workspace's enrollments
// with the step id and outcome.
func countStepOutcomes(ctx context.Context, s *store.Store, workspaceID uuid.UUID, stepID, outcome string) (int, error) {
	var n int
	err := s.Pool().QueryRow(ctx, `SELECT count(*) FROM enrollment_steps st JOIN enrollments e ON e.id = st.enrollment_id
		WHERE e.workspace_id = $1 AND st.step_id = $2 AND st.outcome = $3`, workspaceID, stepID, outcome).Scan(&n)
	return n, err
}

// activeEnrollments counts a workspace's enrollments still active.
func activeEnrollments(ctx context.Context, s *store.Store, workspaceID uuid.UUID) (int, error) {
	var n int
	err := s.Pool().QueryRow(ctx, `SELECT count(*) FROM enrollments WHERE workspace_id = $1 AND status = 'active'`,
		workspaceID).Scan(&n)
	return n, err
}

// dropPendingIntents deletes intents not yet delivered, so that the next
// run of the flatness phase starts with an empty outbox instead of the
// previous run's backlog.
func dropPendingIntents(ctx context.Context, s *store.Store) (int64, error) {
	tag, err := s.Pool().Exec(ctx, `DELETE FROM outbox WHERE delivered_at IS NULL`)
	if err != nil {
		return 0, fmt.Errorf("drop pending intents: %w", err)
	}
	return tag.RowsAffected(), nil
}

// deliveredIn counts intents the dispatcher delivered in the window.
func deliveredIn(ctx context.Context, s *store.Store, w window) (int, error) {
	var n int
	err := s.Pool().QueryRow(ctx, `SELECT count(*) FROM outbox WHERE delivered_at >= $1 AND delivered_at < $2`,
		w.from, w.to).Scan(&n)
	return n, err
}

// settleDatabase vacuums and analyzes tables after a bulk change and asks
// for a checkpoint, so that the next run meets neither autovacuum nor a
// checkpoint the change set off (a checkpoint needs the pg_checkpoint role
// or superuser; without it the run goes on).
func settleDatabase(ctx context.Context, s *store.Store, tables ...string) error {
	for _, t := range tables {
		if _, err := s.Pool().Exec(ctx, `VACUUM (ANALYZE) `+pgx.Identifier{t}.Sanitize()); err != nil {
			return fmt.Errorf("vacuum %s: %w", t, err)
		}
	}
	_, _ = s.Pool().Exec(ctx, `CHECKPOINT`)
	return nil
}

// cancelClaims cancels the outbox claims still running. With statistics
// taken while the outbox was empty (its steady state), the claim's
// anti-join is planned as a nested loop that rescans every pending intent
// for each candidate; with a backlog of tens of thousands one claim runs
// for minutes and would go on burning a core into the next run. The
// dispatcher logs the cancelled round and claims again.
func cancelClaims(ctx context.Context, s *store.Store) (int, error) {
	var n int
	err := s.Pool().QueryRow(ctx, `SELECT count(pg_cancel_backend(pid)) FROM pg_stat_activity
		WHERE datname = current_database() AND pid <> pg_backend_pid() AND state = 'active'
		  AND query LIKE '%FROM outbox%' AND query LIKE '%FOR UPDATE SKIP LOCKED%'`).Scan(&n)
	if err != nil {
		return 0, fmt.Errorf("cancel claims: %w", err)
	}
	return n, nil
}
