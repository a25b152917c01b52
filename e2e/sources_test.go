package e2e

import (
	"bytes"
	"crypto/hmac"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/stretchr/testify/require"
)

// stripeEvent is a Stripe event envelope written by hand in the documented
// shape, with the customer's email at data.object.customer_email.
func stripeEvent(id, typ, object, email string) []byte {
	return []byte(fmt.Sprintf(`{"id":%q,"object":"event","api_version":"2024-06-20","created":1717000000,
		"data":{"object":{"id":"%s_1PQ2w3E4","object":%q,"customer":"cus_Q2w3E4r5T6y7","customer_email":%q,
		"status":"active","amount_paid":2000,"currency":"usd"}},
		"livemode":false,"pending_webhooks":1,"request":{"id":"req_Q2w3E4r5","idempotency_key":null},"type":%q}`,
		id, object[:3], object, email, typ))
}

// deliver posts a payload to a source's URL as Stripe does: no API key, a
// Stripe-Signature over the body.
func (s *system) deliver(path, secret string, body []byte) map[string]any {
	s.t.Helper()
	ts := strconv.FormatInt(time.Now().Unix(), 10)
	m := hmac.New(sha256.New, []byte(secret))
	m.Write([]byte(ts + "."))
	m.Write(body)
	req, err := http.NewRequest("POST", s.url+path, bytes.NewReader(body))
	require.NoError(s.t, err)
	req.Header.Set("Content-Type", "application/json; charset=utf-8")
	req.Header.Set("Stripe-Signature", "t="+ts+",v1="+hex.EncodeToString(m.Sum(nil)))
	resp, err := http.DefaultClient.Do(req)
	require.NoError(s.t, err)
	defer resp.Body.Close()
	raw, err := io.ReadAll(resp.Body)
	require.NoError(s.t, err)
	require.Equal(s.t, http.StatusAccepted, resp.StatusCode, "%s", raw)
	var out map[string]any
	require.NoError(s.t, json.Unmarshal(raw, &out))
	return out
}

// TestSourceDeliveryEnrollsContact: a Stripe webhook delivered to a source
// triggers an automation and enrolls its contact, created on the way; a
// second delivery resumes the enrollment's wait, and Stripe's redelivery
// of the first is a duplicate that enrolls nobody again.
func TestSourceDeliveryEnrollsContact(t *testing.T) {
	t.Parallel()
	s := newSystem(t, systemOptions{})
	tn := s.tenant()
	h := newHook(t)
	tn.automation(fmt.Sprintf(`{"name":"welcome subscribers",
		"trigger":{"event":"customer.subscription.created","condition":"event.properties.status == 'active'"},
		"steps":[
		  {"id":"welcome","type":"webhook","url":%q,"body":{"email":"contact.email","subscription":"trigger.properties.id"}},
		  {"id":"paid","type":"wait_for_event","event":"invoice.paid","timeout":"30s",
		   "yes":[{"id":"thanks","type":"webhook","url":%q,"body":{"amount":"event.properties.amount_paid"}}],
		   "no":[]}]}`, h.url("/welcome"), h.url("/thanks")))

	const secret = "whsec_e2e_4f8a1c3b5d7e9f0a2b4c6d8e"
	src := tn.call(http.StatusCreated, "POST", "/v1/sources", map[string]any{
		"name": "Stripe", "email_path": "data.object.customer_email", "event_name_path": "type",
		"properties_path": "data.object", "external_id_path": "id",
		"verification": map[string]any{"type": "stripe", "secret": secret}})
	path := src["url"].(string)
	require.True(t, strings.HasPrefix(path, "/in/"), path)

	created := stripeEvent("evt_sub_1", "customer.subscription.created", "subscription", "Lin@Example.com")
	got := s.deliver(path, secret, created)
	require.Equal(t, "accepted", got["status"])

	list := tn.enrollments("")
	require.Len(t, list, 1)
	id := list[0]["id"].(string)
	contact := tn.call(http.StatusOK, "GET", "/v1/contacts/"+list[0]["contact_id"].(string), nil)
	require.Equal(t, "lin@example.com", contact["email"])
	tn.waitStep(id, "welcome", "done", 30*time.Second)

	// Stripe retries the first event: a duplicate, nobody enrolled again.
	again := s.deliver(path, secret, created)
	require.Equal(t, true, again["duplicate"])
	require.Len(t, tn.enrollments(""), 1)

	paid := stripeEvent("evt_inv_1", "invoice.paid", "invoice", "lin@example.com")
	require.Equal(t, "accepted", s.deliver(path, secret, paid)["status"])
	done := tn.waitEnrollment(id, 30*time.Second)
	require.Equal(t, "completed", done["status"])
	require.Equal(t, []string{"welcome:done", "paid:waiting", "paid:yes", "thanks:done"}, outcomes(done))
	require.EqualValues(t, 2, h.hits.Load())
	require.Equal(t, `{"email":"lin@example.com","subscription":"sub_1PQ2w3E4"}`, jsonText(h.bodies[0]))
	require.Equal(t, `{"amount":2000}`, jsonText(h.bodies[1]))
}
