package api_test

import (
	"net/http"
	"testing"

	"github.com/stretchr/testify/require"

	"github.com/signalbox/signalbox/store"
)

func TestAutomationWarningsFromTheCatalog(t *testing.T) {
	t.Parallel()
	c := newHarness(t).workspace(store.PlanStarter)
	c.expect(http.StatusCreated, "POST", "/v1/event-types", map[string]any{"name": "purchase.completed", "schema": amountSchema})
	c.expect(http.StatusCreated, "POST", "/v1/event-types", map[string]any{"name": "review.submitted", "schema": map[string]any{
		"type": "object", "properties": map[string]any{"stars": map[string]any{"type": "integer"}}}})

	def := map[string]any{
		"name": "follow-up",
		"trigger": map[string]any{"event": "purchase.completed",
			"condition": "event.properties.amount >= 50.0 && event.properties.currency == 1 && event.properties.coupon == 'X'"},
		"exit_on": []any{"subscription.cancelled"},
		"steps": []any{
			map[string]any{"id": "w", "type": "wait_for_event", "event": "review.submitted", "timeout": "1h",
				"condition": "event.properties.stars > 3 && event.properties.text != '' && trigger.properties.amount > 0"},
			map[string]any{"id": "e", "type": "emit_event", "name": "followup.done",
				"properties": map[string]any{"order": "trigger.properties.order_id"}},
		},
	}
	got := c.expect(http.StatusOK, "POST", "/v1/automations/validate", def)
	type w struct{ pointer, code string }
	var warnings []w
	for _, x := range got["warnings"].([]any) {
		m := x.(map[string]any)
		require.NotEmpty(t, m["detail"])
		warnings = append(warnings, w{m["pointer"].(string), m["code"].(string)})
	}
	require.ElementsMatch(t, []w{
		{"/exit_on/0", "undeclared_event"},
		{"/steps/1/name", "undeclared_event"},
		{"/trigger/condition", "property_type_mismatch"}, // currency is a string
		{"/trigger/condition", "undeclared_property"},    // coupon
		{"/steps/0/condition", "undeclared_property"},    // text, in review.submitted's schema
		{"/steps/1/properties/order", "undeclared_property"},
	}, warnings)

	// Saving answers the same warnings, and saves.
	created := c.expect(http.StatusCreated, "POST", "/v1/automations", def)
	require.Len(t, created["warnings"], 6)
	require.NotEmpty(t, created["id"])
	def["exit_on"] = []any{}
	updated := c.expect(http.StatusOK, "PUT", "/v1/automations/"+created["id"].(string), def)
	require.Len(t, updated["warnings"], 5)

	// Nothing to say: an empty list.
	clean := map[string]any{"name": "clean", "trigger": map[string]any{"event": "purchase.completed",
		"condition": "event.properties.amount > 1"},
		"steps": []any{map[string]any{"id": "d", "type": "delay", "duration": "1m"}}}
	got = c.expect(http.StatusOK, "POST", "/v1/automations/validate", clean)
	require.Equal(t, []any{}, got["warnings"])
}
