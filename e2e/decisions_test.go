package e2e

import (
	"fmt"
	"net/http"
	"testing"
	"time"

	"github.com/stretchr/testify/require"
)

// decisionsOf reads an event's decisions.
func (tn *tenant) decisionsOf(eventID any) []map[string]any {
	tn.s.t.Helper()
	body := tn.call(http.StatusOK, "GET", fmt.Sprintf("/v1/events/%s/decisions", eventID), nil)
	var out []map[string]any
	for _, d := range body["data"].([]any) {
		out = append(out, d.(map[string]any))
	}
	return out
}

// TestDecisionsExplainEveryEvent asks, for events that did and did not act,
// why: each automation whose trigger, wait or exit names the event has its
// decision, with the values a false condition read and the enrollment a
// "once" automation already has.
func TestDecisionsExplainEveryEvent(t *testing.T) {
	t.Parallel()
	s := newSystem(t, systemOptions{})
	tn := s.tenant()
	big := tn.automation(`{"name":"big","trigger":{"event":"purchase.completed","condition":"event.properties.amount >= 50.0"},
		"steps":[{"id":"review","type":"wait_for_event","event":"review.submitted","timeout":"1h",
		          "condition":"event.properties.stars >= 4"}],"exit_on":["refund.issued"]}`)
	welcome := tn.automation(`{"name":"welcome","trigger":{"event":"signed.up","frequency":"once"},
		"steps":[{"id":"pause","type":"delay","duration":"1h"}]}`)
	off := tn.automation(`{"name":"off","trigger":{"event":"purchase.completed"},"steps":[{"id":"p","type":"delay","duration":"1h"}]}`)
	tn.call(http.StatusOK, "POST", "/v1/automations/"+off+"/disable", nil)

	small := tn.event(map[string]any{"name": "purchase.completed", "email": "a@example.com", "create_if_missing": true,
		"properties": map[string]any{"amount": 20}})
	ds := tn.decisionsOf(small["event_id"])
	require.Len(t, ds, 2)
	byAuto := map[string]map[string]any{}
	for _, d := range ds {
		require.Equal(t, "trigger", d["kind"])
		require.EqualValues(t, 1, d["version"])
		byAuto[d["automation_id"].(string)] = d
	}
	require.Equal(t, "condition_false", byAuto[big]["outcome"])
	require.Equal(t, map[string]any{"expression": "event.properties.amount >= 50.0",
		"values": map[string]any{"event.properties.amount": 20.0}}, byAuto[big]["detail"])
	require.Equal(t, "automation_disabled", byAuto[off]["outcome"])

	enrolled := tn.event(map[string]any{"name": "purchase.completed", "email": "a@example.com",
		"properties": map[string]any{"amount": 80}})
	var enrollment string
	for _, d := range tn.decisionsOf(enrolled["event_id"]) {
		if d["automation_id"] == big {
			require.Equal(t, "enrolled", d["outcome"])
			enrollment = d["enrollment_id"].(string)
		}
	}
	require.NotEmpty(t, enrollment)
	tn.waitStep(enrollment, "review", "waiting", 15*time.Second)

	// The wait: a review that does not meet its condition, then one that does.
	low := tn.event(map[string]any{"name": "review.submitted", "email": "a@example.com", "properties": map[string]any{"stars": 2}})
	d := tn.decisionsOf(low["event_id"])
	require.Len(t, d, 1)
	require.Equal(t, "wait", d[0]["kind"])
	require.Equal(t, "wait_condition_false", d[0]["outcome"])
	require.Equal(t, enrollment, d[0]["enrollment_id"])
	high := tn.event(map[string]any{"name": "review.submitted", "email": "a@example.com", "properties": map[string]any{"stars": 5}})
	d = tn.decisionsOf(high["event_id"])
	require.Len(t, d, 1)
	require.Equal(t, "resumed", d[0]["outcome"])

	// "once": the second signup finds the first enrollment.
	first := tn.event(map[string]any{"name": "signed.up", "email": "b@example.com", "create_if_missing": true})
	second := tn.event(map[string]any{"name": "signed.up", "email": "b@example.com"})
	d = tn.decisionsOf(first["event_id"])
	require.Equal(t, "enrolled", d[0]["outcome"])
	d2 := tn.decisionsOf(second["event_id"])
	require.Len(t, d2, 1)
	require.Equal(t, welcome, d2[0]["automation_id"])
	require.Equal(t, "once_already", d2[0]["outcome"])
	require.Equal(t, d[0]["enrollment_id"], d2[0]["enrollment_id"])

	// An exit; and an event no automation names answers an empty list.
	tn.event(map[string]any{"name": "purchase.completed", "email": "c@example.com", "create_if_missing": true,
		"properties": map[string]any{"amount": 99}})
	refund := tn.event(map[string]any{"name": "refund.issued", "email": "c@example.com"})
	d = tn.decisionsOf(refund["event_id"])
	require.Len(t, d, 1)
	require.Equal(t, "exit", d[0]["kind"])
	require.Equal(t, "exited", d[0]["outcome"])
	none := tn.event(map[string]any{"name": "page.viewed", "email": "c@example.com"})
	require.Empty(t, tn.decisionsOf(none["event_id"]))

	// Per automation, filtered and paged.
	page := tn.call(http.StatusOK, "GET", "/v1/automations/"+big+"/decisions?outcome=condition_false", nil)
	require.Len(t, page["data"].([]any), 1)
	all := tn.call(http.StatusOK, "GET", "/v1/automations/"+big+"/decisions?limit=2", nil)
	require.Len(t, all["data"].([]any), 2)
	next := all["next_cursor"].(string)
	rest := tn.call(http.StatusOK, "GET", "/v1/automations/"+big+"/decisions?limit=100&cursor="+next, nil)
	require.Len(t, rest["data"].([]any), 4, "6 in all: 3 triggers, 2 wait decisions and 1 exit")

	// Bad input.
	tn.call(http.StatusUnprocessableEntity, "GET", "/v1/automations/"+big+"/decisions?outcome=maybe", nil)
	tn.call(http.StatusNotFound, "GET", "/v1/automations/"+s.tenant().ws.ID.String()+"/decisions", nil)
	tn.call(http.StatusNotFound, "GET", "/v1/events/"+welcome+"/decisions", nil)
}

