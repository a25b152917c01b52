package api_test

import (
	"bytes"
	"context"
	"crypto/hmac"
	"crypto/sha256"
	"encoding/base64"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"strconv"
	"strings"
	"testing"
	"time"

	standardwebhooks "github.com/standard-webhooks/standard-webhooks/libraries/go"
	"github.com/stretchr/testify/require"

	"github.com/signalbox/signalbox/api"
	"github.com/signalbox/signalbox/store"
)

// The payloads below are written by hand in the shape the providers
// document: a Stripe event envelope (id, object, type, data.object) and a
// Shopify order webhook (customer.email, line_items).

// stripeSubscriptionCreated is a customer.subscription.created event.
func stripeSubscriptionCreated(eventID, email string) []byte {
	return []byte(fmt.Sprintf(`{
  "id": %q,
  "object": "event",
  "api_version": "2024-06-20",
  "created": 1717000000,
  "data": {
    "object": {
      "id": "sub_1PQ2w3E4r5T6y7U8",
      "object": "subscription",
      "customer": "cus_Q2w3E4r5T6y7",
      "customer_email": %q,
      "customer_name": "Ada Lovelace",
      "status": "active",
      "collection_method": "charge_automatically",
      "currency": "usd",
      "items": {
        "object": "list",
        "data": [
          {"id": "si_Q2w3E4", "object": "subscription_item", "quantity": 1,
           "price": {"id": "price_1PQ2w3", "object": "price", "unit_amount": 2000, "currency": "usd",
                     "recurring": {"interval": "month", "interval_count": 1}}}
        ]
      },
      "current_period_start": 1717000000,
      "current_period_end": 1719592000
    }
  },
  "livemode": false,
  "pending_webhooks": 1,
  "request": {"id": "req_Q2w3E4r5T6y7", "idempotency_key": "8c1f6a3e-2b4d-4e6f-9a1b-3c5d7e9f1a2b"},
  "type": "customer.subscription.created"
}`, eventID, email))
}

// shopifyOrder is an orders/create webhook body.
func shopifyOrder(id int, email string) []byte {
	customer := ""
	if email != "" {
		customer = fmt.Sprintf(`"customer": {"id": 207119551, "email": %q, "first_name": "Grace", "last_name": "Hopper"},`, email)
	}
	return []byte(fmt.Sprintf(`{
  "id": %d,
  "admin_graphql_api_id": "gid://shopify/Order/%d",
  "name": "#1001",
  "currency": "EUR",
  "total_price": "59.00",
  "financial_status": "paid",
  %s
  "line_items": [
    {"id": 466157049, "sku": "IPOD2008GREEN", "title": "IPod Nano - 8gb", "quantity": 1, "price": "49.00"},
    {"id": 518995019, "sku": "CASE-01", "title": "Case", "quantity": 1, "price": "10.00"}
  ],
  "created_at": "2026-03-01T12:00:00+01:00"
}`, id, id, customer))
}

// stripeSign makes a Stripe-Signature header for body at t.
func stripeSign(secret string, t time.Time, body []byte) string {
	ts := strconv.FormatInt(t.Unix(), 10)
	m := hmac.New(sha256.New, []byte(secret))
	m.Write([]byte(ts + "."))
	m.Write(body)
	return "t=" + ts + ",v1=" + hex.EncodeToString(m.Sum(nil))
}

func hmacSHA256(secret string, body []byte) []byte {
	m := hmac.New(sha256.New, []byte(secret))
	m.Write(body)
	return m.Sum(nil)
}

// post sends a payload to a source's URL, as a third party does: no API
// key, the given headers.
func (h *harness) post(path string, body []byte, headers map[string]string) response {
	h.t.Helper()
	req, err := http.NewRequest("POST", h.url+path, bytes.NewReader(body))
	require.NoError(h.t, err)
	req.Header.Set("Content-Type", "application/json")
	for k, v := range headers {
		if v == "" {
			req.Header.Del(k)
		} else {
			req.Header.Set(k, v)
		}
	}
	resp, err := http.DefaultClient.Do(req)
	require.NoError(h.t, err)
	defer resp.Body.Close()
	raw, err := io.ReadAll(resp.Body)
	require.NoError(h.t, err)
	return response{Status: resp.StatusCode, Header: resp.Header, Body: raw}
}

// deliver posts and requires the status, returning the decoded answer.
func (h *harness) deliver(status int, path string, body []byte, headers map[string]string) map[string]any {
	h.t.Helper()
	r := h.post(path, body, headers)
	require.Equal(h.t, status, r.Status, "POST %s: %s", path, r.Body)
	return r.JSON(h.t)
}

// sourcePath is the path of a source's url.
func sourcePath(t *testing.T, src map[string]any) string {
	t.Helper()
	u := src["url"].(string)
	i := strings.Index(u, "/in/")
	require.GreaterOrEqual(t, i, 0, "url %s", u)
	return u[i:]
}

