package e2e

import (
	"fmt"
	"net/http"
	"net/http/httptest"
	"sync"
	"testing"
	"time"

	"github.com/stretchr/testify/require"
)

// waitDecision returns an event's one wait decision.
func (tn *tenant) waitDecision(eventID any) map[string]any {
	tn.s.t.Helper()
	var found []map[string]any
	for _, d := range tn.decisionsOf(eventID) {
		if d["kind"] == "wait" {
			found = append(found, d)
		}
	}
	require.Len(tn.s.t, found, 1, "wait decisions of %v", eventID)
	return found[0]
}

// stepDetail returns the detail of an enrollment's log line.
func stepDetail(e map[string]any, step, outcome string) map[string]any {
	for _, s := range e["steps"].([]any) {
		m := s.(map[string]any)
		if m["step_id"] == step && m["outcome"] == outcome {
			return m["detail"].(map[string]any)
		}
	}
	return nil
}

// TestMultiWaitAnyResumesOnSecondListed waits for either a chat or a
// booked call; the call (listed second) resumes it, and the yes steps read
// it as events["call.booked"].
func TestMultiWaitAnyResumesOnSecondListed(t *testing.T) {
	t.Parallel()
	s := newSystem(t, systemOptions{})
	h := newHook(t)
	tn := s.tenant()
	tn.automation(fmt.Sprintf(`{"name":"engaged","trigger":{"event":"lead.created"},
		"steps":[{"id":"engaged","type":"wait_for_event","events":["chat.started","call.booked"],"mode":"any","timeout":"30s",
		  "yes":[{"id":"thanks","type":"webhook","url":%q,
		          "body":{"slot":"events[\"call.booked\"].properties.slot","chatted":"\"chat.started\" in events"}}],
		  "no":[{"id":"nudge","type":"webhook","url":%q,"body":{"timeout":"true"}}]}]}`, h.url("/yes"), h.url("/no")))

	lead := tn.event(map[string]any{"name": "lead.created", "email": "lee@example.com", "create_if_missing": true})
	id := tn.enrollments("contact_id=" + lead["contact_id"].(string))[0]["id"].(string)
	tn.waitStep(id, "engaged", "waiting", 20*time.Second)
	live := tn.call(http.StatusOK, "GET", "/v1/enrollments/"+id, nil)
	require.Equal(t, "chat.started, call.booked", live["waiting_for"])

	call := tn.event(map[string]any{"name": "call.booked", "email": "lee@example.com",
		"properties": map[string]any{"slot": "tue-10:00"}})
	require.EqualValues(t, 1, call["executions_resumed"])
	done := tn.waitEnrollment(id, 20*time.Second)
	require.Equal(t, "completed", done["status"])
	require.Equal(t, []string{"engaged:waiting", "engaged:yes", "thanks:done"}, outcomes(done))
	require.Equal(t, map[string]any{"call.booked": call["event_id"]}, stepDetail(done, "engaged", "yes")["events"])
	h.mu.Lock()
	require.Equal(t, []map[string]any{{"slot": "tue-10:00", "chatted": false}}, h.bodies)
	h.mu.Unlock()

	d := tn.waitDecision(call["event_id"])
	require.Equal(t, "resumed", d["outcome"])
	require.Equal(t, id, d["enrollment_id"])
	require.Equal(t, map[string]any{"step_id": "engaged", "mode": "any",
		"matched": map[string]any{"call.booked": call["event_id"]}}, d["detail"])
	// A chat afterwards finds the wait resumed.
	chat := tn.event(map[string]any{"name": "chat.started", "email": "lee@example.com"})
	require.EqualValues(t, 0, chat["executions_resumed"])
}

// fulfilment waits for both an order's payment and its shipment behind a
// slow first step, so an event sent right after the trigger arrives before
// the workflow reaches the wait; the yes steps branch on both events.
const fulfilment = `{"name":"fulfilment","trigger":{"event":"checkout.started"},
	"steps":[{"id":"slow","type":"webhook","url":%q},
	  {"id":"both","type":"wait_for_event","events":["order.paid","order.shipped"],"mode":"all","timeout":%q,
	   "condition":"event.properties.order == trigger.properties.order",
	   "yes":[{"id":"big","type":"branch",
	           "condition":"events[\"order.paid\"].properties.amount >= 50.0 && events[\"order.shipped\"].properties.carrier == \"ups\"",
	           "yes":[{"id":"vip","type":"webhook","url":%q,
	                   "body":{"amount":"events[\"order.paid\"].properties.amount",
	                           "carrier":"events[\"order.shipped\"].properties.carrier"}}],
	           "no":[]}],
	   "no":[{"id":"late","type":"webhook","url":%q,"body":{"matched":"false"}}]}]}`

