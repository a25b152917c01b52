package api_test

import (
	"net/http"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/signalbox/signalbox/store"
)

func TestSegmentValidationPointsAtEachProblem(t *testing.T) {
	t.Parallel()
	c := newHarness(t).workspace(store.PlanStarter)
	fields := c.problem(422, "validation_failed", "POST", "/v1/segments", map[string]any{
		"match": map[string]any{"all": []any{
			map[string]any{"event": "page.viewed", "count": map[string]any{"op": "~", "value": 3}, "within": "30x"},
			map[string]any{"goal": map[string]any{"type": "gift", "aggregate": "median", "op": ">=", "value": "a lot"}},
			map[string]any{"last_event": map[string]any{"within": "9d", "older_than": "90d"}},
			map[string]any{"property": "plan", "op": "like", "value": "pro"},
			map[string]any{"event": "x", "where": "event.properties.total + 1 > 3"},
			map[string]any{"not": map[string]any{"any": []any{map[string]any{"colour": "red"}}}},
		}},
		"extra": true,
	})
	require.ElementsMatch(t, []string{
		"/extra", "/name",
		"/match/all/0/count/op", "/match/all/0/within",
		"/match/all/1/goal/type", "/match/all/1/goal/aggregate", "/match/all/1/goal/value",
		"/match/all/2/last_event", "/match/all/3/op", "/match/all/4/where",
		"/match/all/5/not/any/0",
	}, fields)
	// Nesting deeper than 5 levels.
	deep := map[string]any{"event": "a"}
	for range 6 {
		deep = map[string]any{"all": []any{deep}}
	}
	fields = c.problem(422, "validation_failed", "POST", "/v1/segments", map[string]any{"name": "deep", "match": deep})
	require.Equal(t, []string{"/match/all/0/all/0/all/0/all/0/all/0"}, fields)
	c.problem(400, "malformed_json", "POST", "/v1/segments", "{")
	c.problem(422, "validation_failed", "POST", "/v1/segments/preview", map[string]any{"match": map[string]any{"event": "a"}})
}