func TestSourceStripeSubscription(t *testing.T) {
	t.Parallel()
	h := newHarness(t, func(c *api.Config) { c.PublicURL = "https://signalbox.example.com/" })
	c := h.workspace(store.PlanStarter)
	const secret = "whsec_test_8bG2mK0pQ4sT6vX9zA1cE3fH5jL7nP0r"
	src := c.expect(http.StatusCreated, "POST", "/v1/sources", map[string]any{
		"name": "Stripe", "email_path": "data.object.customer_email", "event_name_path": "type",
		"properties_path": "data.object", "external_id_path": "id",
		"contact_properties": map[string]any{"first_name": "data.object.customer_name",
			"stripe_customer": "data.object.customer", "plan_amount": "data.object.items.data.0.price.unit_amount"},
		"verification": map[string]any{"type": "stripe", "secret": secret},
	})
	url := src["url"].(string)
	require.True(t, strings.HasPrefix(url, "https://signalbox.example.com/in/"), url)
	token := strings.TrimPrefix(url, "https://signalbox.example.com/in/")
	raw, err := base64.RawURLEncoding.DecodeString(token)
	require.NoError(t, err)
	require.Len(t, raw, 32)
	require.Equal(t, true, src["create_if_missing"])
	require.Equal(t, true, src["enabled"])
	v := src["verification"].(map[string]any)
	require.Equal(t, secret, v["secret"], "the creating answer shows the secret once")
	require.Equal(t, "whsec_…nP0r", v["secret_hint"])

	// Later answers never show it.
	for _, got := range []map[string]any{c.expect(http.StatusOK, "GET", "/v1/sources/"+src["id"].(string), nil),
		c.list("/v1/sources", 10)[0]} {
		require.NotContains(t, got["verification"], "secret")
		require.NotContains(t, string(mustJSON(t, got)), secret)
		require.Equal(t, url, got["url"])
	}

	path := sourcePath(t, src)
	body := stripeSubscriptionCreated("evt_1PQ2w3E4r5T6y7U8i9O0", "Ada@Example.com")
	now := time.Now()
	got := h.deliver(http.StatusAccepted, path, body, map[string]string{"Stripe-Signature": stripeSign(secret, now, body)})
	require.Equal(t, "accepted", got["status"])
	require.Nil(t, got["reason"])
	require.Equal(t, false, got["duplicate"])
	eventID := got["event_id"].(string)

	ev := c.expect(http.StatusOK, "GET", "/v1/events/"+eventID, nil)
	require.Equal(t, "customer.subscription.created", ev["name"])
	props := ev["properties"].(map[string]any)
	require.Equal(t, "sub_1PQ2w3E4r5T6y7U8", props["id"])
	require.Equal(t, "active", props["status"])
	contact := c.expect(http.StatusOK, "GET", "/v1/contacts/"+ev["contact_id"].(string), nil)
	require.Equal(t, "ada@example.com", contact["email"])
	require.Equal(t, "Ada Lovelace", contact["first_name"])
	require.Equal(t, map[string]any{"stripe_customer": "cus_Q2w3E4r5T6y7", "plan_amount": float64(2000)}, contact["properties"])

	// Stripe redelivers the same event: a duplicate, no second event.
	again := h.deliver(http.StatusAccepted, path, body, map[string]string{"Stripe-Signature": stripeSign(secret, now, body)})
	require.Equal(t, "accepted", again["status"])
	require.Equal(t, true, again["duplicate"])
	require.Equal(t, eventID, again["event_id"])
	require.Len(t, c.list("/v1/events?name=customer.subscription.created", 10), 1)

	// A roll of the secret sends one v1 per secret; any may match.
	second := stripeSubscriptionCreated("evt_2", "ada@example.com")
	sig := stripeSign(secret, now, second)
	forgedFirst := strings.Replace(sig, ",v1=", ",v1="+strings.Repeat("0", 64)+",v1=", 1)
	require.Equal(t, "accepted", h.deliver(http.StatusAccepted, path, second, map[string]string{"Stripe-Signature": forgedFirst})["status"])

	// A forged signature, a missing one, an expired timestamp: 401, kept.
	forged := stripeSubscriptionCreated("evt_forged", "mallory@example.com")
	for name, header := range map[string]string{
		"forged":  stripeSign("whsec_not_the_secret", now, forged),
		"missing": "",
		"expired": stripeSign(secret, now.Add(-6*time.Minute), forged),
		"future":  stripeSign(secret, now.Add(6*time.Minute), forged),
		"garbage": "t=abc,v1=zz",
	} {
		r := h.post(path, forged, map[string]string{"Stripe-Signature": header})
		require.Equal(t, http.StatusUnauthorized, r.Status, "%s: %s", name, r.Body)
		p := r.JSON(t)
		require.Equal(t, "invalid_signature", p["code"], name)
		require.NotEmpty(t, p["delivery_id"], name)
		require.Equal(t, "application/problem+json", r.Header.Get("Content-Type"))
	}
	rejected := c.list("/v1/sources/"+src["id"].(string)+"/deliveries?status=rejected", 2)
	require.Len(t, rejected, 5)
	reasons := ""
	for _, d := range rejected {
		require.Equal(t, "rejected", d["status"])
		require.Nil(t, d["event_id"])
		require.Equal(t, "evt_forged", d["payload"].(map[string]any)["id"], "the payload is kept as received")
		reasons += d["reason"].(string) + "\n"
	}
	require.Contains(t, reasons, "no v1 signature of Stripe-Signature matches the body")
	require.Contains(t, reasons, "no Stripe-Signature header")
	require.Contains(t, reasons, "more than 5m0s from the server's clock")
	require.Empty(t, c.list("/v1/contacts?email=mallory@example.com", 10), "a rejected payload records nothing")

	accepted := c.list("/v1/sources/"+src["id"].(string)+"/deliveries?status=accepted", 100)
	require.Len(t, accepted, 3)
	require.Equal(t, true, accepted[1]["duplicate"], "newest first")
	require.Equal(t, "evt_1PQ2w3E4r5T6y7U8i9O0", accepted[2]["payload"].(map[string]any)["id"])
	require.NotEmpty(t, accepted[2]["received_at"])
	require.Len(t, c.list("/v1/sources/"+src["id"].(string)+"/deliveries", 3), 8)
}

