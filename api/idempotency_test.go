package api_test

import (
	"bytes"
	"encoding/json"
	"io"
	"net/http"
	"strings"
	"sync"
	"testing"

	"github.com/stretchr/testify/require"

	"github.com/signalbox/signalbox/store"
)

// doKeyed sends a POST with an Idempotency-Key header.
func (c *client) doKeyed(path, key string, body any) response {
	t := c.h.t
	t.Helper()
	raw, err := json.Marshal(body)
	require.NoError(t, err)
	req, err := http.NewRequest("POST", c.h.url+path, bytes.NewReader(raw))
	require.NoError(t, err)
	req.Header.Set("Authorization", "Bearer "+c.key)
	req.Header.Set("Idempotency-Key", key)
	resp, err := http.DefaultClient.Do(req)
	require.NoError(t, err)
	defer resp.Body.Close()
	out, err := io.ReadAll(resp.Body)
	require.NoError(t, err)
	return response{Status: resp.StatusCode, Header: resp.Header, Body: out}
}

func TestIdempotencyKeyReplaysFirstAnswer(t *testing.T) {
	t.Parallel()
	h := newHarness(t)
	c := h.workspace(store.PlanStarter)
	body := map[string]any{"name": "signup.started", "email": "a@example.com", "create_if_missing": true}

	first := c.doKeyed("/v1/events", "req-1", body)
	require.Equal(t, http.StatusAccepted, first.Status, "%s", first.Body)
	require.Empty(t, first.Header.Get("Idempotent-Replayed"))
	again := c.doKeyed("/v1/events", "req-1", body)
	require.Equal(t, http.StatusAccepted, again.Status)
	require.Equal(t, "true", again.Header.Get("Idempotent-Replayed"))
	require.JSONEq(t, string(first.Body), string(again.Body), "the first answer, contact_created included")
	require.Len(t, c.list("/v1/events", 100), 1, "nothing new is stored")
	require.EqualValues(t, 1, c.expect(http.StatusOK, "GET", "/v1/usage", nil)["tracked"])

	// The same key with another body is refused and stores nothing.
	other := map[string]any{"name": "signup.started", "email": "b@example.com", "create_if_missing": true}
	r := c.doKeyed("/v1/events", "req-1", other)
	require.Equal(t, http.StatusUnprocessableEntity, r.Status)
	require.Equal(t, "idempotency_key_reused", r.JSON(t)["code"])
	require.Len(t, c.list("/v1/events", 100), 1)

	// Keys are the workspace's own: another workspace's same key is new.
	o := h.workspace(store.PlanStarter).doKeyed("/v1/events", "req-1", body)
	require.Equal(t, http.StatusAccepted, o.Status)
	require.Empty(t, o.Header.Get("Idempotent-Replayed"))

	// An answer that was a refusal is kept too.
	missing := map[string]any{"name": "signup.started", "email": "nobody@example.com"}
	for range 2 {
		r = c.doKeyed("/v1/events", "req-2", missing)
		require.Equal(t, http.StatusNotFound, r.Status)
		require.Equal(t, "contact_not_found", r.JSON(t)["code"])
	}
}

func TestIdempotencyKeyOnBatches(t *testing.T) {
	t.Parallel()
	c := newHarness(t).workspace(store.PlanStarter)
	body := map[string]any{"events": []any{
		map[string]any{"name": "page.viewed", "email": "a@example.com", "create_if_missing": true},
		map[string]any{"name": "1bad", "email": "a@example.com"},
		map[string]any{"name": "page.viewed", "email": "b@example.com", "create_if_missing": true},
	}}
	first := c.doKeyed("/v1/events/batch", "batch-1", body)
	require.Equal(t, http.StatusOK, first.Status, "%s", first.Body)
	again := c.doKeyed("/v1/events/batch", "batch-1", body)
	require.Equal(t, http.StatusOK, again.Status)
	require.Equal(t, "true", again.Header.Get("Idempotent-Replayed"))
	require.JSONEq(t, string(first.Body), string(again.Body))
	require.Len(t, c.list("/v1/events", 100), 2)
}

