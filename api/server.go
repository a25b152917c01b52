// Package api is Signalbox's HTTP API: the Gin router, its handlers and
// DTOs, API-key authentication, and the one mapping of errors to RFC 9457
// problem documents.
package api

import (
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"strings"
	"time"

	"github.com/gin-gonic/gin"
	"github.com/google/uuid"
	"go.opentelemetry.io/contrib/instrumentation/github.com/gin-gonic/gin/otelgin"
	"go.opentelemetry.io/otel/metric"
	"go.opentelemetry.io/otel/metric/noop"
	"go.opentelemetry.io/otel/trace"
	"go.temporal.io/sdk/client"

	"github.com/signalbox/signalbox/backlog"
	"github.com/signalbox/signalbox/conditions"
	"github.com/signalbox/signalbox/ingest"
	"github.com/signalbox/signalbox/store"
)

// Body caps, beyond which a request is refused with 413 unread.
const (
	maxEventBody   = 128 << 10
	maxBatchBody   = 5 << 20
	maxContactBody = 64 << 10
)

// Config wires a Server. Logger and Store are required.
type Config struct {
	Store    *store.Store
	Recorder *ingest.Recorder
	Logger   *slog.Logger
	// AuthCacheTTL bounds how long a revoked key keeps working; default 5s.
	AuthCacheTTL time.Duration
	// Metrics serves /metrics when set.
	Metrics http.Handler
	// Tracer and Meter instrument the router; no-ops when nil.
	Tracer trace.TracerProvider
	Meter  metric.MeterProvider
	// Now is the clock; time.Now when nil.
	Now func() time.Time
	// Conditions compiles CEL when automations are saved.
	Conditions *conditions.Env
	// Triggers is told when a workspace's automations change.
	Triggers interface{ Invalidate(workspaceID uuid.UUID) }
	// OnIntents is called after a request wrote outbox intents outside the
	// recorder (deleting a contact cancels its enrollments).
	OnIntents func()
	// QuotaPause is how long an answer refusing events for the quota waits
	// before it is sent; default DefaultQuotaPause, negative for none.
	QuotaPause time.Duration
	// Temporal, when set, is asked for a running enrollment's live step
	// and retries (GET /v1/enrollments/{id}).
	Temporal client.Client

	// Inbound sources (sources.go, inbound.go).
	//
	// PublicURL prefixes a source's url (PUBLIC_URL); without it the url is
	// the path /in/{token}.
	PublicURL string
	// SourceCacheTTL is how long a source looked up by token is trusted;
	// default 5s (SOURCE_CACHE_TTL).
	SourceCacheTTL time.Duration
	// DeliveryRetention hides deliveries older than this from listings
	// (DELIVERY_RETENTION); 0 hides none.
	DeliveryRetention time.Duration
	// Catalog is told when a workspace's event catalog changes (the
	// recorder's catalog.Catalog).
	Catalog interface{ Invalidate(workspaceID uuid.UUID) }
	// Backlog, when set, supplies the outbox backlog that /readyz reports.
	Backlog *backlog.Monitor
}

// DefaultQuotaPause holds back each 429 quota_exceeded answer. A refusal
// costs no transaction, so a client past its cap that retries at once,
// ignoring Retry-After, would otherwise get its answers back as fast as the
// API can write them and take CPU from every other workspace: 32 such
// connections made about 6,000 requests a second on a 2-core machine and
// took over half of it. Paused, each connection sends at most 4 a second;
// a client that honours Retry-After never notices.
const DefaultQuotaPause = 250 * time.Millisecond

// Server handles the API.
type Server struct {
	store    *store.Store
	recorder *ingest.Recorder
	log      *slog.Logger
	auth     *authenticator
	now      func() time.Time
	cfg      Config
	metrics  serverMetrics
	sources  *sourceCache
	// eventTypeSubroutes serves GET /v1/event-types/{name}/{suffix} by
	// suffix ("stats", "feed", ...); see registerEventTypes.
	eventTypeSubroutes map[string]eventTypeSubroute
}

