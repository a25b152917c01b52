package store

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"math/rand/v2"
	"slices"
	"strings"
	"time"

	"github.com/google/uuid"
	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgtype"

	"github.com/signalbox/signalbox/decision"
	"github.com/signalbox/signalbox/event"
)

// ErrContactNotFound is an item's error when it names a contact that does
// not exist and does not ask for it to be created.
var ErrContactNotFound = errors.New("contact not found")

// ErrExternalIDConflict is an item's error when its external_id already
// names an event of another contact or another name; EventResult.EventID
// is then that existing event, and nothing changed.
var ErrExternalIDConflict = errors.New("external_id names another event")

// QuotaError says a request would take its workspace past the plan's hard
// cap for the month; nothing of that request is stored.
type QuotaError struct {
	Limit, HardCap, Used int64
}

func (e *QuotaError) Error() string {
	return fmt.Sprintf("monthly event quota exceeded: %d of %d used (hard cap %d)", e.Used, e.Limit, e.HardCap)
}

// EventInput is one validated event to record.
type EventInput struct {
	// ContactID or Email names the contact; exactly one is set.
	ContactID uuid.UUID
	Email     string
	// CreateIfMissing creates a contact with Email when none has it, with
	// ContactName as its first name.
	CreateIfMissing bool
	ContactName     string
	// ContactPatch, when not empty, updates the contact (Email is ignored).
	ContactPatch *ContactPatch

	Name       string
	Properties json.RawMessage
	ExternalID string
	GoalType   string
	// GoalValue is a decimal number as text, "" when there is none.
	GoalValue  string
	OccurredAt time.Time
	// EmitDepth is set on events that automations emit; see
	// decision.MaxDepth.
	EmitDepth int

	// The catalog's verdict (package catalog, applied by the recorder):
	// SchemaVersion is the version of the type's schema the properties were
	// checked against (0: none), SchemaErrors the violations found, kept
	// with the event (flag mode). Refused, when set, is the item's error
	// (ErrUndeclaredEvent or a *SchemaError): nothing of it is stored.
	SchemaVersion int
	SchemaErrors  []SchemaViolation
	Refused       error
}

// event is the input as automations see it once recorded with id at at.
func (e *EventInput) event(id uuid.UUID, at time.Time) event.Event {
	return event.Event{ID: id, Name: e.Name, Properties: e.Properties, OccurredAt: e.OccurredAt, Depth: e.EmitDepth,
		ReceivedAt: at}
}

// EventResult is what happened to one EventInput.
type EventResult struct {
	EventID        uuid.UUID
	ContactID      uuid.UUID
	ContactCreated bool
	// Duplicate is true when an event with the same external_id was already
	// recorded; the stored event may have been updated but is not new.
	Duplicate bool
	// Err is ErrContactNotFound, ErrExternalIDConflict or nil.
	Err error
	// Triggered, Resumed and Exited count the enrollments this event
	// started, resumed from a wait, and ended; each is an intent in the
	// outbox.
	Triggered, Resumed, Exited int
}

// RecordRequest is one API request's events, all of one workspace.
type RecordRequest struct {
	WorkspaceID uuid.UUID
	Plan        Plan
	Events      []EventInput
	// TraceParent is the W3C trace context of the request; intents carry
	// it so a trace follows the event into Temporal.
	TraceParent string
	// IdempotencyKey, when set, makes a retry of the request (the same key
	// and RequestHash, the hash of its body) get the first outcome, with
	// nothing recorded again; the same key with another hash is refused.
	IdempotencyKey string
	RequestHash    []byte
	// Delivery, when set, is the inbound source's payload this request
	// records (with at most one event): it is kept in the same transaction,
	// its status decided by the event's outcome (DeliveryOutcome).
	Delivery *DeliveryInput
}

// RecordOutcome is the result of one RecordRequest.
type RecordOutcome struct {
	Results []EventResult
	// Tracked is the workspace's count for the month including this request.
	Tracked int64
	// Intents is the number of outbox intents the request wrote.
	Intents int
	// Replayed says the outcome is the one kept for the request's
	// idempotency key: nothing was recorded this time.
	Replayed bool
	// KeyReused says the request's idempotency key was used before with
	// another body; nothing was recorded and Results is empty.
	KeyReused bool
}

