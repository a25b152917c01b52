package store_test

import (
	"context"
	"encoding/json"
	"slices"
	"sync"
	"testing"
	"time"

	"github.com/google/uuid"
	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgconn"
	"github.com/stretchr/testify/require"

	"github.com/signalbox/signalbox/intent"
	"github.com/signalbox/signalbox/store"
	"github.com/signalbox/signalbox/store/storetest"
)

// The outbox is global: a dispatcher claims every workspace's intents. So
// each test here has a database of its own.

// execer is a pool or a transaction.
type execer interface {
	Exec(ctx context.Context, sql string, args ...any) (pgconn.CommandTag, error)
}

// addIntent writes an undelivered intent with id, as the record path would.
func addIntent(t *testing.T, db execer, id uuid.UUID, workflowID, kind string) {
	t.Helper()
	_, err := db.Exec(context.Background(), `INSERT INTO outbox (id, workspace_id, workflow_id, kind, payload)
		VALUES ($1, $2, $3, $4, '{}')`, id, uuid.Nil, workflowID, kind)
	require.NoError(t, err)
}

// ids lists the ids of intents.
func ids(intents []store.Intent) []uuid.UUID {
	out := make([]uuid.UUID, len(intents))
	for i, in := range intents {
		out[i] = in.ID
	}
	return out
}

// claim claims up to 100 intents for a minute.
func claim(t *testing.T, s *store.Store) []store.Intent {
	t.Helper()
	got, err := s.ClaimIntents(context.Background(), 100, time.Minute)
	require.NoError(t, err)
	return got
}

// deliver marks intents delivered.
func deliver(t *testing.T, s *store.Store, id ...uuid.UUID) {
	t.Helper()
	outcomes := make([]string, len(id))
	for i := range outcomes {
		outcomes[i] = "started"
	}
	require.NoError(t, s.MarkDelivered(context.Background(), id, outcomes))
}

func TestClaimIntentsOldestPerWorkflow(t *testing.T) {
	t.Parallel()
	s := storetest.Isolated(t, store.Config{})
	pool := s.Pool()
	startA, signalA, cancelA, startB := store.NewID(), store.NewID(), store.NewID(), store.NewID()
	addIntent(t, pool, startA, "wf-a", intent.KindStart)
	addIntent(t, pool, signalA, "wf-a", intent.KindSignal)
	addIntent(t, pool, startB, "wf-b", intent.KindStart)
	addIntent(t, pool, cancelA, "wf-a", intent.KindCancel)

	got := claim(t, s)
	require.Equal(t, []uuid.UUID{startA, startB}, ids(got))
	require.Equal(t, "wf-a", got[0].WorkflowID)
	require.Equal(t, intent.KindStart, got[0].Kind)
	require.Equal(t, 1, got[0].Attempts)
	require.JSONEq(t, `{}`, string(got[0].Payload))
	// wf-a's signal waits for its start, even while the start is leased.
	require.Empty(t, claim(t, s))

	deliver(t, s, startA)
	require.Equal(t, []uuid.UUID{signalA}, ids(claim(t, s)))
	deliver(t, s, signalA)
	require.Equal(t, []uuid.UUID{cancelA}, ids(claim(t, s)))
	deliver(t, s, cancelA, startB)
	require.Empty(t, claim(t, s))
	n, err := s.PendingIntents(context.Background())
	require.NoError(t, err)
	require.Zero(t, n)

	var outcome string
	require.NoError(t, pool.QueryRow(context.Background(), `SELECT outcome FROM outbox WHERE id = $1`, cancelA).Scan(&outcome))
	require.Equal(t, "started", outcome)
}