func mustJSON(t *testing.T, v any) []byte {
	t.Helper()
	b, err := json.Marshal(v)
	require.NoError(t, err)
	return b
}

func TestSourceShopifyOrderAndUnmappable(t *testing.T) {
	t.Parallel()
	h := newHarness(t)
	c := h.workspace(store.PlanStarter)
	const secret = "shpss_5d3f8a2b9c1e4f6a7b8c9d0e"
	src := c.expect(http.StatusCreated, "POST", "/v1/sources", map[string]any{
		"name": "Shopify orders", "email_path": "customer.email", "event_name": "order.created",
		"external_id_path": "id", "contact_properties": map[string]any{"last_sku": "line_items.0.sku",
			"last_name": "customer.last_name"},
		"verification": map[string]any{"type": "hmac_sha256", "header": "X-Shopify-Hmac-Sha256", "encoding": "base64", "secret": secret},
	})
	require.Equal(t, "/in/", src["url"].(string)[:4], "without PUBLIC_URL the url is the path")
	path := sourcePath(t, src)
	sign := func(b []byte) map[string]string {
		return map[string]string{"X-Shopify-Hmac-Sha256": base64.StdEncoding.EncodeToString(hmacSHA256(secret, b))}
	}

	order := shopifyOrder(820982911946154508, "grace@example.com")
	got := h.deliver(http.StatusAccepted, path, order, sign(order))
	require.Equal(t, "accepted", got["status"])
	ev := c.expect(http.StatusOK, "GET", "/v1/events/"+got["event_id"].(string), nil)
	require.Equal(t, "order.created", ev["name"])
	require.Equal(t, "59.00", ev["properties"].(map[string]any)["total_price"], "properties default to the whole payload")
	require.Equal(t, "820982911946154508", ev["external_id"])
	contact := c.expect(http.StatusOK, "GET", "/v1/contacts/"+ev["contact_id"].(string), nil)
	require.Equal(t, "Hopper", contact["last_name"])
	require.Equal(t, map[string]any{"last_sku": "IPOD2008GREEN"}, contact["properties"])

	// The hex form of the same signature is not what this source expects.
	r := h.post(path, order, map[string]string{"X-Shopify-Hmac-Sha256": hex.EncodeToString(hmacSHA256(secret, order))})
	require.Equal(t, http.StatusUnauthorized, r.Status, "%s", r.Body)

	// An order without the customer's email: 202, so Shopify stops
	// retrying, and kept as skipped with the reason.
	guest := shopifyOrder(820982911946154509, "")
	got = h.deliver(http.StatusAccepted, path, guest, sign(guest))
	require.Equal(t, "skipped", got["status"])
	require.Equal(t, "no email at customer.email", got["reason"])
	require.Nil(t, got["event_id"])
	bad := shopifyOrder(820982911946154510, "not-an-email")
	got = h.deliver(http.StatusAccepted, path, bad, sign(bad))
	require.Equal(t, "skipped", got["status"])
	require.Contains(t, got["reason"], "the email at customer.email")
	skipped := c.list("/v1/sources/"+src["id"].(string)+"/deliveries?status=skipped", 100)
	require.Len(t, skipped, 2)
	require.Equal(t, "no email at customer.email", skipped[1]["reason"])
	require.Len(t, c.list("/v1/events", 100), 1)

	// Other unmappable payloads: no event name, a name that breaks the
	// rules, properties that are not an object, a body that is not JSON.
	named := c.expect(http.StatusCreated, "POST", "/v1/sources", map[string]any{
		"name": "named", "email_path": "email", "event_name_path": "kind", "properties_path": "data"})
	np := sourcePath(t, named)
	for body, reason := range map[string]string{
		`{"email":"a@example.com","data":{}}`:                "no event name at kind",
		`{"email":"a@example.com","kind":"1bad","data":{}}`:  `the event name at kind, "1bad": name must start with a letter`,
		`{"email":"a@example.com","kind":7,"data":{}}`:       "the event name at kind is not a string",
		`{"email":"a@example.com","kind":"x","data":[1]}`:    "the properties at data: must be a JSON object",
		`{"email":"a@example.com","kind":"x"}`:               "no properties at data",
		`{"email":["a@example.com"],"kind":"x","data":{}}`:   "the email at email is not a string",
		`{"email":"a@example.com","kind":"x","data":{"a":1}`: "the payload is not valid JSON",
		"\xff\xfe": "the payload is not valid JSON",
		`{"email":"a@example.com","kind":"ok.name","data":{"a":1}}`: "",
	} {
		got := h.deliver(http.StatusAccepted, np, []byte(body), nil)
		if reason == "" {
			require.Equal(t, "accepted", got["status"], body)
			continue
		}
		require.Equal(t, "skipped", got["status"], body)
		require.Equal(t, reason, got["reason"], body)
	}
	ds := c.list("/v1/sources/"+named["id"].(string)+"/deliveries", 100)
	require.Len(t, ds, 9)
	var sawString bool
	for _, d := range ds {
		if s, ok := d["payload"].(string); ok {
			sawString = true
			require.Contains(t, []string{`{"email":"a@example.com","kind":"x","data":{"a":1}`, "\ufffd\ufffd"}, s)
		}
	}
	require.True(t, sawString, "a body that is not JSON is kept as a string")
}

