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

// Undeclared-event policies of a workspace.
const (
	UndeclaredAccept = "accept"
	UndeclaredReject = "reject"
)

// Schema modes of an event type.
const (
	SchemaFlag    = "flag"
	SchemaEnforce = "enforce"
)

// MaxEventTypes is the most event types one workspace may declare.
const MaxEventTypes = 1000

// ErrTooManyEventTypes is returned when a declaration would take the
// workspace past MaxEventTypes; nothing was declared.
var ErrTooManyEventTypes = errors.New("too many event types")

// ErrUndeclaredEvent is an item's error when its name is not declared and
// the workspace refuses undeclared events; nothing of it was stored.
var ErrUndeclaredEvent = errors.New("event name is not declared")

// SchemaViolation is one way an event's properties break its type's schema.
type SchemaViolation struct {
	// Field is the property at fault as a dotted path ("properties.amount").
	Field string `json:"field"`
	// Pointer locates it in the event (RFC 6901): "/properties/amount".
	Pointer string `json:"pointer"`
	// Keyword is the JSON Schema keyword that failed ("type", "required").
	Keyword string `json:"keyword"`
	Detail  string `json:"detail"`
}

// SchemaError is an item's error when its event breaks an enforced schema;
// nothing of it was stored.
type SchemaError struct {
	Name       string
	Version    int
	Violations []SchemaViolation
}

func (e *SchemaError) Error() string {
	return fmt.Sprintf("event %q breaks schema version %d (%d violations)", e.Name, e.Version, len(e.Violations))
}

// EventType is a declaration as it is stored.
type EventType struct {
	Name        string
	Description string
	SchemaMode  string
	// SchemaVersion is the version in force; nil until a schema is first set.
	SchemaVersion *int
	// Schema is that version's schema; nil when there is none.
	Schema    json.RawMessage
	CreatedAt time.Time
	UpdatedAt time.Time
}

// EventTypeEntry is a name of the catalog, declared or only seen in events,
// with its counts.
type EventTypeEntry struct {
	Name     string
	Declared bool
	// Type is the declaration; nil for a name that is only seen.
	Type *EventType
	// FirstSeenAt and LastSeenAt are the first and last receipt of an event
	// of this name; nil when none was ever recorded.
	FirstSeenAt, LastSeenAt *time.Time
	// CountTotal is the number of unexpired, undeleted events of the name;
	// Count24h those of them received in the current hour and the 24 full
	// hours before it.
	CountTotal, Count24h int64
}

// EventTypePatch changes a declaration; nil fields stay as they are.
type EventTypePatch struct {
	Description *string
	SchemaMode  *string
	// SetSchema makes Schema (nil removes it) the next schema version.
	SetSchema bool
	Schema    json.RawMessage
}

// DeclaredType is what the record path needs of a declaration.
type DeclaredType struct {
	Name    string
	Mode    string
	Version int
	Schema  json.RawMessage
}

// CatalogRules is a workspace's catalog as the record path applies it.
type CatalogRules struct {
	Undeclared string
	Types      []DeclaredType
}

// catalogLockClass is the first key of the advisory lock that makes a
// workspace's declarations take turns, so MaxEventTypes holds exactly.
const catalogLockClass = 0x4354 // "CT"

const eventTypeColumns = `t.name, t.description, t.schema_mode, t.schema_version, s.schema, t.created_at, t.updated_at`

const eventTypeFrom = `event_types t LEFT JOIN event_type_schemas s
	ON s.workspace_id = t.workspace_id AND s.name = t.name AND s.version = t.schema_version`

func scanEventType(row pgx.Row) (EventType, error) {
	var t EventType
	err := row.Scan(&t.Name, &t.Description, &t.SchemaMode, &t.SchemaVersion, &t.Schema, &t.CreatedAt, &t.UpdatedAt)
	return t, notFound(err)
}

