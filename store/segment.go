package store

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"github.com/signalbox/signalbox/conditions"
	"github.com/signalbox/signalbox/decision"
	"strings"
	"time"

	"github.com/google/uuid"
	"github.com/jackc/pgx/v5"

	"github.com/signalbox/signalbox/segment"
)

// Segment is a saved segment definition.
type Segment struct {
	ID         uuid.UUID       `json:"id"`
	Name       string          `json:"name"`
	Definition json.RawMessage `json:"definition"`
	CreatedAt  time.Time       `json:"created_at"`
	UpdatedAt  time.Time       `json:"updated_at"`
}

const segmentColumns = `id, name, definition, created_at, updated_at`

func scanSegment(row pgx.Row) (Segment, error) {
	var s Segment
	err := row.Scan(&s.ID, &s.Name, &s.Definition, &s.CreatedAt, &s.UpdatedAt)
	return s, notFound(err)
}

// CreateSegment saves a validated definition.
func (s *Store) CreateSegment(ctx context.Context, workspaceID uuid.UUID, name string, def json.RawMessage) (Segment, error) {
	return scanSegment(s.pool.QueryRow(ctx, `INSERT INTO segments (id, workspace_id, name, definition)
		VALUES ($1, $2, $3, $4) RETURNING `+segmentColumns, NewID(), workspaceID, name, def))
}

// UpdateSegment replaces a segment's definition.
func (s *Store) UpdateSegment(ctx context.Context, workspaceID, id uuid.UUID, name string, def json.RawMessage) (Segment, error) {
	return scanSegment(s.pool.QueryRow(ctx, `UPDATE segments SET name = $3, definition = $4, updated_at = now()
		WHERE workspace_id = $1 AND id = $2 RETURNING `+segmentColumns, workspaceID, id, name, def))
}

// GetSegment reads one segment.
func (s *Store) GetSegment(ctx context.Context, workspaceID, id uuid.UUID) (Segment, error) {
	return scanSegment(s.pool.QueryRow(ctx, `SELECT `+segmentColumns+` FROM segments
		WHERE workspace_id = $1 AND id = $2`, workspaceID, id))
}

// DeleteSegment deletes a segment; automations that test it see no members.
func (s *Store) DeleteSegment(ctx context.Context, workspaceID, id uuid.UUID) error {
	tag, err := s.pool.Exec(ctx, `DELETE FROM segments WHERE workspace_id = $1 AND id = $2`, workspaceID, id)
	if err != nil {
		return err
	}
	if tag.RowsAffected() == 0 {
		return ErrNotFound
	}
	return nil
}

// ListSegments returns segments newest first, before the cursor id, and
// whether more follow.
func (s *Store) ListSegments(ctx context.Context, workspaceID, before uuid.UUID, limit int) ([]Segment, bool, error) {
	var cursor *uuid.UUID
	if before != uuid.Nil {
		cursor = &before
	}
	rows, err := s.pool.Query(ctx, `SELECT `+segmentColumns+` FROM segments
		WHERE workspace_id = $1 AND ($2::uuid IS NULL OR id < $2) ORDER BY id DESC LIMIT $3`,
		workspaceID, cursor, limit+1)
	if err != nil {
		return nil, false, err
	}
	out, err := pgx.CollectRows(rows, func(r pgx.CollectableRow) (Segment, error) { return scanSegment(r) })
	if err != nil {
		return nil, false, err
	}
	out, more := trimPage(out, limit)
	return out, more, nil
}

// ListAllSegments returns every segment of a workspace (for a contact's
// memberships), at most limit.
func (s *Store) ListAllSegments(ctx context.Context, workspaceID uuid.UUID, limit int) ([]Segment, error) {
	rows, err := s.pool.Query(ctx, `SELECT `+segmentColumns+` FROM segments WHERE workspace_id = $1
		ORDER BY id DESC LIMIT $2`, workspaceID, limit)
	if err != nil {
		return nil, err
	}
	return pgx.CollectRows(rows, func(r pgx.CollectableRow) (Segment, error) { return scanSegment(r) })
}

