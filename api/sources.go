package api

import (
	"crypto/rand"
	"encoding/base64"
	"encoding/json"
	"fmt"
	"net/http"
	"time"

	"github.com/gin-gonic/gin"
	"github.com/google/uuid"

	"github.com/signalbox/signalbox/source"
	"github.com/signalbox/signalbox/store"
)

// maxSourceBody caps a source definition.
const maxSourceBody = 64 << 10

// sourceResponse is a source on the wire. The verification secret is shown
// in full only in the answer that created it (or generated it); every
// other answer carries a hint.
type sourceResponse struct {
	ID                uuid.UUID            `json:"id"`
	Name              string               `json:"name"`
	URL               string               `json:"url"`
	Enabled           bool                 `json:"enabled"`
	EmailPath         string               `json:"email_path"`
	EventName         *string              `json:"event_name"`
	EventNamePath     *string              `json:"event_name_path"`
	PropertiesPath    *string              `json:"properties_path"`
	ExternalIDPath    *string              `json:"external_id_path"`
	ContactProperties map[string]string    `json:"contact_properties"`
	CreateIfMissing   bool                 `json:"create_if_missing"`
	Verification      verificationResponse `json:"verification"`
	CreatedAt         time.Time            `json:"created_at"`
	UpdatedAt         time.Time            `json:"updated_at"`
}

type verificationResponse struct {
	Type       string  `json:"type"`
	Header     *string `json:"header,omitempty"`
	Encoding   *string `json:"encoding,omitempty"`
	Secret     *string `json:"secret,omitempty"`
	SecretHint *string `json:"secret_hint,omitempty"`
}

// sourceView renders a stored source; showSecret puts the secret in full.
func (s *Server) sourceView(src store.Source, showSecret bool) (sourceResponse, error) {
	var def source.Definition
	if err := json.Unmarshal(src.Definition, &def); err != nil {
		return sourceResponse{}, fmt.Errorf("decode source %s: %w", src.ID, err)
	}
	opt := func(v string) *string {
		if v == "" {
			return nil
		}
		return &v
	}
	props := def.ContactProperties
	if props == nil {
		props = map[string]string{}
	}
	v := def.Verification
	resp := sourceResponse{ID: src.ID, Name: src.Name, URL: s.sourceURL(src.Token), Enabled: src.Enabled,
		EmailPath: def.EmailPath, EventName: opt(def.EventName), EventNamePath: opt(def.EventNamePath),
		PropertiesPath: opt(def.PropertiesPath), ExternalIDPath: opt(def.ExternalIDPath), ContactProperties: props,
		CreateIfMissing: def.CreateIfMissing, CreatedAt: src.CreatedAt, UpdatedAt: src.UpdatedAt,
		Verification: verificationResponse{Type: v.Type, Header: opt(v.Header), Encoding: opt(v.Encoding),
			SecretHint: opt(source.SecretHint(v.Secret))}}
	if v.Type == source.VerifyHMAC && v.Encoding == "" {
		resp.Verification.Encoding = opt("hex")
	}
	if showSecret {
		resp.Verification.Secret = opt(v.Secret)
	}
	return resp, nil
}

// sourceURL is where a source takes payloads: PUBLIC_URL + /in/{token}, or
// the path alone when PUBLIC_URL is unset.
func (s *Server) sourceURL(token string) string { return s.cfg.PublicURL + "/in/" + token }

// newSourceToken is 32 random bytes, base64url: the URL's only secret.
func newSourceToken() (string, error) {
	b := make([]byte, 32)
	if _, err := rand.Read(b); err != nil {
		return "", fmt.Errorf("generate source token: %w", err)
	}
	return base64.RawURLEncoding.EncodeToString(b), nil
}

// decodeSource reads a create or patch body onto base.
func decodeSource(c *gin.Context, base source.Input) (source.Input, json.RawMessage, bool) {
	body, err := readBody(c, maxSourceBody)
	if err != nil {
		_ = c.Error(err)
		return base, nil, false
	}
	in, errs, err := source.Decode(body, base)
	if err != nil {
		_ = c.Error(malformed())
		return in, nil, false
	}
	if len(errs) > 0 {
		_ = c.Error(invalid(errs...))
		return in, nil, false
	}
	def, err := json.Marshal(in.Definition)
	if err != nil {
		_ = c.Error(err)
		return in, nil, false
	}
	return in, def, true
}

