package api

import (
	"bytes"
	"encoding/json"

	"github.com/gin-gonic/gin"

	"github.com/signalbox/signalbox/ingest"
	"github.com/signalbox/signalbox/store"
)

// workspacePatch is PATCH /v1/workspace: the settings a key may change.
type workspacePatch struct {
	UndeclaredEvents *string `json:"undeclared_events"`
}

// patchWorkspace answers PATCH /v1/workspace with the workspace as it now is.
func (s *Server) patchWorkspace(c *gin.Context) {
	body, err := readBody(c, maxContactBody)
	if err != nil {
		_ = c.Error(err)
		return
	}
	var p workspacePatch
	dec := json.NewDecoder(bytes.NewReader(body))
	dec.DisallowUnknownFields()
	if err := dec.Decode(&p); err != nil {
		if !json.Valid(body) {
			_ = c.Error(malformed())
			return
		}
		_ = c.Error(invalid(ingest.FieldError{Code: ingest.CodeInvalid,
			Detail: `the body must be an object of settings: {"undeclared_events": "accept" | "reject"}`}))
		return
	}
	if v := p.UndeclaredEvents; v == nil || (*v != store.UndeclaredAccept && *v != store.UndeclaredReject) {
		_ = c.Error(invalid(ingest.FieldError{Field: "undeclared_events", Code: ingest.CodeInvalid,
			Detail: `undeclared_events must be "accept" or "reject"`}))
		return
	}
	ws := who(c).WorkspaceID
	if err := s.store.SetUndeclaredEvents(c.Request.Context(), ws, *p.UndeclaredEvents); err != nil {
		_ = c.Error(storeError(err, "workspace"))
		return
	}
	s.catalogChanged(ws)
	s.getWorkspace(c)
}
