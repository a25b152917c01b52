package store

import (
	"context"
	"crypto/rand"
	"fmt"
	"time"

	"github.com/google/uuid"
)

// WebhookSecretOverlap is how long a rotated-out webhook secret still signs
// deliveries beside the new one.
const WebhookSecretOverlap = 24 * time.Hour

// WebhookKeys are a workspace's webhook signing secrets: the current one,
// and for WebhookSecretOverlap after a rotation the previous one.
type WebhookKeys struct {
	Current []byte
	// Previous is nil once its overlap has ended (by PostgreSQL's clock).
	Previous      []byte
	PreviousUntil *time.Time
}

// WebhookSecrets reads the workspace's signing secrets.
func (s *Store) WebhookSecrets(ctx context.Context, workspaceID uuid.UUID) (WebhookKeys, error) {
	var k WebhookKeys
	err := s.pool.QueryRow(ctx, `SELECT webhook_secret,
			CASE WHEN previous_webhook_secret_until > now() THEN previous_webhook_secret END,
			CASE WHEN previous_webhook_secret_until > now() THEN previous_webhook_secret_until END
		FROM workspaces WHERE id = $1`, workspaceID).Scan(&k.Current, &k.Previous, &k.PreviousUntil)
	return k, notFound(err)
}

// RotateWebhookSecret gives the workspace a new signing secret; the one it
// replaces keeps signing, beside it, for WebhookSecretOverlap.
func (s *Store) RotateWebhookSecret(ctx context.Context, workspaceID uuid.UUID) (WebhookKeys, error) {
	secret := make([]byte, 32)
	if _, err := rand.Read(secret); err != nil {
		return WebhookKeys{}, fmt.Errorf("generate webhook secret: %w", err)
	}
	var k WebhookKeys
	err := s.pool.QueryRow(ctx, `UPDATE workspaces SET previous_webhook_secret = webhook_secret,
			previous_webhook_secret_until = now() + $3::interval, webhook_secret = $2
		WHERE id = $1 RETURNING webhook_secret, previous_webhook_secret, previous_webhook_secret_until`,
		workspaceID, secret, WebhookSecretOverlap).Scan(&k.Current, &k.Previous, &k.PreviousUntil)
	return k, notFound(err)
}
