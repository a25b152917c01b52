package triggers_test

import (
	"context"
	"io"
	"log/slog"
	"sync"
	"testing"
	"time"

	"github.com/google/uuid"
	"github.com/stretchr/testify/require"

	"github.com/signalbox/signalbox/conditions"
	"github.com/signalbox/signalbox/decision"
	"github.com/signalbox/signalbox/store"
	"github.com/signalbox/signalbox/store/storetest"
	"github.com/signalbox/signalbox/triggers"
)

// One caller's cancellation must not fail another caller's Load of the same
// workspace.
func TestLoadSurvivesAnotherCallersCancel(t *testing.T) {
	ctx := context.Background()
	s := storetest.Isolated(t, store.Config{})
	ws, _ := storetest.Workspace(t, s, store.PlanEnterprise)
	env, err := conditions.NewEnv(conditions.Config{})
	require.NoError(t, err)
	m := triggers.New(s, env, time.Hour, slog.New(slog.NewTextHandler(io.Discard, nil)))

	// Hold the first load in the database.
	tx, err := s.Pool().Begin(ctx)
	require.NoError(t, err)
	defer func() { _ = tx.Rollback(ctx) }()
	_, err = tx.Exec(ctx, `LOCK TABLE automations IN ACCESS EXCLUSIVE MODE`)
	require.NoError(t, err)

	first, cancel := context.WithCancel(ctx)
	firstDone := make(chan error, 1)
	go func() { _, err := m.Load(first, []uuid.UUID{ws.ID}); firstDone <- err }()
	require.Eventually(t, func() bool {
		var n int
		_ = s.Pool().QueryRow(ctx, `SELECT count(*) FROM pg_locks WHERE NOT granted`).Scan(&n)
		return n > 0
	}, 5*time.Second, 5*time.Millisecond)

	secondDone := make(chan error, 1)
	go func() { _, err := m.Load(ctx, []uuid.UUID{ws.ID}); secondDone <- err }()
	time.Sleep(50 * time.Millisecond) // let the second caller wait on the first's load
	cancel()
	require.NoError(t, tx.Rollback(ctx))
	// The load goes on for everyone waiting on it, so both callers get it.
	require.NoError(t, <-firstDone)
	require.NoError(t, <-secondDone, "the second caller's context was never cancelled")
}

// TestLoadConcurrently has many callers load one uncached workspace at
// once; under -race it proves the cache entry is published safely.
func TestLoadConcurrently(t *testing.T) {
	t.Parallel()
	w := newWorld(t, time.Hour)
	a := w.automation(doc("welcome", `{"event": "signed.up"}`), true)

	const n = 16
	var (
		wg    sync.WaitGroup
		start = make(chan struct{})
		sets  [n]decision.Automations
		errs  [n]error
	)
	for i := range n {
		wg.Go(func() {
			<-start
			sets[i], errs[i] = w.m.Load(context.Background(), []uuid.UUID{w.ws.ID})
		})
	}
	close(start)
	wg.Wait()
	for i := range n {
		require.NoError(t, errs[i])
		require.True(t, sets[i].Automates(w.ws.ID))
		require.Equal(t, []uuid.UUID{a.ID}, enrolled(t, sets[i], w.ws.ID, "signed.up", `{}`, nil))
	}
}
