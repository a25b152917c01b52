package api

import (
	"encoding/base64"
	"strconv"
	"strings"
	"time"

	"github.com/gin-gonic/gin"
	"github.com/google/uuid"

	"github.com/signalbox/signalbox/ingest"
	"github.com/signalbox/signalbox/store"
)

const (
	defaultLimit = 100
	maxLimit     = 1000
)

// query reads URL query parameters, collecting a FieldError per bad one.
type query struct {
	c    *gin.Context
	errs []ingest.FieldError
}

func (q *query) fail(field, detail string) {
	q.errs = append(q.errs, ingest.FieldError{Field: field, Code: ingest.CodeInvalid, Detail: detail})
}

func (q *query) err() error {
	if len(q.errs) == 0 {
		return nil
	}
	return invalid(q.errs...)
}

func (q *query) limit() int {
	v := q.c.Query("limit")
	if v == "" {
		return defaultLimit
	}
	n, err := strconv.Atoi(v)
	if err != nil || n < 1 || n > maxLimit {
		q.fail("limit", "limit must be an integer from 1 to 1000")
		return defaultLimit
	}
	return n
}

func (q *query) time(name string) time.Time {
	v := q.c.Query(name)
	if v == "" {
		return time.Time{}
	}
	t, err := time.Parse(time.RFC3339Nano, v)
	if err != nil {
		q.fail(name, name+" must be an RFC 3339 timestamp")
	}
	return t
}

func (q *query) uuid(name string) uuid.UUID {
	v := q.c.Query(name)
	if v == "" {
		return uuid.Nil
	}
	id, err := uuid.Parse(v)
	if err != nil {
		q.fail(name, name+" must be a UUID")
	}
	return id
}

func (q *query) bool(name string) bool {
	v := q.c.Query(name)
	if v == "" {
		return false
	}
	b, err := strconv.ParseBool(v)
	if err != nil {
		q.fail(name, name+" must be true or false")
	}
	return b
}

func (q *query) email() string {
	v := q.c.Query("email")
	if v == "" {
		return ""
	}
	norm, detail := ingest.NormalizeEmail(v)
	if detail != "" {
		q.fail("email", detail)
	}
	return norm
}

func (q *query) eventName() string {
	v := q.c.Query("name")
	if v != "" {
		if detail := ingest.CheckEventName(v); detail != "" {
			q.fail("name", detail)
		}
	}
	return v
}

// eventCursor decodes the opaque cursor of an event listing.
func (q *query) eventCursor() *store.EventCursor {
	v := q.c.Query("cursor")
	if v == "" {
		return nil
	}
	raw, err := base64.RawURLEncoding.DecodeString(v)
	at, id, ok := strings.Cut(string(raw), "_")
	nanos, err2 := strconv.ParseInt(at, 10, 64)
	uid, err3 := uuid.Parse(id)
	if err != nil || !ok || err2 != nil || err3 != nil {
		q.fail("cursor", "cursor is not one this API returned")
		return nil
	}
	return &store.EventCursor{OccurredAt: time.Unix(0, nanos).UTC(), ID: uid}
}

func encodeEventCursor(c *store.EventCursor) *string {
	if c == nil {
		return nil
	}
	s := base64.RawURLEncoding.EncodeToString([]byte(strconv.FormatInt(c.OccurredAt.UnixNano(), 10) + "_" + c.ID.String()))
	return &s
}

// idCursor decodes the cursor of a listing ordered by id (contacts,
// automations, enrollments): the last id seen.
func (q *query) idCursor() uuid.UUID {
	v := q.c.Query("cursor")
	if v == "" {
		return uuid.Nil
	}
	raw, err := base64.RawURLEncoding.DecodeString(v)
	id, err2 := uuid.Parse(string(raw))
	if err != nil || err2 != nil {
		q.fail("cursor", "cursor is not one this API returned")
	}
	return id
}

// nextIDCursor is a listing's next_cursor: the id of its last row when
// more rows follow, nil on the last page.
func nextIDCursor[T any](rows []T, more bool, id func(T) uuid.UUID) *string {
	if !more || len(rows) == 0 {
		return nil
	}
	return encodeIDCursor(id(rows[len(rows)-1]))
}

func encodeIDCursor(id uuid.UUID) *string {
	s := base64.RawURLEncoding.EncodeToString([]byte(id.String()))
	return &s
}

// pathID reads the :id path parameter; an id that is not a UUID cannot
// exist, so it is a 404 like any unknown one.
func pathID(c *gin.Context, what string) (uuid.UUID, error) {
	id, err := uuid.Parse(c.Param("id"))
	if err != nil {
		return uuid.Nil, notFound(what)
	}
	return id, nil
}

// page is the envelope of every listing.
type page[T any] struct {
	Data       []T     `json:"data"`
	NextCursor *string `json:"next_cursor"`
}

func newPage[T any](data []T, next *string) page[T] {
	if data == nil {
		data = []T{}
	}
	return page[T]{Data: data, NextCursor: next}
}
