// Package storetest gives tests a migrated PostgreSQL database of their own.
//
// Every test binary that calls New gets one fresh database, created from
// DATABASE_URL (which `make test` sets) and dropped when the binary's
// TestMain calls Cleanup. Tests share it safely because every row belongs to
// a workspace and each test makes its own.
package storetest

import (
	"context"
	"fmt"
	"os"
	"sync"
	"testing"

	"github.com/signalbox/signalbox/store"
)

var (
	once    sync.Once
	dbURL   string
	dbName  string
	baseURL string
	initErr error
)

// URL returns the connection string of the test binary's database, creating
// and migrating it on first use.
func URL(t testing.TB) string {
	t.Helper()
	once.Do(func() { dbURL, initErr = create() })
	if initErr != nil {
		t.Fatalf("test database: %v", initErr)
	}
	return dbURL
}

// New opens a Store on the test binary's database, closed when t ends.
func New(t testing.TB, cfg store.Config) *store.Store {
	t.Helper()
	s, err := store.Open(context.Background(), URL(t), cfg)
	if err != nil {
		t.Fatalf("open store: %v", err)
	}
	t.Cleanup(s.Close)
	return s
}

// Workspace makes a fresh workspace for one test and returns its id and key.
func Workspace(t testing.TB, s *store.Store, plan store.Plan) (store.Workspace, string) {
	t.Helper()
	ws, key, err := s.CreateWorkspace(context.Background(), t.Name(), plan)
	if err != nil {
		t.Fatalf("create workspace: %v", err)
	}
	return ws, key.Secret
}

// Isolated opens a Store on a database of its own, dropped when t ends,
// for tests whose background workers (such as outbox dispatchers) must not
// see other tests' rows.
func Isolated(t testing.TB, cfg store.Config) *store.Store {
	t.Helper()
	base := os.Getenv("DATABASE_URL")
	if base == "" {
		t.Fatal("DATABASE_URL is not set: run the tests with `make test`, which provides a PostgreSQL")
	}
	name, u, err := createDatabase(base)
	if err != nil {
		t.Fatalf("test database: %v", err)
	}
	t.Cleanup(func() { dropDatabase(base, name) })
	s, err := store.Open(context.Background(), u, cfg)
	if err != nil {
		t.Fatalf("open store: %v", err)
	}
	t.Cleanup(s.Close)
	return s
}

func create() (string, error) {
	baseURL = os.Getenv("DATABASE_URL")
	if baseURL == "" {
		return "", fmt.Errorf("DATABASE_URL is not set: run the tests with `make test`, which provides a PostgreSQL")
	}
	var u string
	var err error
	dbName, u, err = createDatabase(baseURL)
	return u, err
}

// createDatabase makes and migrates a database of its own on the server of
// base.
func createDatabase(base string) (name, dbURL string, err error) {
	return store.CreateScratchDatabase(context.Background(), base, "signalbox_test_")
}

func dropDatabase(base, name string) { _ = store.DropDatabase(base, name) }

// Cleanup drops the test database; call it from TestMain after m.Run.
func Cleanup() {
	if dbName != "" {
		dropDatabase(baseURL, dbName)
	}
}

// Main runs a package's tests and drops its database afterwards.
func Main(m *testing.M) {
	code := m.Run()
	Cleanup()
	os.Exit(code)
}
