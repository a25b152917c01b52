package store

import (
	"context"
	"crypto/rand"
	"fmt"
	"time"

	"github.com/google/uuid"
	"github.com/jackc/pgx/v5"

	"github.com/signalbox/signalbox/apikey"
)

// Plan is a workspace's billing plan; it sets the monthly event limit.
type Plan string

// The plans and their monthly limits of tracked events.
const (
	PlanStarter    Plan = "starter"
	PlanGrowth     Plan = "growth"
	PlanScale      Plan = "scale"
	PlanEnterprise Plan = "enterprise"
)

// Plans lists every plan in ascending order.
var Plans = []Plan{PlanStarter, PlanGrowth, PlanScale, PlanEnterprise}

// Valid reports whether p is a known plan.
func (p Plan) Valid() bool {
	for _, q := range Plans {
		if p == q {
			return true
		}
	}
	return false
}

// Limit is the number of tracked events a month the plan includes; 0 means
// unlimited.
func (p Plan) Limit() int64 {
	switch p {
	case PlanStarter:
		return 50_000
	case PlanGrowth:
		return 250_000
	case PlanScale:
		return 1_000_000
	default:
		return 0
	}
}

// HardCap is where ingest stops: 125% of the limit. Between the limit and the
// cap events are still accepted, with a warning. 0 means unlimited.
func (p Plan) HardCap() int64 { return p.Limit() * 5 / 4 }

// Workspace is a tenant. Every other row belongs to exactly one.
type Workspace struct {
	ID        uuid.UUID
	Name      string
	Plan      Plan
	CreatedAt time.Time
	// UndeclaredEvents is UndeclaredAccept or UndeclaredReject.
	UndeclaredEvents string
}

// APIKey describes a stored key; the secret itself is never kept.
type APIKey struct {
	ID          uuid.UUID
	WorkspaceID uuid.UUID
	Prefix      string
	CreatedAt   time.Time
	RevokedAt   *time.Time
	// LastUsedAt is when it last authenticated a request, to the minute.
	LastUsedAt *time.Time
}

// CreateWorkspace makes a workspace with its first API key and returns both;
// key.Secret is the only copy of the key.
func (s *Store) CreateWorkspace(ctx context.Context, name string, plan Plan) (Workspace, apikey.Key, error) {
	if !plan.Valid() {
		return Workspace{}, apikey.Key{}, fmt.Errorf("unknown plan %q", plan)
	}
	secret := make([]byte, 32)
	if _, err := rand.Read(secret); err != nil {
		return Workspace{}, apikey.Key{}, err
	}
	ws := Workspace{ID: NewID(), Name: name, Plan: plan, UndeclaredEvents: UndeclaredAccept}
	var key apikey.Key
	err := s.inTx(ctx, func(tx pgx.Tx) error {
		err := tx.QueryRow(ctx,
			`INSERT INTO workspaces (id, name, plan, webhook_secret) VALUES ($1, $2, $3, $4) RETURNING created_at`,
			ws.ID, name, plan, secret).Scan(&ws.CreatedAt)
		if err != nil {
			return fmt.Errorf("insert workspace: %w", err)
		}
		key, err = insertAPIKey(ctx, tx, ws.ID)
		return err
	})
	return ws, key, err
}

// GetWorkspace reads one workspace.
func (s *Store) GetWorkspace(ctx context.Context, id uuid.UUID) (Workspace, error) {
	ws := Workspace{ID: id}
	err := s.pool.QueryRow(ctx, `SELECT name, plan, created_at, undeclared_events FROM workspaces WHERE id = $1`, id).
		Scan(&ws.Name, &ws.Plan, &ws.CreatedAt, &ws.UndeclaredEvents)
	return ws, notFound(err)
}

