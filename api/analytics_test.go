package api_test

import (
	"net/http"
	"net/url"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/signalbox/signalbox/store"
)

// goals reads a contact's goal aggregates for one goal type.
func (c *client) goals(contactID, goalType string) map[string]any {
	c.h.t.Helper()
	contact := c.expect(http.StatusOK, "GET", "/v1/contacts/"+contactID, nil)
	goals := contact["goals"].(map[string]any)
	g, _ := goals[goalType].(map[string]any)
	return g
}

func TestContactGoalsFollowUpsertRefundDeleteAndRestore(t *testing.T) {
	t.Parallel()
	c := newHarness(t).workspace(store.PlanStarter)
	at := time.Now().UTC().Add(-48 * time.Hour).Truncate(time.Hour)
	buy := func(ext string, value float64, when time.Time) map[string]any {
		return c.event(map[string]any{"name": "order.paid", "email": "ada@example.com", "create_if_missing": true,
			"external_id": ext, "goal_type": "purchase", "goal_value": value, "occurred_at": ts(when)})
	}
	first := buy("o-1", 40, at)
	id := first["contact_id"].(string)
	second := buy("o-2", 60, at.Add(time.Hour))
	g := c.goals(id, "purchase")
	require.EqualValues(t, 2, g["count"])
	require.InDelta(t, 100, g["sum"], 1e-9)
	require.InDelta(t, 50, g["avg"], 1e-9)
	require.InDelta(t, 40, g["min"], 1e-9)
	require.InDelta(t, 60, g["max"], 1e-9)
	require.Equal(t, ts(at), g["first_at"])
	require.Equal(t, ts(at.Add(time.Hour)), g["last_at"])

	// An upsert of o-1 (newer occurred_at) changes its value.
	buy("o-1", 70, at.Add(2*time.Hour))
	g = c.goals(id, "purchase")
	require.EqualValues(t, 2, g["count"])
	require.InDelta(t, 130, g["sum"], 1e-9)
	require.InDelta(t, 70, g["max"], 1e-9)
	require.Equal(t, ts(at.Add(time.Hour)), g["first_at"])

	// A refund is a negative value: sum and average go down.
	buy("r-1", -30, at.Add(3*time.Hour))
	g = c.goals(id, "purchase")
	require.EqualValues(t, 3, g["count"])
	require.InDelta(t, 100, g["sum"], 1e-9)
	require.InDelta(t, 100.0/3, g["avg"], 1e-4)
	require.InDelta(t, -30, g["min"], 1e-9)

	// A soft delete takes o-2 out; a restore brings it back.
	c.expect(http.StatusNoContent, "DELETE", "/v1/events/"+second["event_id"].(string), nil)
	g = c.goals(id, "purchase")
	require.EqualValues(t, 2, g["count"])
	require.InDelta(t, 40, g["sum"], 1e-9)
	c.expect(http.StatusOK, "POST", "/v1/events/"+second["event_id"].(string)+"/restore", nil)
	g = c.goals(id, "purchase")
	require.EqualValues(t, 3, g["count"])
	require.InDelta(t, 100, g["sum"], 1e-9)

	// The chart's goal sums follow the same changes.
	stats := c.expect(http.StatusOK, "GET", "/v1/event-types/order.paid/stats?interval=hour&since="+
		url.QueryEscape(ts(at))+"&until="+url.QueryEscape(ts(at.Add(4*time.Hour))), nil)
	buckets := stats["buckets"].([]any)
	require.Len(t, buckets, 4)
	var sum, count float64
	for _, b := range buckets {
		sum += b.(map[string]any)["goal_value_sum"].(float64)
		count += b.(map[string]any)["count"].(float64)
	}
	require.InDelta(t, 100, sum, 1e-9)
	require.EqualValues(t, 3, count)
	require.EqualValues(t, 0, buckets[0].(map[string]any)["count"], "o-1 moved to its new hour")
}

// statsOf reads a chart and returns its buckets.
func (c *client) statsOf(name, query string) []map[string]any {
	c.h.t.Helper()
	out := c.expect(http.StatusOK, "GET", "/v1/event-types/"+name+"/stats?"+query, nil)
	var buckets []map[string]any
	for _, b := range out["buckets"].([]any) {
		buckets = append(buckets, b.(map[string]any))
	}
	return buckets
}

