package api_test

import (
	"fmt"
	"net/http"
	"strings"
	"testing"

	"github.com/stretchr/testify/require"

	"github.com/signalbox/signalbox/store"
)

// amountSchema requires a non-negative number amount and a currency code.
var amountSchema = map[string]any{
	"type":     "object",
	"required": []any{"amount", "currency"},
	"properties": map[string]any{
		"amount":   map[string]any{"type": "number", "minimum": 0},
		"currency": map[string]any{"type": "string", "enum": []any{"EUR", "USD"}},
	},
}

func TestEventTypesDeclareListGetPatchDelete(t *testing.T) {
	t.Parallel()
	c := newHarness(t).workspace(store.PlanStarter)

	created := c.expect(http.StatusCreated, "POST", "/v1/event-types", map[string]any{
		"name": "purchase.completed", "description": "An order was paid", "schema": amountSchema, "schema_mode": "enforce"})
	require.Equal(t, "purchase.completed", created["name"])
	require.Equal(t, true, created["declared"])
	require.Equal(t, "An order was paid", created["description"])
	require.EqualValues(t, 1, created["schema_version"])
	require.Equal(t, "enforce", created["schema_mode"])
	require.NotNil(t, created["schema"])
	require.EqualValues(t, 0, created["count_total"])
	require.Nil(t, created["first_seen_at"])
	c.problem(http.StatusConflict, "conflict", "POST", "/v1/event-types", map[string]any{"name": "purchase.completed"})

	// Events of a declared name and of an undeclared one.
	c.event(map[string]any{"name": "purchase.completed", "email": "ada@example.com", "create_if_missing": true,
		"properties": map[string]any{"amount": 5, "currency": "EUR"}})
	c.event(map[string]any{"name": "page/viewed", "email": "ada@example.com"})
	c.event(map[string]any{"name": "page/viewed", "email": "ada@example.com"})

	all := c.list("/v1/event-types", 1)
	require.Len(t, all, 2)
	require.Equal(t, "page/viewed", all[0]["name"])
	require.Equal(t, false, all[0]["declared"])
	require.Nil(t, all[0]["description"])
	require.Nil(t, all[0]["schema_mode"])
	require.EqualValues(t, 2, all[0]["count_total"])
	require.EqualValues(t, 2, all[0]["count_24h"])
	require.NotNil(t, all[0]["first_seen_at"])
	require.NotNil(t, all[0]["last_seen_at"])
	require.Equal(t, "purchase.completed", all[1]["name"])
	require.EqualValues(t, 1, all[1]["count_total"])
	for _, k := range []string{"name", "declared", "description", "schema_version", "schema_mode", "first_seen_at",
		"last_seen_at", "count_total", "count_24h"} {
		require.Contains(t, all[1], k)
	}
	declared := c.list("/v1/event-types?declared=true", 10)
	require.Len(t, declared, 1)
	require.Equal(t, "purchase.completed", declared[0]["name"])
	undeclared := c.list("/v1/event-types?declared=false", 10)
	require.Len(t, undeclared, 1)
	require.Equal(t, "page/viewed", undeclared[0]["name"])

	// One by name, slashes and all; 404 for a name neither declared nor seen.
	one := c.expect(http.StatusOK, "GET", "/v1/event-types/page/viewed", nil)
	require.Equal(t, "page/viewed", one["name"])
	require.Contains(t, one, "schema")
	require.Nil(t, one["schema"])
	c.problem(http.StatusNotFound, "not_found", "GET", "/v1/event-types/never.seen", nil)
	c.problem(http.StatusNotFound, "not_found", "GET", "/v1/event-types/1bad", nil)

	// PATCH: the description alone keeps the schema version; a new schema
	// makes the next one; null removes it (another version); the name never
	// changes.
	p := c.expect(http.StatusOK, "PATCH", "/v1/event-types/purchase.completed", map[string]any{"description": "Paid"})
	require.Equal(t, "Paid", p["description"])
	require.EqualValues(t, 1, p["schema_version"])
	p = c.expect(http.StatusOK, "PATCH", "/v1/event-types/purchase.completed", map[string]any{"schema": amountSchema})
	require.EqualValues(t, 1, p["schema_version"], "the same schema is no change")
	p = c.expect(http.StatusOK, "PATCH", "/v1/event-types/purchase.completed",
		map[string]any{"schema": map[string]any{"type": "object"}, "schema_mode": "flag"})
	require.EqualValues(t, 2, p["schema_version"])
	require.Equal(t, "flag", p["schema_mode"])
	p = c.expect(http.StatusOK, "PATCH", "/v1/event-types/purchase.completed", map[string]any{"schema": nil})
	require.EqualValues(t, 3, p["schema_version"])
	require.Nil(t, p["schema"])
	fields := c.problem(http.StatusUnprocessableEntity, "immutable", "PATCH", "/v1/event-types/purchase.completed",
		map[string]any{"name": "other"})
	require.Equal(t, []string{"name"}, fields)
	c.problem(http.StatusNotFound, "not_found", "PATCH", "/v1/event-types/page/viewed", map[string]any{"description": "x"})

	// DELETE removes the declaration, not the events; declaring the name
	// again goes on from its last schema version.
	c.expect(http.StatusNoContent, "DELETE", "/v1/event-types/purchase.completed", nil)
	c.problem(http.StatusNotFound, "not_found", "DELETE", "/v1/event-types/purchase.completed", nil)
	gone := c.expect(http.StatusOK, "GET", "/v1/event-types/purchase.completed", nil)
	require.Equal(t, false, gone["declared"])
	require.EqualValues(t, 1, gone["count_total"])
	again := c.expect(http.StatusCreated, "POST", "/v1/event-types", map[string]any{"name": "purchase.completed", "schema": amountSchema})
	require.EqualValues(t, 4, again["schema_version"])
	require.Equal(t, "flag", again["schema_mode"])
}

