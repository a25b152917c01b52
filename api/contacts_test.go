package api_test

import (
	"context"
	"net/http"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/signalbox/signalbox/api"
	"github.com/signalbox/signalbox/store"
)

func TestContactUpsertPatchAndDelete(t *testing.T) {
	t.Parallel()
	c := newHarness(t).workspace(store.PlanStarter)

	created := c.expect(http.StatusCreated, "POST", "/v1/contacts", map[string]any{
		"email": "Grace@Example.com", "first_name": "Grace", "properties": map[string]any{"plan": "free", "team": "navy"}})
	id := created["id"].(string)
	require.Equal(t, "grace@example.com", created["email"])
	require.Equal(t, "Grace", created["first_name"])
	require.Nil(t, created["last_name"])

	// Upsert by email patches: merge properties, null removes one.
	updated := c.expect(http.StatusOK, "POST", "/v1/contacts", map[string]any{
		"email": "grace@example.com", "last_name": "Hopper", "properties": map[string]any{"plan": "pro", "team": nil}})
	require.Equal(t, id, updated["id"])
	require.Equal(t, "Grace", updated["first_name"])
	require.Equal(t, "Hopper", updated["last_name"])
	require.Equal(t, map[string]any{"plan": "pro"}, updated["properties"])

	patched := c.expect(http.StatusOK, "PATCH", "/v1/contacts/"+id, map[string]any{
		"email": "hopper@example.com", "first_name": nil, "properties": map[string]any{"rank": "admiral"}})
	require.Equal(t, "hopper@example.com", patched["email"])
	require.Nil(t, patched["first_name"])
	require.Equal(t, map[string]any{"plan": "pro", "rank": "admiral"}, patched["properties"])
	got := c.expect(http.StatusOK, "GET", "/v1/contacts/"+id, nil)
	require.Equal(t, map[string]any{}, got["goals"], "no goal events yet")
	delete(got, "goals")
	require.Equal(t, patched, got)

	found := c.list("/v1/contacts?email=HOPPER@example.com", 10)
	require.Len(t, found, 1)
	require.Equal(t, id, found[0]["id"])

	// Taking another contact's email is a conflict.
	c.expect(http.StatusCreated, "POST", "/v1/contacts", map[string]any{"email": "other@example.com"})
	c.problem(http.StatusConflict, "conflict", "PATCH", "/v1/contacts/"+id, map[string]any{"email": "other@example.com"})

	// Listing pages through every contact, newest first.
	for _, e := range []string{"c1@example.com", "c2@example.com", "c3@example.com"} {
		c.expect(http.StatusCreated, "POST", "/v1/contacts", map[string]any{"email": e})
	}
	all := c.list("/v1/contacts", 2)
	require.Len(t, all, 5)
	require.Equal(t, "c3@example.com", all[0]["email"])

	// Deleting a contact deletes its timeline with it.
	ev := c.event(map[string]any{"name": "x", "contact_id": id})
	c.expect(http.StatusNoContent, "DELETE", "/v1/contacts/"+id, nil)
	c.problem(http.StatusNotFound, "not_found", "GET", "/v1/contacts/"+id, nil)
	c.problem(http.StatusNotFound, "not_found", "GET", "/v1/events/"+ev["event_id"].(string), nil)
	c.problem(http.StatusNotFound, "not_found", "DELETE", "/v1/contacts/"+id, nil)
}

func TestContactBadInput(t *testing.T) {
	t.Parallel()
	c := newHarness(t).workspace(store.PlanStarter)
	id := c.expect(http.StatusCreated, "POST", "/v1/contacts", map[string]any{"email": "a@example.com"})["id"].(string)
	for _, tc := range []struct {
		method, path string
		body         any
		fields       []string
	}{
		{"POST", "/v1/contacts", map[string]any{}, []string{"email"}},
		{"POST", "/v1/contacts", map[string]any{"email": "bad"}, []string{"email"}},
		{"POST", "/v1/contacts", map[string]any{"email": "a@example.com", "nickname": "x"}, []string{"nickname"}},
		{"POST", "/v1/contacts", map[string]any{"email": "a@example.com", "properties": []int{}}, []string{"properties"}},
		{"POST", "/v1/contacts", map[string]any{"email": "a@example.com", "first_name": 7}, []string{"first_name"}},
		{"PATCH", "/v1/contacts/" + id, map[string]any{"last_name": strings.Repeat("x", 300)}, []string{"last_name"}},
		{"PATCH", "/v1/contacts/" + id, map[string]any{"email": 1}, []string{"email"}},
	} {
		require.Equal(t, tc.fields, c.problem(422, "validation_failed", tc.method, tc.path, tc.body), "%v", tc.body)
	}
	c.problem(400, "malformed_json", "POST", "/v1/contacts", "{")
	c.problem(413, "body_too_large", "POST", "/v1/contacts", `{"email":"a@example.com","properties":{"x":"`+strings.Repeat("y", 70<<10)+`"}}`)
	c.problem(404, "not_found", "PATCH", "/v1/contacts/not-an-id", map[string]any{})
	require.Equal(t, []string{"cursor"}, c.problem(422, "validation_failed", "GET", "/v1/contacts?cursor=!!!", nil))
}