// Record stores the events of several requests in one transaction: contacts
// are resolved and created for the whole group with a few set-based queries,
// events are copied in bulk, and usage is counted once per workspace. It
// fails as a whole (a *QuotaError names the workspace's limit), so callers
// that group unrelated requests retry them one by one on error.
func (s *Store) Record(ctx context.Context, reqs []*RecordRequest) ([]RecordOutcome, error) {
	var set decision.Automations
	if s.automator != nil {
		ids := make([]uuid.UUID, 0, 1)
		for _, r := range reqs {
			if !slices.Contains(ids, r.WorkspaceID) {
				ids = append(ids, r.WorkspaceID)
			}
		}
		var err error
		if set, err = s.automator.Load(ctx, ids); err != nil {
			return nil, fmt.Errorf("load automations: %w", err)
		}
	}
	var outcomes []RecordOutcome
	err := s.inRecordTx(ctx, func(tx pgx.Tx) error {
		var err error
		outcomes, err = s.record(ctx, tx, reqs, set)
		return err
	})
	if err != nil {
		return nil, err
	}
	return outcomes, nil
}

// itemRef addresses one event of one request.
type itemRef struct{ req, item int }

type contactKey struct {
	ws    uuid.UUID
	email string
}

func (s *Store) record(ctx context.Context, tx pgx.Tx, group []*RecordRequest, set decision.Automations) ([]RecordOutcome, error) {
	outs := make([]RecordOutcome, len(group))
	keys, err := claimIdempotencyKeys(ctx, tx, group, outs)
	if err != nil {
		return nil, err
	}
	reqs := make([]*RecordRequest, len(keys.work))
	for n, i := range keys.work {
		reqs[n] = group[i]
	}
	out, err := s.recordNew(ctx, tx, reqs, set)
	if err != nil {
		return nil, err
	}
	for n, i := range keys.work {
		outs[i] = out[n]
	}
	if err := keepOutcomes(ctx, tx, group, outs, keys); err != nil {
		return nil, err
	}
	return outs, nil
}

// recordNew records requests that are not replays.
func (s *Store) recordNew(ctx context.Context, tx pgx.Tx, reqs []*RecordRequest, set decision.Automations) ([]RecordOutcome, error) {
	out := make([]RecordOutcome, len(reqs))
	if len(reqs) == 0 {
		return out, nil
	}
	for i, r := range reqs {
		out[i].Results = make([]EventResult, len(r.Events))
		for j, e := range r.Events {
			out[i].Results[j].Err = e.Refused
		}
	}
	if err := precheckExternalIDs(ctx, tx, reqs, out); err != nil {
		return nil, err
	}
	if err := s.resolveContacts(ctx, tx, reqs, out); err != nil {
		return nil, err
	}
	at, automating, err := stamp(ctx, tx, reqs, out, set)
	if err != nil {
		return nil, err
	}
	var roll rollupDelta
	if err := s.insertEvents(ctx, tx, reqs, out, at, &roll); err != nil {
		return nil, err
	}
	// Contacts are patched once the events are in, so an item refused on
	// the way (an external_id conflict) changes nothing.
	if err := patchContacts(ctx, tx, reqs, out); err != nil {
		return nil, err
	}
	if err := s.countUsage(ctx, tx, reqs, out, at, &roll); err != nil {
		return nil, err
	}
	if err := s.automate(ctx, tx, reqs, out, set, at, automating); err != nil {
		return nil, err
	}
	for i := range out {
		for _, r := range out[i].Results {
			out[i].Intents += r.Triggered + r.Resumed + r.Exited
		}
	}
	return out, nil
}

