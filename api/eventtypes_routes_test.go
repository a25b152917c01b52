package api

import (
	"log/slog"
	"net/http"
	"net/http/httptest"
	"testing"

	"github.com/gin-gonic/gin"
	"github.com/stretchr/testify/require"
)

// TestEventTypeSubroutes: a suffix registered in eventTypeSubroutes gets
// the name before it, slashes and all; any other path is a name.
func TestEventTypeSubroutes(t *testing.T) {
	s := New(Config{Logger: slog.New(slog.DiscardHandler)})
	var got string
	s.eventTypeSubroutes["stats"] = func(c *gin.Context, name string) {
		got = name
		c.String(http.StatusTeapot, name)
	}
	serve := func(rest string) int {
		w := httptest.NewRecorder()
		c, _ := gin.CreateTestContext(w)
		c.Params = gin.Params{{Key: "name", Value: rest}}
		c.Request = httptest.NewRequest("GET", "/v1/event-types"+rest, nil)
		s.eventTypeGET(c)
		return w.Code
	}
	require.Equal(t, http.StatusTeapot, serve("/page/viewed/stats"))
	require.Equal(t, "page/viewed", got)
	require.Equal(t, http.StatusTeapot, serve("/purchase.completed/stats"))
	require.Equal(t, "purchase.completed", got)
	// A bad name before the suffix is a 404, the handler never runs.
	got = ""
	c, _ := gin.CreateTestContext(httptest.NewRecorder())
	c.Params = gin.Params{{Key: "name", Value: "/1bad/stats"}}
	c.Request = httptest.NewRequest("GET", "/v1/event-types/1bad/stats", nil)
	s.eventTypeGET(c)
	require.Empty(t, got)
	require.Len(t, c.Errors, 1)
}