// TestWorkspaceIsolation proves that one workspace can never read, change
// or delete another's contacts and events, nor record events on them.
func TestWorkspaceIsolation(t *testing.T) {
	t.Parallel()
	h := newHarness(t)
	a, b := h.workspace(store.PlanStarter), h.workspace(store.PlanStarter)
	ev := a.event(map[string]any{"name": "secret", "email": "shared@example.com", "create_if_missing": true,
		"external_id": "x-1"})
	contact, event := ev["contact_id"].(string), ev["event_id"].(string)

	for _, r := range []struct {
		method, path string
		body         any
	}{
		{"GET", "/v1/contacts/" + contact, nil},
		{"PATCH", "/v1/contacts/" + contact, map[string]any{"first_name": "Mallory"}},
		{"DELETE", "/v1/contacts/" + contact, nil},
		{"GET", "/v1/contacts/" + contact + "/timeline", nil},
		{"GET", "/v1/events/" + event, nil},
		{"DELETE", "/v1/events/" + event, nil},
		{"POST", "/v1/events/" + event + "/restore", nil},
	} {
		b.problem(http.StatusNotFound, "not_found", r.method, r.path, r.body)
	}
	b.problem(http.StatusNotFound, "contact_not_found", "POST", "/v1/events", map[string]any{"name": "x", "contact_id": contact})
	batch := b.expect(http.StatusOK, "POST", "/v1/events/batch", map[string]any{"events": []any{
		map[string]any{"name": "x", "contact_id": contact}}})
	require.EqualValues(t, 1, batch["failed"])
	require.Empty(t, b.list("/v1/events", 100))
	require.Empty(t, b.list("/v1/events?contact_id="+contact, 100))
	require.Empty(t, b.list("/v1/events?email=shared@example.com", 100))
	require.Empty(t, b.list("/v1/contacts", 100))
	require.Empty(t, b.list("/v1/contacts?email=shared@example.com", 100))

	// B's own contact with the same email and external_id is separate.
	mine := b.event(map[string]any{"name": "mine", "email": "shared@example.com", "create_if_missing": true, "external_id": "x-1"})
	require.NotEqual(t, contact, mine["contact_id"])
	require.Equal(t, false, mine["duplicate"])

	// Nothing of A's changed.
	got := a.expect(http.StatusOK, "GET", "/v1/contacts/"+contact, nil)
	require.Nil(t, got["first_name"])
	require.Len(t, a.list("/v1/events", 10), 1)
	require.Len(t, a.list("/v1/contacts/"+contact+"/timeline", 10), 1)
}

