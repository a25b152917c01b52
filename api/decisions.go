package api

import (
	"net/http"
	"slices"

	"github.com/gin-gonic/gin"
	"github.com/google/uuid"

	"github.com/signalbox/signalbox/decision"
	"github.com/signalbox/signalbox/store"
)

// outcomes are the decision outcomes a listing may filter by.
var outcomes = []string{decision.Enrolled, decision.ConditionFalse, decision.ConditionError, decision.OnceAlready,
	decision.AutomationDisabled, decision.DepthLimit, decision.RateLimited, decision.Resumed, decision.WaitMatched, decision.WaitConditionFalse,
	decision.TakenByOtherEvent, decision.Exited}

// eventDecisions answers GET /v1/events/{id}/decisions: what the event did,
// or did not do, to each automation whose trigger, wait or exit names it.
func (s *Server) eventDecisions(c *gin.Context) {
	id, err := pathID(c, "event")
	if err != nil {
		_ = c.Error(err)
		return
	}
	ws := who(c).WorkspaceID
	ev, err := s.store.GetEvent(c.Request.Context(), ws, id)
	if err != nil {
		_ = c.Error(storeError(err, "event"))
		return
	}
	list, err := s.store.EventDecisions(c.Request.Context(), ws, id)
	if err != nil {
		_ = c.Error(err)
		return
	}
	if list == nil {
		list = []store.Decision{}
	}
	// declared tells an event that matched nothing because no automation
	// names it from one whose name is not even in the catalog.
	c.JSON(http.StatusOK, gin.H{"data": list, "declared": ev.Declared})
}

// automationDecisions answers GET /v1/automations/{id}/decisions.
func (s *Server) automationDecisions(c *gin.Context) {
	id, err := pathID(c, "automation")
	if err != nil {
		_ = c.Error(err)
		return
	}
	q := query{c: c}
	f := store.DecisionFilter{Outcome: c.Query("outcome"), Since: q.time("since"), Until: q.time("until"),
		Limit: q.limit(), Before: q.idCursor()}
	if f.Outcome != "" && !slices.Contains(outcomes, f.Outcome) {
		q.fail("outcome", "must be one of the decision outcomes (see the API document)")
	}
	if err := q.err(); err != nil {
		_ = c.Error(err)
		return
	}
	ws := who(c).WorkspaceID
	if _, err := s.store.GetAutomation(c.Request.Context(), ws, id); err != nil {
		_ = c.Error(storeError(err, "automation"))
		return
	}
	list, more, err := s.store.AutomationDecisions(c.Request.Context(), ws, id, f)
	if err != nil {
		_ = c.Error(err)
		return
	}
	c.JSON(http.StatusOK, newPage(list, nextIDCursor(list, more, func(r store.Decision) uuid.UUID { return r.ID })))
}
