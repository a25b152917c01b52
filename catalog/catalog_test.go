package catalog

import (
	"context"
	"encoding/json"
	"sync/atomic"
	"testing"
	"time"

	"github.com/google/uuid"
	"github.com/stretchr/testify/require"

	"github.com/signalbox/signalbox/store"
)

// fakeLoader serves rules and counts the loads.
type fakeLoader struct {
	rules atomic.Pointer[store.CatalogRules]
	loads atomic.Int32
}

func (f *fakeLoader) LoadCatalogRules(context.Context, uuid.UUID) (store.CatalogRules, error) {
	f.loads.Add(1)
	return *f.rules.Load(), nil
}

func TestCheckAppliesRulesAndCachesThem(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	ws := uuid.New()
	f := &fakeLoader{}
	schema := json.RawMessage(`{"type":"object","required":["amount"],"properties":{"amount":{"type":"number"}}}`)
	f.rules.Store(&store.CatalogRules{Undeclared: store.UndeclaredReject, Types: []store.DeclaredType{
		{Name: "enforced", Mode: store.SchemaEnforce, Version: 3, Schema: schema},
		{Name: "flagged", Mode: store.SchemaFlag, Version: 1, Schema: schema},
		{Name: "plain", Mode: store.SchemaFlag},
	}})
	now := time.Now()
	c := New(f, time.Minute, nil)
	c.now = func() time.Time { return now }

	req := &store.RecordRequest{WorkspaceID: ws, Events: []store.EventInput{
		{Name: "enforced", Properties: json.RawMessage(`{"amount":1}`)},
		{Name: "enforced", Properties: json.RawMessage(`{"amount":"x"}`)},
		{Name: "flagged", Properties: json.RawMessage(`{}`)},
		{Name: "plain", Properties: json.RawMessage(`{"anything":true}`)},
		{Name: "unknown", Properties: json.RawMessage(`{}`)},
	}}
	require.NoError(t, c.Check(ctx, req))
	ev := req.Events
	require.NoError(t, ev[0].Refused)
	require.Equal(t, 3, ev[0].SchemaVersion)
	var se *store.SchemaError
	require.ErrorAs(t, ev[1].Refused, &se)
	require.Equal(t, "/properties/amount", se.Violations[0].Pointer)
	require.NoError(t, ev[2].Refused)
	require.Equal(t, "/properties/amount", ev[2].SchemaErrors[0].Pointer)
	require.Equal(t, "required", ev[2].SchemaErrors[0].Keyword)
	require.NoError(t, ev[3].Refused)
	require.Zero(t, ev[3].SchemaVersion)
	require.ErrorIs(t, ev[4].Refused, store.ErrUndeclaredEvent)
	require.EqualValues(t, 1, f.loads.Load())

	// Cached within the TTL, read again after it or after Invalidate; a
	// schema version already compiled is kept.
	first := c.entry(ws).rules.types["enforced"].schema
	require.NoError(t, c.Check(ctx, &store.RecordRequest{WorkspaceID: ws}))
	require.EqualValues(t, 1, f.loads.Load())
	now = now.Add(2 * time.Minute)
	require.NoError(t, c.Check(ctx, &store.RecordRequest{WorkspaceID: ws}))
	require.EqualValues(t, 2, f.loads.Load())
	require.Same(t, first, c.entry(ws).rules.types["enforced"].schema)
	f.rules.Store(&store.CatalogRules{Undeclared: store.UndeclaredAccept})
	c.Invalidate(ws)
	req = &store.RecordRequest{WorkspaceID: ws, Events: []store.EventInput{{Name: "unknown"}}}
	require.NoError(t, c.Check(ctx, req))
	require.NoError(t, req.Events[0].Refused)
	require.EqualValues(t, 3, f.loads.Load())
}
