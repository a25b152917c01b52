package store_test

import (
	"context"
	"encoding/json"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/signalbox/signalbox/store"
	"github.com/signalbox/signalbox/store/storetest"
)

func TestMain(m *testing.M) { storetest.Main(m) }

func TestRecordCreatesContactsAndCountsUsage(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	s := storetest.New(t, store.Config{})
	ws, _ := storetest.Workspace(t, s, store.PlanStarter)
	now := time.Now().UTC()
	first := "Ada"
	req := &store.RecordRequest{WorkspaceID: ws.ID, Plan: ws.Plan, Events: []store.EventInput{
		{Email: "ada@example.com", Name: "signed.up", Properties: json.RawMessage(`{}`), OccurredAt: now},
		{Email: "ada@example.com", CreateIfMissing: true, ContactName: "Ada", Name: "signed.up", Properties: json.RawMessage(`{"a":1}`), OccurredAt: now},
		{Email: "ada@example.com", Name: "clicked", Properties: json.RawMessage(`{}`), OccurredAt: now,
			ContactPatch: &store.ContactPatch{LastName: &first, Set: json.RawMessage(`{"plan":"pro"}`)}},
		{Email: "bob@example.com", Name: "clicked", Properties: json.RawMessage(`{}`), OccurredAt: now},
		{Email: "ada@example.com", Name: "purchase", ExternalID: "o-1", GoalType: "purchase", GoalValue: "12.50", Properties: json.RawMessage(`{"v":1}`), OccurredAt: now},
		{Email: "ada@example.com", Name: "purchase", ExternalID: "o-1", GoalType: "purchase", GoalValue: "13.50", Properties: json.RawMessage(`{"v":2}`), OccurredAt: now.Add(time.Second)},
	}}
	out, err := s.Record(ctx, []*store.RecordRequest{req})
	require.NoError(t, err)
	res := out[0].Results
	require.ErrorIs(t, res[0].Err, store.ErrContactNotFound)
	require.NoError(t, res[1].Err)
	require.True(t, res[1].ContactCreated)
	require.False(t, res[2].ContactCreated)
	require.Equal(t, res[1].ContactID, res[2].ContactID)
	require.ErrorIs(t, res[3].Err, store.ErrContactNotFound)
	require.False(t, res[4].Duplicate)
	require.True(t, res[5].Duplicate)
	require.Equal(t, res[4].EventID, res[5].EventID)
	require.EqualValues(t, 3, out[0].Tracked)

	c, err := s.GetContact(ctx, ws.ID, res[1].ContactID)
	require.NoError(t, err)
	require.Equal(t, "Ada", *c.FirstName)
	require.Equal(t, "Ada", *c.LastName)
	require.JSONEq(t, `{"plan":"pro"}`, string(c.Properties))

	e, err := s.GetEvent(ctx, ws.ID, res[4].EventID)
	require.NoError(t, err)
	require.JSONEq(t, `{"v":2}`, string(e.Properties))
	require.InDelta(t, 13.5, *e.GoalValue, 0.0001)

	u, err := s.GetUsage(ctx, ws.ID)
	require.NoError(t, err)
	require.EqualValues(t, 3, u.Tracked)
}