func TestSegmentsSelectByBehaviourGoalsRecencyAndProperties(t *testing.T) {
	t.Parallel()
	c := newHarness(t).workspace(store.PlanStarter)
	now := time.Now().UTC()
	ago := func(d time.Duration) string { return ts(now.Add(-d)) }
	day := 24 * time.Hour
	ev := func(email, name string, at string, extra map[string]any) map[string]any {
		body := map[string]any{"name": name, "email": email, "create_if_missing": true, "occurred_at": at}
		for k, v := range extra {
			body[k] = v
		}
		return c.event(body)
	}
	// ada: 3 views in 30 days, bought 150; bob: 3 views but one 40 days
	// ago (backdated: it counts in its own time), bought 120 then a refund
	// of 30; cy: 4 views, no purchase; dee: nothing recent.
	for _, d := range []time.Duration{day, 2 * day, 3 * day} {
		ev("ada@example.com", "page.viewed", ago(d), map[string]any{"properties": map[string]any{"path": "/pricing"}})
	}
	ada := ev("ada@example.com", "order.paid", ago(10*day), map[string]any{"goal_type": "purchase", "goal_value": 150, "external_id": "o-1"})
	for _, d := range []time.Duration{day, 2 * day, 40 * day} {
		ev("bob@example.com", "page.viewed", ago(d), map[string]any{"properties": map[string]any{"path": "/docs"}})
	}
	ev("bob@example.com", "order.paid", ago(20*day), map[string]any{"goal_type": "purchase", "goal_value": 120})
	ev("bob@example.com", "order.refunded", ago(5*day), map[string]any{"goal_type": "purchase", "goal_value": -30})
	for _, d := range []time.Duration{day, 2 * day, 3 * day, 4 * day} {
		ev("cy@example.com", "page.viewed", ago(d), nil)
	}
	ev("dee@example.com", "page.viewed", ago(200*day), nil)
	c.expect(http.StatusOK, "PATCH", "/v1/contacts/"+ada["contact_id"].(string), map[string]any{"properties": map[string]any{"plan": "pro", "seats": 12}})

	engaged := c.expect(http.StatusCreated, "POST", "/v1/segments", map[string]any{
		"name": "Engaged buyers",
		"match": map[string]any{"all": []any{
			map[string]any{"event": "page.viewed", "count": map[string]any{"op": ">=", "value": 3}, "within": "30d"},
			map[string]any{"goal": map[string]any{"type": "purchase", "aggregate": "sum", "op": ">=", "value": 100, "within": "90d"}},
		}},
	})
	id := engaged["id"].(string)
	require.Equal(t, "Engaged buyers", engaged["name"])
	emails := func(path string) []string {
		var out []string
		for _, ct := range c.list(path, 1) {
			out = append(out, ct["email"].(string))
		}
		return out
	}
	require.Equal(t, []string{"ada@example.com"}, emails("/v1/segments/"+id+"/contacts"))
	require.EqualValues(t, 1, c.expect(http.StatusOK, "GET", "/v1/segments/"+id+"/count", nil)["count"])

	// bob's refund lowered his sum to 90; with a 3rd recent view and
	// another order he is in.
	ev("bob@example.com", "page.viewed", ago(3*day), nil)
	require.EqualValues(t, 1, c.expect(http.StatusOK, "GET", "/v1/segments/"+id+"/count", nil)["count"])
	ev("bob@example.com", "order.paid", ago(day), map[string]any{"goal_type": "purchase", "goal_value": 10})
	require.ElementsMatch(t, []string{"ada@example.com", "bob@example.com"}, emails("/v1/segments/"+id+"/contacts"))

	// An upsert that lowers ada's order, then a soft delete and restore.
	ev("ada@example.com", "order.paid", ago(9*day), map[string]any{"goal_type": "purchase", "goal_value": 50, "external_id": "o-1"})
	require.Equal(t, []string{"bob@example.com"}, emails("/v1/segments/"+id+"/contacts"))
	ev("ada@example.com", "order.paid", ago(8*day), map[string]any{"goal_type": "purchase", "goal_value": 150, "external_id": "o-1"})
	c.expect(http.StatusNoContent, "DELETE", "/v1/events/"+ada["event_id"].(string), nil)
	require.EqualValues(t, 1, c.expect(http.StatusOK, "GET", "/v1/segments/"+id+"/count", nil)["count"])
	c.expect(http.StatusOK, "POST", "/v1/events/"+ada["event_id"].(string)+"/restore", nil)
	require.EqualValues(t, 2, c.expect(http.StatusOK, "GET", "/v1/segments/"+id+"/count", nil)["count"])

	preview := func(match map[string]any) (float64, []string) {
		out := c.expect(http.StatusOK, "POST", "/v1/segments/preview", map[string]any{"match": match})
		var got []string
		for _, ct := range out["contacts"].([]any) {
			got = append(got, ct.(map[string]any)["email"].(string))
		}
		return out["count"].(float64), got
	}
	n, got := preview(map[string]any{"all": []any{map[string]any{"event": "page.viewed", "performed": false, "within": "30d"}}})
	require.EqualValues(t, 1, n)
	require.Equal(t, []string{"dee@example.com"}, got)
	_, got = preview(map[string]any{"all": []any{map[string]any{"event": "page.viewed", "where": `event.properties.path == "/pricing"`}}})
	require.Equal(t, []string{"ada@example.com"}, got)
	_, got = preview(map[string]any{"any": []any{map[string]any{"last_event": map[string]any{"older_than": "90d"}}}})
	require.Equal(t, []string{"dee@example.com"}, got)
	_, got = preview(map[string]any{"all": []any{map[string]any{"goal": map[string]any{"type": "purchase", "aggregate": "min", "op": "<", "value": 0}}}})
	require.Equal(t, []string{"bob@example.com"}, got)
	_, got = preview(map[string]any{"all": []any{map[string]any{"goal": map[string]any{"type": "any", "aggregate": "count", "op": "=", "value": 0}}}})
	require.ElementsMatch(t, []string{"cy@example.com", "dee@example.com"}, got)
	_, got = preview(map[string]any{"all": []any{
		map[string]any{"property": "plan", "op": "in", "value": []any{"pro", "team"}},
		map[string]any{"property": "seats", "op": "gte", "value": 10},
		map[string]any{"not": map[string]any{"property": "churned", "op": "exists"}},
	}})
	require.Equal(t, []string{"ada@example.com"}, got)

	// The contact's segments; edits and deletes.
	lapsed := c.expect(http.StatusCreated, "POST", "/v1/segments", map[string]any{"name": "Lapsed",
		"match": map[string]any{"all": []any{map[string]any{"last_event": map[string]any{"older_than": "90d"}}}}})
	mine := c.expect(http.StatusOK, "GET", "/v1/contacts/"+ada["contact_id"].(string)+"/segments", nil)["data"].([]any)
	require.Len(t, mine, 1)
	require.Equal(t, id, mine[0].(map[string]any)["id"])
	updated := c.expect(http.StatusOK, "PUT", "/v1/segments/"+lapsed["id"].(string), map[string]any{"name": "Everyone",
		"match": map[string]any{"any": []any{map[string]any{"last_event": map[string]any{"within": "3650d"}}}}})
	require.Equal(t, "Everyone", updated["name"])
	require.Len(t, c.expect(http.StatusOK, "GET", "/v1/contacts/"+ada["contact_id"].(string)+"/segments", nil)["data"], 2)
	require.Len(t, c.list("/v1/segments", 1), 2)
	got1 := c.expect(http.StatusOK, "GET", "/v1/segments/"+id, nil)
	require.Equal(t, engaged["match"], got1["match"])
	c.expect(http.StatusNoContent, "DELETE", "/v1/segments/"+id, nil)
	c.problem(404, "not_found", "GET", "/v1/segments/"+id, nil)
	c.problem(404, "not_found", "GET", "/v1/segments/"+id+"/count", nil)
	c.problem(404, "not_found", "GET", "/v1/segments/not-a-uuid", nil)
}
