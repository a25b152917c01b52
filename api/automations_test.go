package api_test

import (
	"encoding/json"
	"net/http"
	"testing"

	"github.com/stretchr/testify/require"

	"github.com/signalbox/signalbox/store"
)

const followUp = `{
  "name": "Post-purchase follow-up",
  "trigger": {"event": "purchase.completed", "condition": "event.properties.amount >= 50.0", "frequency": "every"},
  "exit_on": ["subscription.cancelled"],
  "steps": [
    {"id": "thanks", "type": "webhook", "url": "https://hooks.example.com/thanks",
     "body": {"email": "contact.email", "order": "trigger.properties.orderId"}},
    {"id": "pause", "type": "delay", "duration": "24h"},
    {"id": "review", "type": "wait_for_event", "event": "review.submitted", "timeout": "72h",
     "condition": "event.properties.orderId == trigger.properties.orderId",
     "yes": [{"id": "tag", "type": "update_contact", "properties": {"reviewer": "true"}}],
     "no":  [{"id": "nudge", "type": "send_email", "to": "contact.email",
              "subject": "'How was your order?'", "text": "'Tell us what you think.'"}]},
    {"id": "vip", "type": "branch", "condition": "contact.properties.plan == 'pro'",
     "yes": [{"id": "done", "type": "emit_event", "name": "followup.done",
              "properties": {"order": "trigger.properties.orderId"}}],
     "no": []}
  ]
}`

func TestAutomationLifecycle(t *testing.T) {
	t.Parallel()
	c := newHarness(t).workspace(store.PlanStarter)

	created := c.expect(http.StatusCreated, "POST", "/v1/automations", followUp)
	id := created["id"].(string)
	require.EqualValues(t, 1, created["version"])
	require.Equal(t, "disabled", created["status"])
	require.Equal(t, "purchase.completed", created["trigger_event"])

	require.Equal(t, "enabled", c.expect(http.StatusOK, "POST", "/v1/automations/"+id+"/enable", nil)["status"])
	// A new version keeps the id and the enabled state.
	var doc map[string]any
	require.NoError(t, json.Unmarshal([]byte(followUp), &doc))
	doc["exit_on"] = []string{"subscription.cancelled", "account.closed"}
	v2 := c.expect(http.StatusOK, "PUT", "/v1/automations/"+id, doc)
	require.EqualValues(t, 2, v2["version"])
	require.Equal(t, "enabled", v2["status"])
	require.Equal(t, []any{"subscription.cancelled", "account.closed"}, v2["definition"].(map[string]any)["exit_on"])
	require.Equal(t, "disabled", c.expect(http.StatusOK, "POST", "/v1/automations/"+id+"/disable", nil)["status"])

	got := c.expect(http.StatusOK, "GET", "/v1/automations/"+id, nil)
	require.EqualValues(t, 2, got["version"])
	require.Len(t, c.list("/v1/automations", 1), 1)

	// Names are unique per workspace.
	c.problem(http.StatusConflict, "conflict", "POST", "/v1/automations", followUp)
	valid := c.expect(http.StatusOK, "POST", "/v1/automations/validate", followUp)
	require.Equal(t, true, valid["valid"])
	require.Empty(t, c.list("/v1/enrollments", 100))
}

func TestAutomationValidationPointsIntoTheDocument(t *testing.T) {
	t.Parallel()
	c := newHarness(t).workspace(store.PlanStarter)
	for _, tc := range []struct {
		name, body string
		pointers   []string
	}{
		{"bad CEL in a nested step", `{"name":"a","trigger":{"event":"x"},"steps":[
			{"id":"w","type":"wait_for_event","event":"y","timeout":"1h",
			 "yes":[{"id":"b","type":"branch","condition":"contact.properties.plan ==","yes":[]}]}]}`,
			[]string{"/steps/0/yes/0/condition"}},
		{"value that is a bare word", `{"name":"a","trigger":{"event":"x"},"steps":[
			{"id":"e","type":"send_email","to":"contact.email","subject":"hello","text":"'t'"}]}`,
			[]string{"/steps/0/subject"}},
		{"non-bool condition", `{"name":"a","trigger":{"event":"x","condition":"1 + 2"},"steps":[{"id":"d","type":"delay","duration":"1h"}]}`,
			[]string{"/trigger/condition"}},
		{"duration and type", `{"name":"a","trigger":{"event":"x"},"steps":[
			{"id":"d","type":"delay","duration":"400d"},{"id":"z","type":"teleport"}]}`,
			[]string{"/steps/0/duration", "/steps/1/type"}},
		{"duplicate step ids", `{"name":"a","trigger":{"event":"x"},"steps":[
			{"id":"d","type":"delay","duration":"1h"},{"id":"d","type":"delay","duration":"2h"}]}`,
			[]string{"/steps/1/id"}},
		{"unknown field", `{"name":"a","trigger":{"event":"x"},"steps":[{"id":"d","type":"delay","durration":"1h"}]}`,
			[]string{"/steps/0/duration", "/steps/0/durration"}},
		{"bad frequency and event name", `{"name":"a","trigger":{"event":"1x","frequency":"daily"},"steps":[]}`,
			[]string{"/trigger/event", "/trigger/frequency"}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			cc := &client{h: &harness{t: t, url: c.h.url, store: c.h.store}, key: c.key, ws: c.ws}
			for _, path := range []string{"/v1/automations", "/v1/automations/validate"} {
				r := cc.do("POST", path, tc.body)
				require.Equal(t, http.StatusUnprocessableEntity, r.Status, "%s", r.Body)
				var p struct {
					Errors []struct{ Field, Pointer, Detail string } `json:"errors"`
				}
				require.NoError(t, json.Unmarshal(r.Body, &p))
				var pointers []string
				for _, e := range p.Errors {
					require.Equal(t, e.Field, e.Pointer)
					require.NotEmpty(t, e.Detail)
					pointers = append(pointers, e.Pointer)
				}
				require.Subset(t, pointers, tc.pointers, "%s", r.Body)
			}
		})
	}
	c.problem(http.StatusBadRequest, "malformed_json", "POST", "/v1/automations", `{"name":`)
	require.Empty(t, c.list("/v1/automations", 100))
}

func TestAutomationsAreScopedByWorkspace(t *testing.T) {
	t.Parallel()
	h := newHarness(t)
	a, b := h.workspace(store.PlanStarter), h.workspace(store.PlanStarter)
	id := a.expect(http.StatusCreated, "POST", "/v1/automations", followUp)["id"].(string)
	for _, r := range []struct{ method, path, body string }{
		{"GET", "/v1/automations/" + id, ""},
		{"PUT", "/v1/automations/" + id, followUp},
		{"POST", "/v1/automations/" + id + "/enable", ""},
		{"POST", "/v1/automations/" + id + "/disable", ""},
		{"GET", "/v1/enrollments/01900000-0000-7000-8000-000000000000", ""},
	} {
		var body any
		if r.body != "" {
			body = r.body
		}
		b.problem(http.StatusNotFound, "not_found", r.method, r.path, body)
	}
	require.Empty(t, b.list("/v1/automations", 100))
	require.Empty(t, b.list("/v1/enrollments?automation_id="+id, 100))
	// B may use the same name: names are unique per workspace only.
	b.expect(http.StatusCreated, "POST", "/v1/automations", followUp)
	require.Equal(t, "disabled", a.expect(http.StatusOK, "GET", "/v1/automations/"+id, nil)["status"])
	require.Equal(t, []string{"status"}, b.problem(http.StatusUnprocessableEntity, "validation_failed", "GET", "/v1/enrollments?status=paused", nil))
}