// lockCatalog makes the workspace's declaring transactions take turns and
// says how many types it has.
func lockCatalog(ctx context.Context, tx pgx.Tx, ws uuid.UUID) (int, error) {
	if _, err := tx.Exec(ctx, `SELECT pg_advisory_xact_lock($1, hashtext($2::text))`, catalogLockClass, ws); err != nil {
		return 0, fmt.Errorf("catalog lock: %w", err)
	}
	var n int
	err := tx.QueryRow(ctx, `SELECT count(*) FROM event_types WHERE workspace_id = $1`, ws).Scan(&n)
	return n, err
}

// nextSchemaVersion adds schema as the name's next version and returns it.
// Versions never repeat, also across a delete and a new declaration.
func nextSchemaVersion(ctx context.Context, tx pgx.Tx, ws uuid.UUID, name string, schema json.RawMessage) (int, error) {
	var v int
	var doc *string
	if schema != nil {
		s := string(schema)
		doc = &s
	}
	err := tx.QueryRow(ctx, `INSERT INTO event_type_schemas (workspace_id, name, version, schema)
		SELECT $1, $2, coalesce(max(version), 0) + 1, $3::jsonb FROM event_type_schemas WHERE workspace_id = $1 AND name = $2
		RETURNING version`, ws, name, doc).Scan(&v)
	if err != nil {
		return 0, fmt.Errorf("add schema version: %w", err)
	}
	return v, nil
}

// CreateEventType declares a name. It returns ErrConflict when the name is
// already declared and ErrTooManyEventTypes at the workspace's limit.
func (s *Store) CreateEventType(ctx context.Context, ws uuid.UUID, t EventType) (EventType, error) {
	var out EventType
	err := s.inTx(ctx, func(tx pgx.Tx) error {
		n, err := lockCatalog(ctx, tx, ws)
		if err != nil {
			return err
		}
		var exists bool
		if err := tx.QueryRow(ctx, `SELECT EXISTS (SELECT 1 FROM event_types WHERE workspace_id = $1 AND name = $2)`,
			ws, t.Name).Scan(&exists); err != nil {
			return err
		}
		if exists {
			return ErrConflict
		}
		if n >= MaxEventTypes {
			return ErrTooManyEventTypes
		}
		var version *int
		if t.Schema != nil {
			v, err := nextSchemaVersion(ctx, tx, ws, t.Name, t.Schema)
			if err != nil {
				return err
			}
			version = &v
		}
		if _, err := tx.Exec(ctx, `INSERT INTO event_types (workspace_id, name, description, schema_mode, schema_version)
			VALUES ($1, $2, $3, $4, $5)`, ws, t.Name, t.Description, t.SchemaMode, version); err != nil {
			return fmt.Errorf("declare event type: %w", err)
		}
		out, err = scanEventType(tx.QueryRow(ctx, `SELECT `+eventTypeColumns+` FROM `+eventTypeFrom+`
			WHERE t.workspace_id = $1 AND t.name = $2`, ws, t.Name))
		return err
	})
	return out, err
}

// UpdateEventType applies a patch to a declaration; a schema given makes
// the next version. ErrNotFound when the name is not declared.
func (s *Store) UpdateEventType(ctx context.Context, ws uuid.UUID, name string, p EventTypePatch) (EventType, error) {
	var out EventType
	err := s.inTx(ctx, func(tx pgx.Tx) error {
		var cur EventType
		var err error
		cur, err = scanEventType(tx.QueryRow(ctx, `SELECT `+eventTypeColumns+` FROM `+eventTypeFrom+`
			WHERE t.workspace_id = $1 AND t.name = $2 FOR UPDATE OF t`, ws, name))
		if err != nil {
			return err
		}
		version := cur.SchemaVersion
		if p.SetSchema {
			v, err := nextSchemaVersion(ctx, tx, ws, name, p.Schema)
			if err != nil {
				return err
			}
			version = &v
		}
		if _, err := tx.Exec(ctx, `UPDATE event_types SET description = coalesce($3, description),
			schema_mode = coalesce($4, schema_mode), schema_version = $5, updated_at = now()
			WHERE workspace_id = $1 AND name = $2`, ws, name, p.Description, p.SchemaMode, version); err != nil {
			return fmt.Errorf("update event type: %w", err)
		}
		out, err = scanEventType(tx.QueryRow(ctx, `SELECT `+eventTypeColumns+` FROM `+eventTypeFrom+`
			WHERE t.workspace_id = $1 AND t.name = $2`, ws, name))
		return err
	})
	return out, err
}

