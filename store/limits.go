package store

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"slices"
	"time"

	"github.com/google/uuid"
	"github.com/jackc/pgx/v5"

	"github.com/signalbox/signalbox/decision"
	"github.com/signalbox/signalbox/definition"
	"github.com/signalbox/signalbox/intent"
)

// limitLockClass is the first key of the lock that makes the transactions
// that start enrollments of an automation with limits take turns, so each
// counts what the others committed: the limits hold exactly under
// concurrent requests.
const limitLockClass = 0x464C // "FL"

// room is what an automation's limits leave in this transaction: the
// enrollments it may still start, overall and per contact, and whether
// earlier ones wait in its queue (new ones then queue behind them).
type room struct {
	limits    *definition.Limits
	total     int
	contacts  map[uuid.UUID]int
	queueBusy bool
}

// grant takes room for one enrollment of the contact, or names the limit
// that refuses it.
func (r *room) grant(contact uuid.UUID) string {
	if r.queueBusy && r.limits.Queues() {
		return r.full()
	}
	if r.limits.MaxEnrollments != nil && r.total <= 0 {
		return "max_enrollments"
	}
	if r.limits.PerContact != nil && r.contacts[contact] <= 0 {
		return "per_contact"
	}
	r.total--
	r.contacts[contact]--
	return ""
}

// full names the limit a queue that is not empty stands for.
func (r *room) full() string {
	if r.limits.MaxEnrollments != nil {
		return "max_enrollments"
	}
	return "per_contact"
}

// lockLimits takes the automations' limit locks, in a fixed order.
func lockLimits(ctx context.Context, tx pgx.Tx, automations []uuid.UUID) error {
	slices.SortFunc(automations, func(a, b uuid.UUID) int { return bytes.Compare(a[:], b[:]) })
	automations = slices.Compact(automations)
	b := &pgx.Batch{}
	for _, a := range automations {
		b.Queue(`SELECT pg_advisory_xact_lock($1, hashtext($2::text))`, limitLockClass, a)
	}
	if err := tx.SendBatch(ctx, b).Close(); err != nil {
		return fmt.Errorf("lock limits: %w", err)
	}
	return nil
}

// readRoom reads, under the automation's limit lock, how many enrollments
// it started in each window (by PostgreSQL's clock) and whether its queue
// holds any.
func readRoom(ctx context.Context, tx pgx.Tx, automationID uuid.UUID, l *definition.Limits, contacts []uuid.UUID) (*room, error) {
	r := &room{limits: l, contacts: map[uuid.UUID]int{}}
	b := &pgx.Batch{}
	if m := l.MaxEnrollments; m != nil {
		b.Queue(`SELECT count(*) FROM enrollments WHERE automation_id = $1 AND started_at > now() - $2::interval`,
			automationID, m.Per.Std()).QueryRow(func(row pgx.Row) error {
			var n int
			err := row.Scan(&n)
			r.total = m.Count - n
			return err
		})
	}
	if p := l.PerContact; p != nil {
		for _, c := range contacts {
			r.contacts[c] = p.Count
		}
		b.Queue(`SELECT contact_id, count(*) FROM enrollments WHERE automation_id = $1 AND contact_id = ANY($2)
			AND started_at > now() - $3::interval GROUP BY contact_id`, automationID, contacts, p.Per.Std()).Query(
			func(rows pgx.Rows) error {
				var (
					c uuid.UUID
					n int
				)
				_, err := pgx.ForEachRow(rows, []any{&c, &n}, func() error { r.contacts[c] = p.Count - n; return nil })
				return err
			})
	}
	if l.Queues() {
		b.Queue(`SELECT EXISTS (SELECT 1 FROM enrollment_queue WHERE automation_id = $1)`, automationID).QueryRow(
			func(row pgx.Row) error { return row.Scan(&r.queueBusy) })
	}
	if err := tx.SendBatch(ctx, b).Close(); err != nil {
		return nil, fmt.Errorf("read limits: %w", err)
	}
	return r, nil
}

// claimLimits decides, in the order the events came, which enrollments
// have room under their automation's limits; it returns the refused ones
// with the limit that refused each.
func claimLimits(ctx context.Context, tx pgx.Tx, claims []decision.LimitClaim) (map[uuid.UUID]string, error) {
	limited := map[uuid.UUID]string{}
	if len(claims) == 0 {
		return limited, nil
	}
	var automations []uuid.UUID
	contacts := map[uuid.UUID][]uuid.UUID{}
	for _, c := range claims {
		automations = append(automations, c.AutomationID)
		contacts[c.AutomationID] = append(contacts[c.AutomationID], c.ContactID)
	}
	if err := lockLimits(ctx, tx, automations); err != nil {
		return nil, err
	}
	rooms := map[uuid.UUID]*room{}
	for _, c := range claims {
		r, ok := rooms[c.AutomationID]
		if !ok {
			var err error
			if r, err = readRoom(ctx, tx, c.AutomationID, c.Limits, contacts[c.AutomationID]); err != nil {
				return nil, err
			}
			rooms[c.AutomationID] = r
		}
		if limit := r.grant(c.ContactID); limit != "" {
			limited[c.EnrollmentID] = limit
		}
	}
	return limited, nil
}

