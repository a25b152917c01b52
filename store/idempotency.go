package store

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"slices"
	"time"

	"github.com/google/uuid"
	"github.com/jackc/pgx/v5"
)

// keptOutcome is a request's outcome as idempotency_keys keeps it.
type keptOutcome struct {
	Results []keptResult `json:"results"`
	Tracked int64        `json:"tracked"`
}

type keptResult struct {
	EventID        uuid.UUID `json:"event_id"`
	ContactID      uuid.UUID `json:"contact_id"`
	ContactCreated bool      `json:"contact_created,omitempty"`
	Duplicate      bool      `json:"duplicate,omitempty"`
	// Error is "contact_not_found" or "external_id_conflict".
	Error     string `json:"error,omitempty"`
	Triggered int    `json:"triggered,omitempty"`
	Resumed   int    `json:"resumed,omitempty"`
	Exited    int    `json:"exited,omitempty"`
	// Schema is the refusal of an item that broke an enforced schema.
	Schema *keptSchemaError `json:"schema,omitempty"`
}

type keptSchemaError struct {
	Name       string            `json:"name"`
	Version    int               `json:"version"`
	Violations []SchemaViolation `json:"violations"`
}

var itemErrors = map[string]error{"contact_not_found": ErrContactNotFound, "external_id_conflict": ErrExternalIDConflict,
	"undeclared_event": ErrUndeclaredEvent}

func keep(o RecordOutcome) keptOutcome {
	k := keptOutcome{Results: make([]keptResult, len(o.Results)), Tracked: o.Tracked}
	for i, r := range o.Results {
		k.Results[i] = keptResult{EventID: r.EventID, ContactID: r.ContactID, ContactCreated: r.ContactCreated,
			Duplicate: r.Duplicate, Triggered: r.Triggered, Resumed: r.Resumed, Exited: r.Exited}
		for code, err := range itemErrors {
			if r.Err == err {
				k.Results[i].Error = code
			}
		}
		if se, ok := r.Err.(*SchemaError); ok {
			k.Results[i].Error = "schema_violation"
			k.Results[i].Schema = &keptSchemaError{Name: se.Name, Version: se.Version, Violations: se.Violations}
		}
	}
	return k
}

func (k keptOutcome) outcome() RecordOutcome {
	o := RecordOutcome{Results: make([]EventResult, len(k.Results)), Tracked: k.Tracked, Replayed: true}
	for i, r := range k.Results {
		o.Results[i] = EventResult{EventID: r.EventID, ContactID: r.ContactID, ContactCreated: r.ContactCreated,
			Duplicate: r.Duplicate, Err: itemErrors[r.Error], Triggered: r.Triggered, Resumed: r.Resumed, Exited: r.Exited}
		if r.Schema != nil {
			o.Results[i].Err = &SchemaError{Name: r.Schema.Name, Version: r.Schema.Version, Violations: r.Schema.Violations}
		}
	}
	return o
}

// keyRef is a request's idempotency key.
type keyRef struct {
	ws  uuid.UUID
	key string
}

// keyClaims is what claimIdempotencyKeys decided for a group.
type keyClaims struct {
	// work lists the requests to record, by their index in the group.
	work []int
	// claimed lists the requests whose key this transaction claimed; their
	// outcome is kept when it commits.
	claimed []int
	// repeats maps a request to an earlier one of the group with the same
	// key and body, whose outcome it gets.
	repeats map[int]int
}