// DeleteEventType removes a declaration; the events of the name stay, and
// its schema versions are kept so a new declaration never reuses one.
func (s *Store) DeleteEventType(ctx context.Context, ws uuid.UUID, name string) error {
	tag, err := s.pool.Exec(ctx, `DELETE FROM event_types WHERE workspace_id = $1 AND name = $2`, ws, name)
	if err != nil {
		return err
	}
	if tag.RowsAffected() == 0 {
		return ErrNotFound
	}
	return nil
}

// DeclareEventTypes declares every name given that is not declared yet
// (with no description and no schema), or with all set, every name seen
// in events and not declared; names already declared are left alone. It
// returns the names concerned in order, and ErrTooManyEventTypes (nothing
// declared) when they would take the workspace past MaxEventTypes.
func (s *Store) DeclareEventTypes(ctx context.Context, ws uuid.UUID, names []string, all bool) ([]string, error) {
	var out []string
	err := s.inTx(ctx, func(tx pgx.Tx) error {
		n, err := lockCatalog(ctx, tx, ws)
		if err != nil {
			return err
		}
		if all {
			rows, err := tx.Query(ctx, `SELECT DISTINCT c.name FROM event_name_counts c
				WHERE c.workspace_id = $1
				  AND NOT EXISTS (SELECT 1 FROM event_types t WHERE t.workspace_id = c.workspace_id AND t.name = c.name)
				ORDER BY 1`, ws)
			if err != nil {
				return err
			}
			if names, err = pgx.CollectRows(rows, pgx.RowTo[string]); err != nil {
				return err
			}
		}
		rows, err := tx.Query(ctx, `INSERT INTO event_types (workspace_id, name)
			SELECT $1, u.name FROM unnest($2::text[]) AS u(name) ORDER BY 2
			ON CONFLICT (workspace_id, name) DO NOTHING RETURNING name`, ws, names)
		if err != nil {
			return fmt.Errorf("declare event types: %w", err)
		}
		added, err := pgx.CollectRows(rows, pgx.RowTo[string])
		if err != nil {
			return fmt.Errorf("declare event types: %w", err)
		}
		if n+len(added) > MaxEventTypes {
			return ErrTooManyEventTypes
		}
		out = names
		return nil
	})
	return out, err
}

// GetEventType reads one name of the catalog, declared or seen, with its
// counts and schema. ErrNotFound when it is neither.
func (s *Store) GetEventType(ctx context.Context, ws uuid.UUID, name string) (EventTypeEntry, error) {
	entries, err := s.eventTypeEntries(ctx, ws, catalogQuery{names: []string{name}, limit: 1})
	if err != nil {
		return EventTypeEntry{}, err
	}
	if len(entries) == 0 {
		return EventTypeEntry{}, ErrNotFound
	}
	return entries[0], nil
}

// EventTypesByName reads the catalog entries of these names (those
// declared or seen), in name order.
func (s *Store) EventTypesByName(ctx context.Context, ws uuid.UUID, names []string) ([]EventTypeEntry, error) {
	if len(names) == 0 {
		return nil, nil
	}
	return s.eventTypeEntries(ctx, ws, catalogQuery{names: names, limit: len(names)})
}

// EventTypeFilter selects catalog entries for ListEventTypes.
type EventTypeFilter struct {
	// Declared, when set, keeps only declared (true) or undeclared names.
	Declared *bool
	// After is the last name of the previous page.
	After string
	Limit int
}

// ListEventTypes lists declared and seen names in name order, with the
// name to continue after, "" on the last page.
func (s *Store) ListEventTypes(ctx context.Context, ws uuid.UUID, f EventTypeFilter) ([]EventTypeEntry, string, error) {
	entries, err := s.eventTypeEntries(ctx, ws, catalogQuery{declared: f.Declared, after: f.After, limit: f.Limit + 1})
	if err != nil {
		return nil, "", err
	}
	entries, more := trimPage(entries, f.Limit)
	if !more {
		return entries, "", nil
	}
	return entries, entries[len(entries)-1].Name, nil
}