func TestClaimIntentsOrdersRecordedIntents(t *testing.T) {
	t.Parallel()
	s := storetest.Isolated(t, store.Config{})
	f := newFixture(t, s, "signed.up", false, "churned")
	res := f.record(ev("ada@example.com", "signed.up"), ev("ada@example.com", "churned"),
		ev("bob@example.com", "signed.up"))
	require.Equal(t, []int{1, 1, 1}, []int{res[0].Triggered, res[1].Exited, res[2].Triggered})

	got := claim(t, s)
	require.Len(t, got, 2)
	for _, in := range got {
		require.Equal(t, intent.KindStart, in.Kind)
		require.Equal(t, f.ws.ID, in.WorkspaceID)
		require.Equal(t, "00-0af7651916cd43dd8448eb211c80319c-b7ad6b7169203331-01", in.TraceParent)
	}
	deliver(t, s, ids(got)...)
	got = claim(t, s)
	require.Len(t, got, 1)
	require.Equal(t, intent.KindCancel, got[0].Kind)
	var p intent.Cancel
	require.NoError(t, json.Unmarshal(got[0].Payload, &p))
	require.Equal(t, res[1].EventID, *p.EventID)
}

func TestClaimIntentsLease(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	s := storetest.Isolated(t, store.Config{})
	id := store.NewID()
	addIntent(t, s.Pool(), id, "wf-a", intent.KindStart)

	got, err := s.ClaimIntents(ctx, 10, time.Minute)
	require.NoError(t, err)
	require.Equal(t, []uuid.UUID{id}, ids(got))
	require.Empty(t, claim(t, s), "a leased intent is not claimed again")

	// A dispatcher that died leaves it claimable once the lease ends (moved
	// into the past here rather than waited for).
	_, err = s.Pool().Exec(ctx, `UPDATE outbox SET lease_until = now() - interval '1 second' WHERE id = $1`, id)
	require.NoError(t, err)
	got, err = s.ClaimIntents(ctx, 10, time.Minute)
	require.NoError(t, err)
	require.Len(t, got, 1)
	require.Equal(t, id, got[0].ID)
	require.Equal(t, 2, got[0].Attempts)
}

func TestClaimIntentsConcurrently(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	s := storetest.Isolated(t, store.Config{})
	var eligible []uuid.UUID
	for i := range 120 {
		wf := "wf-" + uuid.NewString()
		id := store.NewID()
		addIntent(t, s.Pool(), id, wf, intent.KindStart)
		eligible = append(eligible, id)
		if i%4 == 0 { // waits for the start before it
			addIntent(t, s.Pool(), store.NewID(), wf, intent.KindSignal)
		}
	}

	const workers = 4
	var (
		wg    sync.WaitGroup
		start = make(chan struct{})
		got   [workers][]uuid.UUID
		errs  [workers]error
	)
	for w := range workers {
		wg.Go(func() {
			<-start
			for {
				in, err := s.ClaimIntents(ctx, 7, time.Minute)
				if err != nil {
					errs[w] = err
					return
				}
				if len(in) == 0 {
					return
				}
				got[w] = append(got[w], ids(in)...)
			}
		})
	}
	close(start)
	wg.Wait()

	var all []uuid.UUID
	for w := range workers {
		require.NoError(t, errs[w])
		all = append(all, got[w]...)
	}
	cmp := func(a, b uuid.UUID) int { return slices.Compare(a[:], b[:]) }
	slices.SortFunc(all, cmp)
	require.Len(t, all, len(eligible), "each eligible intent claimed exactly once")
	require.Equal(t, eligible, slices.CompactFunc(all, func(a, b uuid.UUID) bool { return a == b }))
	require.Empty(t, claim(t, s))
}

func TestClaimIntentsSeesLateCommits(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	s := storetest.Isolated(t, store.Config{})

	// A takes its id first but commits after B has been delivered, as when
	// one record transaction is slower than another.
	tx, err := s.Pool().Begin(ctx)
	require.NoError(t, err)
	defer func() { _ = tx.Rollback(ctx) }()
	late := store.NewID()
	addIntent(t, tx, late, "wf-a", intent.KindStart)

	early := store.NewID()
	addIntent(t, s.Pool(), early, "wf-b", intent.KindStart)
	require.Equal(t, []uuid.UUID{early}, ids(claim(t, s)))
	deliver(t, s, early)

	require.NoError(t, tx.Commit(ctx))
	require.Equal(t, []uuid.UUID{late}, ids(claim(t, s)), "an intent committed late is claimed, not skipped")
}

