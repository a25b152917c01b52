package api

import (
	"errors"
	"fmt"
	"net/http"

	"github.com/signalbox/signalbox/ingest"
	"github.com/signalbox/signalbox/store"
)

// Codes of the catalog's refusals.
const (
	codeUndeclaredEvent = "undeclared_event"
	codeSchemaViolation = "schema_violation"
)

// catalogRefusal is the 422 for an item the event catalog refused, or nil
// when err is not such a refusal.
func catalogRefusal(name string, err error) *Error {
	if errors.Is(err, store.ErrUndeclaredEvent) {
		detail := fmt.Sprintf("event name %q is not declared, and this workspace refuses undeclared events; declare it with POST /v1/event-types", name)
		return &Error{Status: http.StatusUnprocessableEntity, Code: codeUndeclaredEvent, Detail: detail,
			Errors: []ingest.FieldError{{Field: "name", Pointer: "/name", Code: codeUndeclaredEvent, Detail: detail}}}
	}
	var se *store.SchemaError
	if !errors.As(err, &se) {
		return nil
	}
	errs := make([]ingest.FieldError, len(se.Violations))
	for i, v := range se.Violations {
		errs[i] = ingest.FieldError{Field: v.Field, Pointer: v.Pointer, Code: codeSchemaViolation, Keyword: v.Keyword, Detail: v.Detail}
	}
	return &Error{Status: http.StatusUnprocessableEntity, Code: codeSchemaViolation,
		Detail: fmt.Sprintf("the properties break schema version %d of event type %q (schema_mode enforce): %d violations",
			se.Version, se.Name, len(se.Violations)),
		Errors: errs, Extra: map[string]any{"event_name": se.Name, "schema_version": se.Version}}
}

// optionalBool reads a true/false parameter that may be absent (nil).
func (q *query) optionalBool(name string) *bool {
	if q.c.Query(name) == "" {
		return nil
	}
	b := q.bool(name)
	return &b
}