// New makes a Server.
func New(cfg Config) *Server {
	if cfg.AuthCacheTTL <= 0 {
		cfg.AuthCacheTTL = 5 * time.Second
	}
	if cfg.Now == nil {
		cfg.Now = time.Now
	}
	if cfg.SourceCacheTTL <= 0 {
		cfg.SourceCacheTTL = 5 * time.Second
	}
	cfg.PublicURL = strings.TrimRight(cfg.PublicURL, "/")
	if cfg.QuotaPause == 0 {
		cfg.QuotaPause = DefaultQuotaPause
	}
	if cfg.Meter == nil {
		cfg.Meter = noop.NewMeterProvider()
	}
	if cfg.Conditions == nil {
		env, err := conditions.NewEnv(conditions.Config{})
		if err != nil {
			panic(fmt.Sprintf("default CEL environment: %v", err))
		}
		cfg.Conditions = env
	}
	return &Server{
		store:    cfg.Store,
		recorder: cfg.Recorder,
		log:      cfg.Logger,
		auth:     newAuthenticator(cfg.Store, cfg.AuthCacheTTL),
		now:      cfg.Now,
		cfg:      cfg,
		metrics:  newServerMetrics(cfg.Meter),
		sources:  newSourceCache(cfg.Store, cfg.SourceCacheTTL),

		eventTypeSubroutes: map[string]eventTypeSubroute{},
	}
}

// Handler returns the router.
func (s *Server) Handler() http.Handler {
	gin.SetMode(gin.ReleaseMode)
	r := gin.New()
	r.ContextWithFallback = true
	r.HandleMethodNotAllowed = true
	var otelOpts []otelgin.Option
	if s.cfg.Tracer != nil {
		otelOpts = append(otelOpts, otelgin.WithTracerProvider(s.cfg.Tracer))
	}
	otelOpts = append(otelOpts, otelgin.WithMeterProvider(s.cfg.Meter))
	r.Use(otelgin.Middleware("signalbox-api", otelOpts...), problems(s.log))
	r.NoRoute(func(c *gin.Context) { _ = c.Error(errorf(http.StatusNotFound, "not_found", "no such endpoint")) })
	r.NoMethod(func(c *gin.Context) {
		_ = c.Error(errorf(http.StatusMethodNotAllowed, "method_not_allowed", "method not allowed"))
	})

	r.GET("/healthz", func(c *gin.Context) { c.JSON(http.StatusOK, gin.H{"status": "ok"}) })
	r.GET("/readyz", s.ready)
	r.GET("/openapi.yaml", func(c *gin.Context) { c.Data(http.StatusOK, "application/yaml", OpenAPI) })
	if s.cfg.Metrics != nil {
		r.GET("/metrics", gin.WrapH(s.cfg.Metrics))
	}

	v1 := r.Group("/v1", s.auth.middleware)
	v1.POST("/events", s.ingestEvent)
	v1.POST("/events/batch", s.ingestBatch)
	v1.GET("/events", s.listEvents)
	v1.GET("/events/:id", s.getEvent)
	v1.DELETE("/events/:id", s.deleteEvent)
	v1.POST("/events/:id/restore", s.restoreEvent)
	v1.GET("/events/:id/decisions", s.eventDecisions)

	v1.POST("/contacts", s.upsertContact)
	v1.GET("/contacts", s.listContacts)
	v1.GET("/contacts/:id", s.getContact)
	v1.PATCH("/contacts/:id", s.patchContact)
	v1.DELETE("/contacts/:id", s.deleteContact)
	v1.GET("/contacts/:id/timeline", s.timeline)

	v1.GET("/usage", s.usage)
	v1.GET("/status", s.status)
	v1.GET("/workspace", s.getWorkspace)
	v1.POST("/workspace/webhook-secret/rotate", s.rotateWebhookSecret)
	v1.PATCH("/workspace", s.patchWorkspace)
	s.registerEventTypes(v1)

	v1.POST("/automations", s.createAutomation)
	v1.POST("/automations/validate", s.validateAutomation)
	v1.GET("/automations", s.listAutomations)
	v1.GET("/automations/:id", s.getAutomation)
	v1.PUT("/automations/:id", s.updateAutomation)
	v1.DELETE("/automations/:id", s.deleteAutomation)
	v1.POST("/automations/:id/enable", s.enableAutomation)
	v1.POST("/automations/:id/disable", s.disableAutomation)
	v1.GET("/automations/:id/decisions", s.automationDecisions)
	v1.GET("/automations/:id/stats", s.automationStats)
	v1.POST("/automations/:id/backfill", s.startBackfill)
	v1.GET("/automations/:id/backfills", s.listBackfills)
	v1.GET("/backfills/:id", s.getBackfill)
	v1.POST("/backfills/:id/cancel", s.cancelBackfill)
	v1.GET("/automations/:id/versions", s.listVersions)
	v1.GET("/automations/:id/versions/:n", s.getVersion)
	v1.POST("/automations/:id/versions/:n/restore", s.restoreVersion)
	v1.GET("/enrollments", s.listEnrollments)
	v1.GET("/enrollments/:id", s.getEnrollment)
	v1.POST("/enrollments/:id/exit", s.exitEnrollment)

	// Inbound sources: managed with an API key; /in/{token} takes none.
	v1.POST("/sources", s.createSource)
	v1.GET("/sources", s.listSources)
	v1.GET("/sources/:id", s.getSource)
	v1.PATCH("/sources/:id", s.patchSource)
	v1.DELETE("/sources/:id", s.deleteSource)
	v1.POST("/sources/:id/rotate", s.rotateSource)
	v1.GET("/sources/:id/deliveries", s.listDeliveries)
	v1.POST("/sources/:id/deliveries/:delivery_id/replay", s.replayDelivery)
	r.POST("/in/:token", s.inbound)
	// Segments and event analytics (issue 8).
	s.routeAnalytics(v1)
	s.routeSegments(v1)
	return r
}