// resolveContacts fills ContactID (or Err) and ContactCreated of every
// result, creating and patching contacts as the inputs ask.
func (s *Store) resolveContacts(ctx context.Context, tx pgx.Tx, reqs []*RecordRequest, out []RecordOutcome) error {
	byEmail := map[contactKey][]itemRef{}
	byID := map[uuid.UUID][]itemRef{}
	for ri, r := range reqs {
		for ii, e := range r.Events {
			if out[ri].Results[ii].Err != nil {
				continue
			}
			ref := itemRef{ri, ii}
			if e.ContactID != uuid.Nil {
				byID[e.ContactID] = append(byID[e.ContactID], ref)
			} else {
				k := contactKey{r.WorkspaceID, e.Email}
				byEmail[k] = append(byEmail[k], ref)
			}
		}
	}
	found := map[contactKey]uuid.UUID{}
	if len(byEmail) > 0 {
		keys := sortedKeys(byEmail)
		if err := lookupEmails(ctx, tx, keys, found); err != nil {
			return err
		}
		// Create the missing contacts that some item asked for, in key
		// order so that concurrent transactions take locks alike.
		var (
			newIDs, newWS []uuid.UUID
			newEmails     []string
			newNames      []*string
			missing       []contactKey
		)
		for _, k := range keys {
			if _, ok := found[k]; ok {
				continue
			}
			for _, ref := range byEmail[k] {
				e := reqs[ref.req].Events[ref.item]
				if e.CreateIfMissing {
					newIDs = append(newIDs, NewID())
					newWS = append(newWS, k.ws)
					newEmails = append(newEmails, k.email)
					var name *string
					if e.ContactName != "" {
						name = &e.ContactName
					}
					newNames = append(newNames, name)
					missing = append(missing, k)
					break
				}
			}
		}
		created := map[contactKey]bool{}
		if len(newIDs) > 0 {
			rows, err := tx.Query(ctx, `INSERT INTO contacts (id, workspace_id, email, first_name)
				SELECT * FROM unnest($1::uuid[], $2::uuid[], $3::text[], $4::text[])
				ON CONFLICT (workspace_id, email) DO NOTHING RETURNING workspace_id, email, id`,
				newIDs, newWS, newEmails, newNames)
			if err != nil {
				return fmt.Errorf("create contacts: %w", err)
			}
			var k contactKey
			var id uuid.UUID
			_, err = pgx.ForEachRow(rows, []any{&k.ws, &k.email, &id}, func() error {
				found[k] = id
				created[k] = true
				return nil
			})
			if err != nil {
				return fmt.Errorf("create contacts: %w", err)
			}
			// A concurrent request created the rest first; read them.
			var raced []contactKey
			for _, k := range missing {
				if !created[k] {
					raced = append(raced, k)
				}
			}
			if err := lookupEmails(ctx, tx, raced, found); err != nil {
				return err
			}
		}
		for k, refs := range byEmail {
			id, ok := found[k]
			// As if the items had come one after another: those before the
			// first that may create a new contact did not find it.
			creator := -1
			if created[k] {
				creator = slices.IndexFunc(refs, func(ref itemRef) bool { return reqs[ref.req].Events[ref.item].CreateIfMissing })
			}
			for n, ref := range refs {
				res := &out[ref.req].Results[ref.item]
				if !ok || n < creator {
					res.Err = ErrContactNotFound
					continue
				}
				res.ContactID = id
				res.ContactCreated = n == creator
			}
		}
	}
	if len(byID) > 0 {
		ids := make([]uuid.UUID, 0, len(byID))
		for id := range byID {
			ids = append(ids, id)
		}
		owner := map[uuid.UUID]uuid.UUID{}
		rows, err := tx.Query(ctx, `SELECT id, workspace_id FROM contacts WHERE id = ANY($1) ORDER BY id FOR KEY SHARE`, ids)
		if err != nil {
			return fmt.Errorf("look up contacts: %w", err)
		}
		var id, ws uuid.UUID
		if _, err := pgx.ForEachRow(rows, []any{&id, &ws}, func() error { owner[id] = ws; return nil }); err != nil {
			return fmt.Errorf("look up contacts: %w", err)
		}
		for id, refs := range byID {
			for _, ref := range refs {
				res := &out[ref.req].Results[ref.item]
				if ws, ok := owner[id]; ok && ws == reqs[ref.req].WorkspaceID {
					res.ContactID = id
				} else {
					res.Err = ErrContactNotFound
				}
			}
		}
	}
	return nil
}

