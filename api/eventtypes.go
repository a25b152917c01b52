package api

import (
	"bytes"
	"encoding/base64"
	"encoding/json"
	"errors"
	"fmt"
	"maps"
	"net/http"
	"slices"
	"strings"
	"time"

	"github.com/gin-gonic/gin"
	"github.com/google/uuid"

	"github.com/signalbox/signalbox/catalog"
	"github.com/signalbox/signalbox/ingest"
	"github.com/signalbox/signalbox/store"
)

// maxEventTypeBody caps a declaration: a schema of at most 64 KiB and the
// rest.
const maxEventTypeBody = catalog.MaxSchemaBytes + 16<<10

// maxDeclareBody caps POST /v1/event-types/declare: 1,000 names of up to
// 255 characters, quoted.
const maxDeclareBody = 400 << 10

// maxDescription caps an event type's description, in characters.
const maxDescription = 2000

// eventTypeResponse is a name of the catalog on the wire. Fields of the
// declaration are null for a name that is only seen in events.
type eventTypeResponse struct {
	Name          string          `json:"name"`
	Declared      bool            `json:"declared"`
	Description   *string         `json:"description"`
	SchemaVersion *int            `json:"schema_version"`
	SchemaMode    *string         `json:"schema_mode"`
	Schema        json.RawMessage `json:"schema,omitempty"`
	FirstSeenAt   *time.Time      `json:"first_seen_at"`
	LastSeenAt    *time.Time      `json:"last_seen_at"`
	CountTotal    int64           `json:"count_total"`
	Count24h      int64           `json:"count_24h"`
	CreatedAt     *time.Time      `json:"created_at"`
	UpdatedAt     *time.Time      `json:"updated_at"`
}

// eventTypeOut shapes an entry; withSchema adds the schema (null when
// there is none) for answers about one type.
func eventTypeOut(e store.EventTypeEntry, withSchema bool) eventTypeResponse {
	out := eventTypeResponse{Name: e.Name, Declared: e.Declared, FirstSeenAt: e.FirstSeenAt, LastSeenAt: e.LastSeenAt,
		CountTotal: e.CountTotal, Count24h: e.Count24h}
	if t := e.Type; t != nil {
		out.Description, out.SchemaVersion, out.SchemaMode = &t.Description, t.SchemaVersion, &t.SchemaMode
		out.CreatedAt, out.UpdatedAt = &t.CreatedAt, &t.UpdatedAt
		if withSchema {
			out.Schema = t.Schema
		}
	}
	if withSchema && out.Schema == nil {
		out.Schema = json.RawMessage("null")
	}
	return out
}

// eventTypeSubroute serves GET /v1/event-types/{name}/{suffix}.
type eventTypeSubroute = func(c *gin.Context, name string)

// registerEventTypes adds the catalog's routes. Event names may contain
// "/", so one catch-all per method takes the rest of the path as the name.
// GET also serves sub-resources of a type (/stats, /feed, ...): a handler
// registered in Server.eventTypeSubroutes under its suffix gets the name
// when the path ends in "/<suffix>"; any other path is a name as a whole.
func (s *Server) registerEventTypes(v1 *gin.RouterGroup) {
	v1.POST("/event-types", s.createEventType)
	v1.GET("/event-types", s.listEventTypes)
	v1.POST("/event-types/declare", s.declareEventTypes)
	v1.GET("/event-types/*name", s.eventTypeGET)
	v1.PATCH("/event-types/*name", s.patchEventType)
	v1.DELETE("/event-types/*name", s.deleteEventType)
}

// eventTypeName reads the name from the catch-all; a name that breaks the
// naming rules cannot exist, so it is a 404 like any unknown one.
func eventTypeName(rest string) (string, error) {
	name := strings.TrimPrefix(rest, "/")
	if name == "" || ingest.CheckEventName(name) != "" {
		return "", notFound("event type")
	}
	return name, nil
}

func (s *Server) eventTypeGET(c *gin.Context) {
	rest := c.Param("name")
	if i := strings.LastIndexByte(rest, '/'); i > 0 {
		if h, ok := s.eventTypeSubroutes[rest[i+1:]]; ok {
			name, err := eventTypeName(rest[:i])
			if err != nil {
				_ = c.Error(err)
				return
			}
			h(c, name)
			return
		}
	}
	name, err := eventTypeName(rest)
	if err != nil {
		_ = c.Error(err)
		return
	}
	e, err := s.store.GetEventType(c.Request.Context(), who(c).WorkspaceID, name)
	if err != nil {
		_ = c.Error(storeError(err, "event type"))
		return
	}
	c.JSON(http.StatusOK, eventTypeOut(e, true))
}