// slowHook answers after a pause.
func slowHook(t *testing.T, pause time.Duration) string {
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, _ *http.Request) {
		time.Sleep(pause)
		w.WriteHeader(http.StatusNoContent)
	}))
	t.Cleanup(srv.Close)
	return srv.URL
}

// TestMultiWaitAllWaitsForTheLast sends the payment right after the trigger,
// before the workflow reached the wait, and the shipment later in another
// request: the payment counts (look-back), the wait resumes on the shipment,
// and the yes steps read both events' properties.
func TestMultiWaitAllWaitsForTheLast(t *testing.T) {
	t.Parallel()
	s := newSystem(t, systemOptions{})
	h := newHook(t)
	tn := s.tenant()
	tn.automation(fmt.Sprintf(fulfilment, slowHook(t, 1500*time.Millisecond), "30s", h.url("/vip"), h.url("/late")))

	started := tn.event(map[string]any{"name": "checkout.started", "email": "ann@example.com", "create_if_missing": true,
		"properties": map[string]any{"order": "o-1"}})
	paid := tn.event(map[string]any{"name": "order.paid", "email": "ann@example.com",
		"properties": map[string]any{"order": "o-1", "amount": 80}})
	require.EqualValues(t, 0, paid["executions_resumed"])
	require.Empty(t, tn.decisionsOf(paid["event_id"]), "no wait was registered yet: the look-back finds it")
	id := tn.enrollments("contact_id=" + started["contact_id"].(string))[0]["id"].(string)
	tn.waitStep(id, "both", "waiting", 20*time.Second)
	e := tn.call(http.StatusOK, "GET", "/v1/enrollments/"+id, nil)
	require.Equal(t, map[string]any{"order.paid": paid["event_id"]}, stepDetail(e, "both", "waiting")["matched"])

	// Another order's shipment does not meet the condition.
	other := tn.event(map[string]any{"name": "order.shipped", "email": "ann@example.com",
		"properties": map[string]any{"order": "o-2", "carrier": "dhl"}})
	require.EqualValues(t, 0, other["executions_resumed"])
	require.Equal(t, "wait_condition_false", tn.waitDecision(other["event_id"])["outcome"])

	shipped := tn.event(map[string]any{"name": "order.shipped", "email": "ann@example.com",
		"properties": map[string]any{"order": "o-1", "carrier": "ups"}})
	require.EqualValues(t, 1, shipped["executions_resumed"])
	done := tn.waitEnrollment(id, 20*time.Second)
	require.Equal(t, "completed", done["status"])
	require.Equal(t, []string{"slow:done", "both:waiting", "both:yes", "big:yes", "vip:done"}, outcomes(done))
	require.Equal(t, map[string]any{"order.paid": paid["event_id"], "order.shipped": shipped["event_id"]},
		stepDetail(done, "both", "yes")["events"])
	h.mu.Lock()
	require.Equal(t, []map[string]any{{"amount": 80.0, "carrier": "ups"}}, h.bodies)
	h.mu.Unlock()

	d := tn.waitDecision(shipped["event_id"])
	require.Equal(t, "resumed", d["outcome"])
	require.Equal(t, map[string]any{"step_id": "both", "mode": "all",
		"matched": map[string]any{"order.paid": paid["event_id"], "order.shipped": shipped["event_id"]}}, d["detail"])
}

// TestMultiWaitAllTimesOutWithOneMissing: the payment arrives while the
// enrollment waits (matched, still awaiting the shipment); no shipment in
// time, so it goes no at the timeout. The decisions say which was which.
func TestMultiWaitAllTimesOutWithOneMissing(t *testing.T) {
	t.Parallel()
	s := newSystem(t, systemOptions{})
	h := newHook(t)
	tn := s.tenant()
	auto := tn.automation(fmt.Sprintf(fulfilment, h.url("/fast"), "4s", h.url("/vip"), h.url("/late")))

	started := tn.event(map[string]any{"name": "checkout.started", "email": "bo@example.com", "create_if_missing": true,
		"properties": map[string]any{"order": "o-9"}})
	id := tn.enrollments("contact_id=" + started["contact_id"].(string))[0]["id"].(string)
	tn.waitStep(id, "both", "waiting", 20*time.Second)
	paid := tn.event(map[string]any{"name": "order.paid", "email": "bo@example.com",
		"properties": map[string]any{"order": "o-9", "amount": 12}})
	require.EqualValues(t, 0, paid["executions_resumed"], "the shipment is still awaited")
	again := tn.event(map[string]any{"name": "order.paid", "email": "bo@example.com",
		"properties": map[string]any{"order": "o-9", "amount": 12}})
	require.EqualValues(t, 0, again["executions_resumed"])

	d := tn.waitDecision(paid["event_id"])
	require.Equal(t, "wait_matched", d["outcome"])
	require.Equal(t, id, d["enrollment_id"])
	require.Equal(t, map[string]any{"step_id": "both", "mode": "all", "matched": map[string]any{"order.paid": paid["event_id"]},
		"awaiting": []any{"order.shipped"}}, d["detail"])
	require.Empty(t, tn.decisionsOf(again["event_id"]), "the payment is already matched: the wait no longer awaits one")

	done := tn.waitEnrollment(id, 30*time.Second)
	require.Equal(t, "completed", done["status"])
	require.Equal(t, []string{"slow:done", "both:waiting", "both:no", "late:done"}, outcomes(done))
	require.Equal(t, map[string]any{"branch": "no", "reason": "timeout", "matched": map[string]any{"order.paid": paid["event_id"]}},
		stepDetail(done, "both", "no"))

	list := tn.call(http.StatusOK, "GET", "/v1/automations/"+auto+"/decisions?outcome=wait_matched", nil)["data"].([]any)
	require.Len(t, list, 1)
	require.Equal(t, paid["event_id"], list[0].(map[string]any)["event_id"])
}