func TestEventTypesRefuseBadInput(t *testing.T) {
	t.Parallel()
	c := newHarness(t).workspace(store.PlanStarter)
	bad := []struct {
		body  any
		field string
	}{
		{map[string]any{}, "name"},
		{map[string]any{"name": "1bad"}, "name"},
		{map[string]any{"name": 5}, "name"},
		{map[string]any{"name": "a", "extra": 1}, "extra"},
		{map[string]any{"name": "a", "schema_mode": "strict"}, "schema_mode"},
		{map[string]any{"name": "a", "description": strings.Repeat("x", 2001)}, "description"},
		{map[string]any{"name": "a", "schema": "object"}, "schema"},
	}
	for _, b := range bad {
		fields := c.problem(http.StatusUnprocessableEntity, "validation_failed", "POST", "/v1/event-types", b.body)
		require.Contains(t, fields, b.field, "%v", b.body)
	}
	c.problem(http.StatusBadRequest, "malformed_json", "POST", "/v1/event-types", `{"name":`)

	// An invalid schema points into it.
	r := c.do("POST", "/v1/event-types", map[string]any{"name": "a",
		"schema": map[string]any{"type": "object", "properties": map[string]any{"amount": map[string]any{"type": "money"}}}})
	require.Equal(t, http.StatusUnprocessableEntity, r.Status, "%s", r.Body)
	errs := r.JSON(t)["errors"].([]any)
	require.Equal(t, "/schema/properties/amount/type", errs[0].(map[string]any)["pointer"])
	// A remote $ref is refused, nothing fetched.
	r = c.do("POST", "/v1/event-types", map[string]any{"name": "a", "schema": map[string]any{"$ref": "https://example.com/s.json"}})
	require.Equal(t, http.StatusUnprocessableEntity, r.Status)
	require.Equal(t, "/schema/$ref", r.JSON(t)["errors"].([]any)[0].(map[string]any)["pointer"])
	// Larger than 64 KiB.
	big := map[string]any{"name": "a", "schema": map[string]any{"description": strings.Repeat("x", 70<<10)}}
	r = c.do("POST", "/v1/event-types", big)
	require.Equal(t, http.StatusUnprocessableEntity, r.Status, "%s", r.Body[:min(len(r.Body), 300)])

	c.problem(http.StatusUnprocessableEntity, "validation_failed", "GET", "/v1/event-types?declared=maybe", nil)
	c.problem(http.StatusUnprocessableEntity, "validation_failed", "GET", "/v1/event-types?limit=0", nil)
	c.problem(http.StatusUnprocessableEntity, "validation_failed", "GET", "/v1/event-types?cursor=%25%25", nil)
	c.problem(http.StatusUnprocessableEntity, "validation_failed", "POST", "/v1/event-types/declare", map[string]any{})
	c.problem(http.StatusUnprocessableEntity, "validation_failed", "POST", "/v1/event-types/declare", map[string]any{"names": []any{}})
	fields := c.problem(http.StatusUnprocessableEntity, "validation_failed", "POST", "/v1/event-types/declare",
		map[string]any{"names": []any{"ok", "2bad"}})
	require.Equal(t, []string{"names.1"}, fields)
	c.problem(http.StatusUnprocessableEntity, "validation_failed", "POST", "/v1/event-types/declare",
		map[string]any{"names": []any{"a"}, "all_undeclared": true})
	c.problem(http.StatusUnprocessableEntity, "validation_failed", "PATCH", "/v1/workspace", map[string]any{"undeclared_events": "maybe"})
	c.problem(http.StatusUnprocessableEntity, "validation_failed", "PATCH", "/v1/workspace", map[string]any{"plan": "enterprise"})
}

