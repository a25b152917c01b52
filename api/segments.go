package api

import (
	"encoding/json"
	"errors"
	"fmt"
	"github.com/signalbox/signalbox/conditions"
	"net/http"
	"time"

	"github.com/gin-gonic/gin"
	"github.com/google/uuid"

	"github.com/signalbox/signalbox/definition"
	"github.com/signalbox/signalbox/ingest"
	"github.com/signalbox/signalbox/segment"
	"github.com/signalbox/signalbox/store"
)

// Segment limits.
const (
	maxSegmentBody = 64 << 10
	// maxSegments bounds a workspace's segments, and so the work of
	// GET /v1/contacts/{id}/segments, which tests each.
	maxSegments = 200
	// previewContacts is how many contacts a preview lists.
	previewContacts = 20
)

// segmentResponse is a saved segment.
type segmentResponse struct {
	ID        uuid.UUID       `json:"id"`
	Name      string          `json:"name"`
	Match     json.RawMessage `json:"match"`
	CreatedAt time.Time       `json:"created_at"`
	UpdatedAt time.Time       `json:"updated_at"`
}

func newSegmentResponse(s store.Segment) segmentResponse {
	var def struct {
		Match json.RawMessage `json:"match"`
	}
	_ = json.Unmarshal(s.Definition, &def)
	return segmentResponse{ID: s.ID, Name: s.Name, Match: def.Match, CreatedAt: s.CreatedAt, UpdatedAt: s.UpdatedAt}
}

// problemsError turns definition problems into a 422 with a pointer each.
func problemsError(problems []definition.Problem) *Error {
	errs := make([]ingest.FieldError, len(problems))
	for i, p := range problems {
		errs[i] = ingest.FieldError{Field: p.Pointer, Pointer: p.Pointer, Code: ingest.CodeInvalid, Detail: p.Detail}
	}
	return invalid(errs...)
}

// loadSegment reads and validates a segment document.
func (s *Server) loadSegment(c *gin.Context) (*segment.Segment, json.RawMessage, bool) {
	body, err := readBody(c, maxSegmentBody)
	if err != nil {
		_ = c.Error(err)
		return nil, nil, false
	}
	if !json.Valid(body) {
		_ = c.Error(malformed())
		return nil, nil, false
	}
	seg, problems := segment.Parse(body, s.cfg.Conditions.SegmentWhere)
	if len(problems) > 0 {
		_ = c.Error(problemsError(problems))
		return nil, nil, false
	}
	canonical, err := json.Marshal(seg)
	if err != nil {
		_ = c.Error(err)
		return nil, nil, false
	}
	return seg, canonical, true
}

// parseStored re-reads a saved definition.
func (s *Server) parseStored(def json.RawMessage) (segment.Node, error) {
	seg, problems := segment.Parse(def, s.cfg.Conditions.SegmentWhere)
	if len(problems) > 0 {
		return segment.Node{}, problemsError(problems)
	}
	return seg.Match, nil
}

func (s *Server) createSegment(c *gin.Context) {
	seg, def, ok := s.loadSegment(c)
	if !ok {
		return
	}
	ws := who(c).WorkspaceID
	existing, err := s.store.ListAllSegments(c.Request.Context(), ws, maxSegments)
	if err != nil {
		_ = c.Error(err)
		return
	}
	if len(existing) >= maxSegments {
		_ = c.Error(errorf(http.StatusConflict, "limit_reached", "a workspace has at most %d segments; delete one first", maxSegments))
		return
	}
	saved, err := s.store.CreateSegment(c.Request.Context(), ws, seg.Name, def)
	if err != nil {
		_ = c.Error(err)
		return
	}
	c.JSON(http.StatusCreated, newSegmentResponse(saved))
}

