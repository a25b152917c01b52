package api

import (
	"encoding/json"
	"errors"
	"net/http"
	"time"

	"github.com/gin-gonic/gin"
	"github.com/google/uuid"

	"github.com/signalbox/signalbox/definition"
	"github.com/signalbox/signalbox/ingest"
	"github.com/signalbox/signalbox/store"
)

// maxAutomationBody caps an automation document.
const maxAutomationBody = definition.MaxDocumentSize

// automationResponse is an automation on the wire.
type automationResponse struct {
	ID           uuid.UUID       `json:"id"`
	Name         string          `json:"name"`
	Version      int             `json:"version"`
	Status       string          `json:"status"`
	TriggerEvent string          `json:"trigger_event"`
	Definition   json.RawMessage `json:"definition"`
	CreatedAt    time.Time       `json:"created_at"`
	UpdatedAt    time.Time       `json:"updated_at"`
}

func automationOut(a store.Automation) automationResponse {
	status := "disabled"
	switch {
	case a.ArchivedAt != nil:
		status = "archived"
	case a.Enabled:
		status = "enabled"
	}
	return automationResponse{ID: a.ID, Name: a.Name, Version: a.Version, Status: status, TriggerEvent: a.TriggerEvent,
		Definition: a.Definition, CreatedAt: a.CreatedAt, UpdatedAt: a.UpdatedAt}
}

// loadDefinition reads and validates an automation document once, as it
// is saved: structure, names, durations, and every CEL expression compiled,
// type-checked and cost-estimated. Problems point into the document.
func (s *Server) loadDefinition(c *gin.Context) (*definition.Automation, json.RawMessage, bool) {
	body, err := readBody(c, maxAutomationBody)
	if err != nil {
		_ = c.Error(err)
		return nil, nil, false
	}
	a, problems := definition.Load(body, s.cfg.Conditions)
	if len(problems) > 0 {
		errs := make([]ingest.FieldError, len(problems))
		for i, p := range problems {
			errs[i] = ingest.FieldError{Field: p.Pointer, Pointer: p.Pointer, Code: ingest.CodeInvalid, Detail: p.Detail}
		}
		if len(problems) == 1 && problems[0].Pointer == "" && !json.Valid(body) {
			_ = c.Error(malformed())
			return nil, nil, false
		}
		_ = c.Error(invalid(errs...))
		return nil, nil, false
	}
	if !s.checkSegmentRefs(c, a) {
		return nil, nil, false
	}
	// Store the normalised form: the same document the interpreter reads.
	canonical, err := json.Marshal(a)
	if err != nil {
		_ = c.Error(err)
		return nil, nil, false
	}
	return a, canonical, true
}

func (s *Server) validateAutomation(c *gin.Context) {
	a, canonical, ok := s.loadDefinition(c)
	if !ok {
		return
	}
	warnings, err := s.automationWarnings(c.Request.Context(), who(c).WorkspaceID, a)
	if err != nil {
		_ = c.Error(err)
		return
	}
	c.JSON(http.StatusOK, gin.H{"valid": true, "name": a.Name, "trigger_event": a.Trigger.Event,
		"definition": canonical, "warnings": warnings})
}

func (s *Server) createAutomation(c *gin.Context) {
	a, canonical, ok := s.loadDefinition(c)
	if !ok {
		return
	}
	ws := who(c).WorkspaceID
	saved, err := s.store.CreateAutomation(c.Request.Context(), ws, a.Name, a.Trigger.Event, canonical)
	if errors.Is(err, store.ErrConflict) {
		_ = c.Error(errorf(http.StatusConflict, "conflict", "an automation named %q already exists; PUT a new version to it", a.Name))
		return
	}
	if err != nil {
		_ = c.Error(err)
		return
	}
	s.invalidate(ws)
	s.answerWithWarnings(c, http.StatusCreated, a, automationOut(saved))
}