func TestEventTypesDeclareInOneCall(t *testing.T) {
	t.Parallel()
	c := newHarness(t).workspace(store.PlanStarter)
	for _, n := range []string{"a.seen", "b.seen", "b.seen"} {
		c.event(map[string]any{"name": n, "email": "ada@example.com", "create_if_missing": true})
	}
	c.expect(http.StatusCreated, "POST", "/v1/event-types", map[string]any{"name": "c.declared"})

	got := c.expect(http.StatusOK, "POST", "/v1/event-types/declare", map[string]any{"all_undeclared": true})
	data := got["data"].([]any)
	require.Len(t, data, 2)
	require.Equal(t, "a.seen", data[0].(map[string]any)["name"])
	require.Equal(t, true, data[1].(map[string]any)["declared"])
	require.EqualValues(t, 2, data[1].(map[string]any)["count_total"])
	require.Empty(t, c.list("/v1/event-types?declared=false", 10))

	got = c.expect(http.StatusOK, "POST", "/v1/event-types/declare", map[string]any{"names": []any{"d.new", "c.declared"}})
	data = got["data"].([]any)
	require.Len(t, data, 2)
	require.Equal(t, "c.declared", data[0].(map[string]any)["name"])
	require.Equal(t, "d.new", data[1].(map[string]any)["name"])
	require.Len(t, c.list("/v1/event-types?declared=true", 2), 4)

	// The limit of 1,000 types holds, and a refused call declares nothing.
	names := make([]any, 997)
	for i := range names {
		names[i] = fmt.Sprintf("n%04d", i)
	}
	c.problem(http.StatusUnprocessableEntity, "too_many_event_types", "POST", "/v1/event-types/declare", map[string]any{"names": names})
	require.Len(t, c.list("/v1/event-types?declared=true", 1000), 4)
	c.expect(http.StatusOK, "POST", "/v1/event-types/declare", map[string]any{"names": names[:996]})
	c.problem(http.StatusUnprocessableEntity, "too_many_event_types", "POST", "/v1/event-types", map[string]any{"name": "one.more"})
}

func TestUndeclaredEventsRejected(t *testing.T) {
	t.Parallel()
	c := newHarness(t).workspace(store.PlanStarter)
	ws := c.expect(http.StatusOK, "GET", "/v1/workspace", nil)
	require.Equal(t, "accept", ws["undeclared_events"])
	c.event(map[string]any{"name": "free", "email": "ada@example.com", "create_if_missing": true})

	ws = c.expect(http.StatusOK, "PATCH", "/v1/workspace", map[string]any{"undeclared_events": "reject"})
	require.Equal(t, "reject", ws["undeclared_events"])
	fields := c.problem(http.StatusUnprocessableEntity, "undeclared_event", "POST", "/v1/events",
		map[string]any{"name": "free", "email": "ada@example.com"})
	require.Equal(t, []string{"name"}, fields)

	c.expect(http.StatusCreated, "POST", "/v1/event-types", map[string]any{"name": "known"})
	batch := c.expect(http.StatusOK, "POST", "/v1/events/batch", map[string]any{"events": []any{
		map[string]any{"name": "known", "email": "ada@example.com"},
		map[string]any{"name": "free", "email": "ada@example.com"},
	}})
	require.EqualValues(t, 1, batch["processed"])
	require.EqualValues(t, 1, batch["failed"])
	e := batch["errors"].([]any)[0].(map[string]any)
	require.EqualValues(t, 1, e["index"])
	require.Equal(t, "undeclared_event", e["code"])

	// Events carry declared; the log filters by it.
	undeclared := c.list("/v1/events?declared=false", 10)
	require.Len(t, undeclared, 1)
	require.Equal(t, "free", undeclared[0]["name"])
	require.Equal(t, false, undeclared[0]["declared"])
	known := c.list("/v1/events?declared=true", 10)
	require.Len(t, known, 1)
	require.Equal(t, true, known[0]["declared"])
	c.problem(http.StatusUnprocessableEntity, "validation_failed", "GET", "/v1/events?declared=perhaps", nil)

	// An event that matched nothing says whether its name is declared.
	d := c.expect(http.StatusOK, "GET", "/v1/events/"+undeclared[0]["id"].(string)+"/decisions", nil)
	require.Equal(t, false, d["declared"])
	require.Empty(t, d["data"])
}