// TestLiveEnrollmentWhileItsFirstStepRetries reads a running enrollment
// whose first step's webhook keeps failing: it names that step (before any
// line of its log is written) with the attempt, the last error and when the
// next attempt runs, read from Temporal.
func TestLiveEnrollmentWhileItsFirstStepRetries(t *testing.T) {
	t.Parallel()
	s := newSystem(t, systemOptions{})
	h := newHook(t)
	h.status.Store(http.StatusServiceUnavailable)
	tn := s.tenant()
	tn.automation(fmt.Sprintf(`{"name":"hook","trigger":{"event":"x"},
		"steps":[{"id":"notify","type":"webhook","url":%q},{"id":"pause","type":"delay","duration":"1h"}]}`, h.url("/down")))
	r := tn.event(map[string]any{"name": "x", "email": "a@example.com", "create_if_missing": true})
	enr := tn.enrollments("contact_id=" + r["contact_id"].(string))[0]["id"].(string)

	var e map[string]any
	require.Eventually(t, func() bool {
		e = tn.call(http.StatusOK, "GET", "/v1/enrollments/"+enr, nil)
		attempt, _ := e["attempt"].(float64)
		return attempt >= 2
	}, 30*time.Second, 100*time.Millisecond)
	require.Equal(t, "active", e["status"])
	require.Equal(t, "notify", e["current_step"])
	require.Equal(t, "webhook", e["step_type"])
	require.Contains(t, e["last_error"], "503")
	next, err := time.Parse(time.RFC3339Nano, e["next_attempt_at"].(string))
	require.NoError(t, err)
	require.WithinDuration(t, time.Now(), next, time.Minute)
	require.Empty(t, e["steps"], "nothing logged yet")

	// Once the receiver answers, the enrollment moves on.
	h.status.Store(http.StatusOK)
	tn.waitStep(enr, "pause", "waiting", 60*time.Second)
	e = tn.call(http.StatusOK, "GET", "/v1/enrollments/"+enr, nil)
	require.Equal(t, "pause", e["current_step"])
	require.Nil(t, e["attempt"])
}

