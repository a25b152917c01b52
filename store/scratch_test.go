package store_test

import (
	"context"
	"os"
	"testing"

	"github.com/stretchr/testify/require"

	"github.com/signalbox/signalbox/store"
	"github.com/signalbox/signalbox/store/storetest"
)

func TestWithDatabase(t *testing.T) {
	t.Parallel()
	got, err := store.WithDatabase("postgres://postgres:secret@127.0.0.1:5432/postgres?sslmode=disable", "signalbox_bench_1")
	require.NoError(t, err)
	require.Equal(t, "postgres://postgres:secret@127.0.0.1:5432/signalbox_bench_1?sslmode=disable", got)
	got, err = store.WithDatabase("postgresql://h", "b")
	require.NoError(t, err)
	require.Equal(t, "postgresql://h/b", got)
	got, err = store.WithDatabase("host=/tmp dbname=postgres", "b")
	require.NoError(t, err)
	require.Equal(t, "host=/tmp dbname=postgres dbname=b", got)
}

func TestScratchDatabaseIsMigratedAndDropped(t *testing.T) {
	t.Parallel()
	storetest.URL(t) // fails clearly without DATABASE_URL
	server := os.Getenv("DATABASE_URL")
	ctx := context.Background()
	name, u, err := store.CreateScratchDatabase(ctx, server, "signalbox_scratch_")
	require.NoError(t, err)
	s, err := store.Open(ctx, u, store.Config{MaxConns: 2})
	require.NoError(t, err)
	have, want, err := s.SchemaVersion(ctx)
	require.NoError(t, err)
	require.Equal(t, want, have)
	s.Close()
	require.NoError(t, store.DropDatabase(server, name))
	_, err = store.Open(ctx, u, store.Config{MaxConns: 1})
	require.Error(t, err, "the database is gone")
}
