package api_test

import (
	"context"
	"fmt"
	"net/http"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/signalbox/signalbox/store"
)

func TestIngestCreatesContactAndRecordsEvent(t *testing.T) {
	t.Parallel()
	c := newHarness(t).workspace(store.PlanStarter)

	got := c.event(map[string]any{
		"name": "purchase.completed", "email": "Ada@Example.COM", "create_if_missing": true,
		"contact_name": "Ada", "contact_properties": map[string]any{"last_name": "Lovelace", "plan": "pro"},
		"properties": map[string]any{"amount": 50.5, "orderId": "o-1"},
		"goal_type":  "purchase", "goal_value": 50.5, "occurred_at": "2026-01-02T03:04:05Z",
	})
	require.Equal(t, true, got["contact_created"])
	require.Equal(t, false, got["duplicate"])
	for _, k := range []string{"workflows_triggered", "executions_resumed", "executions_exited"} {
		require.EqualValues(t, 0, got[k])
	}

	contact := c.expect(http.StatusOK, "GET", "/v1/contacts/"+got["contact_id"].(string), nil)
	require.Equal(t, "ada@example.com", contact["email"])
	require.Equal(t, "Ada", contact["first_name"])
	require.Equal(t, "Lovelace", contact["last_name"])
	require.Equal(t, map[string]any{"plan": "pro"}, contact["properties"])

	ev := c.expect(http.StatusOK, "GET", "/v1/events/"+got["event_id"].(string), nil)
	require.Equal(t, "purchase.completed", ev["name"])
	require.Equal(t, got["contact_id"], ev["contact_id"])
	require.Equal(t, map[string]any{"amount": 50.5, "orderId": "o-1"}, ev["properties"])
	require.Equal(t, "purchase", ev["goal_type"])
	require.InDelta(t, 50.5, ev["goal_value"], 1e-9)
	require.Equal(t, "2026-01-02T03:04:05Z", ev["occurred_at"])

	// The same email in another case finds the same contact, and a second
	// event does not create it again.
	again := c.event(map[string]any{"name": "page.viewed", "email": "ADA@example.com", "create_if_missing": true})
	require.Equal(t, false, again["contact_created"])
	require.Equal(t, got["contact_id"], again["contact_id"])

	// contact_id works as well as email.
	byID := c.event(map[string]any{"name": "page.viewed", "contact_id": got["contact_id"]})
	require.Equal(t, got["contact_id"], byID["contact_id"])
}

func TestIngestUnknownContact(t *testing.T) {
	t.Parallel()
	c := newHarness(t).workspace(store.PlanStarter)
	fields := c.problem(http.StatusNotFound, "contact_not_found", "POST", "/v1/events",
		map[string]any{"name": "x", "email": "nobody@example.com"})
	require.Equal(t, []string{"email"}, fields)
	fields = c.problem(http.StatusNotFound, "contact_not_found", "POST", "/v1/events",
		map[string]any{"name": "x", "contact_id": "01900000-0000-7000-8000-000000000000"})
	require.Equal(t, []string{"contact_id"}, fields)
	require.Empty(t, c.list("/v1/events", 100))
}