// CountSegment counts the contacts that match now, with one SQL query.
func (s *Store) CountSegment(ctx context.Context, workspaceID uuid.UUID, m segment.Node) (int64, error) {
	b := s.newSegmentSQL(workspaceID, false)
	where := b.node(m)
	var n int64
	err := s.inAggregateTx(ctx, func(tx pgx.Tx) error {
		return tx.QueryRow(ctx, `SELECT count(*) FROM contacts c WHERE c.workspace_id = $1 AND `+where, b.args...).Scan(&n)
	})
	return n, err
}

// SegmentContacts returns the matching contacts newest first, before the
// cursor id, and whether more follow.
func (s *Store) SegmentContacts(ctx context.Context, workspaceID uuid.UUID, m segment.Node, before uuid.UUID, limit int) ([]Contact, bool, error) {
	b := s.newSegmentSQL(workspaceID, false)
	where := b.node(m)
	var cursor *uuid.UUID
	if before != uuid.Nil {
		cursor = &before
	}
	q := `SELECT ` + contactColumnsAs("c") + ` FROM contacts c WHERE c.workspace_id = $1 AND ` + where +
		` AND (` + b.arg(cursor) + `::uuid IS NULL OR c.id < ` + b.arg(cursor) + `) ORDER BY c.id DESC LIMIT ` + b.arg(limit+1)
	rows, err := s.pool.Query(ctx, q, b.args...)
	if err != nil {
		return nil, false, err
	}
	out, err := pgx.CollectRows(rows, func(r pgx.CollectableRow) (Contact, error) { return scanContact(r) })
	if err != nil {
		return nil, false, err
	}
	out, more := trimPage(out, limit)
	return out, more, nil
}

// SegmentMember reports whether one contact matches now; it reads only
// that contact's events.
func (s *Store) SegmentMember(ctx context.Context, workspaceID, contactID uuid.UUID, m segment.Node) (bool, error) {
	b := s.newSegmentSQL(workspaceID, true)
	where := b.node(m)
	var ok bool
	err := s.pool.QueryRow(ctx, `SELECT `+where+` FROM contacts c WHERE c.workspace_id = $1 AND c.id = `+b.arg(contactID),
		b.args...).Scan(&ok)
	return ok, notFound(err)
}

// segmentSQL compiles a segment's conditions into one SQL predicate over
// contacts c. Set-wise, a condition is "c.id IN (contacts whose grouped
// events pass)", which PostgreSQL runs as one hashed pass over the events
// in the window; when the condition also holds for a contact without any
// such event (count < 3, sum <= 0, performed: false), it is "c.id NOT IN
// (contacts whose grouped events fail)". For one contact (correlated), the
// aggregate reads that contact's timeline instead.
type segmentSQL struct {
	args       []any
	now        time.Time
	cutoff     time.Time
	cutoffArg  string
	correlated bool
}

func (s *Store) newSegmentSQL(ws uuid.UUID, correlated bool) *segmentSQL {
	b := &segmentSQL{now: s.now(), cutoff: s.cutoff(), correlated: correlated}
	b.arg(ws)
	return b
}

func (b *segmentSQL) arg(v any) string {
	b.args = append(b.args, v)
	return fmt.Sprintf("$%d", len(b.args))
}

func (b *segmentSQL) node(n segment.Node) string {
	switch n.Kind() {
	case "all", "any":
		items, join := n.All, " AND "
		if n.Any != nil {
			items, join = n.Any, " OR "
		}
		parts := make([]string, len(items))
		for i, it := range items {
			parts[i] = b.node(it)
		}
		return "(" + strings.Join(parts, join) + ")"
	case "not":
		return "(NOT " + b.node(*n.Not) + ")"
	case "performed":
		return b.performed(n)
	case "goal":
		return b.goal(n.Goal)
	case "last_event":
		return b.recency(n.LastEvent)
	default:
		return b.property(n)
	}
}