func TestSchemaEnforceAndFlag(t *testing.T) {
	t.Parallel()
	c := newHarness(t).workspace(store.PlanStarter)
	c.expect(http.StatusCreated, "POST", "/v1/event-types", map[string]any{
		"name": "purchase.completed", "schema": amountSchema, "schema_mode": "enforce"})

	ok := c.event(map[string]any{"name": "purchase.completed", "email": "ada@example.com", "create_if_missing": true,
		"properties": map[string]any{"amount": 5, "currency": "EUR"}})
	ev := c.expect(http.StatusOK, "GET", "/v1/events/"+ok["event_id"].(string), nil)
	require.EqualValues(t, 1, ev["schema_version"])
	require.Nil(t, ev["schema_errors"])
	require.Equal(t, true, ev["declared"])

	// Enforce: refused, one error per violation with its pointer and keyword.
	r := c.do("POST", "/v1/events", map[string]any{"name": "purchase.completed", "email": "ada@example.com",
		"properties": map[string]any{"amount": "five"}})
	require.Equal(t, http.StatusUnprocessableEntity, r.Status, "%s", r.Body)
	p := r.JSON(t)
	require.Equal(t, "schema_violation", p["code"])
	got := map[string]string{}
	for _, e := range p["errors"].([]any) {
		m := e.(map[string]any)
		got[m["pointer"].(string)] = m["keyword"].(string)
		require.NotEmpty(t, m["detail"])
		require.NotEmpty(t, m["field"])
	}
	require.Equal(t, map[string]string{"/properties/amount": "type", "/properties/currency": "required"}, got)

	// In a batch only that item fails.
	batch := c.expect(http.StatusOK, "POST", "/v1/events/batch", map[string]any{"events": []any{
		map[string]any{"name": "purchase.completed", "email": "ada@example.com", "properties": map[string]any{"amount": -1, "currency": "EUR"}},
		map[string]any{"name": "purchase.completed", "email": "ada@example.com", "properties": map[string]any{"amount": 1, "currency": "USD"}},
	}})
	require.EqualValues(t, 1, batch["processed"])
	require.EqualValues(t, 1, batch["failed"])
	e := batch["errors"].([]any)[0].(map[string]any)
	require.EqualValues(t, 0, e["index"])
	require.Equal(t, "schema_violation", e["code"])
	require.Equal(t, "/properties/amount", e["pointer"])
	require.Equal(t, "minimum", e["keyword"])

	// Flag: stored with its errors and found by schema_valid=false.
	c.expect(http.StatusOK, "PATCH", "/v1/event-types/purchase.completed", map[string]any{"schema_mode": "flag"})
	flagged := c.event(map[string]any{"name": "purchase.completed", "email": "ada@example.com",
		"properties": map[string]any{"amount": "five", "currency": "EUR"}})
	invalidOnes := c.list("/v1/events?schema_valid=false", 10)
	require.Len(t, invalidOnes, 1)
	require.Equal(t, flagged["event_id"], invalidOnes[0]["id"])
	errs := invalidOnes[0]["schema_errors"].([]any)
	require.Equal(t, "/properties/amount", errs[0].(map[string]any)["pointer"])
	require.Len(t, c.list("/v1/events?schema_valid=true", 10), 2)
	c.problem(http.StatusUnprocessableEntity, "validation_failed", "GET", "/v1/events?schema_valid=no", nil)

	// The counts include only what was stored.
	et := c.expect(http.StatusOK, "GET", "/v1/event-types/purchase.completed", nil)
	require.EqualValues(t, 3, et["count_total"])
}

