package e2e

import (
	"encoding/json"
	"net/http"
	"testing"
	"time"

	"github.com/stretchr/testify/require"
)

const waitingAutomation = `{"name":"waiting","trigger":{"event":"signed.up"},
	"steps":[{"id":"w","type":"wait_for_event","event":"onboarding.done","timeout":"1h",
	          "yes":[{"id":"tag","type":"update_contact","properties":{"done":"true"}}]}]}`

// enrollWaiting enrolls a contact and waits until it waits.
func (tn *tenant) enrollWaiting(email string) string {
	tn.s.t.Helper()
	r := tn.event(map[string]any{"name": "signed.up", "email": email, "create_if_missing": true})
	id := tn.enrollments("contact_id=" + r["contact_id"].(string))[0]["id"].(string)
	tn.waitStep(id, "w", "waiting", 15*time.Second)
	return id
}

func TestExitOneEnrollment(t *testing.T) {
	t.Parallel()
	s := newSystem(t, systemOptions{})
	tn := s.tenant()
	tn.automation(waitingAutomation)
	id := tn.enrollWaiting("a@example.com")

	tn.call(http.StatusUnprocessableEntity, "POST", "/v1/enrollments/"+id+"/exit", map[string]any{"reason": 42})
	tn.call(http.StatusUnprocessableEntity, "POST", "/v1/enrollments/"+id+"/exit", map[string]any{"why": "x"})
	e := tn.call(http.StatusAccepted, "POST", "/v1/enrollments/"+id+"/exit", map[string]any{"reason": "the customer asked"})
	require.Equal(t, id, e["id"])
	// Asked again while it ends: accepted, or a conflict if the workflow
	// has already ended it; either way the first reason stands.
	require.Contains(t, []int{http.StatusAccepted, http.StatusConflict},
		tn.try("POST", "/v1/enrollments/"+id+"/exit", map[string]any{"reason": "again"}))
	done := tn.waitEnrollment(id, 30*time.Second)
	require.Equal(t, "exited", done["status"])
	require.Equal(t, "the customer asked", done["reason"])
	require.Nil(t, done["exit_event_id"])
	// An awaited event no longer resumes it; asking again is a conflict.
	require.EqualValues(t, 0, tn.event(map[string]any{"name": "onboarding.done", "email": "a@example.com"})["executions_resumed"])
	tn.call(http.StatusConflict, "POST", "/v1/enrollments/"+id+"/exit", nil)
	tn.call(http.StatusNotFound, "POST", "/v1/enrollments/"+tn.ws.ID.String()+"/exit", nil)
}

func TestDisableAndArchiveEndRunningEnrollments(t *testing.T) {
	t.Parallel()
	s := newSystem(t, systemOptions{})
	tn := s.tenant()
	id := tn.automation(waitingAutomation)
	first, second := tn.enrollWaiting("a@example.com"), tn.enrollWaiting("b@example.com")

	a := tn.call(http.StatusOK, "POST", "/v1/automations/"+id+"/disable", map[string]any{"exit_active": true})
	require.Equal(t, "disabled", a["status"])
	require.EqualValues(t, 2, a["enrollments_exited"])
	for _, e := range []string{first, second} {
		done := tn.waitEnrollment(e, 30*time.Second)
		require.Equal(t, "exited", done["status"])
		require.Equal(t, "automation disabled", done["reason"])
	}
	r := tn.event(map[string]any{"name": "signed.up", "email": "c@example.com", "create_if_missing": true})
	require.EqualValues(t, 0, r["workflows_triggered"])

	// Archived: running enrollments go on (unless exit_active), nothing new
	// enrolls, it can no longer change, and its name is free.
	tn.call(http.StatusOK, "POST", "/v1/automations/"+id+"/enable", nil)
	running := tn.enrollWaiting("d@example.com")
	archived := tn.call(http.StatusOK, "DELETE", "/v1/automations/"+id, nil)
	require.Equal(t, "archived", archived["status"])
	require.EqualValues(t, 0, archived["enrollments_exited"])
	require.EqualValues(t, 1, tn.event(map[string]any{"name": "onboarding.done", "email": "d@example.com"})["executions_resumed"])
	require.Equal(t, "completed", tn.waitEnrollment(running, 30*time.Second)["status"])
	r = tn.event(map[string]any{"name": "signed.up", "email": "e@example.com", "create_if_missing": true})
	require.EqualValues(t, 0, r["workflows_triggered"])
	require.Empty(t, tn.decisionsOf(r["event_id"]), "an archived automation decides nothing")

	list := tn.call(http.StatusOK, "GET", "/v1/automations", nil)["data"].([]any)
	require.Empty(t, list)
	list = tn.call(http.StatusOK, "GET", "/v1/automations?archived=true", nil)["data"].([]any)
	require.Len(t, list, 1)
	require.Equal(t, "archived", tn.call(http.StatusOK, "GET", "/v1/automations/"+id, nil)["status"])
	tn.call(http.StatusConflict, "POST", "/v1/automations/"+id+"/enable", nil)
	tn.call(http.StatusConflict, "PUT", "/v1/automations/"+id, jsonMap(waitingAutomation))
	tn.automation(waitingAutomation) // the name is free again

	// Archiving with exit_active ends the running ones.
	other := tn.automation(`{"name":"other","trigger":{"event":"x"},"steps":[{"id":"w","type":"wait_for_event","event":"y","timeout":"1h"}]}`)
	tn.event(map[string]any{"name": "x", "email": "f@example.com", "create_if_missing": true})
	oid := tn.enrollments("automation_id=" + other)[0]["id"].(string)
	tn.waitStep(oid, "w", "waiting", 15*time.Second)
	gone := tn.call(http.StatusOK, "DELETE", "/v1/automations/"+other+"?exit_active=true", nil)
	require.EqualValues(t, 1, gone["enrollments_exited"])
	done := tn.waitEnrollment(oid, 30*time.Second)
	require.Equal(t, "exited", done["status"])
	require.Equal(t, "automation archived", done["reason"])
}

func jsonMap(doc string) map[string]any {
	var m map[string]any
	if err := json.Unmarshal([]byte(doc), &m); err != nil {
		panic(err)
	}
	return m
}