// TestMultiWaitDefinitionProblems: bad waits on several events are refused
// with pointers to what is wrong.
func TestMultiWaitDefinitionProblems(t *testing.T) {
	t.Parallel()
	s := newSystem(t, systemOptions{})
	tn := s.tenant()
	body := jsonMap(`{"name":"bad","trigger":{"event":"a"},"steps":[
		{"id":"both","type":"wait_for_event","event":"b","events":["b","c"],"timeout":"1h"},
		{"id":"dup","type":"wait_for_event","events":["b","b"],"mode":"every","timeout":"1h",
		 "yes":[{"id":"h","type":"webhook","url":"https://example.com","body":{"x":"events[\"c\"].name"}}]},
		{"id":"none","type":"wait_for_event","events":[],"timeout":"1h"},
		{"id":"after","type":"update_contact","properties":{"p":"events[\"b\"].name"}}]}`)
	res := tn.call(http.StatusUnprocessableEntity, "POST", "/v1/automations", body)
	var pointers []string
	for _, e := range res["errors"].([]any) {
		pointers = append(pointers, e.(map[string]any)["pointer"].(string))
	}
	require.Equal(t, []string{"/steps/0/events", "/steps/1/events/1", "/steps/1/mode", "/steps/1/yes/0/body/x",
		"/steps/2/events", "/steps/3/properties/p"}, pointers, "%v", res)
}

// TestMultiWaitAllConcurrentRequests sends the three events of each
// contact's "all" wait in concurrent requests, for many contacts at once:
// each wait resumes exactly once, on all three events, and the answers'
// counts add up to one resume per wait.
func TestMultiWaitAllConcurrentRequests(t *testing.T) {
	t.Parallel()
	s := newSystem(t, systemOptions{})
	h := newHook(t)
	tn := s.tenant()
	tn.automation(fmt.Sprintf(`{"name":"ready","trigger":{"event":"trip.booked"},
		"steps":[{"id":"ready","type":"wait_for_event","events":["visa.granted","hotel.confirmed","flight.ticketed"],
		  "mode":"all","timeout":"60s",
		  "yes":[{"id":"go","type":"webhook","url":%q,
		          "body":{"who":"contact.email","n":"size(events)"}}]}]}`, h.url("/go")))
	const contacts = 8
	names := []string{"visa.granted", "hotel.confirmed", "flight.ticketed"}
	var ids []string
	for i := range contacts {
		email := fmt.Sprintf("t%d@example.com", i)
		res := tn.event(map[string]any{"name": "trip.booked", "email": email, "create_if_missing": true})
		id := tn.enrollments("contact_id=" + res["contact_id"].(string))[0]["id"].(string)
		ids = append(ids, id)
	}
	for _, id := range ids {
		tn.waitStep(id, "ready", "waiting", 30*time.Second)
	}
	var (
		mu      sync.Mutex
		resumed int
		wg      sync.WaitGroup
	)
	start := make(chan struct{})
	for i := range contacts {
		for _, name := range names {
			wg.Add(1)
			go func() {
				defer wg.Done()
				<-start
				res := tn.event(map[string]any{"name": name, "email": fmt.Sprintf("t%d@example.com", i)})
				mu.Lock()
				resumed += int(res["executions_resumed"].(float64))
				mu.Unlock()
			}()
		}
	}
	close(start)
	wg.Wait()
	require.Equal(t, contacts, resumed)
	for _, id := range ids {
		done := tn.waitEnrollment(id, 30*time.Second)
		require.Equal(t, []string{"ready:waiting", "ready:yes", "go:done"}, outcomes(done))
		require.Len(t, stepDetail(done, "ready", "yes")["events"], 3)
	}
	h.mu.Lock()
	defer h.mu.Unlock()
	require.Len(t, h.bodies, contacts, "one webhook per enrollment")
	for _, b := range h.bodies {
		require.EqualValues(t, 3, b["n"])
	}
}