func TestEventTypeCountsFollowDeleteAndRestore(t *testing.T) {
	t.Parallel()
	c := newHarness(t).workspace(store.PlanStarter)
	var ids []string
	for range 3 {
		ids = append(ids, c.event(map[string]any{"name": "clicked", "email": "ada@example.com", "create_if_missing": true})["event_id"].(string))
	}
	count := func() float64 {
		return c.expect(http.StatusOK, "GET", "/v1/event-types/clicked", nil)["count_total"].(float64)
	}
	require.EqualValues(t, 3, count())
	c.expect(http.StatusNoContent, "DELETE", "/v1/events/"+ids[0], nil)
	c.expect(http.StatusNoContent, "DELETE", "/v1/events/"+ids[0], nil)
	require.EqualValues(t, 2, count())
	c.expect(http.StatusOK, "POST", "/v1/events/"+ids[0]+"/restore", nil)
	require.EqualValues(t, 3, count())
	contact := c.list("/v1/contacts", 10)[0]["id"].(string)
	c.expect(http.StatusNoContent, "DELETE", "/v1/contacts/"+contact, nil)
	require.EqualValues(t, 0, count())
}

// TestCatalogRefusalsReplayWithTheirKey: an Idempotency-Key keeps a
// refusal's answer like any other, even once the schema has changed.
func TestCatalogRefusalsReplayWithTheirKey(t *testing.T) {
	t.Parallel()
	c := newHarness(t).workspace(store.PlanStarter)
	c.expect(http.StatusCreated, "POST", "/v1/event-types", map[string]any{
		"name": "purchase.completed", "schema": amountSchema, "schema_mode": "enforce"})
	c.event(map[string]any{"name": "warm", "email": "ada@example.com", "create_if_missing": true})
	body := map[string]any{"events": []any{
		map[string]any{"name": "purchase.completed", "email": "ada@example.com", "properties": map[string]any{"amount": "x"}},
		map[string]any{"name": "purchase.completed", "email": "ada@example.com", "properties": map[string]any{"amount": 1, "currency": "EUR"}},
	}}
	first := c.doKeyed("/v1/events/batch", "k-1", body)
	require.Equal(t, http.StatusOK, first.Status, "%s", first.Body)
	c.expect(http.StatusOK, "PATCH", "/v1/event-types/purchase.completed", map[string]any{"schema": nil})
	again := c.doKeyed("/v1/events/batch", "k-1", body)
	require.Equal(t, "true", again.Header.Get("Idempotent-Replayed"))
	require.JSONEq(t, string(first.Body), string(again.Body))
	require.EqualValues(t, 1, first.JSON(t)["processed"])
}

// TestEventTypePagesMixDeclaredAndSeen walks the catalog in small pages,
// with and without the declared filter.
func TestEventTypePagesMixDeclaredAndSeen(t *testing.T) {
	t.Parallel()
	c := newHarness(t).workspace(store.PlanStarter)
	declared := []any{"a.1", "b.2", "c.3", "x/5", "y.6"}
	c.expect(http.StatusOK, "POST", "/v1/event-types/declare", map[string]any{"names": declared})
	var events []any
	for _, n := range []string{"a.0", "b.2", "c.4", "x/5", "z.9", "z.9"} {
		events = append(events, map[string]any{"name": n, "email": "ada@example.com", "create_if_missing": true})
	}
	c.expect(http.StatusOK, "POST", "/v1/events/batch", map[string]any{"events": events})
	names := func(list []map[string]any) []string {
		var out []string
		for _, e := range list {
			out = append(out, e["name"].(string))
		}
		return out
	}
	for _, limit := range []int{1, 2, 3, 100} {
		require.Equal(t, []string{"a.0", "a.1", "b.2", "c.3", "c.4", "x/5", "y.6", "z.9"}, names(c.list("/v1/event-types", limit)))
		require.Equal(t, []string{"a.1", "b.2", "c.3", "x/5", "y.6"}, names(c.list("/v1/event-types?declared=true", limit)))
		require.Equal(t, []string{"a.0", "c.4", "z.9"}, names(c.list("/v1/event-types?declared=false", limit)))
	}
	all := c.list("/v1/event-types", 100)
	require.EqualValues(t, 2, all[7]["count_total"])
	require.EqualValues(t, 1, all[2]["count_total"])
	require.EqualValues(t, 0, all[1]["count_total"])
}
