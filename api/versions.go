package api

import (
	"errors"
	"net/http"
	"strconv"

	"github.com/gin-gonic/gin"

	"github.com/signalbox/signalbox/definition"
	"github.com/signalbox/signalbox/store"
)

// versionParam reads the :n path parameter; a number that is not a
// version cannot exist, so it is a 404 like any unknown one.
func versionParam(c *gin.Context) (int, error) {
	n, err := strconv.Atoi(c.Param("n"))
	if err != nil || n < 1 {
		return 0, notFound("version")
	}
	return n, nil
}

// listVersions answers GET /v1/automations/{id}/versions.
func (s *Server) listVersions(c *gin.Context) {
	id, err := pathID(c, "automation")
	if err != nil {
		_ = c.Error(err)
		return
	}
	list, err := s.store.AutomationVersions(c.Request.Context(), who(c).WorkspaceID, id)
	if err != nil {
		_ = c.Error(storeError(err, "automation"))
		return
	}
	c.JSON(http.StatusOK, gin.H{"data": list})
}

// getVersion answers GET /v1/automations/{id}/versions/{n}.
func (s *Server) getVersion(c *gin.Context) {
	id, err := pathID(c, "automation")
	if err == nil {
		var n int
		if n, err = versionParam(c); err == nil {
			var v store.SavedVersion
			if v, err = s.store.AutomationVersionAt(c.Request.Context(), who(c).WorkspaceID, id, n); err == nil {
				c.JSON(http.StatusOK, v)
				return
			}
			err = storeError(err, "version")
		}
	}
	_ = c.Error(err)
}

// restoreVersion answers POST /v1/automations/{id}/versions/{n}/restore:
// the definition of version n is saved again as a new version, so running
// enrollments keep theirs and new ones start on the restored one.
func (s *Server) restoreVersion(c *gin.Context) {
	id, err := pathID(c, "automation")
	if err != nil {
		_ = c.Error(err)
		return
	}
	n, err := versionParam(c)
	if err != nil {
		_ = c.Error(err)
		return
	}
	ws := who(c).WorkspaceID
	v, err := s.store.AutomationVersionAt(c.Request.Context(), ws, id, n)
	if err != nil {
		_ = c.Error(storeError(err, "version"))
		return
	}
	// Saved definitions were valid when saved; the environment may have
	// tightened since, so check again as any save does.
	def, problems := definition.Load(v.Definition, s.cfg.Conditions)
	if len(problems) > 0 {
		_ = c.Error(errorf(http.StatusUnprocessableEntity, "invalid_definition",
			"version %d no longer validates: %s", n, problems[0].Detail))
		return
	}
	a, err := s.store.UpdateAutomation(c.Request.Context(), ws, id, def.Name, def.Trigger.Event, v.Definition)
	if errors.Is(err, store.ErrConflict) {
		_ = c.Error(errorf(http.StatusConflict, "conflict", "another automation is now named %q", def.Name))
		return
	}
	if err != nil {
		_ = c.Error(storeError(err, "automation"))
		return
	}
	s.invalidate(ws)
	c.JSON(http.StatusOK, automationOut(a))
}

// automationStats answers GET /v1/automations/{id}/stats.
func (s *Server) automationStats(c *gin.Context) {
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
	byStatus, steps, err := s.store.AutomationStats(c.Request.Context(), ws, id)
	if err != nil {
		_ = c.Error(err)
		return
	}
	enrollments := map[string]store.Counts{}
	for _, status := range []string{store.EnrollmentActive, store.EnrollmentCompleted, store.EnrollmentExited,
		store.EnrollmentFailed} {
		enrollments[status] = byStatus[status]
	}
	if steps == nil {
		steps = []store.StepStats{}
	}
	c.JSON(http.StatusOK, gin.H{"enrollments": enrollments, "steps": steps})
}