// precheckExternalIDs refuses, before any contact is created or patched,
// the items whose external_id already names an event of another name or of
// another contact (by email or id), with one read. The upsert settles the
// same question again for events that commit meanwhile.
func precheckExternalIDs(ctx context.Context, tx pgx.Tx, reqs []*RecordRequest, out []RecordOutcome) error {
	var (
		ws   []uuid.UUID
		exts []string
	)
	refs := map[contactKey][]itemRef{}
	for ri, r := range reqs {
		for ii, e := range r.Events {
			if e.ExternalID == "" || out[ri].Results[ii].Err != nil {
				continue
			}
			k := contactKey{r.WorkspaceID, e.ExternalID}
			if _, ok := refs[k]; !ok {
				ws, exts = append(ws, k.ws), append(exts, k.email)
			}
			refs[k] = append(refs[k], itemRef{ri, ii})
		}
	}
	if len(refs) == 0 {
		return nil
	}
	rows, err := tx.Query(ctx, `SELECT e.workspace_id, e.external_id, e.id, e.name, e.contact_id, c.email
		FROM events e JOIN unnest($1::uuid[], $2::text[]) AS k(ws, ext) ON e.workspace_id = k.ws AND e.external_id = k.ext
		JOIN contacts c ON c.id = e.contact_id`, ws, exts)
	if err != nil {
		return fmt.Errorf("read external ids: %w", err)
	}
	var (
		k       contactKey
		id, cid uuid.UUID
		name    string
		email   string
	)
	_, err = pgx.ForEachRow(rows, []any{&k.ws, &k.email, &id, &name, &cid, &email}, func() error {
		for _, ref := range refs[k] {
			e := reqs[ref.req].Events[ref.item]
			other := e.Name != name
			if e.ContactID != uuid.Nil {
				other = other || e.ContactID != cid
			} else {
				other = other || e.Email != email
			}
			if other {
				res := &out[ref.req].Results[ref.item]
				res.Err, res.EventID = ErrExternalIDConflict, id
			}
		}
		return nil
	})
	if err != nil {
		return fmt.Errorf("read external ids: %w", err)
	}
	return nil
}

func lookupEmails(ctx context.Context, tx pgx.Tx, keys []contactKey, found map[contactKey]uuid.UUID) error {
	if len(keys) == 0 {
		return nil
	}
	ws := make([]uuid.UUID, len(keys))
	emails := make([]string, len(keys))
	for i, k := range keys {
		ws[i], emails[i] = k.ws, k.email
	}
	// FOR KEY SHARE, as the events' foreign key takes anyway: a contact
	// being deleted is waited for and then not found, rather than failing
	// the whole group at the foreign key check (see DeleteContact).
	rows, err := tx.Query(ctx, `SELECT c.workspace_id, c.email, c.id FROM contacts c
		JOIN unnest($1::uuid[], $2::text[]) AS k(ws, email) ON c.workspace_id = k.ws AND c.email = k.email
		ORDER BY c.id FOR KEY SHARE OF c`, ws, emails)
	if err != nil {
		return fmt.Errorf("look up contacts: %w", err)
	}
	var k contactKey
	var id uuid.UUID
	_, err = pgx.ForEachRow(rows, []any{&k.ws, &k.email, &id}, func() error { found[k] = id; return nil })
	if err != nil {
		return fmt.Errorf("look up contacts: %w", err)
	}
	return nil
}

// patchContacts applies the items' contact patches, merged per contact in
// item order, with one statement for the whole group.
func patchContacts(ctx context.Context, tx pgx.Tx, reqs []*RecordRequest, out []RecordOutcome) error {
	merged := map[uuid.UUID]*ContactPatch{}
	for ri, r := range reqs {
		for ii, e := range r.Events {
			res := out[ri].Results[ii]
			if res.Err != nil || e.ContactPatch.Empty() {
				continue
			}
			p := merged[res.ContactID]
			if p == nil {
				p = &ContactPatch{}
				merged[res.ContactID] = p
			}
			if err := p.merge(e.ContactPatch); err != nil {
				return fmt.Errorf("merge contact patch: %w", err)
			}
		}
	}
	if len(merged) == 0 {
		return nil
	}
	ids := make([]uuid.UUID, 0, len(merged))
	for id := range merged {
		ids = append(ids, id)
	}
	// Lock rows in id order, as every transaction does, to avoid deadlocks.
	slices.SortFunc(ids, func(a, b uuid.UUID) int { return strings.Compare(a.String(), b.String()) })
	first := make([]*string, len(ids))
	last := make([]*string, len(ids))
	set := make([]string, len(ids))
	unset := make([]string, len(ids))
	for i, id := range ids {
		p := merged[id]
		first[i], last[i] = p.FirstName, p.LastName
		set[i] = "{}"
		if len(p.Set) > 0 {
			set[i] = string(p.Set)
		}
		u, err := json.Marshal(p.Unset)
		if err != nil {
			return err
		}
		unset[i] = string(u)
		if p.Unset == nil {
			unset[i] = "[]"
		}
	}
	_, err := tx.Exec(ctx, `UPDATE contacts c SET
		first_name = CASE WHEN u.first IS NULL THEN c.first_name ELSE nullif(u.first, '') END,
		last_name = CASE WHEN u.last IS NULL THEN c.last_name ELSE nullif(u.last, '') END,
		properties = (c.properties || u.set::jsonb) - ARRAY(SELECT jsonb_array_elements_text(u.unset::jsonb)),
		updated_at = now()
		FROM (SELECT * FROM unnest($1::uuid[], $2::text[], $3::text[], $4::text[], $5::text[])
		      AS t(id, first, last, set, unset) ORDER BY id) u
		WHERE c.id = u.id`, ids, first, last, set, unset)
	if err != nil {
		return fmt.Errorf("patch contacts: %w", err)
	}
	return nil
}