// eventTypeBody is a declaration or a patch as sent: raw members, so that
// an absent member tells from a null one.
type eventTypeBody map[string]json.RawMessage

var eventTypeFields = []string{"name", "description", "schema", "schema_mode"}

// decodeEventTypeBody reads the members and refuses unknown ones.
func decodeEventTypeBody(c *gin.Context) (eventTypeBody, []ingest.FieldError, bool) {
	body, err := readBody(c, maxEventTypeBody)
	if err != nil {
		_ = c.Error(err)
		return nil, nil, false
	}
	if !json.Valid(body) {
		_ = c.Error(malformed())
		return nil, nil, false
	}
	var m eventTypeBody
	if err := json.Unmarshal(body, &m); err != nil {
		_ = c.Error(invalid(ingest.FieldError{Code: ingest.CodeType, Detail: "the body must be a JSON object"}))
		return nil, nil, false
	}
	var errs []ingest.FieldError
	for _, k := range slices.Sorted(maps.Keys(m)) {
		if !slices.Contains(eventTypeFields, k) {
			errs = append(errs, ingest.FieldError{Field: k, Code: ingest.CodeUnknownField, Detail: "unknown field"})
		}
	}
	return m, errs, true
}

// text reads an optional string member; present reports whether it was
// given (null counts as given for nullable members).
func (b eventTypeBody) text(field string, errs *[]ingest.FieldError) (*string, bool) {
	raw, ok := b[field]
	if !ok {
		return nil, false
	}
	var s *string
	if err := json.Unmarshal(raw, &s); err != nil {
		*errs = append(*errs, ingest.FieldError{Field: field, Code: ingest.CodeType, Detail: field + " must be a string"})
		return nil, true
	}
	return s, true
}

func checkDescription(d *string, errs *[]ingest.FieldError) {
	if d != nil && len([]rune(*d)) > maxDescription {
		*errs = append(*errs, ingest.FieldError{Field: "description", Code: ingest.CodeTooLong,
			Detail: fmt.Sprintf("description must be at most %d characters", maxDescription)})
	}
}

func checkSchemaMode(m *string, present bool, errs *[]ingest.FieldError) {
	if present && (m == nil || (*m != store.SchemaFlag && *m != store.SchemaEnforce)) {
		*errs = append(*errs, ingest.FieldError{Field: "schema_mode", Code: ingest.CodeInvalid,
			Detail: `schema_mode must be "flag" or "enforce"`})
	}
}

// schema reads the schema member: present with nil means none (null).
// It is compiled here, so a schema that is saved always compiles.
func (b eventTypeBody) schema(errs *[]ingest.FieldError) (json.RawMessage, bool) {
	raw, ok := b["schema"]
	if !ok {
		return nil, false
	}
	if bytes.Equal(bytes.TrimSpace(raw), []byte("null")) {
		return nil, true
	}
	if _, problems := catalog.CompileSchema(raw); len(problems) > 0 {
		for _, p := range problems {
			*errs = append(*errs, ingest.FieldError{Field: "schema", Pointer: p.Pointer, Code: ingest.CodeInvalid, Detail: p.Detail})
		}
		return nil, true
	}
	var compact bytes.Buffer
	if err := json.Compact(&compact, raw); err != nil {
		return nil, true
	}
	return compact.Bytes(), true
}

