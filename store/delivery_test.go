package store_test

import (
	"context"
	"encoding/json"
	"errors"
	"testing"
	"time"

	"github.com/google/uuid"
	"github.com/stretchr/testify/require"

	"github.com/signalbox/signalbox/store"
	"github.com/signalbox/signalbox/store/storetest"
)

// TestDeliveryOutcome: any per-item error of the record path (the store's
// own, or a refusal a later check adds, such as a schema violation) marks
// the delivery skipped with a reason naming it.
func TestDeliveryOutcome(t *testing.T) {
	t.Parallel()
	d := &store.DeliveryInput{}
	event := uuid.New()
	for _, tc := range []struct {
		res    store.EventResult
		status string
		reason string
	}{
		{store.EventResult{EventID: event}, store.DeliveryAccepted, ""},
		{store.EventResult{EventID: event, Duplicate: true}, store.DeliveryAccepted, ""},
		{store.EventResult{Err: store.ErrContactNotFound}, store.DeliverySkipped,
			"contact_not_found: no contact has this email and the source's create_if_missing is false"},
		{store.EventResult{Err: errors.New("schema_violation: /properties/amount: type")}, store.DeliverySkipped,
			"refused: schema_violation: /properties/amount: type"},
	} {
		status, reason, id, dup := store.DeliveryOutcome(d, []store.EventResult{tc.res})
		require.Equal(t, tc.status, status)
		require.Equal(t, tc.reason, reason)
		require.Equal(t, tc.res.Duplicate, dup)
		if tc.status == store.DeliveryAccepted {
			require.Equal(t, event, id)
		} else {
			require.Equal(t, uuid.Nil, id)
		}
	}
	status, reason, _, _ := store.DeliveryOutcome(&store.DeliveryInput{Status: store.DeliveryRejected, Reason: "bad"}, nil)
	require.Equal(t, store.DeliveryRejected, status)
	require.Equal(t, "bad", reason)
}

func TestPurgeDeliveries(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	s := storetest.Isolated(t, store.Config{})
	ws, _ := storetest.Workspace(t, s, store.PlanStarter)
	src := func(name string) store.Source {
		src, err := s.CreateSource(ctx, ws.ID, name, "token-"+name, true, json.RawMessage(`{}`))
		require.NoError(t, err)
		return src
	}
	busy, quiet, gone := src("busy"), src("quiet"), src("gone")
	deliver := func(src store.Source, n int) {
		for range n {
			// A payload that made no event rides the record path alone.
			_, err := s.Record(ctx, []*store.RecordRequest{{WorkspaceID: ws.ID, Plan: ws.Plan,
				Delivery: &store.DeliveryInput{SourceID: src.ID, ID: store.NewID(), Status: store.DeliverySkipped,
					Reason: "no email at email", Payload: []byte(`{}`)}}})
			require.NoError(t, err)
		}
	}
	deliver(busy, 5)
	deliver(quiet, 2)
	deliver(gone, 2)
	// One of quiet's deliveries is 40 days old.
	old := time.Now().Add(-40 * 24 * time.Hour)
	oldID, err := uuid.NewV7FromReader(constReader{})
	require.NoError(t, err)
	copy(oldID[:6], v7Time(old))
	_, err = s.Pool().Exec(ctx, `INSERT INTO source_deliveries (source_id, id, received_at, status, payload)
		VALUES ($1, $2, $3, 'skipped', '{}')`, quiet.ID, oldID, old)
	require.NoError(t, err)
	require.NoError(t, s.DeleteSource(ctx, ws.ID, gone.ID))

	count := func(src store.Source) int {
		var n int
		require.NoError(t, s.Pool().QueryRow(ctx, `SELECT count(*) FROM source_deliveries WHERE source_id = $1`, src.ID).Scan(&n))
		return n
	}
	n, err := s.PurgeDeliveries(ctx, 30*24*time.Hour, 3, 1)
	require.NoError(t, err)
	require.EqualValues(t, 1, n, "a batch deletes at most its limit")
	n, err = s.PurgeDeliveries(ctx, 30*24*time.Hour, 3, 1000)
	require.NoError(t, err)
	require.EqualValues(t, 4, n)
	require.Equal(t, 3, count(busy), "the newest per source are kept")
	require.Equal(t, 2, count(quiet), "the expired one went")
	require.Equal(t, 0, count(gone), "a deleted source's went")
	ds, _, err := s.ListDeliveries(ctx, ws.ID, busy.ID, store.DeliveryFilter{Limit: 10})
	require.NoError(t, err)
	require.Len(t, ds, 3)
	require.Equal(t, "no email at email", *ds[0].Reason)

	// The deleted source's row goes once its grace has passed.
	_, err = s.Pool().Exec(ctx, `UPDATE sources SET deleted_at = now() - interval '2 hours' WHERE id = $1`, gone.ID)
	require.NoError(t, err)
	_, err = s.PurgeDeliveries(ctx, 30*24*time.Hour, 3, 1000)
	require.NoError(t, err)
	var rows int
	require.NoError(t, s.Pool().QueryRow(ctx, `SELECT count(*) FROM sources WHERE workspace_id = $1`, ws.ID).Scan(&rows))
	require.Equal(t, 2, rows)
}

type constReader struct{}

func (constReader) Read(p []byte) (int, error) {
	for i := range p {
		p[i] = 0x42
	}
	return len(p), nil
}

// v7Time is the 48-bit millisecond prefix of a UUIDv7 made at t.
func v7Time(t time.Time) []byte {
	ms := uint64(t.UnixMilli())
	return []byte{byte(ms >> 40), byte(ms >> 32), byte(ms >> 24), byte(ms >> 16), byte(ms >> 8), byte(ms)}
}