// insertEvents writes the events of every item whose contact resolved:
// those without external_id with one INSERT, or COPY when there are many
// (see copyFromRows), the others with one upsert.
func (s *Store) insertEvents(ctx context.Context, tx pgx.Tx, reqs []*RecordRequest, out []RecordOutcome, now time.Time,
	roll *rollupDelta) error {
	var plain eventRows
	byExt := map[contactKey][]itemRef{} // email holds the external id here
	for ri, r := range reqs {
		for ii := range r.Events {
			e := &r.Events[ii]
			res := &out[ri].Results[ii]
			if res.Err != nil {
				continue
			}
			// Ids are drawn in item order (UUIDv7 is monotonic in a
			// process): events of one transaction share their receipt
			// time, and their ids keep their order for wait windows.
			res.EventID = NewID()
			if e.ExternalID != "" {
				k := contactKey{r.WorkspaceID, e.ExternalID}
				byExt[k] = append(byExt[k], itemRef{ri, ii})
				continue
			}
			if _, err := goalValue(e.GoalValue); err != nil {
				return err
			}
			roll.add(r.WorkspaceID, e.Name, e.OccurredAt, nullString(e.GoalValue))
			plain.add(res.EventID, r.WorkspaceID, res.ContactID, e, e, "")
		}
	}
	switch n := len(plain.ids); {
	case n >= copyFromRows:
		_, err := tx.CopyFrom(ctx, pgx.Identifier{"events"},
			[]string{"id", "workspace_id", "contact_id", "name", "properties", "goal_type", "goal_value",
				"occurred_at", "received_at", "emit_depth", "schema_version", "schema_errors"},
			pgx.CopyFromSlice(n, func(i int) ([]any, error) { return plain.copyRow(i, now) }))
		if err != nil {
			return fmt.Errorf("copy events: %w", err)
		}
	case n > 0:
		if _, err := tx.Exec(ctx, insertEventRows, plain.args(now)...); err != nil {
			return fmt.Errorf("insert events: %w", err)
		}
	}
	if len(byExt) > 0 {
		return s.upsertEvents(ctx, tx, reqs, out, byExt, now, roll)
	}
	return nil
}

// copyFromRows is the fewest events insertEvents writes with COPY: COPY
// waits for the server's CopyInResponse before it sends the rows, a round
// trip more than an INSERT, which only many rows repay.
var copyFromRows = 16

// eventRows are events to write, one array per column, as insertEventRows
// unnests them.
type eventRows struct {
	ids, ws, contacts     []uuid.UUID
	names, exts           []string
	props                 []json.RawMessage
	goalTypes, goalValues []*string
	occurred              []time.Time
	depths                []int16
	versions              []*int32
	violations            []*string
}

// add appends an event with its id, workspace and contact: the name and
// emit depth of first, the content (properties, goal, time, schema check)
// of latest, and ext as its external_id ("" for none).
func (r *eventRows) add(id, ws, contact uuid.UUID, first, latest *EventInput, ext string) {
	r.ids, r.ws, r.contacts = append(r.ids, id), append(r.ws, ws), append(r.contacts, contact)
	r.names, r.exts, r.props = append(r.names, first.Name), append(r.exts, ext), append(r.props, latest.Properties)
	r.goalTypes = append(r.goalTypes, nullString(latest.GoalType))
	r.goalValues = append(r.goalValues, nullString(latest.GoalValue))
	r.occurred = append(r.occurred, latest.OccurredAt)
	r.depths = append(r.depths, int16(first.EmitDepth))
	r.versions = append(r.versions, schemaVersion(latest.SchemaVersion))
	var violations *string
	if v, ok := schemaErrors(latest.SchemaErrors).(string); ok {
		violations = &v
	}
	r.violations = append(r.violations, violations)
}