// TestIdempotencyKeyUnderConcurrency sends one keyed request from many
// clients at once, as a client's retries after timeouts can: it is
// recorded once and every answer is the same.
func TestIdempotencyKeyUnderConcurrency(t *testing.T) {
	t.Parallel()
	c := newHarness(t).workspace(store.PlanStarter)
	body := map[string]any{"name": "order.placed", "email": "a@example.com", "create_if_missing": true}
	var wg sync.WaitGroup
	answers := make([]response, 16)
	for i := range answers {
		wg.Add(1)
		go func() {
			defer wg.Done()
			answers[i] = c.doKeyed("/v1/events", "same", body)
		}()
	}
	wg.Wait()
	replays := 0
	for _, a := range answers {
		require.Equal(t, http.StatusAccepted, a.Status, "%s", a.Body)
		require.JSONEq(t, string(answers[0].Body), string(a.Body))
		if a.Header.Get("Idempotent-Replayed") == "true" {
			replays++
		}
	}
	require.Equal(t, len(answers)-1, replays)
	require.Len(t, c.list("/v1/events", 100), 1)
}

func TestIdempotencyKeyRefusesBadValues(t *testing.T) {
	t.Parallel()
	c := newHarness(t).workspace(store.PlanStarter)
	body := map[string]any{"name": "x", "email": "a@example.com", "create_if_missing": true}
	for _, key := range []string{"", strings.Repeat("k", 256), "has space", "naïve"} {
		r := c.doKeyed("/v1/events", key, body)
		require.Equal(t, http.StatusUnprocessableEntity, r.Status, "key %q", key)
		p := r.JSON(t)
		require.Equal(t, "validation_failed", p["code"])
		require.Equal(t, "Idempotency-Key", p["errors"].([]any)[0].(map[string]any)["field"])
	}
	require.Empty(t, c.list("/v1/events", 100))
}

// TestExternalIDConflict reuses an external_id for another contact and for
// another event name: each is refused with 409 naming the existing event,
// and changes nothing (no contact created or patched, nothing counted).
func TestExternalIDConflict(t *testing.T) {
	t.Parallel()
	c := newHarness(t).workspace(store.PlanStarter)
	first := c.event(map[string]any{"name": "order.placed", "email": "a@example.com", "create_if_missing": true,
		"external_id": "order-1"})
	for name, body := range map[string]map[string]any{
		"another contact": {"name": "order.placed", "email": "b@example.com", "create_if_missing": true,
			"external_id": "order-1", "contact_properties": map[string]any{"plan": "pro"}},
		"another name": {"name": "order.refunded", "email": "a@example.com", "external_id": "order-1",
			"contact_properties": map[string]any{"plan": "pro"}},
		"another contact by id": {"name": "order.placed", "contact_id": c.event(map[string]any{"name": "x",
			"email": "c@example.com", "create_if_missing": true})["contact_id"], "external_id": "order-1"},
	} {
		r := c.do("POST", "/v1/events", body)
		require.Equal(t, http.StatusConflict, r.Status, "%s: %s", name, r.Body)
		p := r.JSON(t)
		require.Equal(t, "external_id_conflict", p["code"], name)
		require.Equal(t, first["event_id"], p["existing_event_id"], name)
		require.Equal(t, "external_id", p["errors"].([]any)[0].(map[string]any)["field"])
	}
	contacts := c.list("/v1/contacts", 100)
	require.Len(t, contacts, 2, "no contact b@example.com was created")
	for _, ct := range contacts {
		require.Empty(t, ct["properties"], "no contact was patched")
	}
	require.EqualValues(t, 2, c.expect(http.StatusOK, "GET", "/v1/usage", nil)["tracked"])

	// In a batch, only that item fails, with the same code; the same
	// external_id twice for two contacts in one batch conflicts too.
	out := c.expect(http.StatusOK, "POST", "/v1/events/batch", map[string]any{"events": []any{
		map[string]any{"name": "order.placed", "email": "a@example.com", "external_id": "order-1"},
		map[string]any{"name": "order.placed", "email": "d@example.com", "create_if_missing": true, "external_id": "order-1"},
		map[string]any{"name": "order.placed", "email": "a@example.com", "external_id": "order-2"},
		map[string]any{"name": "order.shipped", "email": "a@example.com", "external_id": "order-2"},
	}})
	require.EqualValues(t, 2, out["processed"])
	require.EqualValues(t, 2, out["failed"])
	errs := out["errors"].([]any)
	require.Len(t, errs, 2)
	for i, want := range []float64{1, 3} {
		e := errs[i].(map[string]any)
		require.Equal(t, want, e["index"])
		require.Equal(t, "external_id_conflict", e["code"])
	}
}