func TestIngestRefusesBadInput(t *testing.T) {
	t.Parallel()
	h := newHarness(t)
	c := h.workspace(store.PlanStarter)
	// Something accepted before the bad inputs must still be there after.
	kept := c.event(map[string]any{"name": "kept", "email": "a@example.com", "create_if_missing": true})

	future := time.Now().Add(2 * time.Hour).UTC().Format(time.RFC3339)
	deep := map[string]any{}
	cur := deep
	for range 10 {
		next := map[string]any{}
		cur["k"] = next
		cur = next
	}
	base := func(extra map[string]any) map[string]any {
		m := map[string]any{"name": "ok", "email": "a@example.com"}
		for k, v := range extra {
			if v == nil {
				delete(m, k)
			} else {
				m[k] = v
			}
		}
		return m
	}
	for _, tc := range []struct {
		name   string
		body   any
		status int
		code   string
		fields []string
	}{
		{"not json", `{"name": "x",`, 400, "malformed_json", nil},
		{"not utf-8", "{\"name\":\"\xff\"}", 400, "malformed_json", nil},
		{"array", `[]`, 422, "validation_failed", []string{""}},
		{"unknown field", base(map[string]any{"propertiez": map[string]any{}}), 422, "validation_failed", []string{"propertiez"}},
		{"missing name", base(map[string]any{"name": nil}), 422, "validation_failed", []string{"name"}},
		{"name wrong type", base(map[string]any{"name": 5}), 422, "validation_failed", []string{"name"}},
		{"name starts with digit", base(map[string]any{"name": "1x"}), 422, "validation_failed", []string{"name"}},
		{"name has space", base(map[string]any{"name": "a b"}), 422, "validation_failed", []string{"name"}},
		{"name too long", base(map[string]any{"name": "a" + strings.Repeat("b", 255)}), 422, "validation_failed", []string{"name"}},
		{"no contact", base(map[string]any{"email": nil}), 422, "validation_failed", []string{"email"}},
		{"both contact ways", base(map[string]any{"contact_id": "01900000-0000-7000-8000-000000000000"}), 422, "validation_failed", []string{"email"}},
		{"bad email", base(map[string]any{"email": "not-an-email"}), 422, "validation_failed", []string{"email"}},
		{"bad contact id", map[string]any{"name": "x", "contact_id": "nope"}, 422, "validation_failed", []string{"contact_id"}},
		{"nil contact id", map[string]any{"name": "x", "contact_id": "00000000-0000-0000-0000-000000000000"}, 422, "validation_failed", []string{"contact_id"}},
		{"create needs email", map[string]any{"name": "x", "contact_id": "01900000-0000-7000-8000-000000000000", "create_if_missing": true}, 422, "validation_failed", []string{"create_if_missing"}},
		{"create_if_missing not bool", base(map[string]any{"create_if_missing": "yes"}), 422, "validation_failed", []string{"create_if_missing"}},
		{"properties not object", base(map[string]any{"properties": []int{1}}), 422, "validation_failed", []string{"properties"}},
		{"properties too large", base(map[string]any{"properties": map[string]any{"x": strings.Repeat("y", 33<<10)}}), 422, "validation_failed", []string{"properties"}},
		{"properties too deep", base(map[string]any{"properties": deep}), 422, "validation_failed", []string{"properties"}},
		{"properties number jsonb refuses", `{"name":"ok","email":"a@example.com","properties":{"n":1e200000}}`, 422, "validation_failed", []string{"properties"}},
		{"properties with NUL", base(map[string]any{"properties": map[string]any{"x": "a\x00b"}}), 422, "validation_failed", []string{"properties"}},
		{"contact_properties not object", base(map[string]any{"contact_properties": "x"}), 422, "validation_failed", []string{"contact_properties"}},
		{"contact first_name wrong type", base(map[string]any{"contact_properties": map[string]any{"first_name": 3}}), 422, "validation_failed", []string{"contact_properties.first_name"}},
		{"external_id too long", base(map[string]any{"external_id": strings.Repeat("x", 256)}), 422, "validation_failed", []string{"external_id"}},
		{"external_id empty", base(map[string]any{"external_id": ""}), 422, "validation_failed", []string{"external_id"}},
		{"external_id with NUL", base(map[string]any{"external_id": "a\x00"}), 422, "validation_failed", []string{"external_id"}},
		{"unknown goal type", base(map[string]any{"goal_type": "donation"}), 422, "validation_failed", []string{"goal_type"}},
		{"purchase without value", base(map[string]any{"goal_type": "purchase"}), 422, "validation_failed", []string{"goal_value"}},
		{"subscription without value", base(map[string]any{"goal_type": "subscription"}), 422, "validation_failed", []string{"goal_value"}},
		{"value without type", base(map[string]any{"goal_value": 3}), 422, "validation_failed", []string{"goal_value"}},
		{"value not number", base(map[string]any{"goal_type": "other", "goal_value": "3"}), 422, "validation_failed", []string{"goal_value"}},
		{"value out of range", base(map[string]any{"goal_type": "other", "goal_value": 1e300}), 422, "validation_failed", []string{"goal_value"}},
		{"occurred_at in future", base(map[string]any{"occurred_at": future}), 422, "validation_failed", []string{"occurred_at"}},
		{"occurred_at not rfc3339", base(map[string]any{"occurred_at": "yesterday"}), 422, "validation_failed", []string{"occurred_at"}},
		{"contact_name too long", base(map[string]any{"contact_name": strings.Repeat("n", 256)}), 422, "validation_failed", []string{"contact_name"}},
		{"several at once", map[string]any{"name": "", "email": "x", "goal_type": "nope", "zzz": 1}, 422, "validation_failed",
			[]string{"name", "email", "goal_type", "zzz"}},
		{"body over cap", `{"name":"x","email":"a@example.com","properties":{"x":"` + strings.Repeat("y", 200<<10) + `"}}`, 413, "body_too_large", nil},
	} {
		t.Run(tc.name, func(t *testing.T) {
			c := &client{h: &harness{t: t, url: h.url, store: h.store}, key: c.key, ws: c.ws}
			fields := c.problem(tc.status, tc.code, "POST", "/v1/events", tc.body)
			if tc.fields != nil {
				require.Equal(t, tc.fields, fields)
			}
		})
	}
	events := c.list("/v1/events", 100)
	require.Len(t, events, 1)
	require.Equal(t, kept["event_id"], events[0]["id"])
	require.EqualValues(t, 1, c.expect(http.StatusOK, "GET", "/v1/usage", nil)["tracked"])
}