// args are insertEventRows's arguments, the events received at now.
func (r *eventRows) args(now time.Time) []any {
	props := make([]string, len(r.props))
	for i, p := range r.props {
		props[i] = string(p)
	}
	return []any{r.ids, r.ws, r.contacts, r.names, props, r.exts, r.goalTypes, r.goalValues, r.occurred, now,
		r.depths, r.versions, r.violations}
}

// copyRow is event i as a row of insertEvents's COPY.
func (r *eventRows) copyRow(i int, now time.Time) ([]any, error) {
	var goal any
	if v := r.goalValues[i]; v != nil {
		var err error
		if goal, err = goalValue(*v); err != nil {
			return nil, err
		}
	}
	var violations any
	if v := r.violations[i]; v != nil {
		violations = *v
	}
	return []any{r.ids[i], r.ws[i], r.contacts[i], r.names[i], r.props[i], r.goalTypes[i], goal,
		r.occurred[i], now, r.depths[i], r.versions[i], violations}, nil
}

// insertEventRows inserts eventRows (see args); an empty external_id is
// none.
const insertEventRows = `INSERT INTO events (id, workspace_id, contact_id, name, properties, external_id,
		goal_type, goal_value, occurred_at, received_at, emit_depth, schema_version, schema_errors)
	SELECT u.id, u.ws, u.contact, u.name, u.props::jsonb, nullif(u.ext, ''), u.goal_type, u.goal_value::numeric,
	       u.occurred, $10, u.depth, u.version, u.violations::jsonb
	FROM unnest($1::uuid[], $2::uuid[], $3::uuid[], $4::text[], $5::text[], $6::text[], $7::text[], $8::text[],
	            $9::timestamptz[], $11::smallint[], $12::int[], $13::text[])
	     AS u(id, ws, contact, name, props, ext, goal_type, goal_value, occurred, depth, version, violations)`

