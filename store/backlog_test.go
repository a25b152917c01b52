package store_test

import (
	"context"
	"testing"
	"time"

	"github.com/google/uuid"
	"github.com/stretchr/testify/require"

	"github.com/signalbox/signalbox/store"
	"github.com/signalbox/signalbox/store/storetest"
)

func TestOutboxBacklog(t *testing.T) {
	t.Parallel()
	s := storetest.Isolated(t, store.Config{})
	ctx := context.Background()

	b, err := s.OutboxBacklog(ctx)
	require.NoError(t, err)
	require.Zero(t, b.Total)
	require.Equal(t, map[string]int64{"start": 0, "signal": 0, "cancel": 0, "backfill": 0}, b.Pending)
	require.True(t, b.Oldest.IsZero())
	require.Zero(t, b.OldestAge())
	require.False(t, b.At.IsZero())

	wsA, wsB := uuid.Must(uuid.NewV7()), uuid.Must(uuid.NewV7())
	add := func(ws uuid.UUID, workflowID, kind string, age time.Duration) uuid.UUID {
		id := uuid.Must(uuid.NewV7())
		_, err := s.Pool().Exec(ctx, `INSERT INTO outbox (id, workspace_id, workflow_id, kind, payload, created_at)
			VALUES ($1, $2, $3, $4, '{}', now() - $5::interval)`, id, ws, workflowID, kind, age)
		require.NoError(t, err)
		return id
	}
	add(wsA, "a1", "start", time.Minute)
	sig := add(wsA, "a1", "signal", 30*time.Second)
	add(wsA, "a2", "start", 0)
	add(wsB, "b1", "cancel", time.Hour)
	failed := add(wsB, "b2", "start", 2*time.Hour)
	_, err = s.FailIntent(ctx, failed, "refused")
	require.NoError(t, err)

	b, err = s.OutboxBacklog(ctx)
	require.NoError(t, err)
	require.EqualValues(t, 4, b.Total, "a failed intent is not pending")
	require.Equal(t, map[string]int64{"start": 2, "signal": 1, "cancel": 1, "backfill": 0}, b.Pending)
	require.InDelta(t, time.Hour.Seconds(), b.OldestAge().Seconds(), 5)

	a, err := s.WorkspaceBacklog(ctx, wsA)
	require.NoError(t, err)
	require.EqualValues(t, 3, a.Total)
	require.Equal(t, map[string]int64{"start": 2, "signal": 1, "cancel": 0, "backfill": 0}, a.Pending)
	require.InDelta(t, time.Minute.Seconds(), a.OldestAge().Seconds(), 5)

	// A claimed intent is still undelivered; a delivered one is not.
	claimed := claim(t, s)
	require.NotEmpty(t, claimed)
	a, err = s.WorkspaceBacklog(ctx, wsA)
	require.NoError(t, err)
	require.EqualValues(t, 3, a.Total)
	require.NoError(t, s.MarkDelivered(ctx, []uuid.UUID{sig}, []string{"signalled"}))
	a, err = s.WorkspaceBacklog(ctx, wsA)
	require.NoError(t, err)
	require.EqualValues(t, 2, a.Total)
	require.Zero(t, a.Pending["signal"])

	none, err := s.WorkspaceBacklog(ctx, uuid.Must(uuid.NewV7()))
	require.NoError(t, err)
	require.Zero(t, none.Total)
	require.True(t, none.Oldest.IsZero())
}
