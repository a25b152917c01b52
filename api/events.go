package api

import (
	"context"
	"errors"
	"fmt"
	"net/http"
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
	out, err := s.record(c.Request.Context(), p, []store.EventInput{in})
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
	s.warnUsage(c, p, out.Tracked)
	if res.Duplicate {
		s.count(c, "duplicate", 1)
	} else {
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
	if len(batch.Events) > 0 {
		p := who(c)
		out, err := s.record(c.Request.Context(), p, batch.Events)
		if err != nil {
			_ = c.Error(err)
			return
		}
		for i, res := range out.Results {
			if errors.Is(res.Err, store.ErrContactNotFound) {
				in := batch.Events[i]
				pe := contactNotFound(in).Errors[0]
				resp.Errors = append(resp.Errors, ingest.ItemError{Index: batch.Index[i], FieldError: pe})
				continue
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
	s.count(c, "recorded", resp.Processed-resp.Duplicates)
	s.count(c, "duplicate", resp.Duplicates)
	s.count(c, "invalid", resp.Failed)
	c.JSON(http.StatusOK, resp)
}

// record sends a request's events to the recorder and maps a quota refusal.
func (s *Server) record(ctx context.Context, p principal, events []store.EventInput) (store.RecordOutcome, error) {
	carrier := propagation.MapCarrier{}
	propagation.TraceContext{}.Inject(ctx, carrier)
	out, err := s.recorder.Record(ctx, &store.RecordRequest{WorkspaceID: p.WorkspaceID, Plan: p.Plan, Events: events,
		TraceParent: carrier["traceparent"]})
	var qe *store.QuotaError
	if errors.As(err, &qe) {
		s.metrics.events.Add(ctx, int64(len(events)), metric.WithAttributes(attribute.String("outcome", "quota_exceeded")))
		return out, &Error{Status: http.StatusTooManyRequests, Code: "quota_exceeded",
			Detail: fmt.Sprintf("this request would take the workspace past its monthly hard cap of %d events (plan limit %d, %d used)",
				qe.HardCap, qe.Limit, qe.Used),
			Extra: map[string]any{"limit": qe.Limit, "hard_cap": qe.HardCap, "used": qe.Used},
			// The count resets when the calendar month (UTC) turns.
			RetryAfter: time.Until(store.Period(time.Now()).AddDate(0, 1, 0))}
	}
	return out, err
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
	}
	return err
}