func TestAuthentication(t *testing.T) {
	t.Parallel()
	h := newHarness(t, func(c *api.Config) { c.AuthCacheTTL = 50 * time.Millisecond })
	c := h.workspace(store.PlanStarter)
	c.expect(http.StatusOK, "GET", "/v1/usage", nil)

	for name, key := range map[string]string{
		"missing":   "",
		"malformed": "not-a-key",
		// Right shape and checksum, but no such key.
		"unknown": unknownKey(t),
		// Right prefix, wrong secret: checksum fails.
		"tampered": c.key[:len(c.key)-8] + "AAAAAAAA",
	} {
		other := &client{h: h, key: key}
		r := other.do("GET", "/v1/usage", nil)
		require.Equal(t, http.StatusUnauthorized, r.Status, name)
		require.Equal(t, "application/problem+json", r.Header.Get("Content-Type"), name)
		require.Contains(t, r.Header.Get("WWW-Authenticate"), "Bearer", name)
	}
	// The scheme name is case-insensitive.
	lower := c.do("GET", "/v1/usage", nil)
	require.Equal(t, http.StatusOK, lower.Status)
	req, err := http.NewRequest("GET", h.url+"/v1/usage", nil)
	require.NoError(t, err)
	req.Header.Set("Authorization", "bearer "+c.key)
	resp, err := http.DefaultClient.Do(req)
	require.NoError(t, err)
	resp.Body.Close()
	require.Equal(t, http.StatusOK, resp.StatusCode)

	// Every /v1 endpoint needs a key.
	anon := &client{h: h}
	for _, p := range []string{"/v1/events", "/v1/contacts", "/v1/usage", "/v1/events/batch"} {
		require.Equal(t, http.StatusUnauthorized, anon.do("GET", p, nil).Status, p)
	}
	require.Equal(t, http.StatusUnauthorized, anon.do("POST", "/v1/events", `{}`).Status)

	// A revoked key stops working once the cache lets go of it.
	prefix := c.key[:12]
	_, err = h.store.RevokeAPIKey(context.Background(), prefix)
	require.NoError(t, err)
	require.Eventually(t, func() bool { return c.do("GET", "/v1/usage", nil).Status == http.StatusUnauthorized },
		5*time.Second, 10*time.Millisecond)

	// A second key of the same workspace still works.
	key, err := h.store.CreateAPIKey(context.Background(), c.ws.ID)
	require.NoError(t, err)
	fresh := &client{h: h, key: key.Secret}
	fresh.expect(http.StatusOK, "GET", "/v1/usage", nil)
}

func unknownKey(t *testing.T) string {
	t.Helper()
	h := newHarness(t)
	c := h.workspace(store.PlanStarter)
	_, err := h.store.Pool().Exec(context.Background(), `DELETE FROM api_keys WHERE prefix = $1`, c.key[:12])
	require.NoError(t, err)
	return c.key
}

func TestQuota(t *testing.T) {
	t.Parallel()
	h := newHarness(t)
	c := h.workspace(store.PlanStarter)
	c.event(map[string]any{"name": "first", "email": "a@example.com", "create_if_missing": true, "external_id": "x"})
	u := c.expect(http.StatusOK, "GET", "/v1/usage", nil)
	require.Equal(t, map[string]any{"period": time.Now().UTC().Format("2006-01"), "plan": "starter",
		"tracked": 1.0, "limit": 50000.0, "hard_cap": 62500.0}, u)

	// Bring the month's count to 49,999 without sending that many events.
	_, err := h.store.Pool().Exec(context.Background(),
		`UPDATE usage_counters SET tracked = tracked + 49998 WHERE workspace_id = $1 AND shard = (
		   SELECT min(shard) FROM usage_counters WHERE workspace_id = $1)`, c.ws.ID)
	require.NoError(t, err)

	// At the limit: accepted without a warning; past it, with one.
	r := c.do("POST", "/v1/events", map[string]any{"name": "x", "email": "a@example.com"})
	require.Equal(t, http.StatusAccepted, r.Status)
	require.Empty(t, r.Header.Get(api.UsageWarningHeader))
	r = c.do("POST", "/v1/events", map[string]any{"name": "x", "email": "a@example.com"})
	require.Equal(t, http.StatusAccepted, r.Status)
	require.Contains(t, r.Header.Get(api.UsageWarningHeader), "50001 of 50000")

	// Up to 62,499: a batch of 1000 would pass the cap of 62,500.
	_, err = h.store.Pool().Exec(context.Background(),
		`UPDATE usage_counters SET tracked = tracked + 12498 WHERE workspace_id = $1 AND shard = (
		   SELECT min(shard) FROM usage_counters WHERE workspace_id = $1)`, c.ws.ID)
	require.NoError(t, err)
	items := make([]any, 2)
	for i := range items {
		items[i] = map[string]any{"name": "over", "email": "a@example.com"}
	}
	r = c.do("POST", "/v1/events/batch", map[string]any{"events": items})
	require.Equal(t, http.StatusTooManyRequests, r.Status, "%s", r.Body)
	p := r.JSON(t)
	require.Equal(t, "quota_exceeded", p["code"])
	require.NotEmpty(t, r.Header.Get("Retry-After"), "a 429 says when the month turns")
	require.EqualValues(t, 50000, p["limit"])
	require.EqualValues(t, 62499, p["used"])
	require.Empty(t, c.list("/v1/events?name=over", 10))

	// The last event under the cap is accepted, the next refused.
	c.event(map[string]any{"name": "last", "email": "a@example.com"})
	c.problem(http.StatusTooManyRequests, "quota_exceeded", "POST", "/v1/events", map[string]any{"name": "over", "email": "a@example.com"})
	require.Empty(t, c.list("/v1/events?name=over", 10))

	// A duplicate is not counted, so it is still answered.
	dup := c.event(map[string]any{"name": "first", "email": "a@example.com", "external_id": "x"})
	require.Equal(t, true, dup["duplicate"])
	require.EqualValues(t, 62500, c.expect(http.StatusOK, "GET", "/v1/usage", nil)["tracked"])

	// Unlimited plans never stop.
	e := h.workspace(store.PlanEnterprise)
	u = e.expect(http.StatusOK, "GET", "/v1/usage", nil)
	require.Nil(t, u["limit"])
	require.Nil(t, u["hard_cap"])
}

