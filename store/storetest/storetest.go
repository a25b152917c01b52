// Package storetest gives tests a migrated PostgreSQL database of their own.
//
// Every test binary that calls New gets one fresh database, created from
// DATABASE_URL (which `make test` sets) and dropped when the binary's
// TestMain calls Cleanup. Tests share it safely because every row belongs to
// a workspace and each test makes its own.
package storetest

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"fmt"
	"net/url"
	"os"
	"sync"
	"testing"

	"github.com/jackc/pgx/v5"

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

func create() (string, error) {
	baseURL = os.Getenv("DATABASE_URL")
	if baseURL == "" {
		return "", fmt.Errorf("DATABASE_URL is not set: run the tests with `make test`, which provides a PostgreSQL")
	}
	ctx := context.Background()
	conn, err := pgx.Connect(ctx, baseURL)
	if err != nil {
		return "", fmt.Errorf("connect to %s: %w", redact(baseURL), err)
	}
	defer conn.Close(ctx)
	b := make([]byte, 6)
	_, _ = rand.Read(b)
	dbName = "signalbox_test_" + hex.EncodeToString(b)
	if _, err := conn.Exec(ctx, "CREATE DATABASE "+dbName); err != nil {
		return "", fmt.Errorf("create database: %w", err)
	}
	u, err := url.Parse(baseURL)
	if err != nil {
		return "", err
	}
	u.Path = "/" + dbName
	if _, err := store.Migrate(ctx, u.String()); err != nil {
		return "", err
	}
	return u.String(), nil
}

// Cleanup drops the test database; call it from TestMain after m.Run.
func Cleanup() {
	if dbName == "" {
		return
	}
	ctx := context.Background()
	conn, err := pgx.Connect(ctx, baseURL)
	if err != nil {
		return
	}
	defer conn.Close(ctx)
	_, _ = conn.Exec(ctx, "DROP DATABASE IF EXISTS "+dbName+" WITH (FORCE)")
}

// Main runs a package's tests and drops its database afterwards.
func Main(m *testing.M) {
	code := m.Run()
	Cleanup()
	os.Exit(code)
}

func redact(raw string) string {
	u, err := url.Parse(raw)
	if err != nil {
		return "the database"
	}
	return u.Redacted()
}