// NewHTTPServer wraps a handler with the timeouts every exposed server needs.
func NewHTTPServer(addr string, h http.Handler) *http.Server {
	return &http.Server{
		Addr:              addr,
		Handler:           h,
		ReadHeaderTimeout: 5 * time.Second,
		ReadTimeout:       30 * time.Second,
		WriteTimeout:      60 * time.Second,
		IdleTimeout:       120 * time.Second,
		MaxHeaderBytes:    64 << 10,
	}
}

func (s *Server) ready(c *gin.Context) {
	ctx, cancel := context.WithTimeout(c.Request.Context(), 2*time.Second)
	defer cancel()
	if err := s.store.Ping(ctx); err != nil {
		s.log.WarnContext(ctx, "not ready", "error", err.Error())
		c.Header("Content-Type", "application/problem+json")
		c.JSON(http.StatusServiceUnavailable, gin.H{"type": problemTypeBase + "not_ready", "title": "Service Unavailable",
			"status": http.StatusServiceUnavailable, "code": "not_ready", "detail": "PostgreSQL is not reachable"})
		return
	}
	c.JSON(http.StatusOK, readyBody(s.cfg.Backlog))
}

// readBody reads the request body up to limit bytes; a larger body is a 413.
func readBody(c *gin.Context, limit int64) ([]byte, error) {
	if c.Request.ContentLength > limit {
		return nil, tooLarge(limit)
	}
	body, err := io.ReadAll(http.MaxBytesReader(c.Writer, c.Request.Body, limit))
	var mbe *http.MaxBytesError
	if errors.As(err, &mbe) {
		return nil, tooLarge(limit)
	}
	if err != nil {
		return nil, errorf(http.StatusBadRequest, "unreadable_body", "could not read the request body")
	}
	return body, nil
}

func tooLarge(limit int64) *Error {
	return errorf(http.StatusRequestEntityTooLarge, "body_too_large", "the request body is larger than %d bytes", limit)
}

func malformed() *Error {
	return errorf(http.StatusBadRequest, "malformed_json", "the request body is not valid JSON")
}