func (s *Server) createEventType(c *gin.Context) {
	b, errs, ok := decodeEventTypeBody(c)
	if !ok {
		return
	}
	t := store.EventType{SchemaMode: store.SchemaFlag}
	name, _ := b.text("name", &errs)
	switch {
	case name == nil || *name == "":
		if !slices.ContainsFunc(errs, func(e ingest.FieldError) bool { return e.Field == "name" }) {
			errs = append(errs, ingest.FieldError{Field: "name", Code: ingest.CodeRequired, Detail: "name is required"})
		}
	case ingest.CheckEventName(*name) != "":
		errs = append(errs, ingest.FieldError{Field: "name", Code: ingest.CodeInvalid, Detail: ingest.CheckEventName(*name)})
	default:
		t.Name = *name
	}
	if d, _ := b.text("description", &errs); d != nil {
		checkDescription(d, &errs)
		t.Description = *d
	}
	if m, present := b.text("schema_mode", &errs); present {
		checkSchemaMode(m, present, &errs)
		if m != nil {
			t.SchemaMode = *m
		}
	}
	t.Schema, _ = b.schema(&errs)
	if len(errs) > 0 {
		_ = c.Error(invalid(errs...))
		return
	}
	ws := who(c).WorkspaceID
	_, err := s.store.CreateEventType(c.Request.Context(), ws, t)
	switch {
	case errors.Is(err, store.ErrConflict):
		_ = c.Error(&Error{Status: http.StatusConflict, Code: "conflict",
			Detail: fmt.Sprintf("event type %q is already declared; PATCH it to change it", t.Name),
			Errors: []ingest.FieldError{{Field: "name", Code: "conflict", Detail: "already declared"}}})
		return
	case errors.Is(err, store.ErrTooManyEventTypes):
		_ = c.Error(tooManyEventTypes())
		return
	case err != nil:
		_ = c.Error(err)
		return
	}
	s.catalogChanged(ws)
	e, err := s.store.GetEventType(c.Request.Context(), ws, t.Name)
	if err != nil {
		_ = c.Error(err)
		return
	}
	c.JSON(http.StatusCreated, eventTypeOut(e, true))
}

func tooManyEventTypes() *Error {
	detail := fmt.Sprintf("a workspace declares at most %d event types", store.MaxEventTypes)
	return &Error{Status: http.StatusUnprocessableEntity, Code: "too_many_event_types", Detail: detail,
		Extra: map[string]any{"limit": store.MaxEventTypes}}
}

func (s *Server) patchEventType(c *gin.Context) {
	name, err := eventTypeName(c.Param("name"))
	if err != nil {
		_ = c.Error(err)
		return
	}
	b, errs, ok := decodeEventTypeBody(c)
	if !ok {
		return
	}
	if _, ok := b["name"]; ok {
		detail := "an event type's name never changes; declare a new one instead"
		_ = c.Error(&Error{Status: http.StatusUnprocessableEntity, Code: "immutable", Detail: detail,
			Errors: []ingest.FieldError{{Field: "name", Pointer: "/name", Code: "immutable", Detail: detail}}})
		return
	}
	var p store.EventTypePatch
	if d, present := b.text("description", &errs); present {
		if d == nil {
			errs = append(errs, ingest.FieldError{Field: "description", Code: ingest.CodeType, Detail: "description must be a string"})
		}
		checkDescription(d, &errs)
		p.Description = d
	}
	if m, present := b.text("schema_mode", &errs); present {
		checkSchemaMode(m, present, &errs)
		p.SchemaMode = m
	}
	p.Schema, p.SetSchema = b.schema(&errs)
	if len(errs) > 0 {
		_ = c.Error(invalid(errs...))
		return
	}
	ws := who(c).WorkspaceID
	ctx := c.Request.Context()
	if p.SetSchema {
		// Only a change of schema makes a new version.
		cur, err := s.store.GetEventType(ctx, ws, name)
		if err != nil {
			_ = c.Error(storeError(err, "event type"))
			return
		}
		if cur.Type != nil && sameJSON(cur.Type.Schema, p.Schema) {
			p.SetSchema = false
		}
	}
	if _, err := s.store.UpdateEventType(ctx, ws, name, p); err != nil {
		_ = c.Error(storeError(err, "event type"))
		return
	}
	s.catalogChanged(ws)
	e, err := s.store.GetEventType(ctx, ws, name)
	if err != nil {
		_ = c.Error(err)
		return
	}
	c.JSON(http.StatusOK, eventTypeOut(e, true))
}

// sameJSON compares two JSON documents by value; nil is no document.
func sameJSON(a, b json.RawMessage) bool {
	if a == nil || b == nil {
		return a == nil && b == nil
	}
	var x, y any
	if json.Unmarshal(a, &x) != nil || json.Unmarshal(b, &y) != nil {
		return false
	}
	ja, _ := json.Marshal(x)
	jb, _ := json.Marshal(y)
	return bytes.Equal(ja, jb)
}