func TestSourceHMACHexAndStandardWebhooks(t *testing.T) {
	t.Parallel()
	h := newHarness(t)
	c := h.workspace(store.PlanStarter)

	// hmac_sha256 in hex (the default), a GitHub-style sha256= prefix too;
	// no secret given: one is generated and shown once.
	hexSrc := c.expect(http.StatusCreated, "POST", "/v1/sources", map[string]any{
		"name": "billing", "email_path": "user.email", "event_name_path": "event",
		"verification": map[string]any{"type": "hmac_sha256", "header": "X-Signature"}})
	hv := hexSrc["verification"].(map[string]any)
	secret := hv["secret"].(string)
	require.Len(t, secret, 43)
	require.Equal(t, "hex", hv["encoding"])
	body := []byte(`{"event":"invoice.paid","user":{"email":"bo@example.com"},"amount":12}`)
	sig := hex.EncodeToString(hmacSHA256(secret, body))
	p := sourcePath(t, hexSrc)
	require.Equal(t, "accepted", h.deliver(http.StatusAccepted, p, body, map[string]string{"X-Signature": sig})["status"])
	require.Equal(t, "accepted", h.deliver(http.StatusAccepted, p, body, map[string]string{"X-Signature": "sha256=" + sig})["status"])
	for _, bad := range []string{"", "nothex", hex.EncodeToString(hmacSHA256("other", body))} {
		r := h.post(p, body, map[string]string{"X-Signature": bad})
		require.Equal(t, http.StatusUnauthorized, r.Status, "%q: %s", bad, r.Body)
	}
	// A tampered body fails.
	r := h.post(p, append([]byte(nil), bytes.Replace(body, []byte("12"), []byte("13"), 1)...), map[string]string{"X-Signature": sig})
	require.Equal(t, http.StatusUnauthorized, r.Status)

	// Standard Webhooks, signed by the reference library.
	sw := c.expect(http.StatusCreated, "POST", "/v1/sources", map[string]any{
		"name": "sw", "email_path": "data.email", "event_name_path": "type", "properties_path": "data",
		"verification": map[string]any{"type": "standard_webhooks"}})
	swSecret := sw["verification"].(map[string]any)["secret"].(string)
	require.True(t, strings.HasPrefix(swSecret, "whsec_"), swSecret)
	wh, err := standardwebhooks.NewWebhook(swSecret)
	require.NoError(t, err)
	swBody := []byte(`{"type":"user.created","timestamp":"2026-03-01T12:00:00Z","data":{"email":"cy@example.com","plan":"pro"}}`)
	now := time.Now()
	swSig, err := wh.Sign("msg_2KWPBgLlAfxdpx2AI54pPJ85f4W", now, swBody)
	require.NoError(t, err)
	headers := map[string]string{"webhook-id": "msg_2KWPBgLlAfxdpx2AI54pPJ85f4W",
		"webhook-timestamp": strconv.FormatInt(now.Unix(), 10), "webhook-signature": swSig}
	got := h.deliver(http.StatusAccepted, sourcePath(t, sw), swBody, headers)
	require.Equal(t, "accepted", got["status"])
	ev := c.expect(http.StatusOK, "GET", "/v1/events/"+got["event_id"].(string), nil)
	require.Equal(t, "user.created", ev["name"])
	require.Equal(t, map[string]any{"email": "cy@example.com", "plan": "pro"}, ev["properties"])

	old := now.Add(-10 * time.Minute)
	oldSig, err := wh.Sign("msg_old", old, swBody)
	require.NoError(t, err)
	for name, hd := range map[string]map[string]string{
		"expired": {"webhook-id": "msg_old", "webhook-timestamp": strconv.FormatInt(old.Unix(), 10), "webhook-signature": oldSig},
		"other id": {"webhook-id": "msg_other", "webhook-timestamp": headers["webhook-timestamp"],
			"webhook-signature": swSig},
		"missing": {},
	} {
		r := h.post(sourcePath(t, sw), swBody, hd)
		require.Equal(t, http.StatusUnauthorized, r.Status, "%s: %s", name, r.Body)
	}
	rejected := c.list("/v1/sources/"+sw["id"].(string)+"/deliveries?status=rejected", 100)
	require.Len(t, rejected, 3)
}