func (s *Server) updateSegment(c *gin.Context) {
	id, err := pathID(c, "segment")
	if err != nil {
		_ = c.Error(err)
		return
	}
	seg, def, ok := s.loadSegment(c)
	if !ok {
		return
	}
	saved, err := s.store.UpdateSegment(c.Request.Context(), who(c).WorkspaceID, id, seg.Name, def)
	if err != nil {
		_ = c.Error(storeError(err, "segment"))
		return
	}
	c.JSON(http.StatusOK, newSegmentResponse(saved))
}

func (s *Server) getSegment(c *gin.Context) {
	seg, ok := s.segmentFromPath(c)
	if ok {
		c.JSON(http.StatusOK, newSegmentResponse(seg))
	}
}

func (s *Server) segmentFromPath(c *gin.Context) (store.Segment, bool) {
	id, err := pathID(c, "segment")
	if err == nil {
		var seg store.Segment
		if seg, err = s.store.GetSegment(c.Request.Context(), who(c).WorkspaceID, id); err == nil {
			return seg, true
		}
	}
	_ = c.Error(storeError(err, "segment"))
	return store.Segment{}, false
}

func (s *Server) deleteSegment(c *gin.Context) {
	id, err := pathID(c, "segment")
	if err == nil {
		if err = s.store.DeleteSegment(c.Request.Context(), who(c).WorkspaceID, id); err == nil {
			c.Status(http.StatusNoContent)
			return
		}
	}
	_ = c.Error(storeError(err, "segment"))
}

func (s *Server) listSegments(c *gin.Context) {
	q := query{c: c}
	limit, before := q.limit(), q.idCursor()
	if err := q.err(); err != nil {
		_ = c.Error(err)
		return
	}
	segs, more, err := s.store.ListSegments(c.Request.Context(), who(c).WorkspaceID, before, limit)
	if err != nil {
		_ = c.Error(err)
		return
	}
	out := make([]segmentResponse, len(segs))
	for i, seg := range segs {
		out[i] = newSegmentResponse(seg)
	}
	c.JSON(http.StatusOK, newPage(out, nextIDCursor(segs, more, func(r store.Segment) uuid.UUID { return r.ID })))
}

func (s *Server) segmentContacts(c *gin.Context) {
	seg, ok := s.segmentFromPath(c)
	if !ok {
		return
	}
	q := query{c: c}
	limit, before := q.limit(), q.idCursor()
	if err := q.err(); err != nil {
		_ = c.Error(err)
		return
	}
	m, err := s.parseStored(seg.Definition)
	if err != nil {
		_ = c.Error(err)
		return
	}
	contacts, more, err := s.store.SegmentContacts(c.Request.Context(), who(c).WorkspaceID, m, before, limit)
	if err != nil {
		_ = c.Error(err)
		return
	}
	c.JSON(http.StatusOK, newPage(contacts, nextIDCursor(contacts, more, func(r store.Contact) uuid.UUID { return r.ID })))
}

func (s *Server) segmentCount(c *gin.Context) {
	seg, ok := s.segmentFromPath(c)
	if !ok {
		return
	}
	m, err := s.parseStored(seg.Definition)
	if err != nil {
		_ = c.Error(err)
		return
	}
	n, err := s.store.CountSegment(c.Request.Context(), who(c).WorkspaceID, m)
	if err != nil {
		_ = c.Error(err)
		return
	}
	c.JSON(http.StatusOK, gin.H{"count": n})
}

// previewResponse answers POST /v1/segments/preview.
type previewResponse struct {
	Count    int64           `json:"count"`
	Contacts []store.Contact `json:"contacts"`
}

