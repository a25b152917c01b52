package e2e

import (
	"context"
	"errors"
	"fmt"
	"net/http"
	"sync/atomic"
	"testing"
	"time"

	"github.com/stretchr/testify/require"
	"go.temporal.io/sdk/activity"
	"go.temporal.io/sdk/worker"

	"github.com/signalbox/signalbox/activities"
)

const backfilledAutomation = `{"name":"upgrade","trigger":{"event":"signed.up","condition":"event.properties.plan == 'pro'"},
	"steps":[{"id":"tag","type":"update_contact","properties":{"backfilled":"'yes'"}}]}`

// waitBackfill waits until the backfill ends and returns it.
func (tn *tenant) waitBackfill(id string, timeout time.Duration) map[string]any {
	tn.s.t.Helper()
	var b map[string]any
	require.Eventually(tn.s.t, func() bool {
		b = tn.call(http.StatusOK, "GET", "/v1/backfills/"+id, nil)
		return b["status"] != "running"
	}, timeout, 100*time.Millisecond, "backfill %s never ended", id)
	return b
}

// TestBackfillResumesAfterCrashesAndEnrollsEachEventOnce runs a backfill
// whose worker "dies" twice: once before a page commits and once after a
// page committed but before Temporal heard of it. The workflow retries the
// page from the cursor in the database: every event is taken once, every
// matching contact enrolled once, and a second backfill of the same window
// skips them all.
func TestBackfillResumesAfterCrashesAndEnrollsEachEventOnce(t *testing.T) {
	t.Parallel()
	var calls atomic.Int32
	s := newSystem(t, systemOptions{register: func(w worker.Worker, a *activities.Activities) {
		registerExcept(w, a, "BackfillPage")
		w.RegisterActivityWithOptions(func(ctx context.Context, in activities.BackfillPageInput) (activities.BackfillPageResult, error) {
			switch calls.Add(1) {
			case 2:
				return activities.BackfillPageResult{}, errors.New("worker lost before the page committed")
			case 4:
				if _, err := a.BackfillPage(ctx, in); err != nil {
					return activities.BackfillPageResult{}, err
				}
				return activities.BackfillPageResult{}, errors.New("worker lost after the page committed")
			}
			return a.BackfillPage(ctx, in)
		}, activity.RegisterOptions{Name: "BackfillPage"})
	}})
	tn := s.tenant()

	// History recorded before the automation existed: 40 sign-ups over the
	// last day, half of them pro, and one too old for the window.
	now := time.Now().UTC()
	var batch []map[string]any
	for i := range 40 {
		plan := "free"
		if i%2 == 0 {
			plan = "pro"
		}
		batch = append(batch, map[string]any{"name": "signed.up", "email": fmt.Sprintf("h%02d@example.com", i),
			"create_if_missing": true, "properties": map[string]any{"plan": plan},
			"occurred_at": now.Add(-time.Duration(40-i) * time.Minute).Format(time.RFC3339Nano)})
	}
	batch = append(batch, map[string]any{"name": "signed.up", "email": "old@example.com", "create_if_missing": true,
		"properties": map[string]any{"plan": "pro"}, "occurred_at": now.Add(-72 * time.Hour).Format(time.RFC3339Nano)})
	tn.call(http.StatusOK, "POST", "/v1/events/batch", map[string]any{"events": batch})

	id := tn.automation(backfilledAutomation)
	// Two live sign-ups enroll at once; the backfill skips their events.
	for _, email := range []string{"live1@example.com", "live2@example.com"} {
		r := tn.event(map[string]any{"name": "signed.up", "email": email, "create_if_missing": true,
			"properties": map[string]any{"plan": "pro"}})
		require.EqualValues(t, 1, r["workflows_triggered"])
	}

	since := now.Add(-24 * time.Hour).Format(time.RFC3339)
	// Bad requests name their field; nothing starts.
	for field, body := range map[string]map[string]any{
		"since": {},
		"until": {"since": since, "until": now.Add(-48 * time.Hour).Format(time.RFC3339)},
		"mode":  {"since": since, "mode": "everything"},
		"rate":  {"since": since, "rate": 0},
	} {
		p := tn.call(http.StatusUnprocessableEntity, "POST", "/v1/automations/"+id+"/backfill", body)
		require.Equal(t, field, p["errors"].([]any)[0].(map[string]any)["field"], "%v", body)
	}
	tn.call(http.StatusNotFound, "POST", "/v1/automations/"+tn.ws.ID.String()+"/backfill", map[string]any{"since": since})
	tn.call(http.StatusNotFound, "GET", "/v1/backfills/"+tn.ws.ID.String(), nil)

	b := tn.call(http.StatusAccepted, "POST", "/v1/automations/"+id+"/backfill",
		map[string]any{"since": since, "mode": "skip_enrolled", "rate": 20})
	require.Equal(t, "running", b["status"])
	require.EqualValues(t, 42, b["total"])
	require.NotNil(t, b["eta_seconds"])
	done := tn.waitBackfill(b["id"].(string), 60*time.Second)
	require.Equal(t, "completed", done["status"], "%v", done)
	require.EqualValues(t, 42, done["processed"])
	require.EqualValues(t, 20, done["enrolled"])
	require.Equal(t, map[string]any{"condition_false": float64(20), "already_enrolled": float64(2)}, done["skipped"])
	require.Nil(t, done["eta_seconds"])
	// The last page committed before its "crash": the retry finds the
	// backfill done and ends the workflow.
	require.Eventually(t, func() bool { return calls.Load() >= 5 }, 30*time.Second, 50*time.Millisecond,
		"the page after each crash ran again")

	// Each pro contact of the window is enrolled once, the old one never.
	list := tn.enrollments("automation_id=" + id)
	require.Len(t, list, 22)
	seen := map[string]bool{}
	for _, e := range list {
		require.False(t, seen[e["contact_id"].(string)], "contact enrolled twice")
		seen[e["contact_id"].(string)] = true
	}
	for _, e := range list {
		require.Equal(t, "completed", tn.waitEnrollment(e["id"].(string), 30*time.Second)["status"])
	}
	// The decisions of a backfilled event say what it did.
	ev := tn.call(http.StatusOK, "GET", "/v1/events?email=h00@example.com", nil)["data"].([]any)[0].(map[string]any)
	ds := tn.decisionsOf(ev["id"])
	require.Len(t, ds, 1)
	require.Equal(t, "enrolled", ds[0]["outcome"])

	// Again over the same window: everything is skipped.
	again := tn.call(http.StatusAccepted, "POST", "/v1/automations/"+id+"/backfill", map[string]any{"since": since, "rate": 2000})
	again = tn.waitBackfill(again["id"].(string), 60*time.Second)
	require.Equal(t, "completed", again["status"])
	require.EqualValues(t, 0, again["enrolled"])
	require.Equal(t, map[string]any{"condition_false": float64(20), "already_enrolled": float64(22)}, again["skipped"])
	require.Len(t, tn.enrollments("automation_id="+id), 22)
	require.Len(t, tn.call(http.StatusOK, "GET", "/v1/automations/"+id+"/backfills", nil)["data"], 2)

	// An ended backfill cannot be cancelled.
	tn.call(http.StatusConflict, "POST", "/v1/backfills/"+again["id"].(string)+"/cancel", nil)
}