// queueEnrollments keeps the enrollments that wait for room, in order.
func queueEnrollments(ctx context.Context, tx pgx.Tx, queued []decision.Enrollment) error {
	if len(queued) == 0 {
		return nil
	}
	rows := make([][]any, len(queued))
	for i, e := range queued {
		raw, err := json.Marshal(e.Start)
		if err != nil {
			return fmt.Errorf("encode queued start: %w", err)
		}
		rows[i] = []any{e.Start.EnrollmentID, e.Start.WorkspaceID, e.Start.AutomationID, e.Start.ContactID,
			json.RawMessage(raw), nullString(e.Trace)}
	}
	if _, err := tx.CopyFrom(ctx, pgx.Identifier{"enrollment_queue"},
		[]string{"enrollment_id", "workspace_id", "automation_id", "contact_id", "start", "trace_parent"},
		pgx.CopyFromRows(rows)); err != nil {
		return fmt.Errorf("queue enrollments: %w", err)
	}
	return nil
}

// ReleaseQueued starts queued enrollments whose automation's limits now
// have room, oldest first, and returns how many it started. A queued
// enrollment of an archived automation is dropped; one of a disabled
// automation waits until it is enabled again; one whose automation no
// longer has queueing limits starts at once.
func (s *Store) ReleaseQueued(ctx context.Context) (int, error) {
	rows, err := s.pool.Query(ctx, `SELECT DISTINCT automation_id FROM enrollment_queue`)
	if err != nil {
		return 0, err
	}
	automations, err := pgx.CollectRows(rows, pgx.RowTo[uuid.UUID])
	if err != nil {
		return 0, err
	}
	started := 0
	for _, a := range automations {
		n, err := s.releaseAutomation(ctx, a)
		if err != nil {
			return started, err
		}
		started += n
	}
	return started, nil
}

// releaseQueuedPage bounds one automation's release transaction.
const releaseQueuedPage = 1000

func (s *Store) releaseAutomation(ctx context.Context, automationID uuid.UUID) (int, error) {
	started := 0
	err := s.inTx(ctx, func(tx pgx.Tx) error {
		if err := lockLimits(ctx, tx, []uuid.UUID{automationID}); err != nil {
			return err
		}
		var (
			enabled  bool
			archived *time.Time
			raw      json.RawMessage
		)
		err := tx.QueryRow(ctx, `SELECT a.enabled, a.archived_at, v.definition FROM automations a
			JOIN automation_versions v ON v.automation_id = a.id AND v.version = a.current_version WHERE a.id = $1`,
			automationID).Scan(&enabled, &archived, &raw)
		if errors.Is(err, pgx.ErrNoRows) {
			return nil
		}
		if err != nil {
			return err
		}
		if archived != nil {
			_, err := tx.Exec(ctx, `DELETE FROM enrollment_queue WHERE automation_id = $1`, automationID)
			return err
		}
		if !enabled {
			return nil
		}
		var def definition.Automation
		if err := json.Unmarshal(raw, &def); err != nil {
			return fmt.Errorf("automation %s: %w", automationID, err)
		}
		rows, err := tx.Query(ctx, `SELECT start, trace_parent FROM enrollment_queue WHERE automation_id = $1
			ORDER BY seq LIMIT $2`, automationID, releaseQueuedPage)
		if err != nil {
			return err
		}
		type item struct {
			start intent.Start
			trace *string
		}
		items, err := pgx.CollectRows(rows, func(r pgx.CollectableRow) (item, error) {
			var it item
			err := r.Scan(&it.start, &it.trace)
			return it, err
		})
		if err != nil {
			return err
		}
		r := &room{total: len(items), contacts: map[uuid.UUID]int{}}
		if def.Limits != nil {
			contacts := make([]uuid.UUID, len(items))
			for i, it := range items {
				contacts[i] = it.start.ContactID
			}
			limits := *def.Limits
			limits.OnLimit = definition.OnLimitSkip // the queue's own items are not behind themselves
			if r, err = readRoom(ctx, tx, automationID, &limits, contacts); err != nil {
				return err
			}
		} else {
			r.limits = &definition.Limits{}
		}
		var (
			enrollments []decision.Enrollment
			effects     []decision.Effect
			ids         []uuid.UUID
		)
		for _, it := range items {
			if r.limits.MaxEnrollments != nil && r.total <= 0 {
				break // strictly in order overall
			}
			if def.Limits != nil && r.grant(it.start.ContactID) != "" {
				continue // this contact waits; others behind it may go
			}
			st := it.start
			trace := ""
			if it.trace != nil {
				trace = *it.trace
			}
			e := decision.Enrollment{Start: &st, WorkflowID: intent.WorkflowID(st.EnrollmentID), ExitOn: st.Definition.ExitOn,
				Once: st.Definition.Trigger.Once(), Trace: trace}
			enrollments = append(enrollments, e)
			effects = append(effects, decision.Effect{WorkspaceID: st.WorkspaceID, WorkflowID: e.WorkflowID,
				Kind: intent.KindStart, Payload: &st, Trace: trace})
			ids = append(ids, st.EnrollmentID)
		}
		if len(ids) == 0 {
			return nil
		}
		if _, err := tx.Exec(ctx, `DELETE FROM enrollment_queue WHERE enrollment_id = ANY($1)`, ids); err != nil {
			return err
		}
		started = len(ids)
		return s.writeDecided(ctx, tx, enrollments, effects, nil)
	})
	return started, err
}

// QueuedCount is how many enrollments of the automation wait for room.
func (s *Store) QueuedCount(ctx context.Context, automationID uuid.UUID) (int, error) {
	var n int
	err := s.pool.QueryRow(ctx, `SELECT count(*) FROM enrollment_queue WHERE automation_id = $1`, automationID).Scan(&n)
	return n, err
}