func TestSourceRotateDisableDelete(t *testing.T) {
	t.Parallel()
	h := newHarness(t)
	c := h.workspace(store.PlanStarter)
	other := h.workspace(store.PlanStarter)
	src := c.expect(http.StatusCreated, "POST", "/v1/sources", map[string]any{
		"name": "app", "email_path": "email", "event_name": "signed.up"})
	id := src["id"].(string)
	path := sourcePath(t, src)
	body := []byte(`{"email":"dee@example.com"}`)
	require.Equal(t, "accepted", h.deliver(http.StatusAccepted, path, body, nil)["status"])

	// Another workspace cannot see or touch it.
	other.problem(http.StatusNotFound, "not_found", "GET", "/v1/sources/"+id, nil)
	other.problem(http.StatusNotFound, "not_found", "PATCH", "/v1/sources/"+id, map[string]any{"enabled": false})
	other.problem(http.StatusNotFound, "not_found", "GET", "/v1/sources/"+id+"/deliveries", nil)
	require.Empty(t, other.list("/v1/sources", 10))

	rotated := c.expect(http.StatusOK, "POST", "/v1/sources/"+id+"/rotate", nil)
	newPath := sourcePath(t, rotated)
	require.NotEqual(t, path, newPath)
	r := h.post(path, body, nil)
	require.Equal(t, http.StatusNotFound, r.Status, "the old URL is gone at once")
	require.Equal(t, "application/problem+json", r.Header.Get("Content-Type"))
	require.Equal(t, "accepted", h.deliver(http.StatusAccepted, newPath, body, nil)["status"])

	paused := c.expect(http.StatusOK, "PATCH", "/v1/sources/"+id, map[string]any{"enabled": false})
	require.Equal(t, false, paused["enabled"])
	require.Equal(t, http.StatusNotFound, h.post(newPath, body, nil).Status, "a disabled source answers 404")
	c.expect(http.StatusOK, "PATCH", "/v1/sources/"+id, map[string]any{"enabled": true})
	require.Equal(t, "accepted", h.deliver(http.StatusAccepted, newPath, body, nil)["status"])

	// A made-up token, and one of the right shape: 404.
	require.Equal(t, http.StatusNotFound, h.post("/in/nope", body, nil).Status)
	require.Equal(t, http.StatusNotFound, h.post("/in/"+strings.Repeat("A", 43), body, nil).Status)

	c.expect(http.StatusNoContent, "DELETE", "/v1/sources/"+id, nil)
	require.Equal(t, http.StatusNotFound, h.post(newPath, body, nil).Status)
	c.problem(http.StatusNotFound, "not_found", "GET", "/v1/sources/"+id, nil)
	c.problem(http.StatusNotFound, "not_found", "DELETE", "/v1/sources/"+id, nil)
	c.problem(http.StatusNotFound, "not_found", "GET", "/v1/sources/"+id+"/deliveries", nil)
	require.Len(t, c.list("/v1/events", 10), 3, "the events a deleted source recorded stay")
}

func TestSourceBodyLimitsAndMediaType(t *testing.T) {
	t.Parallel()
	h := newHarness(t)
	c := h.workspace(store.PlanStarter)
	src := c.expect(http.StatusCreated, "POST", "/v1/sources", map[string]any{
		"name": "big", "email_path": "email", "event_name": "big.thing", "properties_path": "p"})
	path := sourcePath(t, src)

	pad := strings.Repeat("x", 256<<10)
	r := h.post(path, []byte(`{"email":"e@example.com","pad":"`+pad+`"}`), nil)
	require.Equal(t, http.StatusRequestEntityTooLarge, r.Status, "%.200s", r.Body)
	require.Equal(t, "body_too_large", r.JSON(t)["code"])
	// Just under the cap is taken (properties_path keeps the event small).
	under := `{"email":"e@example.com","p":{"a":1},"pad":"` + strings.Repeat("x", 256<<10-60) + `"}`
	require.LessOrEqual(t, len(under), 256<<10)
	require.Equal(t, "accepted", h.deliver(http.StatusAccepted, path, []byte(under), nil)["status"])

	for _, ct := range []string{"text/plain", "application/x-www-form-urlencoded", "", "application/xml"} {
		r := h.post(path, []byte(`{"email":"e@example.com","p":{}}`), map[string]string{"Content-Type": ct})
		require.Equal(t, http.StatusUnsupportedMediaType, r.Status, "%q: %s", ct, r.Body)
		require.Equal(t, "unsupported_media_type", r.JSON(t)["code"])
	}
	for _, ct := range []string{"application/json; charset=utf-8", "application/cloudevents+json"} {
		got := h.deliver(http.StatusAccepted, path, []byte(`{"email":"e@example.com","p":{}}`), map[string]string{"Content-Type": ct})
		require.Equal(t, "accepted", got["status"], ct)
	}
	// Whole payloads over the properties cap are skipped with the reason.
	whole := c.expect(http.StatusCreated, "POST", "/v1/sources", map[string]any{
		"name": "whole", "email_path": "email", "event_name": "big.thing"})
	got := h.deliver(http.StatusAccepted, sourcePath(t, whole), []byte(`{"email":"e@example.com","pad":"`+strings.Repeat("y", 40<<10)+`"}`), nil)
	require.Equal(t, "skipped", got["status"])
	require.Contains(t, got["reason"], "the payload: must be at most 32768 bytes of JSON")
	require.Len(t, c.list("/v1/sources/"+src["id"].(string)+"/deliveries", 100), 3, "413 and 415 keep nothing")
}

