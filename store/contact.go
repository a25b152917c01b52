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

// Contact is a person an application sends events for.
type Contact struct {
	ID          uuid.UUID       `json:"id"`
	WorkspaceID uuid.UUID       `json:"-"`
	Email       string          `json:"email"`
	FirstName   *string         `json:"first_name"`
	LastName    *string         `json:"last_name"`
	Properties  json.RawMessage `json:"properties"`
	CreatedAt   time.Time       `json:"created_at"`
	UpdatedAt   time.Time       `json:"updated_at"`
}

// ContactPatch changes some of a contact's fields; nil and empty members
// leave a field as it is.
type ContactPatch struct {
	// Email moves the contact to another (lower-cased) address.
	Email *string
	// FirstName and LastName set the names; a pointer to "" clears one.
	FirstName *string
	LastName  *string
	// Set merges these top-level properties in (a JSON object).
	Set json.RawMessage
	// Unset removes these top-level properties.
	Unset []string
}

// Empty reports whether the patch changes nothing.
func (p *ContactPatch) Empty() bool {
	return p == nil || (p.Email == nil && p.FirstName == nil && p.LastName == nil && len(p.Set) == 0 && len(p.Unset) == 0)
}

// merge folds a later patch into p, later fields winning.
func (p *ContactPatch) merge(later *ContactPatch) error {
	if later.Email != nil {
		p.Email = later.Email
	}
	if later.FirstName != nil {
		p.FirstName = later.FirstName
	}
	if later.LastName != nil {
		p.LastName = later.LastName
	}
	if len(later.Set) > 0 || len(later.Unset) > 0 {
		set := map[string]json.RawMessage{}
		if len(p.Set) > 0 {
			if err := json.Unmarshal(p.Set, &set); err != nil {
				return err
			}
		}
		for _, k := range later.Unset {
			delete(set, k)
		}
		if len(later.Set) > 0 {
			var add map[string]json.RawMessage
			if err := json.Unmarshal(later.Set, &add); err != nil {
				return err
			}
			for k, v := range add {
				set[k] = v
			}
		}
		unset := map[string]bool{}
		for _, k := range p.Unset {
			unset[k] = true
		}
		for _, k := range later.Unset {
			unset[k] = true
		}
		p.Unset = p.Unset[:0]
		for k := range unset {
			if _, ok := set[k]; !ok {
				p.Unset = append(p.Unset, k)
			}
		}
		b, err := json.Marshal(set)
		if err != nil {
			return err
		}
		p.Set = b
	}
	return nil
}

const contactColumns = `id, workspace_id, email, first_name, last_name, properties, created_at, updated_at`

func scanContact(row pgx.Row) (Contact, error) {
	var c Contact
	err := row.Scan(&c.ID, &c.WorkspaceID, &c.Email, &c.FirstName, &c.LastName, &c.Properties, &c.CreatedAt, &c.UpdatedAt)
	return c, notFound(err)
}

// UpsertContact creates the contact with this email, or patches the one that
// has it, and reports whether it created one.
func (s *Store) UpsertContact(ctx context.Context, workspaceID uuid.UUID, email string, patch ContactPatch) (Contact, bool, error) {
	var (
		c       Contact
		created bool
	)
	err := s.inTx(ctx, func(tx pgx.Tx) error {
		id := NewID()
		tag, err := tx.Exec(ctx,
			`INSERT INTO contacts (id, workspace_id, email) VALUES ($1, $2, $3) ON CONFLICT (workspace_id, email) DO NOTHING`,
			id, workspaceID, email)
		if err != nil {
			return fmt.Errorf("insert contact: %w", err)
		}
		created = tag.RowsAffected() == 1
		patch.Email = nil
		c, err = patchContact(ctx, tx, workspaceID, `email = $2`, email, patch)
		return err
	})
	return c, created, err
}

// GetContact reads one contact of the workspace.
func (s *Store) GetContact(ctx context.Context, workspaceID, id uuid.UUID) (Contact, error) {
	return scanContact(s.pool.QueryRow(ctx,
		`SELECT `+contactColumns+` FROM contacts WHERE workspace_id = $1 AND id = $2`, workspaceID, id))
}

// ContactFilter selects contacts for ListContacts.
type ContactFilter struct {
	// Email, when set, matches exactly (it is compared lower-cased).
	Email string
	// Before continues a listing after the contact with this id.
	Before uuid.UUID
	Limit  int
}