func (s *Server) previewSegment(c *gin.Context) {
	body, err := readBody(c, maxSegmentBody)
	if err != nil {
		_ = c.Error(err)
		return
	}
	var in map[string]json.RawMessage
	if err := json.Unmarshal(body, &in); err != nil {
		_ = c.Error(malformed())
		return
	}
	var problems []definition.Problem
	for k := range in {
		if k != "match" && k != "name" {
			problems = append(problems, definition.Problem{Pointer: "/" + k, Detail: "unknown field; a preview takes match"})
		}
	}
	if in["match"] == nil {
		problems = append(problems, definition.Problem{Pointer: "/match", Detail: "is required: {\"all\": [conditions]} or {\"any\": [conditions]}"})
	}
	var m segment.Node
	if in["match"] != nil {
		var more []definition.Problem
		m, more = segment.ParseMatch(in["match"], s.cfg.Conditions.SegmentWhere)
		problems = append(problems, more...)
	}
	if len(problems) > 0 {
		_ = c.Error(problemsError(problems))
		return
	}
	ws := who(c).WorkspaceID
	n, err := s.store.CountSegment(c.Request.Context(), ws, m)
	if err != nil {
		_ = c.Error(err)
		return
	}
	contacts, _, err := s.store.SegmentContacts(c.Request.Context(), ws, m, uuid.Nil, previewContacts)
	if err != nil {
		_ = c.Error(err)
		return
	}
	if contacts == nil {
		contacts = []store.Contact{}
	}
	c.JSON(http.StatusOK, previewResponse{Count: n, Contacts: contacts})
}

// contactSegments answers GET /v1/contacts/{id}/segments: the segments the
// contact is in now.
func (s *Server) contactSegments(c *gin.Context) {
	id, err := pathID(c, "contact")
	if err != nil {
		_ = c.Error(err)
		return
	}
	ws := who(c).WorkspaceID
	if _, err := s.store.GetContact(c.Request.Context(), ws, id); err != nil {
		_ = c.Error(storeError(err, "contact"))
		return
	}
	segs, err := s.store.ListAllSegments(c.Request.Context(), ws, maxSegments)
	if err != nil {
		_ = c.Error(err)
		return
	}
	out := []segmentResponse{}
	for _, seg := range segs {
		m, err := s.parseStored(seg.Definition)
		if err != nil {
			_ = c.Error(err)
			return
		}
		in, err := s.store.SegmentMember(c.Request.Context(), ws, id, m)
		if err != nil {
			_ = c.Error(storeError(err, "contact"))
			return
		}
		if in {
			out = append(out, newSegmentResponse(seg))
		}
	}
	c.JSON(http.StatusOK, gin.H{"data": out})
}

// routeSegments registers the segment endpoints.
func (s *Server) routeSegments(v1 *gin.RouterGroup) {
	v1.POST("/segments", s.createSegment)
	v1.POST("/segments/preview", s.previewSegment)
	v1.GET("/segments", s.listSegments)
	v1.GET("/segments/:id", s.getSegment)
	v1.PUT("/segments/:id", s.updateSegment)
	v1.DELETE("/segments/:id", s.deleteSegment)
	v1.GET("/segments/:id/contacts", s.segmentContacts)
	v1.GET("/segments/:id/count", s.segmentCount)
	v1.GET("/contacts/:id/segments", s.contactSegments)
}

// checkSegmentRefs refuses a definition whose conditions name, with
// in_segment, a segment the workspace does not have (422 pointing at the
// expression).
func (s *Server) checkSegmentRefs(c *gin.Context, a *definition.Automation) bool {
	var problems []definition.Problem
	for e := range a.Expressions() {
		if !e.Condition {
			continue
		}
		prog, err := s.cfg.Conditions.Compile(e.Text, conditions.KindCondition)
		if err != nil {
			continue
		}
		for _, id := range prog.Segments() {
			missing := definition.Problem{Pointer: e.Pointer, Detail: fmt.Sprintf("in_segment(%q): the workspace has no such segment", id)}
			sid, err := uuid.Parse(id)
			if err != nil {
				problems = append(problems, missing)
				continue
			}
			_, err = s.store.GetSegment(c.Request.Context(), who(c).WorkspaceID, sid)
			if errors.Is(err, store.ErrNotFound) {
				problems = append(problems, missing)
				continue
			}
			if err != nil {
				_ = c.Error(err)
				return false
			}
		}
	}
	if len(problems) > 0 {
		_ = c.Error(problemsError(problems))
		return false
	}
	return true
}