func TestIngestAcceptsEdgeValues(t *testing.T) {
	t.Parallel()
	c := newHarness(t).workspace(store.PlanStarter)
	c.event(map[string]any{"name": "a", "email": "a@example.com", "create_if_missing": true})
	for _, body := range []map[string]any{
		{"name": "Z/b_c.d-e9", "email": "a@example.com"},
		{"name": "a" + strings.Repeat("b", 254), "email": "a@example.com"},
		{"name": "refund", "email": "a@example.com", "goal_type": "purchase", "goal_value": -19.99},
		{"name": "lead", "email": "a@example.com", "goal_type": "lead"},
		{"name": "old", "email": "a@example.com", "occurred_at": "2020-01-01T00:00:00.123456+02:00"},
		{"name": "soon", "email": "a@example.com", "occurred_at": time.Now().Add(30 * time.Minute).Format(time.RFC3339)},
		{"name": "nulls", "email": "a@example.com", "properties": nil, "external_id": nil, "goal_type": nil},
		{"name": "nine.deep", "email": "a@example.com", "properties": map[string]any{"a": map[string]any{"b": map[string]any{"c": map[string]any{
			"d": map[string]any{"e": map[string]any{"f": map[string]any{"g": map[string]any{"h": map[string]any{"i": 1}}}}}}}}}},
		{"name": "escaped", "email": "a@example.com", "properties": map[string]any{"x": `\u0000 as text`}},
	} {
		c.event(body)
	}
	ev := c.list("/v1/events?name=refund", 10)
	require.Len(t, ev, 1)
	require.InDelta(t, -19.99, ev[0]["goal_value"], 1e-9)
	ev = c.list("/v1/events?name=old", 10)
	require.Equal(t, "2019-12-31T22:00:00.123456Z", ev[0]["occurred_at"])
}

func TestExternalIDMakesIngestIdempotent(t *testing.T) {
	t.Parallel()
	c := newHarness(t).workspace(store.PlanStarter)
	t0 := time.Date(2026, 3, 1, 12, 0, 0, 0, time.UTC)
	send := func(at time.Time, amount float64) map[string]any {
		return c.event(map[string]any{"name": "purchase.completed", "email": "a@example.com", "create_if_missing": true,
			"external_id": "order-1", "goal_type": "purchase", "goal_value": amount,
			"properties": map[string]any{"amount": amount}, "occurred_at": ts(at)})
	}
	first := send(t0, 10)
	require.Equal(t, false, first["duplicate"])

	// Same time: a duplicate that changes nothing.
	same := send(t0, 20)
	require.Equal(t, true, same["duplicate"])
	require.Equal(t, first["event_id"], same["event_id"])
	ev := c.expect(http.StatusOK, "GET", "/v1/events/"+first["event_id"].(string), nil)
	require.InDelta(t, 10, ev["goal_value"], 1e-9)

	// Newer: updates properties and goal fields.
	newer := send(t0.Add(time.Minute), 30)
	require.Equal(t, true, newer["duplicate"])
	ev = c.expect(http.StatusOK, "GET", "/v1/events/"+first["event_id"].(string), nil)
	require.InDelta(t, 30, ev["goal_value"], 1e-9)
	require.Equal(t, map[string]any{"amount": 30.0}, ev["properties"])
	require.Equal(t, ts(t0.Add(time.Minute)), ev["occurred_at"])

	// Older: changes nothing.
	older := send(t0.Add(-time.Hour), 40)
	require.Equal(t, true, older["duplicate"])
	ev = c.expect(http.StatusOK, "GET", "/v1/events/"+first["event_id"].(string), nil)
	require.InDelta(t, 30, ev["goal_value"], 1e-9)

	require.Len(t, c.list("/v1/events", 100), 1)
	require.EqualValues(t, 1, c.expect(http.StatusOK, "GET", "/v1/usage", nil)["tracked"])

	// The same external_id in another workspace is another event.
	other := c.h.workspace(store.PlanStarter)
	o := other.event(map[string]any{"name": "purchase.completed", "email": "a@example.com", "create_if_missing": true,
		"external_id": "order-1", "goal_type": "purchase", "goal_value": 1})
	require.Equal(t, false, o["duplicate"])
	require.NotEqual(t, first["event_id"], o["event_id"])
}