func TestSourceReplayAfterFixingTheMapping(t *testing.T) {
	t.Parallel()
	h := newHarness(t)
	c := h.workspace(store.PlanStarter)
	src := c.expect(http.StatusCreated, "POST", "/v1/sources", map[string]any{
		"name": "crm", "email_path": "contact.mail", "event_name_path": "type", "external_id_path": "id"})
	id := src["id"].(string)
	path := sourcePath(t, src)
	for i := range 3 {
		body := fmt.Sprintf(`{"id":"crm-%d","type":"deal.won","contact":{"email":"deal%d@example.com"},"amount":%d}`, i, i, 100*i)
		got := h.deliver(http.StatusAccepted, path, []byte(body), nil)
		require.Equal(t, "skipped", got["status"])
		require.Equal(t, "no email at contact.mail", got["reason"])
	}
	skipped := c.list("/v1/sources/"+id+"/deliveries?status=skipped", 1)
	require.Len(t, skipped, 3, "keyset pages of one")
	require.Equal(t, "crm-2", skipped[0]["payload"].(map[string]any)["id"], "newest first")

	fixed := c.expect(http.StatusOK, "PATCH", "/v1/sources/"+id, map[string]any{"email_path": "contact.email"})
	require.Equal(t, "contact.email", fixed["email_path"])
	require.Equal(t, "type", fixed["event_name_path"], "a patch leaves the rest as it was")

	first := skipped[2]
	replayed := c.expect(http.StatusOK, "POST", "/v1/sources/"+id+"/deliveries/"+first["id"].(string)+"/replay", nil)
	require.Equal(t, "accepted", replayed["status"])
	require.Equal(t, first["id"], replayed["replay_of"])
	require.NotEqual(t, first["id"], replayed["id"])
	require.Equal(t, first["payload"], replayed["payload"])
	ev := c.expect(http.StatusOK, "GET", "/v1/events/"+replayed["event_id"].(string), nil)
	require.Equal(t, "deal.won", ev["name"])
	require.Equal(t, "crm-0", ev["external_id"])

	// Replaying it again is a duplicate through external_id.
	again := c.expect(http.StatusOK, "POST", "/v1/sources/"+id+"/deliveries/"+first["id"].(string)+"/replay", nil)
	require.Equal(t, true, again["duplicate"])
	require.Equal(t, replayed["event_id"], again["event_id"])

	// The original stays as it was; the listing shows all five.
	all := c.list("/v1/sources/"+id+"/deliveries", 2)
	require.Len(t, all, 5)
	require.Len(t, c.list("/v1/sources/"+id+"/deliveries?status=accepted", 100), 2)

	c.problem(http.StatusNotFound, "not_found", "POST", "/v1/sources/"+id+"/deliveries/"+store.NewID().String()+"/replay", nil)
	c.problem(http.StatusNotFound, "not_found", "POST", "/v1/sources/"+id+"/deliveries/nope/replay", nil)
	require.Equal(t, []string{"status"}, c.problem(http.StatusUnprocessableEntity, "validation_failed", "GET",
		"/v1/sources/"+id+"/deliveries?status=lost", nil))
	require.Equal(t, []string{"cursor"}, c.problem(http.StatusUnprocessableEntity, "validation_failed", "GET",
		"/v1/sources/"+id+"/deliveries?cursor=zzz", nil))
}

func TestSourceUnknownContactIsSkipped(t *testing.T) {
	t.Parallel()
	h := newHarness(t)
	c := h.workspace(store.PlanStarter)
	src := c.expect(http.StatusCreated, "POST", "/v1/sources", map[string]any{
		"name": "known only", "email_path": "email", "event_name": "ping", "create_if_missing": false})
	require.Equal(t, false, src["create_if_missing"])
	got := h.deliver(http.StatusAccepted, sourcePath(t, src), []byte(`{"email":"stranger@example.com"}`), nil)
	require.Equal(t, "skipped", got["status"])
	require.Contains(t, got["reason"], "contact_not_found")
	c.event(map[string]any{"name": "x", "email": "known@example.com", "create_if_missing": true})
	got = h.deliver(http.StatusAccepted, sourcePath(t, src), []byte(`{"email":"known@example.com"}`), nil)
	require.Equal(t, "accepted", got["status"])
}

