package api_test

import (
	"context"
	"net/http"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/signalbox/signalbox/api"
	"github.com/signalbox/signalbox/store"
)

func withQuotaPause(d time.Duration) harnessOption {
	return func(c *api.Config) { c.QuotaPause = d }
}

// TestQuotaRefusalSparesNeighbours has a workspace past its hard cap send
// beside one under its cap, from many clients at once: every request of the
// first is refused (after the pause that keeps a client ignoring
// Retry-After from spinning), every request of the second is recorded.
func TestQuotaRefusalSparesNeighbours(t *testing.T) {
	t.Parallel()
	const pause = 50 * time.Millisecond
	h := newHarness(t, withQuotaPause(pause))
	over, under := h.workspace(store.PlanStarter), h.workspace(store.PlanStarter)
	for _, c := range []*client{over, under} {
		c.event(map[string]any{"name": "created", "email": "a@example.com", "create_if_missing": true})
	}
	_, err := h.store.Pool().Exec(context.Background(),
		`UPDATE usage_counters SET tracked = 62500 WHERE workspace_id = $1`, over.ws.ID)
	require.NoError(t, err)

	const clients, each = 8, 10
	var refused, accepted, other atomic.Int64
	var quickest atomic.Int64
	quickest.Store(int64(time.Hour))
	var wg sync.WaitGroup
	for i := range 2 * clients {
		wg.Add(1)
		go func() {
			defer wg.Done()
			c := under
			if i%2 == 0 {
				c = over
			}
			for range each {
				start := time.Now()
				r := c.do("POST", "/v1/events", map[string]any{"name": "race", "email": "a@example.com"})
				switch {
				case c == over && r.Status == http.StatusTooManyRequests && strings.Contains(string(r.Body), `"used":62500`):
					refused.Add(1)
					took := int64(time.Since(start))
					for {
						q := quickest.Load()
						if took >= q || quickest.CompareAndSwap(q, took) {
							break
						}
					}
				case c == under && r.Status == http.StatusAccepted:
					accepted.Add(1)
				default:
					other.Add(1)
				}
			}
		}()
	}
	wg.Wait()
	require.Zero(t, other.Load())
	require.EqualValues(t, clients*each, refused.Load())
	require.EqualValues(t, clients*each, accepted.Load())
	require.GreaterOrEqual(t, time.Duration(quickest.Load()), pause, "a refusal is answered after the pause")
	require.Len(t, under.list("/v1/events?name=race", 1000), clients*each)
	require.Empty(t, over.list("/v1/events?name=race", 1000))
	require.EqualValues(t, 62500, over.expect(http.StatusOK, "GET", "/v1/usage", nil)["tracked"])
}