// ListContacts returns contacts newest first and whether more follow.
func (s *Store) ListContacts(ctx context.Context, workspaceID uuid.UUID, f ContactFilter) ([]Contact, bool, error) {
	q := `SELECT ` + contactColumns + ` FROM contacts WHERE workspace_id = $1
	      AND ($2 = '' OR email = $2) AND ($3::uuid IS NULL OR id < $3)
	      ORDER BY id DESC LIMIT $4`
	var before *uuid.UUID
	if f.Before != uuid.Nil {
		before = &f.Before
	}
	rows, err := s.pool.Query(ctx, q, workspaceID, f.Email, before, f.Limit+1)
	if err != nil {
		return nil, false, err
	}
	out, err := pgx.CollectRows(rows, func(r pgx.CollectableRow) (Contact, error) { return scanContact(r) })
	if err != nil {
		return nil, false, err
	}
	out, more := trimPage(out, f.Limit)
	return out, more, nil
}

// PatchContact applies patch to a contact of the workspace. It returns
// ErrConflict when the new email belongs to another contact.
func (s *Store) PatchContact(ctx context.Context, workspaceID, id uuid.UUID, patch ContactPatch) (Contact, error) {
	// One statement: no transaction around it.
	return patchContact(ctx, s.pool, workspaceID, `id = $2`, id, patch)
}

// rowQuerier is what patchContact needs: a pool or a transaction.
type rowQuerier interface {
	QueryRow(ctx context.Context, sql string, args ...any) pgx.Row
}

// patchContact updates the contact matched by where ($1 is the workspace, $2
// the key) and returns it.
func patchContact(ctx context.Context, tx rowQuerier, workspaceID uuid.UUID, where string, key any, p ContactPatch) (Contact, error) {
	c, err := scanContact(tx.QueryRow(ctx, `UPDATE contacts SET `+contactPatchSet+`
		WHERE workspace_id = $1 AND `+where+` RETURNING `+contactColumns, patchArgs(workspaceID, key, p)...))
	if isUniqueViolation(err) {
		return Contact{}, ErrConflict
	}
	return c, err
}

// contactPatchSet is the SET list of an UPDATE of contacts by a
// ContactPatch, over patchArgs's $3 to $8.
const contactPatchSet = `email = coalesce($3, email),
		first_name = CASE WHEN $4::text IS NULL THEN first_name ELSE nullif($4, '') END,
		last_name = CASE WHEN $5::text IS NULL THEN last_name ELSE nullif($5, '') END,
		properties = (properties || $6::jsonb) - $7::text[],
		updated_at = CASE WHEN $8 THEN updated_at ELSE now() END`

// patchArgs are the arguments of an UPDATE of contacts by p: the workspace
// ($1), the key its WHERE names ($2), then contactPatchSet's.
func patchArgs(workspaceID uuid.UUID, key any, p ContactPatch) []any {
	set := p.Set
	if len(set) == 0 {
		set = json.RawMessage(`{}`)
	}
	unset := p.Unset
	if unset == nil {
		unset = []string{}
	}
	return []any{workspaceID, key, p.Email, p.FirstName, p.LastName, set, unset, p.Empty()}
}

// DeleteContact removes a contact and, with it, every event on its timeline
// and every enrollment. Its active enrollments' workflows are cancelled
// through the outbox in the same transaction, so none runs on without its
// contact; starts not yet handed to a dispatcher are settled undelivered.
// The contact row is locked first: record transactions lock the contacts
// they resolve (FOR KEY SHARE), so one that resolved this contact commits
// its enrollments before they are looked for here, and one that comes
// after finds no contact. It returns the number of enrollments it ended.
func (s *Store) DeleteContact(ctx context.Context, workspaceID, id uuid.UUID) (int, error) {
	var ended int
	err := s.inTx(ctx, func(tx pgx.Tx) error {
		var one int
		err := tx.QueryRow(ctx, `SELECT 1 FROM contacts WHERE workspace_id = $1 AND id = $2 FOR UPDATE`,
			workspaceID, id).Scan(&one)
		if err != nil {
			return notFound(err)
		}
		if _, err := tx.Exec(ctx, `UPDATE outbox o SET delivered_at = now(), outcome = 'contact_deleted'
			FROM enrollments e
			WHERE e.workspace_id = $1 AND e.contact_id = $2 AND e.status = 'active' AND o.workflow_id = e.workflow_id
			  AND o.kind = 'start' AND o.delivered_at IS NULL AND o.failed_at IS NULL
			  AND (o.lease_until IS NULL OR o.lease_until < now())`, workspaceID, id); err != nil {
			return fmt.Errorf("settle starts: %w", err)
		}
		tag, err := tx.Exec(ctx, `INSERT INTO outbox (id, workspace_id, workflow_id, kind, payload)
			SELECT gen_random_uuid(), e.workspace_id, e.workflow_id, 'cancel',
			       jsonb_build_object('enrollment_id', e.id, 'event_id', NULL)
			FROM enrollments e WHERE e.workspace_id = $1 AND e.contact_id = $2 AND e.status = 'active'
			ORDER BY e.id`,
			workspaceID, id)
		if err != nil {
			return fmt.Errorf("cancel enrollments: %w", err)
		}
		ended = int(tag.RowsAffected())
		if err := deleteContactEvents(ctx, tx, workspaceID, id); err != nil {
			return err
		}
		_, err = tx.Exec(ctx, `DELETE FROM contacts WHERE workspace_id = $1 AND id = $2`, workspaceID, id)
		return err
	})
	return ended, err
}