func (s *Server) updateAutomation(c *gin.Context) {
	id, err := pathID(c, "automation")
	if err != nil {
		_ = c.Error(err)
		return
	}
	a, canonical, ok := s.loadDefinition(c)
	if !ok {
		return
	}
	ws := who(c).WorkspaceID
	saved, err := s.store.UpdateAutomation(c.Request.Context(), ws, id, a.Name, a.Trigger.Event, canonical)
	if errors.Is(err, store.ErrConflict) {
		_ = c.Error(errorf(http.StatusConflict, "conflict", "another automation is named %q", a.Name))
		return
	}
	if err != nil {
		_ = c.Error(storeError(err, "automation"))
		return
	}
	s.invalidate(ws)
	s.answerWithWarnings(c, http.StatusOK, a, automationOut(saved))
}

func (s *Server) getAutomation(c *gin.Context) {
	id, err := pathID(c, "automation")
	if err == nil {
		var a store.Automation
		if a, err = s.store.GetAutomation(c.Request.Context(), who(c).WorkspaceID, id); err == nil {
			c.JSON(http.StatusOK, automationOut(a))
			return
		}
	}
	_ = c.Error(storeError(err, "automation"))
}

func (s *Server) listAutomations(c *gin.Context) {
	q := query{c: c}
	limit, before, archived := q.limit(), q.idCursor(), q.bool("archived")
	if err := q.err(); err != nil {
		_ = c.Error(err)
		return
	}
	list, more, err := s.store.ListAutomations(c.Request.Context(), who(c).WorkspaceID, before, limit, archived)
	if err != nil {
		_ = c.Error(err)
		return
	}
	out := make([]automationResponse, len(list))
	for i, a := range list {
		out[i] = automationOut(a)
	}
	c.JSON(http.StatusOK, newPage(out, nextIDCursor(list, more, func(r store.Automation) uuid.UUID { return r.ID })))
}

func (s *Server) enableAutomation(c *gin.Context) {
	id, err := pathID(c, "automation")
	if err == nil {
		ws := who(c).WorkspaceID
		var a store.Automation
		if a, err = s.store.SetAutomationEnabled(c.Request.Context(), ws, id, true); err == nil {
			s.invalidate(ws)
			c.JSON(http.StatusOK, automationOut(a))
			return
		}
	}
	_ = c.Error(storeError(err, "automation"))
}

func (s *Server) invalidate(ws uuid.UUID) {
	if s.cfg.Triggers != nil {
		s.cfg.Triggers.Invalidate(ws)
	}
}

// enrollmentResponse is an enrollment with its step log and, while it
// runs, what Temporal says of its current step.
type enrollmentResponse struct {
	store.Enrollment
	liveEnrollment
	Steps []store.StepRecord `json:"steps"`
}

func (s *Server) listEnrollments(c *gin.Context) {
	q := query{c: c}
	f := store.EnrollmentFilter{AutomationID: q.uuid("automation_id"), ContactID: q.uuid("contact_id"),
		Status: c.Query("status"), Limit: q.limit(), Before: q.idCursor()}
	switch f.Status {
	case "", store.EnrollmentActive, store.EnrollmentCompleted, store.EnrollmentExited, store.EnrollmentFailed:
	default:
		q.fail("status", "status must be active, completed, exited or failed")
	}
	if err := q.err(); err != nil {
		_ = c.Error(err)
		return
	}
	list, more, err := s.store.ListEnrollments(c.Request.Context(), who(c).WorkspaceID, f)
	if err != nil {
		_ = c.Error(err)
		return
	}
	c.JSON(http.StatusOK, newPage(list, nextIDCursor(list, more, func(r store.Enrollment) uuid.UUID { return r.ID })))
}

func (s *Server) getEnrollment(c *gin.Context) {
	id, err := pathID(c, "enrollment")
	if err == nil {
		var (
			e     store.Enrollment
			steps []store.StepRecord
		)
		if e, steps, err = s.store.GetEnrollment(c.Request.Context(), who(c).WorkspaceID, id); err == nil {
			if steps == nil {
				steps = []store.StepRecord{}
			}
			resp := enrollmentResponse{Enrollment: e, Steps: steps}
			if e.Status == store.EnrollmentActive {
				if l, ok := live(c.Request.Context(), s.cfg.Temporal, e.WorkflowID); ok {
					resp.liveEnrollment = l
					resp.Enrollment.CurrentStep = &l.CurrentStep
				}
			}
			c.JSON(http.StatusOK, resp)
			return
		}
	}
	_ = c.Error(storeError(err, "enrollment"))
}
