package store_test

import (
	"context"
	"encoding/json"
	"fmt"
	"testing"
	"time"

	"github.com/signalbox/signalbox/store"
	"github.com/signalbox/signalbox/store/storetest"
)

// BenchmarkMonthChartAtMonthEnd charts a busy name by month with the
// store's clock near the end of last month, whose bucket holds 29 days of
// the name's events (2,500 a day from 20,000 contacts), one new event
// recorded before each chart as on a live dashboard: the current bucket
// split at a recent hour (the default) against counted whole, alternately
// in the same run:
//
//	go test ./store -run '^$' -bench MonthChartAtMonthEnd -count 3
func BenchmarkMonthChartAtMonthEnd(b *testing.B) {
	ctx := context.Background()
	s := storetest.New(b, store.Config{})
	ws, _ := storetest.Workspace(b, s, store.PlanEnterprise)
	real := time.Now().UTC()
	month := time.Date(real.Year(), real.Month()-1, 1, 0, 0, 0, 0, time.UTC)
	now := month.AddDate(0, 1, 0).Add(-18 * time.Hour)
	store.SetNow(s, func() time.Time { return now })
	const perDay, contacts = 2500, 20000
	days := int(now.Sub(month) / (24 * time.Hour))
	events := make([]store.EventInput, 0, 1000)
	flush := func() {
		out, err := s.Record(ctx, []*store.RecordRequest{{WorkspaceID: ws.ID, Plan: ws.Plan, Events: events}})
		if err != nil {
			b.Fatal(err)
		}
		for _, r := range out[0].Results {
			if r.Err != nil {
				b.Fatal(r.Err)
			}
		}
		events = events[:0]
	}
	for i := range days * perDay {
		at := month.Add(time.Duration(i) * (now.Sub(month) - time.Hour) / time.Duration(days*perDay))
		events = append(events, store.EventInput{Email: fmt.Sprintf("c%d@example.com", i%contacts), CreateIfMissing: true,
			Name: "page.viewed", Properties: json.RawMessage(`{}`), OccurredAt: at})
		if len(events) == cap(events) {
			flush()
		}
	}
	flush()
	if _, err := s.Pool().Exec(ctx, `VACUUM ANALYZE events`); err != nil {
		b.Fatal(err)
	}
	q := store.StatsQuery{Name: "page.viewed", Interval: store.IntervalMonth, TZ: "UTC", Loc: time.UTC,
		Since: month.AddDate(0, -2, 0), Until: now}
	i := 0
	chart := func(b *testing.B) {
		for b.Loop() {
			i++
			out, err := s.Record(ctx, []*store.RecordRequest{{WorkspaceID: ws.ID, Plan: ws.Plan, Events: []store.EventInput{{
				Email: fmt.Sprintf("n%d@example.com", i), CreateIfMissing: true, Name: "page.viewed",
				Properties: json.RawMessage(`{}`), OccurredAt: now.Add(-time.Minute)}}}})
			if err != nil || out[0].Results[0].Err != nil {
				b.Fatal(err, out[0].Results[0].Err)
			}
			if _, err := s.EventStats(ctx, ws.ID, q); err != nil {
				b.Fatal(err)
			}
		}
	}
	b.Run("split", chart)
	b.Run("whole", func(b *testing.B) {
		defer store.SetSplitLive(store.SetSplitLive(false))
		chart(b)
	})
}