// TestQuotaHoldsUnderConcurrency sends more events than the month has room
// for, from many clients at once, singly and in batches: exactly the room
// is accepted, whichever requests get it, and nothing of a refused request
// is stored.
func TestQuotaHoldsUnderConcurrency(t *testing.T) {
	t.Parallel()
	h := newHarness(t)
	c := h.workspace(store.PlanStarter)
	c.event(map[string]any{"name": "first", "email": "a@example.com", "create_if_missing": true})
	// 120 events of room under the hard cap of 62,500.
	_, err := h.store.Pool().Exec(context.Background(),
		`UPDATE usage_counters SET tracked = tracked + 62379 WHERE workspace_id = $1 AND shard = (
		   SELECT min(shard) FROM usage_counters WHERE workspace_id = $1)`, c.ws.ID)
	require.NoError(t, err)

	const clients, each, batch = 24, 10, 4
	var accepted, refused, other atomic.Int64
	var wg sync.WaitGroup
	for i := range clients {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for j := range each {
				var r response
				if (i+j)%2 == 0 {
					r = c.do("POST", "/v1/events", map[string]any{"name": "race", "email": "a@example.com"})
				} else {
					items := make([]any, batch)
					for k := range items {
						items[k] = map[string]any{"name": "race", "email": "a@example.com"}
					}
					r = c.do("POST", "/v1/events/batch", map[string]any{"events": items})
				}
				switch {
				case r.Status == http.StatusAccepted:
					accepted.Add(1)
				case r.Status == http.StatusOK:
					accepted.Add(batch)
				case r.Status == http.StatusTooManyRequests:
					refused.Add(1)
				default:
					other.Add(1)
				}
			}
		}()
	}
	wg.Wait()
	require.Zero(t, other.Load())
	require.Positive(t, refused.Load())
	require.EqualValues(t, 62500, c.expect(http.StatusOK, "GET", "/v1/usage", nil)["tracked"])
	require.EqualValues(t, 120, accepted.Load(), "exactly the room left is accepted")
	require.Len(t, c.list("/v1/events?name=race", 1000), 120)
}

func TestHealthAndMetrics(t *testing.T) {
	t.Parallel()
	h := newHarness(t)
	anon := &client{h: h}
	require.Equal(t, map[string]any{"status": "ok"}, anon.expect(http.StatusOK, "GET", "/healthz", nil))
	require.Equal(t, map[string]any{"status": "ready"}, anon.expect(http.StatusOK, "GET", "/readyz", nil))
	c := h.workspace(store.PlanStarter)
	c.event(map[string]any{"name": "x", "email": "a@example.com", "create_if_missing": true})
	r := anon.do("GET", "/metrics", nil)
	require.Equal(t, http.StatusOK, r.Status)
	require.Contains(t, string(r.Body), "signalbox_events_ingested_total")
	require.Contains(t, string(r.Body), "http_server_request_duration_seconds")
	anon.problem(http.StatusNotFound, "not_found", "GET", "/nope", nil)
	anon.problem(http.StatusMethodNotAllowed, "method_not_allowed", "PUT", "/healthz", nil)
}