// upsertEvents records events that carry an external_id. Items that repeat
// one external_id within the group collapse to one row first (Postgres
// cannot upsert one row twice in a statement): the first item names the
// contact, the one with the latest occurred_at supplies the content, as if
// they had arrived one after another.
func (s *Store) upsertEvents(ctx context.Context, tx pgx.Tx, reqs []*RecordRequest, out []RecordOutcome,
	byExt map[contactKey][]itemRef, now time.Time, roll *rollupDelta) error {
	keys := sortedKeys(byExt)
	n := len(keys)
	var rows eventRows
	for _, k := range keys {
		refs := byExt[k]
		first := &reqs[refs[0].req].Events[refs[0].item]
		firstContact := out[refs[0].req].Results[refs[0].item].ContactID
		latest := first
		for _, ref := range refs[1:] {
			e := &reqs[ref.req].Events[ref.item]
			if e.Name != first.Name || out[ref.req].Results[ref.item].ContactID != firstContact {
				// Another event under the same key: a conflict, settled below.
				continue
			}
			if e.OccurredAt.After(latest.OccurredAt) {
				latest = e
			}
		}
		first0 := out[refs[0].req].Results[refs[0].item]
		rows.add(first0.EventID, k.ws, first0.ContactID, first, latest, k.email)
	}
	// A repeat updates the stored event only when it is newer; xmax = 0 tells
	// a fresh insert from an update.
	returned, err := tx.Query(ctx, insertEventRows+`
		ON CONFLICT (workspace_id, external_id) WHERE external_id IS NOT NULL DO UPDATE SET
			properties = excluded.properties, goal_type = excluded.goal_type,
			goal_value = excluded.goal_value, occurred_at = excluded.occurred_at,
			schema_version = excluded.schema_version, schema_errors = excluded.schema_errors
		WHERE events.occurred_at < excluded.occurred_at
		  AND events.contact_id = excluded.contact_id AND events.name = excluded.name
		RETURNING workspace_id, external_id, id, xmax = 0, contact_id, name`, rows.args(now)...)
	if err != nil {
		return fmt.Errorf("upsert events: %w", err)
	}
	type stored struct {
		id       uuid.UUID
		inserted bool
		contact  uuid.UUID
		name     string
	}
	got := map[contactKey]stored{}
	var (
		k contactKey
		v stored
	)
	index := make(map[contactKey]int, n)
	for i, k := range keys {
		index[k] = i
	}
	if _, err := pgx.ForEachRow(returned, []any{&k.ws, &k.email, &v.id, &v.inserted, &v.contact, &v.name}, func() error {
		got[k] = v
		if i := index[k]; v.inserted {
			// Updates of stored events reach the rollups by trigger.
			roll.add(k.ws, rows.names[i], rows.occurred[i], rows.goalValues[i])
		}
		return nil
	}); err != nil {
		return fmt.Errorf("upsert events: %w", err)
	}
	// Repeats that changed nothing return no row; read their ids.
	var lookWS []uuid.UUID
	var lookExt []string
	for _, k := range keys {
		if _, ok := got[k]; !ok {
			lookWS, lookExt = append(lookWS, k.ws), append(lookExt, k.email)
		}
	}
	if len(lookWS) > 0 {
		rows, err := tx.Query(ctx, `SELECT e.workspace_id, e.external_id, e.id, e.contact_id, e.name FROM events e
			JOIN unnest($1::uuid[], $2::text[]) AS k(ws, ext) ON e.workspace_id = k.ws AND e.external_id = k.ext`,
			lookWS, lookExt)
		if err != nil {
			return fmt.Errorf("read repeated events: %w", err)
		}
		if _, err := pgx.ForEachRow(rows, []any{&k.ws, &k.email, &v.id, &v.contact, &v.name}, func() error {
			got[k] = stored{id: v.id, contact: v.contact, name: v.name}
			return nil
		}); err != nil {
			return fmt.Errorf("read repeated events: %w", err)
		}
	}
	for _, k := range keys {
		st, ok := got[k]
		if !ok {
			return fmt.Errorf("upsert events: no row for external_id %q", k.email)
		}
		for n, ref := range byExt[k] {
			res := &out[ref.req].Results[ref.item]
			res.EventID = st.id
			if e := reqs[ref.req].Events[ref.item]; e.Name != st.name || res.ContactID != st.contact {
				// The key names another contact's event, or one of another
				// name: reusing it would merge two events into one.
				res.Err = ErrExternalIDConflict
				continue
			}
			res.Duplicate = !st.inserted || n > 0
		}
	}
	return nil
}

// usageShards spreads each workspace's monthly counter over this many rows.
const usageShards = 16

// quotaLockClass is the first key of the advisory lock that serializes a
// workspace's transactions near its hard cap (the two-key form, apart from
// the one-key contact locks).
const quotaLockClass = 0x5154 // "QT"

// quotaMargin is how far below the hard cap a workspace's transactions
// start to count exactly, in turn: a tenth of the cap, at least 10,000
// events. Above it the sharded counters' snapshot sum could miss what
// concurrent transactions are adding; the margin is far more than the
// events in flight at once (each replica's committers, a batch of at most
// 1,000 each).
func quotaMargin(hardCap int64) int64 { return max(hardCap/10, 10_000) }