func TestSourceRefusesBadDefinitions(t *testing.T) {
	t.Parallel()
	h := newHarness(t)
	c := h.workspace(store.PlanStarter)
	for _, tc := range []struct {
		body   any
		fields []string
	}{
		{map[string]any{}, []string{"name", "email_path", "event_name"}},
		{map[string]any{"name": "a", "email_path": "data..email", "event_name": "x"}, []string{"email_path"}},
		{map[string]any{"name": "a", "email_path": "data.*", "event_name": "x"}, []string{"email_path"}},
		{map[string]any{"name": "a", "email_path": "e", "event_name": "x", "event_name_path": "t"}, []string{"event_name"}},
		{map[string]any{"name": "a", "email_path": "e", "event_name": "1x"}, []string{"event_name"}},
		{map[string]any{"name": "a", "email_path": "e", "event_name": "x", "contact_properties": map[string]any{"plan": "a|b"}},
			[]string{"contact_properties.plan"}},
		{map[string]any{"name": "a", "email_path": "e", "event_name": "x", "contact_properties": []any{}}, []string{"contact_properties"}},
		{map[string]any{"name": "a", "email_path": "e", "event_name": "x", "verification": map[string]any{"type": "stripe"}},
			[]string{"verification.secret"}},
		{map[string]any{"name": "a", "email_path": "e", "event_name": "x", "verification": map[string]any{"type": "md5"}},
			[]string{"verification.type"}},
		{map[string]any{"name": "a", "email_path": "e", "event_name": "x", "verification": map[string]any{"type": "hmac_sha256"}},
			[]string{"verification.header"}},
		{map[string]any{"name": "a", "email_path": "e", "event_name": "x",
			"verification": map[string]any{"type": "hmac_sha256", "header": "X-Sig", "encoding": "base32"}}, []string{"verification.encoding"}},
		{map[string]any{"name": "a", "email_path": "e", "event_name": "x",
			"verification": map[string]any{"type": "standard_webhooks", "secret": "whsec_!!"}}, []string{"verification.secret"}},
		{map[string]any{"name": "a", "email_path": "e", "event_name": "x", "create_if_missing": "yes", "colour": 1},
			[]string{"colour", "create_if_missing"}},
	} {
		fields := c.problem(http.StatusUnprocessableEntity, "validation_failed", "POST", "/v1/sources", tc.body)
		require.ElementsMatch(t, tc.fields, fields, "%v", tc.body)
	}
	c.problem(http.StatusBadRequest, "malformed_json", "POST", "/v1/sources", "{")
	src := c.expect(http.StatusCreated, "POST", "/v1/sources", map[string]any{"name": "a", "email_path": "e", "event_name": "x"})
	require.Equal(t, []string{"email_path"}, c.problem(http.StatusUnprocessableEntity, "validation_failed", "PATCH",
		"/v1/sources/"+src["id"].(string), map[string]any{"email_path": nil}))
	// Switching to a path clears the fixed name.
	got := c.expect(http.StatusOK, "PATCH", "/v1/sources/"+src["id"].(string), map[string]any{"event_name_path": "type"})
	require.Nil(t, got["event_name"])
	require.Equal(t, "type", got["event_name_path"])
	// A new verification type that needs a secret gets one, shown once.
	got = c.expect(http.StatusOK, "PATCH", "/v1/sources/"+src["id"].(string),
		map[string]any{"verification": map[string]any{"type": "standard_webhooks"}})
	require.True(t, strings.HasPrefix(got["verification"].(map[string]any)["secret"].(string), "whsec_"))
	got = c.expect(http.StatusOK, "PATCH", "/v1/sources/"+src["id"].(string), map[string]any{"name": "renamed"})
	require.NotContains(t, got["verification"], "secret")
	require.Equal(t, "standard_webhooks", got["verification"].(map[string]any)["type"])
	c.problem(http.StatusNotFound, "not_found", "GET", "/v1/sources/not-a-uuid", nil)
	(&client{h: h}).problem(http.StatusUnauthorized, "unauthorized", "GET", "/v1/sources", nil)
}

// TestSourceCatalogRefusalsAreSkipped: an event the catalog refuses (a
// schema violation in enforce mode, an undeclared name in a workspace that
// refuses them) is a payload the source cannot map: 202, kept skipped with
// the refusal as its reason, and replayable once the contract is fixed.
func TestSourceCatalogRefusalsAreSkipped(t *testing.T) {
	t.Parallel()
	h := newHarness(t)
	c := h.workspace(store.PlanStarter)
	c.expect(http.StatusCreated, "POST", "/v1/event-types", map[string]any{
		"name": "invoice.paid", "description": "A paid invoice", "schema_mode": "enforce",
		"schema": map[string]any{"type": "object", "required": []any{"amount_paid"},
			"properties": map[string]any{"amount_paid": map[string]any{"type": "integer"}}}})
	src := c.expect(http.StatusCreated, "POST", "/v1/sources", map[string]any{
		"name": "Stripe", "email_path": "data.object.customer_email", "event_name_path": "type",
		"properties_path": "data.object", "external_id_path": "id"})
	path := sourcePath(t, src)
	payload := func(id, typ, amount string) []byte {
		return []byte(fmt.Sprintf(`{"id":%q,"object":"event","type":%q,"data":{"object":{"id":"in_1","object":"invoice",
			"customer_email":"ivy@example.com","amount_paid":%s,"currency":"usd"}}}`, id, typ, amount))
	}

	got := h.deliver(http.StatusAccepted, path, payload("evt_1", "invoice.paid", `"2000"`), nil)
	require.Equal(t, "skipped", got["status"])
	require.Contains(t, got["reason"], "schema_violation")
	require.Contains(t, got["reason"], "/properties/amount_paid (type)")
	require.Nil(t, got["event_id"])
	kept := c.list("/v1/sources/"+src["id"].(string)+"/deliveries?status=skipped", 10)
	require.Len(t, kept, 1, "the refused payload is kept")
	require.Equal(t, got["reason"], kept[0]["reason"])
	require.Empty(t, c.list("/v1/events", 10))

	require.Equal(t, "accepted", h.deliver(http.StatusAccepted, path, payload("evt_2", "invoice.paid", "2000"), nil)["status"])

	// An undeclared name in a workspace that refuses them.
	c.expect(http.StatusOK, "PATCH", "/v1/workspace", map[string]any{"undeclared_events": "reject"})
	got = h.deliver(http.StatusAccepted, path, payload("evt_3", "invoice.voided", "0"), nil)
	require.Equal(t, "skipped", got["status"])
	require.Contains(t, got["reason"], "undeclared_event")

	// Declared, the same payload replays into an event.
	c.expect(http.StatusCreated, "POST", "/v1/event-types", map[string]any{"name": "invoice.voided"})
	replayed := c.expect(http.StatusOK, "POST", "/v1/sources/"+src["id"].(string)+"/deliveries/"+got["delivery_id"].(string)+"/replay", nil)
	require.Equal(t, "accepted", replayed["status"])
}

