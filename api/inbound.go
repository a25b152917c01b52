package api

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"mime"
	"net/http"
	"slices"
	"strings"
	"time"

	"github.com/gin-gonic/gin"
	"github.com/google/uuid"
	"go.opentelemetry.io/otel/attribute"
	"go.opentelemetry.io/otel/metric"
	"go.opentelemetry.io/otel/propagation"

	"github.com/signalbox/signalbox/source"
	"github.com/signalbox/signalbox/store"
)

// maxInboundBody caps a payload posted to a source.
const maxInboundBody = 256 << 10

// inboundResponse answers POST /in/{token}: what became of the delivery.
type inboundResponse struct {
	DeliveryID uuid.UUID  `json:"delivery_id"`
	Status     string     `json:"status"`
	Reason     *string    `json:"reason"`
	EventID    *uuid.UUID `json:"event_id"`
	Duplicate  bool       `json:"duplicate"`
}

// inbound takes a third party's payload at a source's URL. No API key: the
// token in the URL names the source, and the source's verification, if
// any, checks who sent it. Every payload that reaches a live source is
// kept as a delivery: accepted (202), skipped when it cannot be mapped or
// its event is refused (202 too, so the sender does not retry it for
// ever), rejected when its signature fails (401).
func (s *Server) inbound(c *gin.Context) {
	ctx := c.Request.Context()
	src, err := s.sources.lookup(ctx, c.Param("token"))
	if err != nil {
		_ = c.Error(err)
		return
	}
	if src == nil || !src.enabled {
		_ = c.Error(notFound("source"))
		return
	}
	if !isJSONMedia(c.GetHeader("Content-Type")) {
		_ = c.Error(errorf(http.StatusUnsupportedMediaType, "unsupported_media_type",
			"a source takes JSON only: send Content-Type: application/json"))
		return
	}
	body, err := readBody(c, maxInboundBody)
	if err != nil {
		_ = c.Error(err)
		return
	}
	now := s.now()
	d := &store.DeliveryInput{SourceID: src.id, ID: store.NewID(), Payload: body}
	var events []store.EventInput
	if err := src.def.Verification.Verify(c.Request.Header, body, now); err != nil {
		d.Status, d.Reason = store.DeliveryRejected, err.Error()
	} else if in, reason := src.def.Map(body, now); reason != "" {
		d.Status, d.Reason = store.DeliverySkipped, reason
	} else {
		events = []store.EventInput{in}
	}
	resp, err := s.recordDelivery(ctx, src, d, events)
	if err != nil {
		_ = c.Error(err)
		return
	}
	status := resp.Status
	if resp.Duplicate {
		status = "duplicate"
	}
	s.metrics.deliveries.Add(ctx, 1, metric.WithAttributes(attribute.String("status", status)))
	if resp.Status == store.DeliveryRejected {
		_ = c.Error(&Error{Status: http.StatusUnauthorized, Code: "invalid_signature", Detail: d.Reason,
			Extra: map[string]any{"delivery_id": d.ID}})
		return
	}
	c.JSON(http.StatusAccepted, resp)
}

// recordDelivery records a delivery, with its event if it made one,
// through the recorder: the delivery row is written in the group's record
// transaction. A quota refusal is a 429 (the sender retries later) and
// keeps nothing, as a database failure (503) does.
func (s *Server) recordDelivery(ctx context.Context, src *liveSource, d *store.DeliveryInput, events []store.EventInput) (inboundResponse, error) {
	carrier := propagation.MapCarrier{}
	propagation.TraceContext{}.Inject(ctx, carrier)
	out, err := s.recorder.Record(ctx, &store.RecordRequest{WorkspaceID: src.workspaceID, Plan: src.plan, Events: events,
		TraceParent: carrier["traceparent"], Delivery: d})
	var qe *store.QuotaError
	if errors.As(err, &qe) {
		s.pause(ctx, s.cfg.QuotaPause)
		return inboundResponse{}, &Error{Status: http.StatusTooManyRequests, Code: "quota_exceeded",
			Detail: fmt.Sprintf("the workspace is past its monthly hard cap of %d events (plan limit %d, %d used); retry next month",
				qe.HardCap, qe.Limit, qe.Used),
			Extra:      map[string]any{"limit": qe.Limit, "hard_cap": qe.HardCap, "used": qe.Used},
			RetryAfter: time.Until(store.Period(time.Now()).AddDate(0, 1, 0))}
	}
	if err != nil {
		return inboundResponse{}, err
	}
	status, reason, eventID, dup := store.DeliveryOutcome(d, out.Results)
	resp := inboundResponse{DeliveryID: d.ID, Status: status, Duplicate: dup}
	if reason != "" {
		resp.Reason = &reason
	}
	if eventID != uuid.Nil {
		resp.EventID = &eventID
	}
	return resp, nil
}