func TestEventStatsBucketsFollowTheTimeZoneAcrossDST(t *testing.T) {
	t.Parallel()
	c := newHarness(t).workspace(store.PlanStarter)
	paris, err := time.LoadLocation("Europe/Paris")
	require.NoError(t, err)
	// Paris moves to summer time on 2026-03-29 at 02:00 local (01:00 UTC).
	local := func(day, hour, minute int) time.Time { return time.Date(2026, 3, day, hour, minute, 0, 0, paris) }
	send := func(email string, at time.Time, goal float64) map[string]any {
		return c.event(map[string]any{"name": "app/opened", "email": email, "create_if_missing": true,
			"occurred_at": ts(at), "goal_type": "other", "goal_value": goal})
	}
	send("a@example.com", local(28, 0, 30), 1) // 27 23:30 UTC: the 28th in Paris, the 27th in UTC
	send("a@example.com", local(28, 23, 30), 2)
	send("b@example.com", local(28, 12, 0), 3)
	late := send("a@example.com", local(29, 23, 30), 4) // 21:30 UTC, summer time
	send("c@example.com", local(29, 3, 0), 5)           // just after the change
	send("a@example.com", local(31, 10, 0), 6)

	q := "interval=day&tz=Europe%2FParis&since=" + url.QueryEscape(ts(local(27, 12, 0))) + "&until=" + url.QueryEscape(ts(local(31, 12, 0)))
	for range 2 { // the second read comes from the contact cache
		b := c.statsOf("app/opened", q)
		require.Len(t, b, 5)
		// Starts are written in the zone: local midnights.
		starts := []string{"2026-03-27T00:00:00+01:00", "2026-03-28T00:00:00+01:00", "2026-03-29T00:00:00+01:00",
			"2026-03-30T00:00:00+02:00", "2026-03-31T00:00:00+02:00"}
		counts := []float64{0, 3, 2, 0, 1}
		contacts := []float64{0, 2, 2, 0, 1}
		sums := []float64{0, 6, 9, 0, 6}
		for i := range b {
			require.Equal(t, starts[i], b[i]["start"], "bucket %d", i)
			require.EqualValues(t, counts[i], b[i]["count"], "bucket %d", i)
			require.EqualValues(t, contacts[i], b[i]["contacts"], "bucket %d", i)
			require.InDelta(t, sums[i], b[i]["goal_value_sum"], 1e-9, "bucket %d", i)
		}
	}
	// The 29th is 23 hours long in Paris: hourly buckets skip 02:00 local.
	hours := c.statsOf("app/opened", "interval=hour&tz=Europe%2FParis&since="+url.QueryEscape(ts(local(29, 0, 0)))+
		"&until="+url.QueryEscape(ts(local(30, 0, 0))))
	require.Len(t, hours, 23)
	require.EqualValues(t, 1, hours[2]["count"], "03:00 local is the third hour")
	// UTC days split the same events differently.
	utc := c.statsOf("app/opened", "interval=day&since=2026-03-27T00:00:00Z&until=2026-03-30T00:00:00Z")
	require.Equal(t, []float64{1, 2, 2}, []float64{utc[0]["count"].(float64), utc[1]["count"].(float64), utc[2]["count"].(float64)})

	// Weeks start on Monday: the 23rd and the 30th of March 2026.
	weeks := c.statsOf("app/opened", "interval=week&tz=Europe%2FParis&since="+url.QueryEscape(ts(local(27, 0, 0)))+
		"&until="+url.QueryEscape(ts(local(31, 12, 0))))
	require.Len(t, weeks, 2)
	require.Equal(t, "2026-03-23T00:00:00+01:00", weeks[0]["start"])
	require.EqualValues(t, 5, weeks[0]["count"])
	require.EqualValues(t, 3, weeks[0]["contacts"])
	require.EqualValues(t, 1, weeks[1]["contacts"])

	// A soft delete changes the cached bucket; a restore brings it back.
	c.expect(http.StatusNoContent, "DELETE", "/v1/events/"+late["event_id"].(string), nil)
	b := c.statsOf("app/opened", q)
	require.EqualValues(t, 1, b[2]["count"])
	require.EqualValues(t, 1, b[2]["contacts"])
	require.InDelta(t, 5, b[2]["goal_value_sum"], 1e-9)
	c.expect(http.StatusOK, "POST", "/v1/events/"+late["event_id"].(string)+"/restore", nil)
	b = c.statsOf("app/opened", q)
	require.EqualValues(t, 2, b[2]["count"])
	require.EqualValues(t, 2, b[2]["contacts"])

	// Bad parameters name themselves.
	require.Equal(t, []string{"interval"}, c.problem(422, "validation_failed", "GET", "/v1/event-types/app/opened/stats?interval=year", nil))
	require.Equal(t, []string{"tz"}, c.problem(422, "validation_failed", "GET", "/v1/event-types/app/opened/stats?tz=Mars%2FOlympus", nil))
	require.Equal(t, []string{"since"}, c.problem(422, "validation_failed", "GET", "/v1/event-types/app/opened/stats?interval=hour&since=2020-01-01T00:00:00Z", nil))
	c.problem(404, "not_found", "GET", "/v1/event-types/app/opened/nonsense", nil)
}