// live filters events to the workspace's live, unexpired ones.
func (b *segmentSQL) live() string {
	if b.cutoffArg == "" {
		b.cutoffArg = b.arg(b.cutoff)
	}
	return "e.workspace_id = $1 AND e.deleted_at IS NULL AND e.received_at > " + b.cutoffArg
}

func (b *segmentSQL) window(w *segment.Window) string {
	if w == nil {
		return ""
	}
	since, until := w.Bounds(b.now)
	out := " AND e.occurred_at >= " + b.arg(since)
	if until != nil {
		out += " AND e.occurred_at < " + b.arg(*until)
	}
	return out
}

// aggregate compiles "agg over filtered events op value"; zero says what
// a contact without such events has (nil: it never matches).
func (b *segmentSQL) aggregate(filter, agg, op string, value float64, zero *float64) string {
	sqlOp := map[string]string{">=": ">=", ">": ">", "=": "=", "==": "=", "<=": "<=", "<": "<", "!=": "<>"}[op]
	v := b.arg(value)
	if b.correlated {
		return "coalesce((SELECT " + agg + " FROM events e WHERE e.contact_id = c.id AND " + b.live() + filter +
			") " + sqlOp + " " + v + "::numeric, false)"
	}
	sub := "SELECT e.contact_id FROM events e WHERE " + b.live() + filter + " GROUP BY e.contact_id HAVING "
	if zero != nil && compare(*zero, op, value) {
		return "c.id NOT IN (" + sub + "NOT coalesce(" + agg + " " + sqlOp + " " + v + "::numeric, false))"
	}
	return "c.id IN (" + sub + agg + " " + sqlOp + " " + v + "::numeric)"
}

func compare(a float64, op string, b float64) bool {
	switch op {
	case ">=":
		return a >= b
	case ">":
		return a > b
	case "=", "==":
		return a == b
	case "<=":
		return a <= b
	case "<":
		return a < b
	default:
		return a != b
	}
}

func (b *segmentSQL) performed(n segment.Node) string {
	filter := " AND e.name = " + b.arg(n.Event) + b.window(n.Within)
	if n.Where != nil {
		filter += " AND " + b.where(n.Where.Expr)
	}
	op, value := ">=", 1.0
	if n.Count != nil {
		op, value = n.Count.Op, n.Count.Value
	}
	zero := 0.0
	cond := b.aggregate(filter, "count(*)", op, value, &zero)
	if n.Performed != nil && !*n.Performed {
		return "(NOT " + cond + ")"
	}
	return cond
}

func (b *segmentSQL) goal(g *segment.Goal) string {
	filter := " AND e.goal_type IS NOT NULL"
	if g.Type != "any" {
		filter = " AND e.goal_type = " + b.arg(g.Type)
	}
	filter += b.window(g.Within)
	zero := 0.0
	switch g.Aggregate {
	case "count":
		return b.aggregate(filter, "count(*)", g.Op, g.Value, &zero)
	case "sum":
		return b.aggregate(filter, "coalesce(sum(e.goal_value), 0)", g.Op, g.Value, &zero)
	default:
		return b.aggregate(filter+" AND e.goal_value IS NOT NULL", g.Aggregate+"(e.goal_value)", g.Op, g.Value, nil)
	}
}