// TestBackfillCancel stops a slow backfill between pages.
func TestBackfillCancel(t *testing.T) {
	t.Parallel()
	s := newSystem(t, systemOptions{})
	tn := s.tenant()
	var batch []map[string]any
	for i := range 30 {
		batch = append(batch, map[string]any{"name": "signed.up", "email": fmt.Sprintf("c%02d@example.com", i),
			"create_if_missing": true, "properties": map[string]any{"plan": "pro"}})
	}
	tn.call(http.StatusOK, "POST", "/v1/events/batch", map[string]any{"events": batch})
	id := tn.automation(backfilledAutomation)
	b := tn.call(http.StatusAccepted, "POST", "/v1/automations/"+id+"/backfill",
		map[string]any{"since": time.Now().Add(-time.Hour).Format(time.RFC3339), "rate": 1})
	bid := b["id"].(string)
	require.Eventually(t, func() bool {
		return tn.call(http.StatusOK, "GET", "/v1/backfills/"+bid, nil)["processed"].(float64) >= 1
	}, 30*time.Second, 100*time.Millisecond)
	tn.call(http.StatusAccepted, "POST", "/v1/backfills/"+bid+"/cancel", nil)
	done := tn.waitBackfill(bid, 30*time.Second)
	require.Equal(t, "cancelled", done["status"])
	require.Less(t, done["processed"].(float64), float64(30))
	require.Equal(t, done["enrolled"], float64(len(tn.enrollments("automation_id="+id))))
}

// A backfill whose workflow an operator terminates in Temporal does not stay
// "running": the reconciler records it failed, with the operator's reason.
func TestBackfillTerminatedOutsideSignalbox(t *testing.T) {
	t.Parallel()
	s := newSystem(t, systemOptions{})
	tn := s.tenant()
	var batch []map[string]any
	for i := range 20 {
		batch = append(batch, map[string]any{"name": "signed.up", "email": fmt.Sprintf("t%02d@example.com", i),
			"create_if_missing": true, "properties": map[string]any{"plan": "pro"}})
	}
	tn.call(http.StatusOK, "POST", "/v1/events/batch", map[string]any{"events": batch})
	id := tn.automation(backfilledAutomation)
	b := tn.call(http.StatusAccepted, "POST", "/v1/automations/"+id+"/backfill",
		map[string]any{"since": time.Now().Add(-time.Hour).Format(time.RFC3339), "rate": 1})
	bid := b["id"].(string)
	require.Eventually(t, func() bool {
		return tn.call(http.StatusOK, "GET", "/v1/backfills/"+bid, nil)["processed"].(float64) >= 1
	}, 30*time.Second, 100*time.Millisecond)
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	require.NoError(t, s.temporal.TerminateWorkflow(ctx, "backfill-"+bid, "", "stopped by an operator"))
	done := tn.waitBackfill(bid, 30*time.Second)
	require.Equal(t, "failed", done["status"])
	require.Contains(t, done["reason"], "stopped by an operator")
	require.Less(t, done["processed"].(float64), float64(20))
}
