package api

import (
	"context"
	"crypto/sha256"
	"errors"
	"fmt"
	"net/http"
	"strings"
	"time"

	"github.com/gin-gonic/gin"
	"github.com/google/uuid"
	"go.opentelemetry.io/otel/attribute"
	"go.opentelemetry.io/otel/metric"
	"go.opentelemetry.io/otel/propagation"

	"github.com/signalbox/signalbox/ingest"
	"github.com/signalbox/signalbox/store"
)

// ingestResponse answers POST /v1/events.
type ingestResponse struct {
	EventID            uuid.UUID `json:"event_id"`
	ContactID          uuid.UUID `json:"contact_id"`
	ContactCreated     bool      `json:"contact_created"`
	Duplicate          bool      `json:"duplicate"`
	WorkflowsTriggered int       `json:"workflows_triggered"`
	ExecutionsResumed  int       `json:"executions_resumed"`
	ExecutionsExited   int       `json:"executions_exited"`
}

// batchResponse answers POST /v1/events/batch.
type batchResponse struct {
	Processed          int                `json:"processed"`
	Failed             int                `json:"failed"`
	ContactsCreated    int                `json:"contacts_created"`
	Duplicates         int                `json:"duplicates"`
	WorkflowsTriggered int                `json:"workflows_triggered"`
	ExecutionsResumed  int                `json:"executions_resumed"`
	ExecutionsExited   int                `json:"executions_exited"`
	Errors             []ingest.ItemError `json:"errors"`
}

// UsageWarningHeader is set on ingest answers once the workspace is past its
// plan's monthly limit (but under the hard cap).
const UsageWarningHeader = "Signalbox-Usage-Warning"

func (s *Server) ingestEvent(c *gin.Context) {
	body, err := readBody(c, maxEventBody)
	if err != nil {
		_ = c.Error(err)
		return
	}
	in, errs, err := ingest.DecodeEvent(body, s.now())
	if err != nil {
		_ = c.Error(malformed())
		return
	}
	if len(errs) > 0 {
		s.count(c, "invalid", 1)
		_ = c.Error(invalid(errs...))
		return
	}
	p := who(c)
	key, err := idempotencyKey(c, body)
	if err != nil {
		_ = c.Error(err)
		return
	}
	out, err := s.record(c, p, []store.EventInput{in}, key)
	if err != nil {
		_ = c.Error(err)
		return
	}
	res := out.Results[0]
	if errors.Is(res.Err, store.ErrContactNotFound) {
		s.count(c, "contact_not_found", 1)
		_ = c.Error(contactNotFound(in))
		return
	}
	if errors.Is(res.Err, store.ErrExternalIDConflict) {
		s.count(c, "external_id_conflict", 1)
		_ = c.Error(externalIDConflict(res.EventID))
		return
	}
	if refusal := catalogRefusal(in.Name, res.Err); refusal != nil {
		s.count(c, refusal.Code, 1)
		_ = c.Error(refusal)
		return
	}
	s.warnUsage(c, p, out.Tracked)
	switch {
	case out.Replayed:
		s.count(c, "replayed", 1)
	case res.Duplicate:
		s.count(c, "duplicate", 1)
	default:
		s.count(c, "recorded", 1)
	}
	c.JSON(http.StatusAccepted, ingestResponse{
		EventID: res.EventID, ContactID: res.ContactID, ContactCreated: res.ContactCreated, Duplicate: res.Duplicate,
		WorkflowsTriggered: res.Triggered, ExecutionsResumed: res.Resumed, ExecutionsExited: res.Exited,
	})
}

func (s *Server) ingestBatch(c *gin.Context) {
	body, err := readBody(c, maxBatchBody)
	if err != nil {
		_ = c.Error(err)
		return
	}
	batch, err := ingest.DecodeBatch(body, s.now())
	var fe ingest.FieldError
	switch {
	case errors.As(err, &fe):
		_ = c.Error(invalid(fe))
		return
	case err != nil:
		_ = c.Error(malformed())
		return
	}
	resp := batchResponse{Errors: batch.Errors}
	key, err := idempotencyKey(c, body)
	if err != nil {
		_ = c.Error(err)
		return
	}
	if len(batch.Events) > 0 {
		p := who(c)
		out, err := s.record(c, p, batch.Events, key)
		if err != nil {
			_ = c.Error(err)
			return
		}
		for i, res := range out.Results {
			switch {
			case errors.Is(res.Err, store.ErrContactNotFound):
				in := batch.Events[i]
				pe := contactNotFound(in).Errors[0]
				resp.Errors = append(resp.Errors, ingest.ItemError{Index: batch.Index[i], FieldError: pe})
				continue
			case errors.Is(res.Err, store.ErrExternalIDConflict):
				pe := externalIDConflict(res.EventID).Errors[0]
				resp.Errors = append(resp.Errors, ingest.ItemError{Index: batch.Index[i], FieldError: pe})
				continue
			case res.Err != nil:
				// The catalog refused it (undeclared, schema violation):
				// one error per violation.
				if refusal := catalogRefusal(batch.Events[i].Name, res.Err); refusal != nil {
					for _, pe := range refusal.Errors {
						resp.Errors = append(resp.Errors, ingest.ItemError{Index: batch.Index[i], FieldError: pe})
					}
					continue
				}
			}
			resp.Processed++
			if res.ContactCreated {
				resp.ContactsCreated++
			}
			if res.Duplicate {
				resp.Duplicates++
			}
			resp.WorkflowsTriggered += res.Triggered
			resp.ExecutionsResumed += res.Resumed
			resp.ExecutionsExited += res.Exited
		}
		s.warnUsage(c, p, out.Tracked)
	}
	sortItemErrors(resp.Errors)
	resp.Failed = batch.Size - resp.Processed
	if resp.Errors == nil {
		resp.Errors = []ingest.ItemError{}
	}
	if c.Writer.Header().Get(ReplayedHeader) != "" {
		s.count(c, "replayed", batch.Size)
	} else {
		s.count(c, "recorded", resp.Processed-resp.Duplicates)
		s.count(c, "duplicate", resp.Duplicates)
		s.count(c, "invalid", resp.Failed)
	}
	c.JSON(http.StatusOK, resp)
}

