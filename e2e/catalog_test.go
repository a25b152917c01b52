package e2e

import (
	"fmt"
	"net/http"
	"testing"
	"time"

	"github.com/stretchr/testify/require"
)

// TestSchemaContractsAndTriggers runs the catalog's checks through the whole
// system: a declared event that conforms to its enforced schema still
// starts its automation in Temporal, a violating one is refused and enrolls
// nobody, and an emit_event step whose event breaks the contract fails its
// enrollment for good with the reason.
func TestSchemaContractsAndTriggers(t *testing.T) {
	t.Parallel()
	s := newSystem(t, systemOptions{})
	tn := s.tenant()
	h := newHook(t)
	schema := map[string]any{"type": "object", "required": []any{"amount"},
		"properties": map[string]any{"amount": map[string]any{"type": "number", "minimum": 0}}}
	tn.call(http.StatusCreated, "POST", "/v1/event-types", map[string]any{"name": "purchase.completed",
		"schema": schema, "schema_mode": "enforce"})
	tn.call(http.StatusCreated, "POST", "/v1/event-types", map[string]any{"name": "followup.done",
		"schema": map[string]any{"type": "object", "required": []any{"order"}}, "schema_mode": "enforce"})
	tn.automation(fmt.Sprintf(`{"name":"big orders",
		"trigger":{"event":"purchase.completed","condition":"event.properties.amount >= 50.0"},
		"steps":[{"id":"thanks","type":"webhook","url":%q,"body":{"amount":"trigger.properties.amount"}}]}`, h.url("/thanks")))

	ok := tn.event(map[string]any{"name": "purchase.completed", "email": "a@example.com", "create_if_missing": true,
		"properties": map[string]any{"amount": 60}})
	require.EqualValues(t, 1, ok["workflows_triggered"])
	list := tn.enrollments("")
	require.Len(t, list, 1)
	done := tn.waitEnrollment(list[0]["id"].(string), 30*time.Second)
	require.Equal(t, "completed", done["status"])
	require.EqualValues(t, 1, h.hits.Load())

	// A violation in enforce mode: 422, nothing stored, nobody enrolled,
	// whatever the condition would have said.
	tn.call(http.StatusUnprocessableEntity, "POST", "/v1/events", map[string]any{"name": "purchase.completed",
		"email": "b@example.com", "create_if_missing": true, "properties": map[string]any{"amount": "99"}})
	batch := tn.call(http.StatusOK, "POST", "/v1/events/batch", map[string]any{"events": []any{
		map[string]any{"name": "purchase.completed", "email": "c@example.com", "create_if_missing": true,
			"properties": map[string]any{"amount": -500}},
	}})
	require.EqualValues(t, 0, batch["processed"])
	require.EqualValues(t, 0, batch["workflows_triggered"])
	require.Len(t, tn.enrollments(""), 1)
	events := tn.call(http.StatusOK, "GET", "/v1/events?name=purchase.completed", nil)["data"].([]any)
	require.Len(t, events, 1)

	// An emitted event that breaks its enforced schema fails the step for
	// good, with the reason in the step log.
	tn.automation(`{"name":"emits","trigger":{"event":"signed.up"},
		"steps":[{"id":"emit","type":"emit_event","name":"followup.done","properties":{"note":"'x'"}}]}`)
	tn.event(map[string]any{"name": "signed.up", "email": "d@example.com", "create_if_missing": true})
	var emitting map[string]any
	for _, e := range tn.enrollments("") {
		if e["id"] != list[0]["id"] {
			emitting = e
		}
	}
	require.NotNil(t, emitting)
	failed := tn.waitEnrollment(emitting["id"].(string), 30*time.Second)
	require.Equal(t, "failed", failed["status"], "%v", failed)
	require.Contains(t, jsonText(failed["steps"]), "schema version 1")
}