func TestConcurrentEventsCreateOneContact(t *testing.T) {
	t.Parallel()
	c := newHarness(t).workspace(store.PlanStarter)
	const n = 40
	var wg sync.WaitGroup
	results := make([]map[string]any, n)
	for i := range n {
		wg.Add(1)
		go func() {
			defer wg.Done()
			r := c.do("POST", "/v1/events", map[string]any{"name": "signed.up", "email": "race@example.com",
				"create_if_missing": true, "properties": map[string]any{"i": i}})
			if r.Status == http.StatusAccepted {
				results[i] = r.JSON(t)
			}
		}()
	}
	wg.Wait()
	created := 0
	for _, r := range results {
		require.NotNil(t, r)
		require.Equal(t, results[0]["contact_id"], r["contact_id"])
		if r["contact_created"] == true {
			created++
		}
	}
	require.Equal(t, 1, created)
	require.Len(t, c.list("/v1/events", 1000), n)
	require.Len(t, c.list("/v1/contacts", 100), 1)
	require.EqualValues(t, n, c.expect(http.StatusOK, "GET", "/v1/usage", nil)["tracked"])
}

func TestConcurrentDuplicatesRecordOnce(t *testing.T) {
	t.Parallel()
	c := newHarness(t).workspace(store.PlanStarter)
	c.event(map[string]any{"name": "a", "email": "a@example.com", "create_if_missing": true})
	const n = 20
	var wg sync.WaitGroup
	dups := make([]bool, n)
	for i := range n {
		wg.Add(1)
		go func() {
			defer wg.Done()
			r := c.do("POST", "/v1/events", map[string]any{"name": "paid", "email": "a@example.com", "external_id": "inv-9"})
			require.Equal(t, http.StatusAccepted, r.Status)
			dups[i] = r.JSON(t)["duplicate"].(bool)
		}()
	}
	wg.Wait()
	fresh := 0
	for _, d := range dups {
		if !d {
			fresh++
		}
	}
	require.Equal(t, 1, fresh)
	require.Len(t, c.list("/v1/events?name=paid", 100), 1)
}

func TestBatchPartialSuccess(t *testing.T) {
	t.Parallel()
	c := newHarness(t).workspace(store.PlanStarter)
	c.event(map[string]any{"name": "a", "email": "known@example.com", "create_if_missing": true})
	resp := c.expect(http.StatusOK, "POST", "/v1/events/batch", map[string]any{"events": []any{
		map[string]any{"name": "ok.one", "email": "known@example.com"},
		map[string]any{"name": "1bad", "email": "known@example.com"},
		map[string]any{"name": "ok.two", "email": "new@example.com", "create_if_missing": true, "contact_name": "New"},
		map[string]any{"name": "ok.three", "email": "new@example.com"},
		map[string]any{"name": "missing", "email": "ghost@example.com"},
		"not an object",
		map[string]any{"name": "dup", "email": "known@example.com", "external_id": "e1"},
		map[string]any{"name": "dup", "email": "known@example.com", "external_id": "e1"},
	}})
	require.EqualValues(t, 5, resp["processed"])
	require.EqualValues(t, 3, resp["failed"])
	require.EqualValues(t, 1, resp["contacts_created"])
	require.EqualValues(t, 1, resp["duplicates"])
	for _, k := range []string{"workflows_triggered", "executions_resumed", "executions_exited"} {
		require.EqualValues(t, 0, resp[k])
	}
	var got []string
	for _, e := range resp["errors"].([]any) {
		m := e.(map[string]any)
		got = append(got, fmt.Sprintf("%v:%v:%v", m["index"], m["field"], m["code"]))
	}
	require.Equal(t, []string{"1:name:invalid", "4:email:contact_not_found", "5::invalid_type"}, got)

	events := c.list("/v1/events", 100)
	require.Len(t, events, 5) // a, ok.one, ok.two, ok.three, dup
	newContact := c.list("/v1/contacts?email=new@example.com", 10)
	require.Len(t, newContact, 1)
	require.Equal(t, "New", newContact[0]["first_name"])
	require.EqualValues(t, 5, c.expect(http.StatusOK, "GET", "/v1/usage", nil)["tracked"])
}