func TestEventFeedTopContactsAndBusiestEvents(t *testing.T) {
	t.Parallel()
	c := newHarness(t).workspace(store.PlanStarter)
	now := time.Now().UTC().Truncate(time.Second)
	var ids []string
	for i, email := range []string{"a@example.com", "b@example.com", "a@example.com", "c@example.com", "a@example.com", "b@example.com"} {
		got := c.event(map[string]any{"name": "page.viewed", "email": email, "create_if_missing": true,
			"occurred_at": ts(now.Add(time.Duration(i-10) * time.Minute)), "properties": map[string]any{"i": i}})
		ids = append(ids, got["event_id"].(string))
	}
	c.event(map[string]any{"name": "signed.up", "email": "d@example.com", "create_if_missing": true})

	// Newest first, in pages, with a poll cursor.
	feed := c.list("/v1/event-types/page.viewed/feed", 4)
	require.Len(t, feed, 6)
	require.Equal(t, ids[5], feed[0]["id"])
	require.Equal(t, "b@example.com", feed[0]["contact_email"])
	require.EqualValues(t, 5, feed[0]["properties"].(map[string]any)["i"])
	first := c.expect(http.StatusOK, "GET", "/v1/event-types/page.viewed/feed?limit=2", nil)
	poll := first["poll_cursor"].(string)
	empty := c.expect(http.StatusOK, "GET", "/v1/event-types/page.viewed/feed?since="+poll, nil)
	require.Empty(t, empty["data"])
	newer := c.event(map[string]any{"name": "page.viewed", "email": "c@example.com"})
	polled := c.expect(http.StatusOK, "GET", "/v1/event-types/page.viewed/feed?since="+poll, nil)
	require.Len(t, polled["data"], 1)
	require.Equal(t, newer["event_id"], polled["data"].([]any)[0].(map[string]any)["id"])
	c.problem(422, "validation_failed", "GET", "/v1/event-types/page.viewed/feed?since=nope", nil)

	// Top contacts by count; a soft delete counts no more.
	top := c.expect(http.StatusOK, "GET", "/v1/event-types/page.viewed/top-contacts?limit=2", nil)["data"].([]any)
	require.Len(t, top, 2)
	require.Equal(t, "a@example.com", top[0].(map[string]any)["email"])
	require.EqualValues(t, 3, top[0].(map[string]any)["count"])
	// b and c have two each; c's last is the most recent.
	require.Equal(t, "c@example.com", top[1].(map[string]any)["email"])
	for _, i := range []int{0, 2, 4} {
		c.expect(http.StatusNoContent, "DELETE", "/v1/events/"+ids[i], nil)
	}
	top = c.expect(http.StatusOK, "GET", "/v1/event-types/page.viewed/top-contacts", nil)["data"].([]any)
	require.Len(t, top, 2)
	require.Equal(t, "c@example.com", top[0].(map[string]any)["email"])
	require.Equal(t, "b@example.com", top[1].(map[string]any)["email"])
	require.Len(t, c.list("/v1/event-types/page.viewed/feed", 100), 4)
	c.expect(http.StatusOK, "POST", "/v1/events/"+ids[0]+"/restore", nil)
	require.Len(t, c.list("/v1/event-types/page.viewed/feed", 100), 5)

	// The busiest names, each with its series.
	stats := c.expect(http.StatusOK, "GET", "/v1/stats/events?interval=day&limit=1&since="+url.QueryEscape(ts(now.Add(-24*time.Hour))), nil)
	events := stats["events"].([]any)
	require.Len(t, events, 1)
	busiest := events[0].(map[string]any)
	require.Equal(t, "page.viewed", busiest["name"])
	require.EqualValues(t, 5, busiest["count"])
	require.NotEmpty(t, busiest["buckets"])
}