func (b *segmentSQL) recency(r *segment.Recency) string {
	filter := ""
	if r.Event != "" {
		filter = " AND e.name = " + b.arg(r.Event)
	}
	if r.Within > 0 {
		since := b.arg(b.now.Add(-r.Within))
		if b.correlated {
			return "EXISTS (SELECT FROM events e WHERE e.contact_id = c.id AND " + b.live() + filter + " AND e.occurred_at >= " + since + ")"
		}
		return "c.id IN (SELECT e.contact_id FROM events e WHERE " + b.live() + filter + " AND e.occurred_at >= " + since + ")"
	}
	before := b.arg(b.now.Add(-r.OlderThan))
	if b.correlated {
		return "coalesce((SELECT max(e.occurred_at) FROM events e WHERE e.contact_id = c.id AND " + b.live() + filter + ") < " + before + ", false)"
	}
	return "c.id IN (SELECT e.contact_id FROM events e WHERE " + b.live() + filter +
		" GROUP BY e.contact_id HAVING max(e.occurred_at) < " + before + ")"
}

func (b *segmentSQL) property(n segment.Node) string {
	k := b.arg(n.Property)
	p := "(c.properties -> " + k + ")"
	val := string(n.Value)
	switch n.Op {
	case "eq":
		return p + " = " + b.arg(val) + "::jsonb"
	case "neq":
		return p + " IS DISTINCT FROM " + b.arg(val) + "::jsonb"
	case "in":
		return "coalesce(" + p + " = ANY(ARRAY(SELECT jsonb_array_elements(" + b.arg(val) + "::jsonb))), false)"
	case "exists":
		if val == "false" {
			return "NOT (c.properties ? " + k + ")"
		}
		return "(c.properties ? " + k + ")"
	case "contains":
		var s string
		_ = json.Unmarshal(n.Value, &s)
		v := b.arg(s)
		return "(CASE jsonb_typeof(" + p + ") WHEN 'string' THEN strpos(c.properties ->> " + k + ", " + v +
			") > 0 WHEN 'array' THEN " + p + " @> jsonb_build_array(" + v + "::text) ELSE false END)"
	default:
		return jsonCompare(p, "c.properties ->> "+k, n.Op, n.Value, b)
	}
}

// jsonCompare orders a JSON value against a number or a string; values of
// another type do not match.
func jsonCompare(jsonExpr, textExpr, op string, value json.RawMessage, b *segmentSQL) string {
	sqlOp := map[string]string{"gt": ">", "gte": ">=", "lt": "<", "lte": "<=", ">": ">", ">=": ">=", "<": "<", "<=": "<="}[op]
	var f float64
	if json.Unmarshal(value, &f) == nil {
		return "(CASE WHEN jsonb_typeof(" + jsonExpr + ") = 'number' THEN (" + textExpr + ")::numeric " + sqlOp + " " +
			b.arg(f) + "::numeric ELSE false END)"
	}
	var s string
	_ = json.Unmarshal(value, &s)
	return "(CASE WHEN jsonb_typeof(" + jsonExpr + ") = 'string' THEN (" + textExpr + ") " + sqlOp + " " +
		b.arg(s) + "::text COLLATE \"C\" ELSE false END)"
}

// where compiles a filter on event properties.
func (b *segmentSQL) where(x *segment.Expr) string {
	switch {
	case x.And != nil || x.Or != nil:
		items, join := x.And, " AND "
		if x.Or != nil {
			items, join = x.Or, " OR "
		}
		parts := make([]string, len(items))
		for i, it := range items {
			parts[i] = b.where(it)
		}
		return "(" + strings.Join(parts, join) + ")"
	case x.Not != nil:
		return "(NOT coalesce(" + b.where(x.Not) + ", false))"
	}
	path := b.arg(x.Path)
	j := "(e.properties #> " + path + "::text[])"
	t := "(e.properties #>> " + path + "::text[])"
	if x.Op == "has" {
		return j + " IS NOT NULL"
	}
	raw, _ := json.Marshal(x.Value)
	switch x.Op {
	case "==":
		return "coalesce(" + j + " = " + b.arg(string(raw)) + "::jsonb, false)"
	case "!=":
		return j + " IS DISTINCT FROM " + b.arg(string(raw)) + "::jsonb"
	case "in":
		return "coalesce(" + j + " = ANY(ARRAY(SELECT jsonb_array_elements(" + b.arg(string(raw)) + "::jsonb))), false)"
	default:
		return jsonCompare(j, t, x.Op, raw, b)
	}
}

