package store_test

import (
	"context"
	"encoding/json"
	"fmt"
	"strconv"
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

// TestFewAndManyEventsAreStoredAlike records events without external_id in
// requests of 3 (one INSERT) and of 20 (COPY): every column reads back the
// same either way.
func TestFewAndManyEventsAreStoredAlike(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	s := storetest.New(t, store.Config{})
	ws, _ := storetest.Workspace(t, s, store.PlanEnterprise)
	at := time.Date(2026, 11, 3, 10, 0, 0, 123456000, time.UTC)
	violations := []store.SchemaViolation{{Pointer: "/properties/n", Keyword: "type", Detail: "want integer"}}
	for _, n := range []int{3, 20} {
		events := make([]store.EventInput, n)
		for i := range events {
			events[i] = store.EventInput{Email: fmt.Sprintf("few-many-%d@example.com", n), CreateIfMissing: true,
				Name: "order.paid", Properties: json.RawMessage(`{"n": "` + strconv.Itoa(i) + `"}`), OccurredAt: at,
				GoalType: "purchase", GoalValue: "12.50", EmitDepth: 2, SchemaVersion: 3, SchemaErrors: violations}
			if i%2 == 1 {
				events[i].GoalType, events[i].GoalValue, events[i].SchemaVersion, events[i].SchemaErrors = "", "", 0, nil
			}
		}
		out, err := s.Record(ctx, []*store.RecordRequest{{WorkspaceID: ws.ID, Plan: ws.Plan, Events: events}})
		require.NoError(t, err)
		for i, r := range out[0].Results {
			require.NoError(t, r.Err)
			e, err := s.GetEvent(ctx, ws.ID, r.EventID)
			require.NoError(t, err)
			require.Equal(t, "order.paid", e.Name)
			require.JSONEq(t, `{"n": "`+strconv.Itoa(i)+`"}`, string(e.Properties))
			require.True(t, at.Equal(e.OccurredAt), "%d events: occurred_at", n)
			if i%2 == 1 {
				require.Nil(t, e.GoalType)
				require.Nil(t, e.GoalValue)
				require.Nil(t, e.SchemaVersion)
				require.Empty(t, e.SchemaErrors)
				continue
			}
			require.Equal(t, "purchase", *e.GoalType)
			require.Equal(t, 12.5, *e.GoalValue)
			require.Equal(t, 3, *e.SchemaVersion)
			require.Equal(t, violations, e.SchemaErrors)
		}
	}
}