// countUsage adds each request's new events to its workspace's monthly
// counter and enforces the plan's hard cap.
func (s *Store) countUsage(ctx context.Context, tx pgx.Tx, reqs []*RecordRequest, out []RecordOutcome, now time.Time,
	roll *rollupDelta) error {
	added := map[uuid.UUID]int64{}
	plans := map[uuid.UUID]Plan{}
	for ri, r := range reqs {
		plans[r.WorkspaceID] = r.Plan
		for _, res := range out[ri].Results {
			if res.Err == nil && !res.Duplicate {
				added[r.WorkspaceID]++
			}
		}
	}
	wss := make([]uuid.UUID, 0, len(plans))
	for ws := range plans {
		wss = append(wss, ws)
	}
	slices.SortFunc(wss, func(a, b uuid.UUID) int { return strings.Compare(a.String(), b.String()) })
	counts := make([]int64, len(wss))
	for i, ws := range wss {
		counts[i] = added[ws]
	}
	cte, cteArgs := s.nameCounts(reqs, out, now)
	args := append([]any{wss, counts, Period(now), rand.IntN(usageShards)}, cteArgs...)
	deliveries := deliveryCTE(len(args) + 1)
	args = append(args, deliveryArgs(reqs, out, now)...)
	rollups := ""
	if !s.skipRollups {
		rollups = rollupCTE(len(args) + 1)
		args = append(args, rollupArgs(roll)...)
	}
	// The CTE's increment is invisible to the outer SELECT (one snapshot), so
	// the sum is the count before this transaction's events.
	rows, err := tx.Query(ctx, `WITH bump AS (
			INSERT INTO usage_counters (workspace_id, period, shard, tracked)
			SELECT ws, $3, $4, n FROM unnest($1::uuid[], $2::bigint[]) AS u(ws, n) WHERE n > 0
			ON CONFLICT (workspace_id, period, shard) DO UPDATE SET tracked = usage_counters.tracked + excluded.tracked)`+
		// The catalog's per-name counters, inbound sources' deliveries and
		// the analytics rollups ride in the same round trip.
		cte+deliveries+rollups+`
		SELECT u.ws, coalesce((SELECT sum(c.tracked) FROM usage_counters c WHERE c.workspace_id = u.ws AND c.period = $3), 0)::bigint
		FROM unnest($1::uuid[]) AS u(ws)`,
		args...)
	if err != nil {
		return fmt.Errorf("count usage: %w", err)
	}
	before := map[uuid.UUID]int64{}
	var ws uuid.UUID
	var used int64
	if _, err := pgx.ForEachRow(rows, []any{&ws, &used}, func() error { before[ws] = used; return nil }); err != nil {
		return fmt.Errorf("count usage: %w", err)
	}
	// The sum above misses what concurrent transactions are adding to other
	// shards. Far from the cap that cannot matter; near it, a workspace's
	// transactions take its quota lock in turn and count again, seeing
	// every commit before theirs (and their own increment).
	for _, ws := range wss {
		plan := plans[ws]
		hardCap := plan.HardCap()
		if hardCap <= 0 || before[ws]+added[ws] <= hardCap-quotaMargin(hardCap) {
			continue
		}
		// Two statements: the count's snapshot must be taken after the
		// lock is held, and a statement's snapshot is taken at its start.
		var after int64
		if _, err := tx.Exec(ctx, `SELECT pg_advisory_xact_lock($1, hashtext($2::text))`, quotaLockClass, ws); err != nil {
			return fmt.Errorf("quota lock: %w", err)
		}
		if err := tx.QueryRow(ctx, `SELECT coalesce(sum(tracked), 0)::bigint FROM usage_counters
			WHERE workspace_id = $1 AND period = $2`, ws, Period(now)).Scan(&after); err != nil {
			return fmt.Errorf("count usage: %w", err)
		}
		before[ws] = after - added[ws]
	}
	for ws, plan := range plans {
		if hardCap := plan.HardCap(); hardCap > 0 && before[ws]+added[ws] > hardCap {
			return &QuotaError{Limit: plan.Limit(), HardCap: hardCap, Used: before[ws]}
		}
	}
	for ri, r := range reqs {
		out[ri].Tracked = before[r.WorkspaceID] + added[r.WorkspaceID]
	}
	return nil
}

// Period is the first day of the calendar month (UTC) that t falls in.
func Period(t time.Time) time.Time {
	t = t.UTC()
	return time.Date(t.Year(), t.Month(), 1, 0, 0, 0, 0, time.UTC)
}

func sortedKeys[V any](m map[contactKey]V) []contactKey {
	keys := make([]contactKey, 0, len(m))
	for k := range m {
		keys = append(keys, k)
	}
	slices.SortFunc(keys, func(a, b contactKey) int { return compareKeys(a.ws, a.email, b.ws, b.email) })
	return keys
}

// compareKeys orders rows keyed by a workspace and a text the way
// concurrent transactions lock them: by workspace (PostgreSQL compares
// uuids byte by byte), then the text.
func compareKeys(aws uuid.UUID, a string, bws uuid.UUID, b string) int {
	if c := bytes.Compare(aws[:], bws[:]); c != 0 {
		return c
	}
	return strings.Compare(a, b)
}

func nullString(s string) *string {
	if s == "" {
		return nil
	}
	return &s
}

func goalValue(s string) (any, error) {
	if s == "" {
		return nil, nil
	}
	var n pgtype.Numeric
	if err := n.Scan(s); err != nil {
		return nil, fmt.Errorf("goal value %q: %w", s, err)
	}
	return n, nil
}