// StepBook is the bookkeeping of a step an action's activity ran (see
// activities.Bookkeeping, BookStep): the enrollment's log line for the
// step, showing its result, and, with Finish, the enrollment's end as
// completed.
type StepBook struct {
	EnrollmentID uuid.UUID
	Seq          int
	StepID       string
	Type         string
	Finish       bool
}

// StepEffect is what UpdateContactOnce did.
type StepEffect struct {
	// Result is the step's result: computed now, or recorded by an earlier
	// run (Repeat), which changed the contact already.
	Result json.RawMessage
	Repeat bool
	// Booked says the bookkeeping asked for was written with the effect;
	// Status is then, with Finish, how the enrollment ended. A repeat, or
	// an update that ran under the row lock, books nothing.
	Booked bool
	Status string
}

// UpdateContactOnce applies a step's update to a contact at most once per
// workflow and step, however often the step runs (a retried activity whose
// result was lost). Unless the step's effect is already recorded, compute
// derives the patch and its result from the contact as it is now (a
// property that counts visits reads the value it increments); the patch is
// applied and the effect recorded with the result in one statement, and
// only if the contact is still the version compute saw. With book (of
// this step), that statement also does what BookStep does. A repeat changes nothing and returns the recorded result
// with Repeat set. It returns ErrNotFound when the contact is gone, and
// compute's error as it is.
//
// The common case costs two round trips and no explicit transaction: read
// the contact and any recorded effect, then the conditional write (a
// compare-and-swap on the row's xmin). A contact changed between the two is
// read again; after casAttempts lost races the update runs under the
// contact's row lock instead, so a busy contact cannot starve it.
func (s *Store) UpdateContactOnce(ctx context.Context, workspaceID, contactID uuid.UUID, workflowID, stepID string,
	book *StepBook, compute func(Contact) (ContactPatch, json.RawMessage, error)) (StepEffect, error) {
	for range casAttempts {
		var (
			c      Contact
			xmin   string
			result json.RawMessage
		)
		err := s.pool.QueryRow(ctx, `SELECT `+contactColumns+`, xmin::text,
				(SELECT e.result FROM step_effects e WHERE e.workflow_id = $3 AND e.step_id = $4)
			FROM contacts WHERE workspace_id = $1 AND id = $2`, workspaceID, contactID, workflowID, stepID).
			Scan(&c.ID, &c.WorkspaceID, &c.Email, &c.FirstName, &c.LastName, &c.Properties, &c.CreatedAt, &c.UpdatedAt,
				&xmin, &result)
		if err != nil {
			return StepEffect{}, notFound(err)
		}
		if result != nil {
			return StepEffect{Result: result, Repeat: true}, nil
		}
		patch, res, err := compute(c)
		if err != nil {
			return StepEffect{}, err
		}
		if len(res) == 0 {
			res = json.RawMessage(`{}`)
		}
		args := append(patchArgs(workspaceID, contactID, patch), xmin, workflowID, stepID, res)
		sql := casUpdate
		switch {
		case book == nil:
		case book.Finish:
			sql = casUpdateFinish
			args = append(args, book.EnrollmentID, book.Seq, book.Type)
		default:
			sql = casUpdateLine
			args = append(args, book.EnrollmentID, book.Seq, book.Type)
		}
		var (
			recorded bool
			status   *string
		)
		err = s.queryRowGeneric(ctx, []any{&recorded, &status}, sql, args...)
		if isUniqueViolation(err) {
			return StepEffect{}, ErrConflict
		}
		if isForeignKeyViolation(err) {
			// The enrollment is gone, with its contact.
			return StepEffect{}, ErrNotFound
		}
		if err != nil {
			return StepEffect{}, err
		}
		if recorded {
			out := StepEffect{Result: res, Booked: book != nil}
			if status != nil {
				out.Status = *status
			}
			return out, nil
		}
		// Either the contact changed since it was read (or is gone), or
		// another run of the step recorded its effect first: read again.
	}
	result, repeat, err := s.updateContactLocked(ctx, workspaceID, contactID, workflowID, stepID, compute)
	return StepEffect{Result: result, Repeat: repeat}, err
}