// IdempotencyKeyHeader names the header that makes a retried ingest
// request safe: the same key with the same body gets the first answer.
const IdempotencyKeyHeader = "Idempotency-Key"

// ReplayedHeader is set on an answer that repeats the first answer to an
// Idempotency-Key.
const ReplayedHeader = "Idempotent-Replayed"

// maxIdempotencyKey is the longest Idempotency-Key accepted.
const maxIdempotencyKey = 255

// idemKey is a request's Idempotency-Key and the hash of its body.
type idemKey struct {
	key  string
	hash []byte
}

// idempotencyKey reads the Idempotency-Key header: 1 to 255 visible ASCII
// characters, or absent.
func idempotencyKey(c *gin.Context, body []byte) (idemKey, error) {
	v, ok := c.Request.Header[IdempotencyKeyHeader]
	if !ok {
		return idemKey{}, nil
	}
	key := strings.Join(v, ",")
	valid := len(v) == 1 && len(key) >= 1 && len(key) <= maxIdempotencyKey
	for i := 0; valid && i < len(key); i++ {
		valid = key[i] > ' ' && key[i] < 0x7f
	}
	if !valid {
		detail := fmt.Sprintf("must be one value of 1 to %d visible ASCII characters", maxIdempotencyKey)
		return idemKey{}, invalid(ingest.FieldError{Field: IdempotencyKeyHeader, Code: ingest.CodeInvalid, Detail: detail})
	}
	sum := sha256.Sum256(body)
	return idemKey{key: key, hash: sum[:]}, nil
}

func keyReused() *Error {
	return &Error{Status: http.StatusUnprocessableEntity, Code: "idempotency_key_reused",
		Detail: "this Idempotency-Key was used with another request body; use a new key for a new request",
		Errors: []ingest.FieldError{{Field: IdempotencyKeyHeader, Code: "idempotency_key_reused",
			Detail: "used before with another request body"}}}
}

// externalIDConflict is a 409 naming the event that already has the
// external_id.
func externalIDConflict(existing uuid.UUID) *Error {
	detail := fmt.Sprintf("external_id already names event %s, of another contact or another name; nothing was changed", existing)
	return &Error{Status: http.StatusConflict, Code: "external_id_conflict", Detail: detail,
		Errors: []ingest.FieldError{{Field: "external_id", Code: "external_id_conflict", Detail: detail}},
		Extra:  map[string]any{"existing_event_id": existing}}
}

// record sends a request's events to the recorder and maps a quota refusal.
//
// An Idempotency-Key used before with another body is refused; an answer
// that repeats a kept one is marked with ReplayedHeader.
func (s *Server) record(c *gin.Context, p principal, events []store.EventInput, key idemKey) (store.RecordOutcome, error) {
	ctx := c.Request.Context()
	out, err := s.recordRequest(ctx, p, events, key)
	switch {
	case err != nil:
		return out, err
	case out.KeyReused:
		return out, keyReused()
	case out.Replayed:
		c.Header(ReplayedHeader, "true")
	}
	return out, nil
}