// claimIdempotencyKeys claims the keys of the group's requests that carry
// one. A request whose key was used before gets the kept outcome (Replayed)
// when its body is the same, or KeyReused when not, and is not recorded. A
// key that a concurrent transaction holds is waited for (the unique index
// does that). Within the group, a repeat of an earlier request's key gets
// that request's outcome.
func claimIdempotencyKeys(ctx context.Context, tx pgx.Tx, reqs []*RecordRequest, outs []RecordOutcome) (keyClaims, error) {
	c := keyClaims{repeats: map[int]int{}}
	first := map[keyRef]int{}
	var (
		ws     []uuid.UUID
		keys   []string
		hashes [][]byte
	)
	for i, r := range reqs {
		if r.IdempotencyKey == "" {
			c.work = append(c.work, i)
			continue
		}
		k := keyRef{r.WorkspaceID, r.IdempotencyKey}
		if j, ok := first[k]; ok {
			if bytes.Equal(reqs[j].RequestHash, r.RequestHash) {
				c.repeats[i] = j
			} else {
				outs[i] = RecordOutcome{KeyReused: true}
			}
			continue
		}
		first[k] = i
		ws, keys, hashes = append(ws, k.ws), append(keys, k.key), append(hashes, r.RequestHash)
	}
	if len(first) == 0 {
		return c, nil
	}
	rows, err := tx.Query(ctx, `INSERT INTO idempotency_keys (workspace_id, key, request_hash)
		SELECT * FROM unnest($1::uuid[], $2::text[], $3::bytea[]) ORDER BY 1, 2
		ON CONFLICT DO NOTHING RETURNING workspace_id, key`, ws, keys, hashes)
	if err != nil {
		return c, fmt.Errorf("claim idempotency keys: %w", err)
	}
	won := map[keyRef]bool{}
	var k keyRef
	if _, err := pgx.ForEachRow(rows, []any{&k.ws, &k.key}, func() error { won[k] = true; return nil }); err != nil {
		return c, fmt.Errorf("claim idempotency keys: %w", err)
	}
	var lostWS []uuid.UUID
	var lostKeys []string
	for k := range first {
		if !won[k] {
			lostWS, lostKeys = append(lostWS, k.ws), append(lostKeys, k.key)
		}
	}
	if len(lostWS) > 0 {
		rows, err := tx.Query(ctx, `SELECT i.workspace_id, i.key, i.request_hash, i.outcome FROM idempotency_keys i
			JOIN unnest($1::uuid[], $2::text[]) AS u(ws, key) ON i.workspace_id = u.ws AND i.key = u.key`, lostWS, lostKeys)
		if err != nil {
			return c, fmt.Errorf("read idempotency keys: %w", err)
		}
		var (
			hash []byte
			raw  []byte
		)
		if _, err := pgx.ForEachRow(rows, []any{&k.ws, &k.key, &hash, &raw}, func() error {
			i := first[k]
			if !bytes.Equal(hash, reqs[i].RequestHash) {
				outs[i] = RecordOutcome{KeyReused: true}
				return nil
			}
			var kept keptOutcome
			if err := json.Unmarshal(raw, &kept); err != nil {
				return fmt.Errorf("kept outcome of idempotency key %q: %w", k.key, err)
			}
			outs[i] = kept.outcome()
			return nil
		}); err != nil {
			return c, fmt.Errorf("read idempotency keys: %w", err)
		}
	}
	for i, r := range reqs {
		if r.IdempotencyKey == "" {
			continue
		}
		if j, ok := first[keyRef{r.WorkspaceID, r.IdempotencyKey}]; ok && j == i && won[keyRef{r.WorkspaceID, r.IdempotencyKey}] {
			c.work = append(c.work, i)
			c.claimed = append(c.claimed, i)
		}
	}
	// Keep the group's order: requests are recorded as if one after another.
	slices.Sort(c.work)
	return c, nil
}

// keepOutcomes writes the outcome of every request whose key the
// transaction claimed, and hands repeats within the group theirs.
func keepOutcomes(ctx context.Context, tx pgx.Tx, reqs []*RecordRequest, outs []RecordOutcome, c keyClaims) error {
	for i, j := range c.repeats {
		o := outs[j]
		o.Replayed, o.Intents = true, 0
		outs[i] = o
	}
	if len(c.claimed) == 0 {
		return nil
	}
	ws := make([]uuid.UUID, len(c.claimed))
	keys := make([]string, len(c.claimed))
	kept := make([]string, len(c.claimed))
	for n, i := range c.claimed {
		raw, err := json.Marshal(keep(outs[i]))
		if err != nil {
			return err
		}
		ws[n], keys[n], kept[n] = reqs[i].WorkspaceID, reqs[i].IdempotencyKey, string(raw)
	}
	if _, err := tx.Exec(ctx, `UPDATE idempotency_keys i SET outcome = u.outcome::jsonb
		FROM unnest($1::uuid[], $2::text[], $3::text[]) AS u(ws, key, outcome)
		WHERE i.workspace_id = u.ws AND i.key = u.key`, ws, keys, kept); err != nil {
		return fmt.Errorf("keep outcomes: %w", err)
	}
	return nil
}

// PurgeIdempotencyKeys deletes at most limit keys older than ttl, oldest
// first.
func (s *Store) PurgeIdempotencyKeys(ctx context.Context, ttl time.Duration, limit int) (int64, error) {
	tag, err := s.pool.Exec(ctx, `DELETE FROM idempotency_keys WHERE (workspace_id, key) IN (
		SELECT workspace_id, key FROM idempotency_keys WHERE created_at < now() - $1::interval
		ORDER BY created_at LIMIT $2)`, ttl, limit)
	if err != nil {
		return 0, fmt.Errorf("purge idempotency keys: %w", err)
	}
	return tag.RowsAffected(), nil
}