func TestSourceListPages(t *testing.T) {
	t.Parallel()
	h := newHarness(t)
	c := h.workspace(store.PlanStarter)
	var ids []any
	for i := range 3 {
		src := c.expect(http.StatusCreated, "POST", "/v1/sources", map[string]any{
			"name": fmt.Sprintf("s%d", i), "email_path": "email", "event_name": "x",
			"verification": map[string]any{"type": "hmac_sha256", "header": "X-Sig", "secret": "k"}})
		ids = append([]any{src["id"]}, ids...)
	}
	all := c.list("/v1/sources", 1)
	require.Len(t, all, 3)
	for i, s := range all {
		require.Equal(t, ids[i], s["id"], "newest first")
		require.NotContains(t, s["verification"], "secret")
		require.Equal(t, "…", s["verification"].(map[string]any)["secret_hint"], "a short secret shows nothing of itself")
	}
	require.Equal(t, []string{"limit"}, c.problem(http.StatusUnprocessableEntity, "validation_failed", "GET", "/v1/sources?limit=0", nil))
}

// TestSourceAtQuotaCap: past the hard cap a delivery is answered 429 with
// Retry-After, so the provider retries later, and nothing is kept; a
// payload that makes no event is still kept (it counts nothing).
func TestSourceAtQuotaCap(t *testing.T) {
	t.Parallel()
	h := newHarness(t, withQuotaPause(time.Millisecond))
	c := h.workspace(store.PlanStarter)
	c.event(map[string]any{"name": "created", "email": "a@example.com", "create_if_missing": true})
	src := c.expect(http.StatusCreated, "POST", "/v1/sources", map[string]any{"name": "s", "email_path": "email", "event_name": "x"})
	_, err := h.store.Pool().Exec(context.Background(), `UPDATE usage_counters SET tracked = 62500 WHERE workspace_id = $1`, c.ws.ID)
	require.NoError(t, err)
	path := sourcePath(t, src)
	for range 3 {
		r := h.post(path, []byte(`{"email":"a@example.com"}`), nil)
		require.Equal(t, http.StatusTooManyRequests, r.Status, "%s", r.Body)
		require.Equal(t, "quota_exceeded", r.JSON(t)["code"])
		require.NotEmpty(t, r.Header.Get("Retry-After"))
	}
	got := h.deliver(http.StatusAccepted, path, []byte(`{"mail":"a@example.com"}`), nil)
	require.Equal(t, "skipped", got["status"])
	ds := c.list("/v1/sources/"+src["id"].(string)+"/deliveries", 10)
	require.Len(t, ds, 1, "refused deliveries are not kept")
	require.Equal(t, "skipped", ds[0]["status"])
}

func TestSourceDeliveriesAreCounted(t *testing.T) {
	t.Parallel()
	h := newHarness(t)
	c := h.workspace(store.PlanStarter)
	src := c.expect(http.StatusCreated, "POST", "/v1/sources", map[string]any{"name": "s", "email_path": "email", "event_name": "x",
		"external_id_path": "id"})
	path := sourcePath(t, src)
	h.deliver(http.StatusAccepted, path, []byte(`{"id":"1","email":"m@example.com"}`), nil)
	h.deliver(http.StatusAccepted, path, []byte(`{"id":"1","email":"m@example.com"}`), nil)
	h.deliver(http.StatusAccepted, path, []byte(`{"id":"2"}`), nil)
	r := (&client{h: h}).do("GET", "/metrics", nil)
	require.Equal(t, http.StatusOK, r.Status)
	for _, status := range []string{"accepted", "duplicate", "skipped"} {
		require.Regexp(t, `signalbox_source_deliveries_total\{[^}]*status="`+status+`"[^}]*\} [1-9]`, string(r.Body))
	}
}
