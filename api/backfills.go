package api

import (
	"math"
	"net/http"
	"time"

	"github.com/gin-gonic/gin"

	"github.com/signalbox/signalbox/ingest"
	"github.com/signalbox/signalbox/store"
)

// Backfill bounds.
const (
	// DefaultBackfillRate is how many events a second a backfill goes
	// through when the request does not say.
	DefaultBackfillRate = 100.0
	// MaxBackfillRate is the fastest a backfill may go.
	MaxBackfillRate = 2000.0
	// backfillPageSize is how many events one page (one transaction) takes.
	backfillPageSize = 100
)

// backfillResponse is a backfill with an estimate of the time left.
type backfillResponse struct {
	store.Backfill
	// Remaining is how many of the events counted at the start are left.
	Remaining int64 `json:"remaining"`
	// ETASeconds estimates the time left from the pace so far (the rate
	// asked for until a page has run); null once it has ended.
	ETASeconds            *float64   `json:"eta_seconds"`
	EstimatedCompletionAt *time.Time `json:"estimated_completion_at"`
}

func backfillOut(b store.Backfill, now time.Time) backfillResponse {
	out := backfillResponse{Backfill: b, Remaining: max(0, b.Total-b.Processed)}
	if b.Status != store.BackfillRunning {
		return out
	}
	pace := b.Rate
	if elapsed := b.UpdatedAt.Sub(b.CreatedAt).Seconds(); b.Processed > 0 && elapsed >= 1 {
		pace = min(pace, float64(b.Processed)/elapsed)
	}
	if pace > 0 {
		eta := math.Ceil(float64(out.Remaining) / pace)
		at := now.Add(time.Duration(eta) * time.Second)
		out.ETASeconds, out.EstimatedCompletionAt = &eta, &at
	}
	return out
}

// startBackfill answers POST /v1/automations/{id}/backfill
// {"since", "until", "mode", "rate"}: 202 with the backfill, whose durable
// workflow runs the automation's trigger over the events recorded between
// since and until.
func (s *Server) startBackfill(c *gin.Context) {
	id, err := pathID(c, "automation")
	if err != nil {
		_ = c.Error(err)
		return
	}
	var in struct {
		Since *string  `json:"since"`
		Until *string  `json:"until"`
		Mode  string   `json:"mode"`
		Rate  *float64 `json:"rate"`
	}
	if !controlBody(c, &in) {
		return
	}
	now := time.Now()
	var errs []ingest.FieldError
	at := func(field string, v *string, def time.Time) time.Time {
		if v == nil {
			return def
		}
		t, err := time.Parse(time.RFC3339Nano, *v)
		if err != nil {
			errs = append(errs, ingest.FieldError{Field: field, Code: ingest.CodeInvalid,
				Detail: field + " must be an RFC 3339 timestamp"})
		}
		return t
	}
	since, until := at("since", in.Since, time.Time{}), at("until", in.Until, now)
	if in.Since == nil {
		errs = append(errs, ingest.FieldError{Field: "since", Code: ingest.CodeRequired,
			Detail: "since is required: the backfill covers events that happened from then"})
	}
	if len(errs) == 0 && !since.Before(until) {
		errs = append(errs, ingest.FieldError{Field: "until", Code: ingest.CodeInvalid, Detail: "until must be after since"})
	}
	if in.Mode == "" {
		in.Mode = store.BackfillSkipEnrolled
	}
	if in.Mode != store.BackfillSkipEnrolled {
		errs = append(errs, ingest.FieldError{Field: "mode", Code: ingest.CodeInvalid,
			Detail: `mode must be "skip_enrolled": an event that already enrolled its contact is skipped`})
	}
	rate := DefaultBackfillRate
	if in.Rate != nil {
		rate = *in.Rate
	}
	if !(rate > 0 && rate <= MaxBackfillRate) {
		errs = append(errs, ingest.FieldError{Field: "rate", Code: ingest.CodeInvalid,
			Detail: "rate (events a second) must be above 0 and at most 2000"})
	}
	if len(errs) > 0 {
		_ = c.Error(invalid(errs...))
		return
	}
	b, err := s.store.CreateBackfill(c.Request.Context(), who(c).WorkspaceID, id, since, until, in.Mode, rate,
		min(backfillPageSize, max(1, int(rate))))
	if err != nil {
		_ = c.Error(storeError(err, "automation"))
		return
	}
	s.wake()
	c.JSON(http.StatusAccepted, backfillOut(b, now))
}

// getBackfill answers GET /v1/backfills/{id}: progress and the time left.
func (s *Server) getBackfill(c *gin.Context) {
	id, err := pathID(c, "backfill")
	if err != nil {
		_ = c.Error(err)
		return
	}
	b, err := s.store.GetBackfill(c.Request.Context(), who(c).WorkspaceID, id)
	if err != nil {
		_ = c.Error(storeError(err, "backfill"))
		return
	}
	c.JSON(http.StatusOK, backfillOut(b, time.Now()))
}

// cancelBackfill answers POST /v1/backfills/{id}/cancel: 202, the
// workflow stops between pages and the backfill is recorded cancelled.
func (s *Server) cancelBackfill(c *gin.Context) {
	id, err := pathID(c, "backfill")
	if err != nil {
		_ = c.Error(err)
		return
	}
	b, err := s.store.CancelBackfill(c.Request.Context(), who(c).WorkspaceID, id)
	if err != nil {
		_ = c.Error(storeError(err, "backfill"))
		return
	}
	if b.Status != store.BackfillRunning {
		_ = c.Error(errorf(http.StatusConflict, "not_active", "the backfill has already ended (%s)", b.Status))
		return
	}
	s.wake()
	c.JSON(http.StatusAccepted, backfillOut(b, time.Now()))
}

// listBackfills answers GET /v1/automations/{id}/backfills: the latest
// 100, newest first.
func (s *Server) listBackfills(c *gin.Context) {
	id, err := pathID(c, "automation")
	if err != nil {
		_ = c.Error(err)
		return
	}
	ws := who(c).WorkspaceID
	if _, err := s.store.GetAutomation(c.Request.Context(), ws, id); err != nil {
		_ = c.Error(storeError(err, "automation"))
		return
	}
	list, err := s.store.ListBackfills(c.Request.Context(), ws, id, 100)
	if err != nil {
		_ = c.Error(err)
		return
	}
	now := time.Now()
	out := make([]backfillResponse, 0, len(list))
	for _, b := range list {
		out = append(out, backfillOut(b, now))
	}
	c.JSON(http.StatusOK, gin.H{"data": out})
}