func (s *Server) deleteEventType(c *gin.Context) {
	name, err := eventTypeName(c.Param("name"))
	if err != nil {
		_ = c.Error(err)
		return
	}
	ws := who(c).WorkspaceID
	if err := s.store.DeleteEventType(c.Request.Context(), ws, name); err != nil {
		_ = c.Error(storeError(err, "event type"))
		return
	}
	s.catalogChanged(ws)
	c.Status(http.StatusNoContent)
}

func (s *Server) listEventTypes(c *gin.Context) {
	q := query{c: c}
	f := store.EventTypeFilter{Limit: q.limit()}
	if v := c.Query("declared"); v != "" {
		d := q.bool("declared")
		f.Declared = &d
	}
	if v := c.Query("cursor"); v != "" {
		raw, err := base64.RawURLEncoding.DecodeString(v)
		if err != nil || ingest.CheckEventName(string(raw)) != "" {
			q.fail("cursor", "cursor is not one this API returned")
		}
		f.After = string(raw)
	}
	if err := q.err(); err != nil {
		_ = c.Error(err)
		return
	}
	list, next, err := s.store.ListEventTypes(c.Request.Context(), who(c).WorkspaceID, f)
	if err != nil {
		_ = c.Error(err)
		return
	}
	out := make([]eventTypeResponse, len(list))
	for i, e := range list {
		out[i] = eventTypeOut(e, false)
	}
	var cursor *string
	if next != "" {
		enc := base64.RawURLEncoding.EncodeToString([]byte(next))
		cursor = &enc
	}
	c.JSON(http.StatusOK, newPage(out, cursor))
}

// declareRequest is POST /v1/event-types/declare.
type declareRequest struct {
	Names         []string `json:"names"`
	AllUndeclared bool     `json:"all_undeclared"`
}

func (s *Server) declareEventTypes(c *gin.Context) {
	body, err := readBody(c, maxDeclareBody)
	if err != nil {
		_ = c.Error(err)
		return
	}
	var req declareRequest
	dec := json.NewDecoder(bytes.NewReader(body))
	dec.DisallowUnknownFields()
	if err := dec.Decode(&req); err != nil {
		if !json.Valid(body) {
			_ = c.Error(malformed())
			return
		}
		_ = c.Error(invalid(ingest.FieldError{Code: ingest.CodeType,
			Detail: `the body must be {"names": [...]} or {"all_undeclared": true}`}))
		return
	}
	var errs []ingest.FieldError
	switch {
	case req.AllUndeclared && req.Names != nil:
		errs = append(errs, ingest.FieldError{Field: "names", Code: ingest.CodeInvalid, Detail: "give names or all_undeclared, not both"})
	case !req.AllUndeclared && len(req.Names) == 0:
		errs = append(errs, ingest.FieldError{Field: "names", Code: ingest.CodeRequired,
			Detail: "names must list 1 to 1000 names, or all_undeclared be true"})
	case len(req.Names) > store.MaxEventTypes:
		errs = append(errs, ingest.FieldError{Field: "names", Code: ingest.CodeTooLarge, Detail: "at most 1000 names"})
	}
	for i, n := range req.Names {
		if detail := ingest.CheckEventName(n); detail != "" && len(errs) < 50 {
			errs = append(errs, ingest.FieldError{Field: fmt.Sprintf("names.%d", i), Pointer: fmt.Sprintf("/names/%d", i),
				Code: ingest.CodeInvalid, Detail: detail})
		}
	}
	if len(errs) > 0 {
		_ = c.Error(invalid(errs...))
		return
	}
	ws := who(c).WorkspaceID
	ctx := c.Request.Context()
	names, err := s.store.DeclareEventTypes(ctx, ws, req.Names, req.AllUndeclared)
	if errors.Is(err, store.ErrTooManyEventTypes) {
		_ = c.Error(tooManyEventTypes())
		return
	}
	if err != nil {
		_ = c.Error(err)
		return
	}
	s.catalogChanged(ws)
	list, err := s.store.EventTypesByName(ctx, ws, names)
	if err != nil {
		_ = c.Error(err)
		return
	}
	out := make([]eventTypeResponse, len(list))
	for i, e := range list {
		out[i] = eventTypeOut(e, false)
	}
	c.JSON(http.StatusOK, gin.H{"data": out})
}

// catalogChanged tells this process's catalog cache about a change, so it
// applies to the next request at once.
func (s *Server) catalogChanged(ws uuid.UUID) {
	if s.cfg.Catalog != nil {
		s.cfg.Catalog.Invalidate(ws)
	}
}
