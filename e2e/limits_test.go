package e2e

import (
	"fmt"
	"net/http"
	"sort"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/stretchr/testify/require"
)

// TestFlowControlHoldsUnderConcurrency sends from 32 concurrent clients to
// automations with limits: exactly the allowed number enroll, every other
// event is decided rate_limited, and the answers' counts add up.
func TestFlowControlHoldsUnderConcurrency(t *testing.T) {
	t.Parallel()
	s := newSystem(t, systemOptions{})
	tn := s.tenant()
	overall := tn.automation(`{"name":"capped","trigger":{"event":"signed.up"},
		"limits":{"max_enrollments":{"count":10,"per":"1h"}},
		"steps":[{"id":"tag","type":"update_contact","properties":{"capped":"'yes'"}}]}`)
	perContact := tn.automation(`{"name":"per contact","trigger":{"event":"page.viewed"},
		"limits":{"per_contact":{"count":2,"per":"1h"},"on_limit":"skip"},
		"steps":[{"id":"tag","type":"update_contact","properties":{"viewed":"'yes'"}}]}`)

	const clients, each = 32, 3
	var triggered, viewed atomic.Int64
	var wg sync.WaitGroup
	for c := range clients {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for i := range each {
				r := tn.event(map[string]any{"name": "signed.up", "email": fmt.Sprintf("c%d-%d@example.com", c, i),
					"create_if_missing": true})
				triggered.Add(int64(r["workflows_triggered"].(float64)))
				r = tn.event(map[string]any{"name": "page.viewed", "email": "one@example.com", "create_if_missing": true})
				viewed.Add(int64(r["workflows_triggered"].(float64)))
			}
		}()
	}
	wg.Wait()
	require.EqualValues(t, 10, triggered.Load())
	require.EqualValues(t, 2, viewed.Load())
	require.Len(t, tn.enrollments("automation_id="+overall), 10)
	require.Len(t, tn.enrollments("automation_id="+perContact), 2)

	limited := tn.call(http.StatusOK, "GET", "/v1/automations/"+overall+"/decisions?outcome=rate_limited&limit=1000", nil)["data"].([]any)
	require.Len(t, limited, clients*each-10)
	d := limited[0].(map[string]any)
	require.Equal(t, map[string]any{"limit": "max_enrollments", "count": float64(10), "per": "1h", "on_limit": "skip"}, d["detail"])
	limited = tn.call(http.StatusOK, "GET", "/v1/automations/"+perContact+"/decisions?outcome=rate_limited&limit=1000", nil)["data"].([]any)
	require.Len(t, limited, clients*each-2)
	require.Equal(t, "per_contact", limited[0].(map[string]any)["detail"].(map[string]any)["limit"])

	// Bad limits are refused with their pointer.
	p := tn.call(http.StatusUnprocessableEntity, "POST", "/v1/automations", jsonMap(`{"name":"bad","trigger":{"event":"x"},
		"limits":{"max_enrollments":{"count":0,"per":"1h"},"on_limit":"later"},
		"steps":[{"id":"d","type":"delay","duration":"1h"}]}`))
	var pointers []any
	for _, e := range p["errors"].([]any) {
		pointers = append(pointers, e.(map[string]any)["pointer"])
	}
	require.ElementsMatch(t, []any{"/limits/max_enrollments/count", "/limits/on_limit"}, pointers)
}

// TestFlowControlQueue: over the limit, enrollments wait and start, in the
// order their events came, as the window allows.
func TestFlowControlQueue(t *testing.T) {
	t.Parallel()
	s := newSystem(t, systemOptions{})
	tn := s.tenant()
	id := tn.automation(`{"name":"queued","trigger":{"event":"signed.up"},
		"limits":{"max_enrollments":{"count":2,"per":"2s"},"on_limit":"queue"},
		"steps":[{"id":"tag","type":"update_contact","properties":{"queued":"'yes'"}}]}`)
	var contacts []string
	triggered := 0
	for i := range 6 {
		r := tn.event(map[string]any{"name": "signed.up", "email": fmt.Sprintf("q%d@example.com", i), "create_if_missing": true})
		triggered += int(r["workflows_triggered"].(float64))
		contacts = append(contacts, r["contact_id"].(string))
	}
	require.Equal(t, 2, triggered)
	queued := tn.call(http.StatusOK, "GET", "/v1/automations/"+id+"/decisions?outcome=rate_limited", nil)["data"].([]any)
	require.Len(t, queued, 4)
	require.Equal(t, true, queued[0].(map[string]any)["detail"].(map[string]any)["queued"])
	require.NotEmpty(t, queued[0].(map[string]any)["enrollment_id"], "a queued decision names the enrollment to come")

	// Two start per 2 s window: all six within about three windows.
	var list []map[string]any
	require.Eventually(t, func() bool {
		list = tn.enrollments("automation_id=" + id)
		return len(list) == 6
	}, 20*time.Second, 100*time.Millisecond)
	// One release starts several in one transaction, with one started_at:
	// within it, the enrollment ids (UUIDv7, named when each event was
	// decided) give the order.
	sort.Slice(list, func(i, j int) bool {
		a, errA := time.Parse(time.RFC3339Nano, list[i]["started_at"].(string))
		b, errB := time.Parse(time.RFC3339Nano, list[j]["started_at"].(string))
		require.NoError(t, errA)
		require.NoError(t, errB)
		if !a.Equal(b) {
			return a.Before(b)
		}
		return list[i]["id"].(string) < list[j]["id"].(string)
	})
	var order []string
	for _, e := range list {
		order = append(order, e["contact_id"].(string))
		require.Equal(t, "completed", tn.waitEnrollment(e["id"].(string), 30*time.Second)["status"])
	}
	require.Equal(t, contacts, order, "queued enrollments start in the order their events came")
	// At no moment did more than two start within 2 s.
	for i := 2; i < len(list); i++ {
		a, err := time.Parse(time.RFC3339Nano, list[i-2]["started_at"].(string))
		require.NoError(t, err)
		b, err := time.Parse(time.RFC3339Nano, list[i]["started_at"].(string))
		require.NoError(t, err)
		require.GreaterOrEqual(t, b.Sub(a), 2*time.Second, "three starts within one window")
	}
	// The queued decisions name the enrollments that started.
	for _, d := range queued {
		got := tn.call(http.StatusOK, "GET", "/v1/enrollments/"+d.(map[string]any)["enrollment_id"].(string), nil)
		require.Equal(t, "completed", got["status"])
	}
}