func TestRetryIntent(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	s := storetest.Isolated(t, store.Config{})
	first, second := store.NewID(), store.NewID()
	addIntent(t, s.Pool(), first, "wf-a", intent.KindStart)
	addIntent(t, s.Pool(), second, "wf-a", intent.KindSignal)

	require.Equal(t, []uuid.UUID{first}, ids(claim(t, s)))
	require.NoError(t, s.RetryIntent(ctx, first, 200*time.Millisecond, "temporal unavailable"))
	// Neither it nor the intent behind it is claimable during the backoff.
	require.Empty(t, claim(t, s))

	var (
		lastError string
		attempts  int
		delivered *time.Time
	)
	require.NoError(t, s.Pool().QueryRow(ctx, `SELECT last_error, attempts, delivered_at FROM outbox WHERE id = $1`, first).
		Scan(&lastError, &attempts, &delivered))
	require.Equal(t, "temporal unavailable", lastError)
	require.Equal(t, 1, attempts)
	require.Nil(t, delivered)

	var got []store.Intent
	require.Eventually(t, func() bool {
		got, _ = s.ClaimIntents(ctx, 10, time.Minute)
		return len(got) > 0
	}, 5*time.Second, 10*time.Millisecond)
	require.Equal(t, []uuid.UUID{first}, ids(got))
	require.Equal(t, 2, got[0].Attempts)
}

func TestPurgeDelivered(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	s := storetest.Isolated(t, store.Config{})
	var old []uuid.UUID
	for range 3 {
		id := store.NewID()
		addIntent(t, s.Pool(), id, "wf-"+uuid.NewString(), intent.KindStart)
		old = append(old, id)
	}
	recent, pendingOld, pending := store.NewID(), store.NewID(), store.NewID()
	addIntent(t, s.Pool(), recent, "wf-recent", intent.KindStart)
	addIntent(t, s.Pool(), pendingOld, "wf-pending-old", intent.KindStart)
	addIntent(t, s.Pool(), pending, "wf-pending", intent.KindStart)
	deliver(t, s, append(slices.Clone(old), recent)...)
	_, err := s.Pool().Exec(ctx, `UPDATE outbox SET delivered_at = now() - interval '2 hours' WHERE id = ANY($1)`, old)
	require.NoError(t, err)
	_, err = s.Pool().Exec(ctx, `UPDATE outbox SET created_at = now() - interval '2 hours' WHERE id = $1`, pendingOld)
	require.NoError(t, err)

	n, err := s.PurgeDelivered(ctx, time.Hour, 2)
	require.NoError(t, err)
	require.EqualValues(t, 2, n)
	require.Equal(t, []uuid.UUID{old[2], recent, pendingOld, pending}, remaining(t, s), "oldest first")

	n, err = s.PurgeDelivered(ctx, time.Hour, 10)
	require.NoError(t, err)
	require.EqualValues(t, 1, n)
	n, err = s.PurgeDelivered(ctx, time.Hour, 10)
	require.NoError(t, err)
	require.Zero(t, n)
	require.Equal(t, []uuid.UUID{recent, pendingOld, pending}, remaining(t, s))
}

// remaining lists the outbox's ids in order.
func remaining(t *testing.T, s *store.Store) []uuid.UUID {
	t.Helper()
	rows, err := s.Pool().Query(context.Background(), `SELECT id FROM outbox ORDER BY id`)
	require.NoError(t, err)
	out, err := pgx.CollectRows(rows, pgx.RowTo[uuid.UUID])
	require.NoError(t, err)
	return out
}