// casUpdateCTEs apply a contact patch ($1 to $8, see patchArgs) if the
// contact is still at xmin $9, recording the effect of workflow $10's step
// $11 with result $12; effect has a row when they did.
const casUpdateCTEs = `WITH c AS (
		SELECT id FROM contacts WHERE workspace_id = $1 AND id = $2 AND xmin = $9::text::xid FOR UPDATE),
	effect AS (
		INSERT INTO step_effects (workflow_id, step_id, result) SELECT $10, $11, $12 FROM c
		ON CONFLICT DO NOTHING RETURNING 1),
	patched AS (
		UPDATE contacts SET ` + contactPatchSet + `
		WHERE workspace_id = $1 AND id = (SELECT id FROM c) AND EXISTS (SELECT FROM effect) RETURNING 1)`

// casStepLine writes, with the effect, enrollment $13's log line $14 for
// the step ($11, of type $15), showing the result.
const casStepLine = `,
	line AS (
		INSERT INTO enrollment_steps (enrollment_id, seq, step_id, step_type, outcome, detail)
		SELECT $13, $14, $11, $15, 'done', $12 FROM effect ON CONFLICT DO NOTHING RETURNING enrollment_id)`

var (
	casUpdate     = casUpdateCTEs + ` SELECT EXISTS (SELECT FROM patched), NULL::text`
	casUpdateLine = casUpdateCTEs + casStepLine + `,
	current AS (UPDATE enrollments SET current_step = $11 WHERE id = (SELECT enrollment_id FROM line) AND status = 'active')
	SELECT EXISTS (SELECT FROM patched), NULL::text`
	casUpdateFinish = casUpdateCTEs + casStepLine + `,
	` + finishCTEsFor("$13", "'completed'", "''", "EXISTS (SELECT FROM effect)") + `
	SELECT EXISTS (SELECT FROM patched), (SELECT status FROM ended)`
)

// casAttempts is how many times UpdateContactOnce tries its
// compare-and-swap before taking the contact's row lock.
const casAttempts = 3

// updateContactLocked is UpdateContactOnce under the contact's row lock, in
// one transaction: lock, look for the effect, compute, patch, record.
func (s *Store) updateContactLocked(ctx context.Context, workspaceID, contactID uuid.UUID, workflowID, stepID string,
	compute func(Contact) (ContactPatch, json.RawMessage, error)) (result json.RawMessage, repeat bool, err error) {
	err = s.inGenericTx(ctx, func(tx pgx.Tx) error {
		c, err := scanContact(tx.QueryRow(ctx, `SELECT `+contactColumns+` FROM contacts
			WHERE workspace_id = $1 AND id = $2 FOR UPDATE`, workspaceID, contactID))
		if err != nil {
			return err
		}
		err = tx.QueryRow(ctx, `SELECT result FROM step_effects WHERE workflow_id = $1 AND step_id = $2`,
			workflowID, stepID).Scan(&result)
		if err == nil {
			repeat = true
			return nil
		}
		if !errors.Is(err, pgx.ErrNoRows) {
			return err
		}
		patch, res, err := compute(c)
		if err != nil {
			return err
		}
		if _, err := patchContact(ctx, tx, workspaceID, `id = $2`, contactID, patch); err != nil {
			return err
		}
		if len(res) == 0 {
			res = json.RawMessage(`{}`)
		}
		result = res
		_, err = tx.Exec(ctx, `INSERT INTO step_effects (workflow_id, step_id, result) VALUES ($1, $2, $3)`,
			workflowID, stepID, res)
		return err
	})
	return result, repeat, err
}