// contactColumnsAs is contactColumns qualified by a table alias.
func contactColumnsAs(alias string) string {
	cols := strings.Split(contactColumns, ", ")
	for i, c := range cols {
		cols[i] = alias + "." + c
	}
	return strings.Join(cols, ", ")
}

// readWaitSegments reads, in the record transaction, whether each contact
// with a waiting enrollment is in the segments its wait conditions test
// with in_segment, so the decision sees fresh memberships (including the
// events being recorded).
func (s *Store) readWaitSegments(ctx context.Context, tx pgx.Tx, fresh []decision.Fresh, set decision.Automations, in *decision.Input) error {
	env := set.Conditions()
	if env == nil {
		return nil
	}
	type pair struct {
		ws, contact uuid.UUID
		segment     string
	}
	var pairs []pair
	seen := map[pair]bool{}
	for _, f := range fresh {
		for _, w := range in.Waits[decision.ContactEvent{Contact: f.ContactID, Name: f.Event.Name}] {
			if w.Condition == "" {
				continue
			}
			prog, err := env.Compile(w.Condition, conditions.KindCondition)
			if err != nil {
				continue // the decision records the compile error
			}
			for _, id := range prog.Segments() {
				p := pair{f.WorkspaceID, f.ContactID, id}
				if !seen[p] {
					seen[p] = true
					pairs = append(pairs, p)
				}
			}
		}
	}
	if len(pairs) == 0 {
		return nil
	}
	in.Segments = map[uuid.UUID][]string{}
	for _, p := range pairs {
		ok, err := s.memberIn(ctx, tx, env, p.ws, p.contact, p.segment)
		if err != nil {
			return err
		}
		if ok {
			in.Segments[p.contact] = append(in.Segments[p.contact], p.segment)
		}
	}
	return nil
}

// queryRower runs one query: a pool or a transaction.
type queryRower interface {
	QueryRow(ctx context.Context, sql string, args ...any) pgx.Row
}

// memberIn reports whether a contact is in a segment (by id as written in
// an expression) now; an unknown or deleted segment has no members.
func (s *Store) memberIn(ctx context.Context, q queryRower, env *conditions.Env, ws, contact uuid.UUID, segmentID string) (bool, error) {
	id, err := uuid.Parse(segmentID)
	if err != nil {
		return false, nil
	}
	var def json.RawMessage
	err = q.QueryRow(ctx, `SELECT definition FROM segments WHERE workspace_id = $1 AND id = $2`, ws, id).Scan(&def)
	if errors.Is(err, pgx.ErrNoRows) {
		return false, nil
	}
	if err != nil {
		return false, fmt.Errorf("read segment: %w", err)
	}
	seg, problems := segment.Parse(def, env.SegmentWhere)
	if len(problems) > 0 {
		return false, fmt.Errorf("segment %s no longer parses: %s", id, problems[0])
	}
	b := s.newSegmentSQL(ws, true)
	where := b.node(seg.Match)
	var ok bool
	err = q.QueryRow(ctx, `SELECT `+where+` FROM contacts c WHERE c.workspace_id = $1 AND c.id = `+b.arg(contact), b.args...).Scan(&ok)
	if errors.Is(err, pgx.ErrNoRows) {
		return false, nil
	}
	return ok, err
}

// InSegments returns the ids among segmentIDs whose segment the contact is
// in now (for in_segment in step conditions).
func (s *Store) InSegments(ctx context.Context, env *conditions.Env, ws, contact uuid.UUID, segmentIDs []string) ([]string, error) {
	var out []string
	for _, id := range segmentIDs {
		ok, err := s.memberIn(ctx, s.pool, env, ws, contact, id)
		if err != nil {
			return nil, err
		}
		if ok {
			out = append(out, id)
		}
	}
	return out, nil
}
