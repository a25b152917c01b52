package e2e

import (
	"fmt"
	"net/http"
	"testing"
	"time"

	"github.com/stretchr/testify/require"
)

// TestInSegmentInStepConditions runs automations whose branch and wait
// conditions call in_segment: each reads the segment when the step runs,
// so a purchase made during a delay, or between a trigger and the awaited
// event, counts. A trigger condition that calls it is refused.
func TestInSegmentInStepConditions(t *testing.T) {
	t.Parallel()
	s := newSystem(t, systemOptions{})
	tn := s.tenant()
	seg := tn.call(http.StatusCreated, "POST", "/v1/segments", map[string]any{"name": "Big spenders",
		"match": map[string]any{"all": []any{map[string]any{"goal": map[string]any{"type": "purchase", "aggregate": "sum",
			"op": ">=", "value": 100, "within": "30d"}}}}})
	id := seg["id"].(string)

	// A trigger condition cannot read a segment: the message says where it can.
	bad := tn.call(http.StatusUnprocessableEntity, "POST", "/v1/automations", map[string]any{"name": "t",
		"trigger": map[string]any{"event": "checkout.started", "condition": fmt.Sprintf("in_segment(%q)", id)},
		"steps":   []any{map[string]any{"id": "s", "type": "update_contact", "properties": map[string]any{"x": "1"}}}})
	errs := bad["errors"].([]any)
	require.Len(t, errs, 1)
	require.Equal(t, "/trigger/condition", errs[0].(map[string]any)["pointer"])
	require.Contains(t, errs[0].(map[string]any)["detail"], "step condition (branch or wait_for_event)")
	// An unknown segment is refused where it is named.
	bad = tn.call(http.StatusUnprocessableEntity, "POST", "/v1/automations", map[string]any{"name": "t",
		"trigger": map[string]any{"event": "checkout.started"},
		"steps": []any{map[string]any{"id": "b", "type": "branch", "condition": `in_segment("019c0000-0000-7000-8000-000000000000")`,
			"yes": []any{}, "no": []any{}}}})
	require.Equal(t, "/steps/0/condition", bad["errors"].([]any)[0].(map[string]any)["pointer"])

	tn.automation(fmt.Sprintf(`{"name":"vip",
		"trigger":{"event":"checkout.started"},
		"steps":[{"id":"pause","type":"delay","duration":"1s"},
		         {"id":"check","type":"branch","condition":"in_segment('%s') && contact.email != ''",
		          "yes":[{"id":"vip","type":"update_contact","properties":{"vip":"'yes'"}}],
		          "no":[{"id":"regular","type":"update_contact","properties":{"vip":"'no'"}}]}]}`, id))
	buy := func(email string, value float64) {
		tn.event(map[string]any{"name": "order.paid", "email": email, "create_if_missing": true,
			"goal_type": "purchase", "goal_value": value})
	}
	buy("a@example.com", 150)
	buy("b@example.com", 50)
	a := tn.event(map[string]any{"name": "checkout.started", "email": "a@example.com"})
	b := tn.event(map[string]any{"name": "checkout.started", "email": "b@example.com"})
	// c joins the segment while the enrollment waits in its delay.
	c := tn.event(map[string]any{"name": "checkout.started", "email": "c@example.com", "create_if_missing": true})
	buy("c@example.com", 200)
	for contact, want := range map[string]string{a["contact_id"].(string): "yes", b["contact_id"].(string): "no",
		c["contact_id"].(string): "yes"} {
		enr := tn.enrollments("contact_id=" + contact)[0]["id"].(string)
		done := tn.waitEnrollment(enr, 15*time.Second)
		require.Equal(t, "completed", done["status"])
		got := tn.call(http.StatusOK, "GET", "/v1/contacts/"+contact, nil)
		require.Equal(t, want, got["properties"].(map[string]any)["vip"], "contact %s", contact)
	}

	// A wait whose condition reads the segment: the awaited event resumes it
	// only once the contact is in the segment.
	tn.automation(fmt.Sprintf(`{"name":"cart",
		"trigger":{"event":"cart.opened"},
		"steps":[{"id":"wait","type":"wait_for_event","event":"cart.viewed","timeout":"20s",
		          "condition":"in_segment('%s')",
		          "yes":[{"id":"tag","type":"update_contact","properties":{"cart":"'vip'"}}],
		          "no":[]}]}`, id))
	d := tn.event(map[string]any{"name": "cart.opened", "email": "d@example.com", "create_if_missing": true})
	enr := tn.enrollments("contact_id=" + d["contact_id"].(string))[0]["id"].(string)
	tn.waitStep(enr, "wait", "waiting", 10*time.Second)
	require.EqualValues(t, 0, tn.event(map[string]any{"name": "cart.viewed", "email": "d@example.com"})["executions_resumed"])
	buy("d@example.com", 100)
	require.EqualValues(t, 1, tn.event(map[string]any{"name": "cart.viewed", "email": "d@example.com"})["executions_resumed"])
	done := tn.waitEnrollment(enr, 15*time.Second)
	require.Equal(t, []string{"wait:waiting", "wait:yes", "tag:done"}, outcomes(done))
}