// CreateAPIKey adds a key to a workspace. It returns ErrNotFound when the
// workspace does not exist.
func (s *Store) CreateAPIKey(ctx context.Context, workspaceID uuid.UUID) (apikey.Key, error) {
	var key apikey.Key
	err := s.inTx(ctx, func(tx pgx.Tx) error {
		var exists bool
		if err := tx.QueryRow(ctx, `SELECT EXISTS (SELECT 1 FROM workspaces WHERE id = $1)`, workspaceID).Scan(&exists); err != nil {
			return err
		}
		if !exists {
			return ErrNotFound
		}
		var err error
		key, err = insertAPIKey(ctx, tx, workspaceID)
		return err
	})
	return key, err
}

func insertAPIKey(ctx context.Context, tx pgx.Tx, workspaceID uuid.UUID) (apikey.Key, error) {
	key, err := apikey.New()
	if err != nil {
		return apikey.Key{}, err
	}
	_, err = tx.Exec(ctx, `INSERT INTO api_keys (id, workspace_id, prefix, hash) VALUES ($1, $2, $3, $4)`,
		NewID(), workspaceID, key.Prefix, key.Hash)
	if err != nil {
		return apikey.Key{}, fmt.Errorf("insert api key: %w", err)
	}
	return key, nil
}

// RevokeAPIKey stops the key with this prefix from authenticating. Revoking
// twice is harmless. It returns ErrNotFound for an unknown prefix.
func (s *Store) RevokeAPIKey(ctx context.Context, prefix string) (APIKey, error) {
	var k APIKey
	err := s.pool.QueryRow(ctx,
		`UPDATE api_keys SET revoked_at = coalesce(revoked_at, now()) WHERE prefix = $1
		 RETURNING id, workspace_id, prefix, created_at, revoked_at`, prefix).
		Scan(&k.ID, &k.WorkspaceID, &k.Prefix, &k.CreatedAt, &k.RevokedAt)
	return k, notFound(err)
}

// Credential is what authentication needs to know about a live key.
type Credential struct {
	WorkspaceID uuid.UUID
	Plan        Plan
	Hash        []byte
}

// CredentialByPrefix finds the unrevoked key with this prefix. It returns
// ErrNotFound for unknown and revoked keys alike.
func (s *Store) CredentialByPrefix(ctx context.Context, prefix string) (Credential, error) {
	var c Credential
	err := s.pool.QueryRow(ctx,
		`SELECT k.workspace_id, w.plan, k.hash FROM api_keys k JOIN workspaces w ON w.id = k.workspace_id
		 WHERE k.prefix = $1 AND k.revoked_at IS NULL`, prefix).Scan(&c.WorkspaceID, &c.Plan, &c.Hash)
	return c, notFound(err)
}

// TouchAPIKey records that the key with this prefix authenticated a
// request, unless it did so less than a minute ago.
func (s *Store) TouchAPIKey(ctx context.Context, prefix string) error {
	_, err := s.pool.Exec(ctx, `UPDATE api_keys SET last_used_at = now()
		WHERE prefix = $1 AND (last_used_at IS NULL OR last_used_at < now() - interval '1 minute')`, prefix)
	return err
}

// ListAPIKeys returns a workspace's keys, revoked ones included, oldest
// first. ErrNotFound when there is no such workspace.
func (s *Store) ListAPIKeys(ctx context.Context, workspaceID uuid.UUID) ([]APIKey, error) {
	if _, err := s.GetWorkspace(ctx, workspaceID); err != nil {
		return nil, err
	}
	rows, err := s.pool.Query(ctx, `SELECT id, workspace_id, prefix, created_at, revoked_at, last_used_at FROM api_keys
		WHERE workspace_id = $1 ORDER BY created_at, id`, workspaceID)
	if err != nil {
		return nil, err
	}
	return pgx.CollectRows(rows, func(r pgx.CollectableRow) (APIKey, error) {
		var k APIKey
		err := r.Scan(&k.ID, &k.WorkspaceID, &k.Prefix, &k.CreatedAt, &k.RevokedAt, &k.LastUsedAt)
		return k, err
	})
}
