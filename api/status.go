package api

import (
	"net/http"
	"time"

	"github.com/gin-gonic/gin"

	"github.com/signalbox/signalbox/backlog"
	"github.com/signalbox/signalbox/store"
)

// backlogResponse is the outbox backlog as GET /v1/status and /readyz show
// it.
type backlogResponse struct {
	Pending       int64            `json:"pending"`
	PendingByKind map[string]int64 `json:"pending_by_kind"`
	// OldestCreatedAt is null when nothing is pending.
	OldestCreatedAt  *time.Time `json:"oldest_created_at"`
	OldestAgeSeconds float64    `json:"oldest_age_seconds"`
	// ReadAt is when the periodic reading was taken (/readyz only).
	ReadAt *time.Time `json:"read_at,omitempty"`
}

func newBacklogResponse(b store.Backlog) backlogResponse {
	r := backlogResponse{Pending: b.Total, PendingByKind: b.Pending, OldestAgeSeconds: b.OldestAge().Seconds()}
	if !b.Oldest.IsZero() {
		oldest := b.Oldest.UTC()
		r.OldestCreatedAt = &oldest
	}
	return r
}

type statusResponse struct {
	WorkspaceID string          `json:"workspace_id"`
	Outbox      backlogResponse `json:"outbox"`
}

// status answers GET /v1/status: the calling workspace's undelivered
// intents, read now (the /metrics gauges and /readyz show every
// workspace's, read periodically).
func (s *Server) status(c *gin.Context) {
	ws := who(c).WorkspaceID
	b, err := s.store.WorkspaceBacklog(c.Request.Context(), ws)
	if err != nil {
		_ = c.Error(err)
		return
	}
	c.JSON(http.StatusOK, statusResponse{WorkspaceID: ws.String(), Outbox: newBacklogResponse(b)})
}

// readyBody is /readyz's answer: ready, and the backlog of every workspace
// from the monitor's last reading when there is one. A backlog never makes
// the API unready: it is still accepting events, which is what the outbox
// is for.
func readyBody(m *backlog.Monitor) gin.H {
	body := gin.H{"status": "ready"}
	if m == nil {
		return body
	}
	if snap, ok := m.Snapshot(); ok {
		r := newBacklogResponse(snap.Backlog)
		read := snap.Read.UTC()
		r.ReadAt = &read
		body["outbox"] = r
	}
	return body
}

// HealthHandler serves only /healthz, /readyz and /metrics (when
// Config.Metrics is set), for a process that runs no API: a worker's
// HEALTH_ADDR.
func (s *Server) HealthHandler() http.Handler {
	gin.SetMode(gin.ReleaseMode)
	r := gin.New()
	r.Use(problems(s.log))
	r.NoRoute(func(c *gin.Context) { _ = c.Error(errorf(http.StatusNotFound, "not_found", "no such endpoint")) })
	r.GET("/healthz", func(c *gin.Context) { c.JSON(http.StatusOK, gin.H{"status": "ok"}) })
	r.GET("/readyz", s.ready)
	if s.cfg.Metrics != nil {
		r.GET("/metrics", gin.WrapH(s.cfg.Metrics))
	}
	return r
}