type catalogQuery struct {
	names    []string
	declared *bool
	after    string
	limit    int
}

// eventTypeEntries reads catalog entries. The counters and the expired
// events not yet swept are read in one snapshot, so the counts are exact:
// reads hide expired events at once, and the sweep that deletes them takes
// them off the counters in the same statement.
func (s *Store) eventTypeEntries(ctx context.Context, ws uuid.UUID, q catalogQuery) ([]EventTypeEntry, error) {
	now := s.now()
	window := CountWindowStart(now)
	var out []EventTypeEntry
	err := pgx.BeginTxFunc(ctx, s.pool, pgx.TxOptions{IsoLevel: pgx.RepeatableRead, AccessMode: pgx.ReadOnly}, func(tx pgx.Tx) error {
		// Each side is cut to the page before they are joined: a name of
		// the page is among the first $6 of its side. The counters stream
		// in name order from their primary key, so a page reads only its
		// names' rows.
		rows, err := tx.Query(ctx, `WITH t AS (SELECT `+eventTypeColumns+` FROM `+eventTypeFrom+`
				WHERE t.workspace_id = $1 AND t.name > $2 AND ($3::text[] IS NULL OR t.name = ANY($3))
				  AND $4::bool IS DISTINCT FROM false
				ORDER BY t.name LIMIT $6),
			c AS (
				SELECT name, sum(count)::bigint AS total, coalesce(sum(count) FILTER (WHERE hour >= $5), 0)::bigint AS day,
				       min(first_at) AS first_at, max(last_at) AS last_at
				FROM event_name_counts n
				WHERE workspace_id = $1 AND name > $2 AND ($3::text[] IS NULL OR name = ANY($3))
				  AND ($4::bool IS DISTINCT FROM true OR name IN (SELECT name FROM t))
				  AND ($4::bool IS DISTINCT FROM false OR NOT EXISTS (
				       SELECT 1 FROM event_types d WHERE d.workspace_id = $1 AND d.name = n.name))
				GROUP BY name ORDER BY name LIMIT $6)
			SELECT coalesce(t.name, c.name), t.name IS NOT NULL, t.description, t.schema_mode, t.schema_version,
			       t.schema, t.created_at, t.updated_at, c.first_at, c.last_at, coalesce(c.total, 0), coalesce(c.day, 0)
			FROM t FULL JOIN c ON c.name = t.name
			WHERE ($4::bool IS NULL OR (t.name IS NOT NULL) = $4)
			ORDER BY 1 LIMIT $6`, ws, q.after, q.names, q.declared, window, q.limit)
		if err != nil {
			return err
		}
		for rows.Next() {
			var (
				e        EventTypeEntry
				t        EventType
				desc     *string
				mode     *string
				created  *time.Time
				updated  *time.Time
				firstAt  *time.Time
				lastAt   *time.Time
				total    int64
				inWindow int64
			)
			if err := rows.Scan(&e.Name, &e.Declared, &desc, &mode, &t.SchemaVersion, &t.Schema, &created, &updated,
				&firstAt, &lastAt, &total, &inWindow); err != nil {
				rows.Close()
				return err
			}
			if e.Declared {
				t.Name, t.Description, t.SchemaMode, t.CreatedAt, t.UpdatedAt = e.Name, *desc, *mode, *created, *updated
				e.Type = &t
			}
			e.FirstSeenAt, e.LastSeenAt, e.CountTotal, e.Count24h = firstAt, lastAt, total, inWindow
			out = append(out, e)
		}
		if err := rows.Err(); err != nil {
			return err
		}
		if len(out) == 0 {
			return nil
		}
		names := make([]string, len(out))
		for i, e := range out {
			names[i] = e.Name
		}
		// Expired events still in the table are on the counters until the
		// sweep deletes them; reads already hide them. Few are ever waiting
		// (the sweep runs every minute), and the received_at index finds them.
		rows, err = tx.Query(ctx, `SELECT name, count(*), count(*) FILTER (WHERE received_at >= $4)
			FROM events WHERE received_at <= $2 AND workspace_id = $1 AND deleted_at IS NULL AND name = ANY($3)
			GROUP BY name`, ws, s.cutoff(), names, window)
		if err != nil {
			return err
		}
		expired := map[string][2]int64{}
		var (
			name     string
			all, day int64
		)
		if _, err := pgx.ForEachRow(rows, []any{&name, &all, &day}, func() error {
			expired[name] = [2]int64{all, day}
			return nil
		}); err != nil {
			return err
		}
		for i := range out {
			x := expired[out[i].Name]
			out[i].CountTotal -= x[0]
			out[i].Count24h -= x[1]
		}
		return nil
	})
	return out, err
}

