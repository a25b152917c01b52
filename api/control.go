package api

import (
	"encoding/json"
	"net/http"
	"strings"

	"github.com/gin-gonic/gin"

	"github.com/signalbox/signalbox/ingest"
)

// maxControlBody caps the small bodies of the control endpoints.
const maxControlBody = 4 << 10

// maxExitReason is the longest reason an enrollment can be ended with.
const maxExitReason = 500

// controlBody reads an optional JSON object body with only the given
// members into v; an empty body leaves v as it is.
func controlBody(c *gin.Context, v any) bool {
	body, err := readBody(c, maxControlBody)
	if err != nil {
		_ = c.Error(err)
		return false
	}
	if len(strings.TrimSpace(string(body))) == 0 {
		return true
	}
	dec := json.NewDecoder(strings.NewReader(string(body)))
	dec.DisallowUnknownFields()
	if err := dec.Decode(v); err != nil {
		_ = c.Error(invalid(ingest.FieldError{Code: ingest.CodeType,
			Detail: "the body must be a JSON object with only the documented members: " + err.Error()}))
		return false
	}
	return true
}

// exitEnrollment answers POST /v1/enrollments/{id}/exit {"reason"}: the
// enrollment is ended, recorded as exited with the reason, as soon as its
// workflow is cancelled (202).
func (s *Server) exitEnrollment(c *gin.Context) {
	id, err := pathID(c, "enrollment")
	if err != nil {
		_ = c.Error(err)
		return
	}
	var in struct {
		Reason string `json:"reason"`
	}
	if !controlBody(c, &in) {
		return
	}
	if in.Reason == "" {
		in.Reason = "exited on request"
	}
	if len([]rune(in.Reason)) > maxExitReason || strings.ContainsRune(in.Reason, 0) {
		_ = c.Error(invalid(ingest.FieldError{Field: "reason", Code: ingest.CodeInvalid,
			Detail: "must be at most 500 characters, without NUL"}))
		return
	}
	e, err := s.store.ExitEnrollment(c.Request.Context(), who(c).WorkspaceID, id, in.Reason)
	if err != nil {
		_ = c.Error(storeError(err, "enrollment"))
		return
	}
	s.wake()
	c.JSON(http.StatusAccepted, e)
}

// disableAutomation answers POST /v1/automations/{id}/disable, with an
// optional {"exit_active": true} that also ends its running enrollments.
func (s *Server) disableAutomation(c *gin.Context) {
	id, err := pathID(c, "automation")
	if err != nil {
		_ = c.Error(err)
		return
	}
	var in struct {
		ExitActive bool `json:"exit_active"`
	}
	if !controlBody(c, &in) {
		return
	}
	ws := who(c).WorkspaceID
	a, err := s.store.SetAutomationEnabled(c.Request.Context(), ws, id, false)
	if err != nil {
		_ = c.Error(storeError(err, "automation"))
		return
	}
	s.invalidate(ws)
	exited := 0
	if in.ExitActive {
		if exited, err = s.store.ExitActive(c.Request.Context(), ws, id, "automation disabled"); err != nil {
			_ = c.Error(err)
			return
		}
		s.wake()
	}
	c.JSON(http.StatusOK, withExited(automationOut(a), exited))
}

// deleteAutomation answers DELETE /v1/automations/{id}: the automation is
// archived (no new enrollments; listed with ?archived=true), its running
// enrollments finish unless ?exit_active=true ends them.
func (s *Server) deleteAutomation(c *gin.Context) {
	id, err := pathID(c, "automation")
	if err != nil {
		_ = c.Error(err)
		return
	}
	q := query{c: c}
	exitActive := q.bool("exit_active")
	if err := q.err(); err != nil {
		_ = c.Error(err)
		return
	}
	ws := who(c).WorkspaceID
	a, err := s.store.ArchiveAutomation(c.Request.Context(), ws, id)
	if err != nil {
		_ = c.Error(storeError(err, "automation"))
		return
	}
	s.invalidate(ws)
	exited := 0
	if exitActive {
		if exited, err = s.store.ExitActive(c.Request.Context(), ws, id, "automation archived"); err != nil {
			_ = c.Error(err)
			return
		}
		s.wake()
	}
	c.JSON(http.StatusOK, withExited(automationOut(a), exited))
}

// automationExited is an automation with how many running enrollments a
// request ended.
type automationExited struct {
	automationResponse
	EnrollmentsExited int `json:"enrollments_exited"`
}

func withExited(a automationResponse, n int) automationExited {
	return automationExited{automationResponse: a, EnrollmentsExited: n}
}

// wake asks for the intents a request wrote to be delivered at once.
func (s *Server) wake() {
	if s.cfg.OnIntents != nil {
		s.cfg.OnIntents()
	}
}
