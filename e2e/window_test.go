package e2e

import (
	"context"
	"fmt"
	"net/http"
	"path/filepath"
	"testing"
	"time"

	"github.com/stretchr/testify/require"
)

// onboardingAutomation is the example: signup.started, a webhook,
// then wait for onboarding.done, with a webhook on each way out.
const onboardingAutomation = `{"name":"onboarding","trigger":{"event":"signup.started"},
	"steps":[{"id":"hello","type":"webhook","url":%q,"body":{"email":"contact.email"}},
	         {"id":"onboarded","type":"wait_for_event","event":"onboarding.done","timeout":%q,
	          "yes":[{"id":"welcome","type":"webhook","url":%q,"body":{"email":"contact.email"}}],
	          "no":[{"id":"nudge","type":"webhook","url":%q,"body":{"email":"contact.email"}}]}]}`

func onboarding(h *hook, timeout string) string {
	return fmt.Sprintf(onboardingAutomation, h.url("/hello"), timeout, h.url("/yes"), h.url("/no"))
}

// TestWaitSeesEventSentRightAfterTrigger sends the awaited event right after
// the trigger, before the workflow can have reached its wait: in a second
// request, and in the trigger's own batch. Both go down yes at once. In a
// batch with the awaited event first, it came before the trigger and never
// counts: that one times out.
func TestWaitSeesEventSentRightAfterTrigger(t *testing.T) {
	t.Parallel()
	s := newSystem(t, systemOptions{})
	h := newHook(t)
	tn := s.tenant()
	tn.automation(onboarding(h, "4s"))

	enrollmentOf := func(contact string) string {
		list := tn.enrollments("contact_id=" + contact)
		require.Len(t, list, 1)
		return list[0]["id"].(string)
	}
	started := tn.event(map[string]any{"name": "signup.started", "email": "two@example.com", "create_if_missing": true})
	require.EqualValues(t, 1, started["workflows_triggered"])
	tn.event(map[string]any{"name": "onboarding.done", "email": "two@example.com"})
	twoRequests := enrollmentOf(started["contact_id"].(string))

	batch := tn.call(http.StatusOK, "POST", "/v1/events/batch", map[string]any{"events": []any{
		map[string]any{"name": "signup.started", "email": "batch@example.com", "create_if_missing": true},
		map[string]any{"name": "onboarding.done", "email": "batch@example.com"},
	}})
	require.EqualValues(t, 1, batch["workflows_triggered"])
	reversed := tn.call(http.StatusOK, "POST", "/v1/events/batch", map[string]any{"events": []any{
		map[string]any{"name": "onboarding.done", "email": "reversed@example.com", "create_if_missing": true},
		map[string]any{"name": "signup.started", "email": "reversed@example.com"},
	}})
	require.EqualValues(t, 1, reversed["workflows_triggered"])
	contacts := tn.call(http.StatusOK, "GET", "/v1/contacts?email=batch@example.com", nil)["data"].([]any)
	inBatch := enrollmentOf(contacts[0].(map[string]any)["id"].(string))
	contacts = tn.call(http.StatusOK, "GET", "/v1/contacts?email=reversed@example.com", nil)["data"].([]any)
	before := enrollmentOf(contacts[0].(map[string]any)["id"].(string))

	for _, id := range []string{twoRequests, inBatch} {
		done := tn.waitEnrollment(id, 20*time.Second)
		require.Equal(t, "completed", done["status"])
		require.Equal(t, []string{"hello:done", "onboarded:yes", "welcome:done"}, outcomes(done), "enrollment %s", id)
	}
	done := tn.waitEnrollment(before, 20*time.Second)
	require.Equal(t, []string{"hello:done", "onboarded:waiting", "onboarded:no", "nudge:done"}, outcomes(done))
}

// TestWaitWindowAcrossOutage records triggers and awaited events while
// Temporal is down for longer than the wait's timeout. When it is back,
// each enrollment arrives after its window closed and learns its way out
// at once: yes where the awaited event was recorded inside the window, no
// where nothing was.
func TestWaitWindowAcrossOutage(t *testing.T) {
	t.Parallel()
	hostPort := freePort(t)
	dbFile := filepath.Join(t.TempDir(), "temporal.db")
	srv, err := startDevServer(hostPort, dbFile)
	require.NoError(t, err)
	s := newSystem(t, systemOptions{hostPort: hostPort})
	h := newHook(t)
	tn := s.tenant()
	tn.automation(onboarding(h, "2s"))
	require.NoError(t, srv.Stop())
	yes := tn.event(map[string]any{"name": "signup.started", "email": "yes@example.com", "create_if_missing": true})
	tn.event(map[string]any{"name": "onboarding.done", "email": "yes@example.com"})
	no := tn.event(map[string]any{"name": "signup.started", "email": "no@example.com", "create_if_missing": true})
	var closedAt time.Time
	require.NoError(t, s.store.Pool().QueryRow(context.Background(),
		`SELECT received_at + interval '2 seconds' FROM events WHERE id = $1`, no["event_id"]).Scan(&closedAt))
	// Both windows close, by PostgreSQL's clock, while Temporal is still down.
	require.Eventually(t, func() bool {
		var past bool
		require.NoError(t, s.store.Pool().QueryRow(context.Background(), `SELECT clock_timestamp() > $1`, closedAt).Scan(&past))
		return past
	}, 30*time.Second, 100*time.Millisecond)
	var pending int
	require.NoError(t, s.store.Pool().QueryRow(context.Background(),
		`SELECT count(*) FROM outbox WHERE delivered_at IS NULL`).Scan(&pending))
	require.Equal(t, 2, pending, "neither enrollment could start")

	srv, err = startDevServer(hostPort, dbFile)
	require.NoError(t, err)
	t.Cleanup(func() { _ = srv.Stop() })

	yesID := tn.enrollments("contact_id=" + yes["contact_id"].(string))[0]["id"].(string)
	done := tn.waitEnrollment(yesID, 60*time.Second)
	require.Equal(t, []string{"hello:done", "onboarded:yes", "welcome:done"}, outcomes(done))
	noID := tn.enrollments("contact_id=" + no["contact_id"].(string))[0]["id"].(string)
	done = tn.waitEnrollment(noID, 60*time.Second)
	require.Equal(t, []string{"hello:done", "onboarded:no", "nudge:done"}, outcomes(done))
	steps := done["steps"].([]any)
	require.Equal(t, "window closed", steps[1].(map[string]any)["detail"].(map[string]any)["reason"])
}