// TestAutomationStats runs enrollments down each way of a wait (resumed,
// timed out, still waiting) and reads the automation's figures.
func TestAutomationStats(t *testing.T) {
	t.Parallel()
	s := newSystem(t, systemOptions{})
	tn := s.tenant()
	id := tn.automation(`{"name":"stats","trigger":{"event":"signed.up"},
		"steps":[{"id":"check","type":"branch","condition":"event.properties.plan == 'pro'",
		          "yes":[{"id":"onboarded","type":"wait_for_event","event":"onboarding.done","timeout":"2s",
		                  "yes":[{"id":"tag","type":"update_contact","properties":{"onboarded":"true"}}]}]}]}`)
	enroll := func(email, plan string) string {
		r := tn.event(map[string]any{"name": "signed.up", "email": email, "create_if_missing": true,
			"properties": map[string]any{"plan": plan}})
		return tn.enrollments("contact_id=" + r["contact_id"].(string))[0]["id"].(string)
	}
	yes := enroll("yes@example.com", "pro")
	tn.event(map[string]any{"name": "onboarding.done", "email": "yes@example.com"})
	timeout := enroll("timeout@example.com", "pro")
	free := enroll("free@example.com", "free")
	for _, e := range []string{yes, timeout, free} {
		require.Equal(t, "completed", tn.waitEnrollment(e, 30*time.Second)["status"])
	}
	stats := tn.call(http.StatusOK, "GET", "/v1/automations/"+id+"/stats", nil)
	en := stats["enrollments"].(map[string]any)
	require.Equal(t, map[string]any{"all": 3.0, "last_24h": 3.0}, en["completed"])
	require.Equal(t, map[string]any{"all": 0.0, "last_24h": 0.0}, en["active"])
	steps := map[string]map[string]any{}
	for _, st := range stats["steps"].([]any) {
		m := st.(map[string]any)
		steps[m["step_id"].(string)] = m
	}
	all := func(step, figure string) float64 { return steps[step][figure].(map[string]any)["all"].(float64) }
	require.Equal(t, 3.0, all("check", "entered"))
	require.Equal(t, 2.0, all("check", "yes"))
	require.Equal(t, 1.0, all("check", "no"))
	require.Equal(t, 2.0, all("onboarded", "entered"))
	require.Equal(t, 1.0, all("onboarded", "yes"))
	require.Equal(t, 1.0, all("onboarded", "no"))
	require.Equal(t, 1.0, all("onboarded", "timed_out"))
	require.Equal(t, 1.0, all("tag", "completed"))
	require.Zero(t, all("tag", "failed"))
	require.Equal(t, "wait_for_event", steps["onboarded"]["type"])

	// An enrollment at a step now.
	long := tn.automation(`{"name":"long","trigger":{"event":"x"},"steps":[{"id":"w","type":"wait_for_event","event":"y","timeout":"1h"}]}`)
	r := tn.event(map[string]any{"name": "x", "email": "yes@example.com"})
	tn.waitStep(tn.enrollments("contact_id=" + r["contact_id"].(string) + "&automation_id=" + long)[0]["id"].(string),
		"w", "waiting", 15*time.Second)
	stats = tn.call(http.StatusOK, "GET", "/v1/automations/"+long+"/stats", nil)
	require.Equal(t, 1.0, stats["enrollments"].(map[string]any)["active"].(map[string]any)["all"])
	require.Equal(t, 1.0, stats["steps"].([]any)[0].(map[string]any)["now"])
}
