package store_test

import (
	"context"
	"encoding/json"
	"testing"
	"time"

	"github.com/signalbox/signalbox/store"
	"github.com/signalbox/signalbox/store/storetest"
)

// BenchmarkRecordOneEvent records one event per transaction, as the API
// does for a lone request, writing it with one INSERT (the default) and
// with COPY (one round trip more), alternately in the same run:
//
//	go test ./store -run '^$' -bench RecordOneEvent -count 5
func BenchmarkRecordOneEvent(b *testing.B) {
	ctx := context.Background()
	s := storetest.New(b, store.Config{})
	ws, _ := storetest.Workspace(b, s, store.PlanEnterprise)
	record := func(b *testing.B) {
		for b.Loop() {
			out, err := s.Record(ctx, []*store.RecordRequest{{WorkspaceID: ws.ID, Plan: ws.Plan, Events: []store.EventInput{{
				Email: "bench@example.com", CreateIfMissing: true, Name: "page.viewed",
				Properties: json.RawMessage(`{"path": "/pricing"}`), OccurredAt: time.Now()}}}})
			if err != nil || out[0].Results[0].Err != nil {
				b.Fatal(err, out[0].Results[0].Err)
			}
		}
	}
	b.Run("insert", record)
	b.Run("copy", func(b *testing.B) {
		defer store.SetCopyFromRows(store.SetCopyFromRows(1))
		record(b)
	})
}