func (s *Server) createSource(c *gin.Context) {
	in, def, ok := decodeSource(c, source.NewInput())
	if !ok {
		return
	}
	token, err := newSourceToken()
	if err != nil {
		_ = c.Error(err)
		return
	}
	src, err := s.store.CreateSource(c.Request.Context(), who(c).WorkspaceID, in.Name, token, in.Enabled, def)
	if err != nil {
		_ = c.Error(err)
		return
	}
	s.renderSource(c, http.StatusCreated, src, in.Definition.Verification.Secret != "")
}

func (s *Server) renderSource(c *gin.Context, status int, src store.Source, showSecret bool) {
	resp, err := s.sourceView(src, showSecret)
	if err != nil {
		_ = c.Error(err)
		return
	}
	c.JSON(status, resp)
}

func (s *Server) getSource(c *gin.Context) {
	id, err := pathID(c, "source")
	if err == nil {
		var src store.Source
		if src, err = s.store.GetSource(c.Request.Context(), who(c).WorkspaceID, id); err == nil {
			s.renderSource(c, http.StatusOK, src, false)
			return
		}
	}
	_ = c.Error(storeError(err, "source"))
}

func (s *Server) listSources(c *gin.Context) {
	q := query{c: c}
	limit, before := q.limit(), q.idCursor()
	if err := q.err(); err != nil {
		_ = c.Error(err)
		return
	}
	srcs, more, err := s.store.ListSources(c.Request.Context(), who(c).WorkspaceID, before, limit)
	if err != nil {
		_ = c.Error(err)
		return
	}
	out := make([]sourceResponse, 0, len(srcs))
	for _, src := range srcs {
		v, err := s.sourceView(src, false)
		if err != nil {
			_ = c.Error(err)
			return
		}
		out = append(out, v)
	}
	c.JSON(http.StatusOK, newPage(out, nextIDCursor(srcs, more, func(r store.Source) uuid.UUID { return r.ID })))
}

// currentSource reads the :id source as a source.Input to patch.
func (s *Server) currentSource(c *gin.Context) (store.Source, source.Input, bool) {
	id, err := pathID(c, "source")
	var src store.Source
	if err == nil {
		src, err = s.store.GetSource(c.Request.Context(), who(c).WorkspaceID, id)
	}
	if err != nil {
		_ = c.Error(storeError(err, "source"))
		return src, source.Input{}, false
	}
	in := source.Input{Name: src.Name, Enabled: src.Enabled}
	if err := json.Unmarshal(src.Definition, &in.Definition); err != nil {
		_ = c.Error(fmt.Errorf("decode source %s: %w", src.ID, err))
		return src, in, false
	}
	return src, in, true
}

func (s *Server) patchSource(c *gin.Context) {
	cur, base, ok := s.currentSource(c)
	if !ok {
		return
	}
	in, def, ok := decodeSource(c, base)
	if !ok {
		return
	}
	src, err := s.store.UpdateSource(c.Request.Context(), who(c).WorkspaceID, cur.ID, in.Name, in.Enabled, def)
	s.sources.invalidate(cur.Token)
	if err != nil {
		_ = c.Error(storeError(err, "source"))
		return
	}
	// A secret the server generated (a new verification type without one)
	// is shown once, here; one the caller sent is not echoed.
	s.renderSource(c, http.StatusOK, src, in.SecretGenerated)
}

func (s *Server) deleteSource(c *gin.Context) {
	cur, _, ok := s.currentSource(c)
	if !ok {
		return
	}
	err := s.store.DeleteSource(c.Request.Context(), who(c).WorkspaceID, cur.ID)
	s.sources.invalidate(cur.Token)
	if err != nil {
		_ = c.Error(storeError(err, "source"))
		return
	}
	c.Status(http.StatusNoContent)
}

// rotateSource gives the source a new URL; the old one answers 404 from
// the commit on (on other API replicas within SOURCE_CACHE_TTL).
func (s *Server) rotateSource(c *gin.Context) {
	cur, _, ok := s.currentSource(c)
	if !ok {
		return
	}
	token, err := newSourceToken()
	if err != nil {
		_ = c.Error(err)
		return
	}
	src, err := s.store.RotateSourceToken(c.Request.Context(), who(c).WorkspaceID, cur.ID, token)
	s.sources.invalidate(cur.Token)
	if err != nil {
		_ = c.Error(storeError(err, "source"))
		return
	}
	s.renderSource(c, http.StatusOK, src, false)
}
