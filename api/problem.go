package api

import (
	"errors"
	"fmt"
	"log/slog"
	"math"
	"net/http"
	"strconv"
	"strings"
	"time"

	"github.com/gin-gonic/gin"

	"github.com/signalbox/signalbox/ingest"
	"github.com/signalbox/signalbox/store"
)

// Error is the one error type handlers return; the problem middleware
// renders it as RFC 9457 application/problem+json. Any other error becomes a
// 500 whose text never reaches the client.
type Error struct {
	Status int
	// Code is a stable slug clients can switch on; it also forms the type URI.
	Code   string
	Detail string
	// Errors lists field-level problems of a validation failure.
	Errors []ingest.FieldError
	// Extra members are added to the problem document (limit, used, ...).
	Extra map[string]any
	// RetryAfter, when set, is sent as the Retry-After header in seconds.
	RetryAfter time.Duration
}

func (e *Error) Error() string { return fmt.Sprintf("%d %s: %s", e.Status, e.Code, e.Detail) }

// problemTypeBase prefixes each problem code to make its type URI.
const problemTypeBase = "urn:signalbox:problem:"

// Problem is the wire form of an Error.
type Problem struct {
	Type     string              `json:"type"`
	Title    string              `json:"title"`
	Status   int                 `json:"status"`
	Detail   string              `json:"detail,omitempty"`
	Instance string              `json:"instance,omitempty"`
	Code     string              `json:"code"`
	Errors   []ingest.FieldError `json:"errors,omitempty"`
}

func errorf(status int, code, format string, args ...any) *Error {
	return &Error{Status: status, Code: code, Detail: fmt.Sprintf(format, args...)}
}

// invalid is a 422 naming the fields at fault.
func invalid(errs ...ingest.FieldError) *Error {
	details := make([]string, 0, len(errs))
	for _, e := range errs {
		details = append(details, e.Error())
	}
	return &Error{Status: http.StatusUnprocessableEntity, Code: "validation_failed",
		Detail: strings.Join(details, "; "), Errors: errs}
}

func notFound(what string) *Error {
	return errorf(http.StatusNotFound, "not_found", "%s not found", what)
}

// unavailableRetry is the Retry-After of a 503: transient failures (a lock
// or statement timeout, a lost connection, a database restarting) are over
// in moments or not soon, and a client backing off from one second on
// serves both.
const unavailableRetry = time.Second

// unavailable reports whether err is a transient failure of the database,
// or the server shutting down, rather than of the request: answered 503
// with Retry-After instead of 500.
func unavailable(err error) bool {
	return store.IsTransient(err) || errors.Is(err, ingest.ErrClosed)
}

// problems renders the error a handler left in the context, and recovers
// from panics as a 500 problem. 4xx are logged at info, 5xx at error with
// the cause, which is never sent.
func problems(log *slog.Logger) gin.HandlerFunc {
	return func(c *gin.Context) {
		defer func() {
			if v := recover(); v != nil {
				if v == http.ErrAbortHandler {
					panic(v)
				}
				_ = c.Error(fmt.Errorf("panic: %v", v))
				render(c, log)
			}
		}()
		c.Next()
		render(c, log)
	}
}

func render(c *gin.Context, log *slog.Logger) {
	if len(c.Errors) == 0 {
		return
	}
	err := c.Errors.Last().Err
	var e *Error
	if !errors.As(err, &e) {
		e = errorf(http.StatusInternalServerError, "internal", "the server could not complete the request")
		if unavailable(err) {
			e = &Error{Status: http.StatusServiceUnavailable, Code: "unavailable",
				Detail:     "the service is unavailable for a moment; retry the request after Retry-After seconds",
				RetryAfter: unavailableRetry}
		}
		log.ErrorContext(c.Request.Context(), "request failed", "method", c.Request.Method,
			"path", c.FullPath(), "status", e.Status, "error", err.Error())
	} else {
		log.InfoContext(c.Request.Context(), "request refused", "method", c.Request.Method,
			"path", c.FullPath(), "status", e.Status, "code", e.Code, "detail", e.Detail)
	}
	if c.Writer.Written() {
		return
	}
	doc := map[string]any{
		"type":     problemTypeBase + e.Code,
		"title":    http.StatusText(e.Status),
		"status":   e.Status,
		"code":     e.Code,
		"instance": c.Request.URL.Path,
	}
	if e.Detail != "" {
		doc["detail"] = e.Detail
	}
	if len(e.Errors) > 0 {
		doc["errors"] = e.Errors
	}
	for k, v := range e.Extra {
		doc[k] = v
	}
	if e.RetryAfter > 0 {
		c.Header("Retry-After", strconv.Itoa(int(math.Ceil(e.RetryAfter.Seconds()))))
	}
	c.Header("Content-Type", "application/problem+json")
	c.Status(e.Status)
	c.Render(-1, problemJSON{doc})
}