// recordRequest hands the request to the recorder and maps a quota refusal.
func (s *Server) recordRequest(ctx context.Context, p principal, events []store.EventInput, key idemKey) (store.RecordOutcome, error) {
	carrier := propagation.MapCarrier{}
	propagation.TraceContext{}.Inject(ctx, carrier)
	out, err := s.recorder.Record(ctx, &store.RecordRequest{WorkspaceID: p.WorkspaceID, Plan: p.Plan, Events: events,
		TraceParent: carrier["traceparent"], IdempotencyKey: key.key, RequestHash: key.hash})
	var qe *store.QuotaError
	if errors.As(err, &qe) {
		s.metrics.events.Add(ctx, int64(len(events)), metric.WithAttributes(attribute.String("outcome", "quota_exceeded")))
		s.pause(ctx, s.cfg.QuotaPause)
		return out, &Error{Status: http.StatusTooManyRequests, Code: "quota_exceeded",
			Detail: fmt.Sprintf("this request would take the workspace past its monthly hard cap of %d events (plan limit %d, %d used)",
				qe.HardCap, qe.Limit, qe.Used),
			Extra: map[string]any{"limit": qe.Limit, "hard_cap": qe.HardCap, "used": qe.Used},
			// The count resets when the calendar month (UTC) turns.
			RetryAfter: time.Until(store.Period(time.Now()).AddDate(0, 1, 0))}
	}
	return out, err
}

// pause waits d, or until the client has gone.
func (s *Server) pause(ctx context.Context, d time.Duration) {
	if d <= 0 {
		return
	}
	t := time.NewTimer(d)
	defer t.Stop()
	select {
	case <-t.C:
	case <-ctx.Done():
	}
}

func (s *Server) warnUsage(c *gin.Context, p principal, tracked int64) {
	if limit := p.Plan.Limit(); limit > 0 && tracked > limit {
		c.Header(UsageWarningHeader, fmt.Sprintf("%d of %d events tracked this month; ingest stops at %d",
			tracked, limit, p.Plan.HardCap()))
	}
}

func (s *Server) count(c *gin.Context, outcome string, n int) {
	if n > 0 {
		s.metrics.events.Add(c.Request.Context(), int64(n), metric.WithAttributes(attribute.String("outcome", outcome)))
	}
}

func contactNotFound(in store.EventInput) *Error {
	field, detail := "email", "no contact has this email; set create_if_missing to create one"
	if in.ContactID != uuid.Nil {
		field, detail = "contact_id", "no contact has this id"
	}
	return &Error{Status: http.StatusNotFound, Code: ingest.CodeContactNotFound, Detail: detail,
		Errors: []ingest.FieldError{{Field: field, Code: ingest.CodeContactNotFound, Detail: detail}}}
}

func sortItemErrors(errs []ingest.ItemError) {
	for i := 1; i < len(errs); i++ {
		for j := i; j > 0 && errs[j].Index < errs[j-1].Index; j-- {
			errs[j], errs[j-1] = errs[j-1], errs[j]
		}
	}
}

func (s *Server) listEvents(c *gin.Context) {
	q := query{c: c}
	f := store.EventFilter{
		Name:           q.eventName(),
		Email:          q.email(),
		ContactID:      q.uuid("contact_id"),
		Since:          q.time("since"),
		Until:          q.time("until"),
		Limit:          q.limit(),
		After:          q.eventCursor(),
		IncludeDeleted: q.bool("include_deleted"),
		Declared:       q.optionalBool("declared"),
		SchemaValid:    q.optionalBool("schema_valid"),
	}
	if err := q.err(); err != nil {
		_ = c.Error(err)
		return
	}
	events, next, err := s.store.ListEvents(c.Request.Context(), who(c).WorkspaceID, f)
	if err != nil {
		_ = c.Error(err)
		return
	}
	c.JSON(http.StatusOK, newPage(events, encodeEventCursor(next)))
}

func (s *Server) getEvent(c *gin.Context) {
	id, err := pathID(c, "event")
	if err == nil {
		var e store.Event
		if e, err = s.store.GetEvent(c.Request.Context(), who(c).WorkspaceID, id); err == nil {
			c.JSON(http.StatusOK, e)
			return
		}
	}
	_ = c.Error(storeError(err, "event"))
}

func (s *Server) deleteEvent(c *gin.Context) {
	id, err := pathID(c, "event")
	if err == nil {
		if err = s.store.DeleteEvent(c.Request.Context(), who(c).WorkspaceID, id); err == nil {
			c.Status(http.StatusNoContent)
			return
		}
	}
	_ = c.Error(storeError(err, "event"))
}

func (s *Server) restoreEvent(c *gin.Context) {
	id, err := pathID(c, "event")
	if err == nil {
		var e store.Event
		if e, err = s.store.RestoreEvent(c.Request.Context(), who(c).WorkspaceID, id); err == nil {
			c.JSON(http.StatusOK, e)
			return
		}
	}
	_ = c.Error(storeError(err, "event"))
}

// storeError maps the store's sentinel errors to problems.
func storeError(err error, what string) error {
	switch {
	case errors.Is(err, store.ErrNotFound):
		return notFound(what)
	case errors.Is(err, store.ErrConflict):
		return errorf(http.StatusConflict, "conflict", "another %s already has this email", what)
	case errors.Is(err, store.ErrArchived):
		return errorf(http.StatusConflict, "archived", "the %s is archived and can no longer be changed", what)
	case errors.Is(err, store.ErrNotActive):
		return errorf(http.StatusConflict, "not_active", "the %s has already ended", what)
	}
	return err
}