func TestBatchRefusedWhole(t *testing.T) {
	t.Parallel()
	c := newHarness(t).workspace(store.PlanStarter)
	item := map[string]any{"name": "x", "email": "a@example.com", "create_if_missing": true}
	over := make([]any, 1001)
	for i := range over {
		over[i] = item
	}
	require.Equal(t, []string{"events"}, c.problem(422, "validation_failed", "POST", "/v1/events/batch", map[string]any{"events": over}))
	require.Equal(t, []string{"events"}, c.problem(422, "validation_failed", "POST", "/v1/events/batch", map[string]any{"events": []any{}}))
	require.Equal(t, []string{"events"}, c.problem(422, "validation_failed", "POST", "/v1/events/batch", map[string]any{"events": "x"}))
	require.Equal(t, []string{"events"}, c.problem(422, "validation_failed", "POST", "/v1/events/batch", map[string]any{}))
	require.Equal(t, []string{"extra"}, c.problem(422, "validation_failed", "POST", "/v1/events/batch", map[string]any{"events": []any{item}, "extra": 1}))
	c.problem(400, "malformed_json", "POST", "/v1/events/batch", `{"events":[`)
	big := strings.Repeat("y", 30<<10)
	var items []string
	for range 200 {
		items = append(items, `{"name":"x","email":"a@example.com","create_if_missing":true,"properties":{"s":"`+big+`"}}`)
	}
	c.problem(413, "body_too_large", "POST", "/v1/events/batch", `{"events":[`+strings.Join(items, ",")+`]}`)
	require.Empty(t, c.list("/v1/events", 100))
	require.Empty(t, c.list("/v1/contacts", 100))

	full := make([]any, 1000)
	for i := range full {
		full[i] = map[string]any{"name": "x", "email": fmt.Sprintf("u%d@example.com", i%100), "create_if_missing": true}
	}
	resp := c.expect(http.StatusOK, "POST", "/v1/events/batch", map[string]any{"events": full})
	require.EqualValues(t, 1000, resp["processed"])
	require.EqualValues(t, 100, resp["contacts_created"])
}

func TestListingPaginatesNewestFirstWithFilters(t *testing.T) {
	t.Parallel()
	c := newHarness(t).workspace(store.PlanStarter)
	t0 := time.Date(2026, 5, 1, 0, 0, 0, 0, time.UTC)
	var events []any
	for i := range 25 {
		name := "page.viewed"
		if i%5 == 0 {
			name = "purchase.completed"
		}
		email := "a@example.com"
		if i%2 == 1 {
			email = "b@example.com"
		}
		// Several events share an occurred_at, so ties must page correctly.
		events = append(events, map[string]any{"name": name, "email": email, "create_if_missing": true,
			"occurred_at": ts(t0.Add(time.Duration(i/3) * time.Minute)), "properties": map[string]any{"i": i}})
	}
	c.expect(http.StatusOK, "POST", "/v1/events/batch", map[string]any{"events": events})

	all := c.list("/v1/events", 4)
	require.Len(t, all, 25)
	seen := map[string]bool{}
	for i, e := range all {
		require.False(t, seen[e["id"].(string)], "event listed twice")
		seen[e["id"].(string)] = true
		if i > 0 {
			prev, cur := all[i-1], e
			require.GreaterOrEqual(t, prev["occurred_at"].(string), cur["occurred_at"].(string))
			if prev["occurred_at"] == cur["occurred_at"] {
				require.Greater(t, prev["id"].(string), cur["id"].(string))
			}
		}
	}
	require.Len(t, c.list("/v1/events?name=purchase.completed", 2), 5)
	require.Len(t, c.list("/v1/events?email=B@example.com", 3), 12)
	bID := c.list("/v1/contacts?email=b@example.com", 1)[0]["id"].(string)
	require.Len(t, c.list("/v1/events?contact_id="+bID, 5), 12)
	require.Len(t, c.list("/v1/contacts/"+bID+"/timeline", 5), 12)
	require.Len(t, c.list("/v1/events?email=nobody@example.com", 5), 0)
	// since is inclusive, until exclusive: minutes 2..4 hold i = 6..14.
	window := c.list("/v1/events?since="+ts(t0.Add(2*time.Minute))+"&until="+ts(t0.Add(5*time.Minute)), 100)
	require.Len(t, window, 9)

	page := c.expect(http.StatusOK, "GET", "/v1/events", nil)
	require.Len(t, page["data"], 25)
	require.Nil(t, page["next_cursor"])

	for _, q := range []string{"limit=0", "limit=1001", "limit=x", "cursor=garbage", "since=yesterday",
		"contact_id=nope", "email=nope", "include_deleted=maybe", "name=1x"} {
		field, _, _ := strings.Cut(q, "=")
		require.Equal(t, []string{field}, c.problem(422, "validation_failed", "GET", "/v1/events?"+q, nil), q)
	}
}