// CountWindowStart is where count_24h begins at now: the start of the
// 24th full hour before the current one, so the window is the current
// hour so far plus the 24 full hours before it.
func CountWindowStart(now time.Time) time.Time {
	return now.UTC().Truncate(time.Hour).Add(-24 * time.Hour)
}

// LoadCatalogRules reads what the record path applies for a workspace: its
// undeclared-event policy and every declared type with its current schema.
func (s *Store) LoadCatalogRules(ctx context.Context, ws uuid.UUID) (CatalogRules, error) {
	var r CatalogRules
	if err := s.pool.QueryRow(ctx, `SELECT undeclared_events FROM workspaces WHERE id = $1`, ws).Scan(&r.Undeclared); err != nil {
		return r, notFound(err)
	}
	rows, err := s.pool.Query(ctx, `SELECT t.name, t.schema_mode, coalesce(t.schema_version, 0), s.schema
		FROM `+eventTypeFrom+` WHERE t.workspace_id = $1`, ws)
	if err != nil {
		return r, err
	}
	r.Types, err = pgx.CollectRows(rows, func(row pgx.CollectableRow) (DeclaredType, error) {
		var d DeclaredType
		err := row.Scan(&d.Name, &d.Mode, &d.Version, &d.Schema)
		return d, err
	})
	return r, err
}

// UndeclaredEvents reads the workspace's undeclared-event policy.
func (s *Store) UndeclaredEvents(ctx context.Context, ws uuid.UUID) (string, error) {
	var v string
	err := s.pool.QueryRow(ctx, `SELECT undeclared_events FROM workspaces WHERE id = $1`, ws).Scan(&v)
	return v, notFound(err)
}

// SetUndeclaredEvents changes the workspace's undeclared-event policy.
func (s *Store) SetUndeclaredEvents(ctx context.Context, ws uuid.UUID, policy string) error {
	tag, err := s.pool.Exec(ctx, `UPDATE workspaces SET undeclared_events = $2 WHERE id = $1`, ws, policy)
	if err != nil {
		return err
	}
	if tag.RowsAffected() == 0 {
		return ErrNotFound
	}
	return nil
}

// DeclaredNames says which of names the workspace declares.
func (s *Store) DeclaredNames(ctx context.Context, ws uuid.UUID, names []string) (map[string]bool, error) {
	rows, err := s.pool.Query(ctx, `SELECT name FROM event_types WHERE workspace_id = $1 AND name = ANY($2)`, ws, names)
	if err != nil {
		return nil, err
	}
	out := map[string]bool{}
	var n string
	_, err = pgx.ForEachRow(rows, []any{&n}, func() error { out[n] = true; return nil })
	return out, err
}

// schemaVersion is an event's schema_version column: NULL for none.
func schemaVersion(v int) *int32 {
	if v == 0 {
		return nil
	}
	n := int32(v)
	return &n
}

// schemaErrors is an event's schema_errors column: NULL (a nil interface)
// when it conforms, the violations as JSON text otherwise.
func schemaErrors(v []SchemaViolation) any {
	if len(v) == 0 {
		return nil
	}
	b, err := json.Marshal(v)
	if err != nil {
		return nil
	}
	return string(b)
}
