package api_test

import (
	"net/http"
	"strings"
	"testing"

	"github.com/stretchr/testify/require"

	"github.com/signalbox/signalbox/store"
)

func TestAutomationVersions(t *testing.T) {
	t.Parallel()
	c := newHarness(t).workspace(store.PlanStarter)
	id := c.expect(http.StatusCreated, "POST", "/v1/automations", followUp)["id"].(string)
	second := strings.Replace(followUp, `"duration": "24h"`, `"duration": "12h"`, 1)
	c.expect(http.StatusOK, "PUT", "/v1/automations/"+id, second)
	third := strings.Replace(strings.Replace(second, "Post-purchase follow-up", "Follow-up, renamed", 1),
		`"event": "purchase.completed"`, `"event": "order.completed"`, 1)
	c.expect(http.StatusOK, "PUT", "/v1/automations/"+id, third)

	list := c.expect(http.StatusOK, "GET", "/v1/automations/"+id+"/versions", nil)["data"].([]any)
	require.Len(t, list, 3)
	for i, want := range []float64{3, 2, 1} {
		v := list[i].(map[string]any)
		require.Equal(t, want, v["version"])
		require.Equal(t, want == 3, v["current"])
		require.Nil(t, v["definition"], "the listing leaves definitions out")
	}
	require.Equal(t, "order.completed", list[0].(map[string]any)["trigger_event"])

	v1 := c.expect(http.StatusOK, "GET", "/v1/automations/"+id+"/versions/1", nil)
	require.Equal(t, "purchase.completed", v1["trigger_event"])
	require.Equal(t, "24h", v1["definition"].(map[string]any)["steps"].([]any)[1].(map[string]any)["duration"])

	// Restoring version 1 saves it again as version 4, name and trigger too.
	restored := c.expect(http.StatusOK, "POST", "/v1/automations/"+id+"/versions/1/restore", nil)
	require.EqualValues(t, 4, restored["version"])
	require.Equal(t, "Post-purchase follow-up", restored["name"])
	require.Equal(t, "purchase.completed", restored["trigger_event"])
	require.Equal(t, v1["definition"], restored["definition"])
	require.Len(t, c.expect(http.StatusOK, "GET", "/v1/automations/"+id+"/versions", nil)["data"], 4)

	// Unknown versions and automations, and another workspace's, are 404.
	c.problem(http.StatusNotFound, "not_found", "GET", "/v1/automations/"+id+"/versions/9", nil)
	c.problem(http.StatusNotFound, "not_found", "GET", "/v1/automations/"+id+"/versions/zero", nil)
	c.problem(http.StatusNotFound, "not_found", "POST", "/v1/automations/"+id+"/versions/0/restore", nil)
	other := c.h.workspace(store.PlanStarter)
	other.problem(http.StatusNotFound, "not_found", "GET", "/v1/automations/"+id+"/versions", nil)
	other.problem(http.StatusNotFound, "not_found", "POST", "/v1/automations/"+id+"/versions/1/restore", nil)
	other.problem(http.StatusNotFound, "not_found", "GET", "/v1/automations/"+id+"/stats", nil)

	// A name taken meanwhile by another automation is a conflict.
	c.expect(http.StatusCreated, "POST", "/v1/automations", third)
	c.problem(http.StatusConflict, "conflict", "POST", "/v1/automations/"+id+"/versions/3/restore", nil)
}