func TestSoftDeleteAndRestore(t *testing.T) {
	t.Parallel()
	c := newHarness(t).workspace(store.PlanStarter)
	keep := c.event(map[string]any{"name": "keep", "email": "a@example.com", "create_if_missing": true})
	gone := c.event(map[string]any{"name": "gone", "email": "a@example.com"})
	id := gone["event_id"].(string)
	timeline := "/v1/contacts/" + gone["contact_id"].(string) + "/timeline"

	c.expect(http.StatusNoContent, "DELETE", "/v1/events/"+id, nil)
	c.expect(http.StatusNoContent, "DELETE", "/v1/events/"+id, nil) // idempotent
	require.Len(t, c.list("/v1/events", 10), 1)
	require.Equal(t, keep["event_id"], c.list("/v1/events", 10)[0]["id"])
	require.Len(t, c.list(timeline, 10), 1)
	require.Len(t, c.list("/v1/events?include_deleted=true", 10), 2)
	ev := c.expect(http.StatusOK, "GET", "/v1/events/"+id, nil)
	require.NotEmpty(t, ev["deleted_at"])

	restored := c.expect(http.StatusOK, "POST", "/v1/events/"+id+"/restore", nil)
	require.Nil(t, restored["deleted_at"])
	require.Len(t, c.list("/v1/events", 10), 2)
	require.Len(t, c.list(timeline, 10), 2)

	c.problem(404, "not_found", "DELETE", "/v1/events/01900000-0000-7000-8000-000000000000", nil)
	c.problem(404, "not_found", "POST", "/v1/events/not-a-uuid/restore", nil)
}

func TestExpiredEventsVanishAndAreSwept(t *testing.T) {
	t.Parallel()
	h := newHarness(t)
	c := h.workspace(store.PlanStarter)
	old := c.event(map[string]any{"name": "old", "email": "a@example.com", "create_if_missing": true})
	fresh := c.event(map[string]any{"name": "fresh", "email": "a@example.com"})
	id := old["event_id"].(string)
	ctx := context.Background()
	// Backdate receipt past the two-year retention.
	_, err := h.store.Pool().Exec(ctx, `UPDATE events SET received_at = now() - interval '731 days' WHERE id = $1`, id)
	require.NoError(t, err)

	c.problem(404, "not_found", "GET", "/v1/events/"+id, nil)
	c.problem(404, "not_found", "DELETE", "/v1/events/"+id, nil)
	c.problem(404, "not_found", "POST", "/v1/events/"+id+"/restore", nil)
	events := c.list("/v1/events?include_deleted=true", 10)
	require.Len(t, events, 1)
	require.Equal(t, fresh["event_id"], events[0]["id"])
	require.Len(t, c.list("/v1/contacts/"+old["contact_id"].(string)+"/timeline", 10), 1)

	// The sweeper removes it for good, in batches, leaving the fresh one.
	n, err := h.store.PurgeExpired(ctx, 1000)
	require.NoError(t, err)
	require.GreaterOrEqual(t, n, int64(1))
	var left int
	require.NoError(t, h.store.Pool().QueryRow(ctx, `SELECT count(*) FROM events WHERE id = $1`, id).Scan(&left))
	require.Zero(t, left)
	c.expect(http.StatusOK, "GET", "/v1/events/"+fresh["event_id"].(string), nil)
}
