package api

import (
	"net/http"
	"time"

	"github.com/gin-gonic/gin"

	"github.com/signalbox/signalbox/activities"
	"github.com/signalbox/signalbox/store"
)

// workspaceResponse is the workspace as GET /v1/workspace shows it.
type workspaceResponse struct {
	ID        string    `json:"id"`
	Name      string    `json:"name"`
	Plan      string    `json:"plan"`
	CreatedAt time.Time `json:"created_at"`
	// WebhookSecret verifies Signalbox's webhook deliveries, in the
	// Standard Webhooks format ("whsec_" and base64).
	WebhookSecret string `json:"webhook_secret"`
	// PreviousWebhookSecretUntil is, after a rotation, until when
	// deliveries are also signed with the previous secret.
	PreviousWebhookSecretUntil *time.Time `json:"previous_webhook_secret_until"`
	// UndeclaredEvents says what happens to an event whose name is not
	// declared: "accept" or "reject" (422 undeclared_event).
	UndeclaredEvents string `json:"undeclared_events"`
}

func (s *Server) workspaceOut(c *gin.Context, keys store.WebhookKeys) (workspaceResponse, error) {
	ws, err := s.store.GetWorkspace(c.Request.Context(), who(c).WorkspaceID)
	if err != nil {
		return workspaceResponse{}, err
	}
	return workspaceResponse{ID: ws.ID.String(), Name: ws.Name, Plan: string(ws.Plan), CreatedAt: ws.CreatedAt,
		WebhookSecret: activities.WebhookSecretString(keys.Current), PreviousWebhookSecretUntil: keys.PreviousUntil,
		UndeclaredEvents: ws.UndeclaredEvents}, nil
}

// getWorkspace answers GET /v1/workspace: the workspace of the API key,
// with its webhook signing secret.
func (s *Server) getWorkspace(c *gin.Context) {
	keys, err := s.store.WebhookSecrets(c.Request.Context(), who(c).WorkspaceID)
	if err != nil {
		_ = c.Error(storeError(err, "workspace"))
		return
	}
	out, err := s.workspaceOut(c, keys)
	if err != nil {
		_ = c.Error(storeError(err, "workspace"))
		return
	}
	c.JSON(http.StatusOK, out)
}

// rotateWebhookSecret answers POST /v1/workspace/webhook-secret/rotate: a
// new signing secret; for 24 h deliveries carry a signature under each.
func (s *Server) rotateWebhookSecret(c *gin.Context) {
	keys, err := s.store.RotateWebhookSecret(c.Request.Context(), who(c).WorkspaceID)
	if err != nil {
		_ = c.Error(storeError(err, "workspace"))
		return
	}
	out, err := s.workspaceOut(c, keys)
	if err != nil {
		_ = c.Error(storeError(err, "workspace"))
		return
	}
	c.JSON(http.StatusOK, out)
}