// isJSONMedia accepts application/json and any application/*+json.
func isJSONMedia(header string) bool {
	mt, _, err := mime.ParseMediaType(header)
	if err != nil {
		return false
	}
	return mt == "application/json" || strings.HasPrefix(mt, "application/") && strings.HasSuffix(mt, "+json")
}

// deliveryResponse is a kept delivery on the wire; payload is the body as
// received (a JSON string when it was not JSON).
type deliveryResponse struct {
	ID         uuid.UUID       `json:"id"`
	SourceID   uuid.UUID       `json:"source_id"`
	ReceivedAt time.Time       `json:"received_at"`
	Status     string          `json:"status"`
	Reason     *string         `json:"reason"`
	EventID    *uuid.UUID      `json:"event_id"`
	Duplicate  bool            `json:"duplicate"`
	ReplayOf   *uuid.UUID      `json:"replay_of"`
	Payload    json.RawMessage `json:"payload"`
}

func deliveryView(d store.Delivery) deliveryResponse {
	payload := json.RawMessage(d.Payload)
	if !json.Valid(d.Payload) {
		payload, _ = json.Marshal(string(d.Payload))
	}
	return deliveryResponse{ID: d.ID, SourceID: d.SourceID, ReceivedAt: d.ReceivedAt, Status: d.Status, Reason: d.Reason,
		EventID: d.EventID, Duplicate: d.Duplicate, ReplayOf: d.ReplayOf, Payload: payload}
}

// deliveryStatuses are the values of ?status=.
var deliveryStatuses = []string{store.DeliveryAccepted, store.DeliverySkipped, store.DeliveryRejected}

func (s *Server) listDeliveries(c *gin.Context) {
	id, err := pathID(c, "source")
	if err != nil {
		_ = c.Error(err)
		return
	}
	q := query{c: c}
	f := store.DeliveryFilter{Status: c.Query("status"), Limit: q.limit(), Before: q.idCursor()}
	if f.Status != "" && !slices.Contains(deliveryStatuses, f.Status) {
		q.fail("status", "status must be accepted, skipped or rejected")
	}
	if err := q.err(); err != nil {
		_ = c.Error(err)
		return
	}
	if s.cfg.DeliveryRetention > 0 {
		f.Since = s.now().Add(-s.cfg.DeliveryRetention)
	}
	ds, more, err := s.store.ListDeliveries(c.Request.Context(), who(c).WorkspaceID, id, f)
	if err != nil {
		_ = c.Error(storeError(err, "source"))
		return
	}
	out := make([]deliveryResponse, len(ds))
	for i, d := range ds {
		out[i] = deliveryView(d)
	}
	c.JSON(http.StatusOK, newPage(out, nextIDCursor(ds, more, func(r store.Delivery) uuid.UUID { return r.ID })))
}

// replayDelivery runs a kept delivery's payload through the source's
// current definition (after its mapping was fixed, say) and answers the
// new delivery this makes, which names the one it replays. The signature
// is not checked again: the caller holds an API key of the workspace,
// which may record any event anyway, and a signed timestamp would have
// expired.
func (s *Server) replayDelivery(c *gin.Context) {
	src, _, ok := s.currentSource(c)
	if !ok {
		return
	}
	ws := who(c).WorkspaceID
	ctx := c.Request.Context()
	did, err := uuid.Parse(c.Param("delivery_id"))
	if err != nil {
		_ = c.Error(notFound("delivery"))
		return
	}
	orig, err := s.store.GetDelivery(ctx, ws, src.ID, did)
	if err != nil {
		_ = c.Error(storeError(err, "delivery"))
		return
	}
	var def source.Definition
	if err := json.Unmarshal(src.Definition, &def); err != nil {
		_ = c.Error(fmt.Errorf("decode source %s: %w", src.ID, err))
		return
	}
	d := &store.DeliveryInput{SourceID: src.ID, ID: store.NewID(), Payload: orig.Payload, ReplayOf: orig.ID}
	var events []store.EventInput
	if in, reason := def.Map(orig.Payload, s.now()); reason != "" {
		d.Status, d.Reason = store.DeliverySkipped, reason
	} else {
		events = []store.EventInput{in}
	}
	live := &liveSource{id: src.ID, workspaceID: ws, plan: who(c).Plan, enabled: src.Enabled, def: def}
	if _, err := s.recordDelivery(ctx, live, d, events); err != nil {
		_ = c.Error(err)
		return
	}
	kept, err := s.store.GetDelivery(ctx, ws, src.ID, d.ID)
	if err != nil {
		_ = c.Error(err)
		return
	}
	c.JSON(http.StatusOK, deliveryView(kept))
}
