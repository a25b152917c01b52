package store

import (
	"context"
	"embed"
	"fmt"
	"io/fs"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/tern/v2/migrate"
)

//go:embed migrations/*.sql
var migrationFiles embed.FS

// versionTable records which migrations have run.
const versionTable = "signalbox_schema_version"

// Migrate brings the schema at url up to date. Concurrent callers are safe:
// the migrator holds an advisory lock while it works.
func Migrate(ctx context.Context, url string) (version int32, err error) {
	conn, err := pgx.Connect(ctx, url)
	if err != nil {
		return 0, fmt.Errorf("connect for migration: %w", err)
	}
	defer conn.Close(context.WithoutCancel(ctx))
	m, err := migrate.NewMigrator(ctx, conn, versionTable)
	if err != nil {
		return 0, fmt.Errorf("new migrator: %w", err)
	}
	sub, err := fs.Sub(migrationFiles, "migrations")
	if err != nil {
		return 0, err
	}
	if err := m.LoadMigrations(sub); err != nil {
		return 0, fmt.Errorf("load migrations: %w", err)
	}
	if err := m.Migrate(ctx); err != nil {
		return 0, fmt.Errorf("migrate: %w", err)
	}
	return m.GetCurrentVersion(ctx)
}

// SchemaVersion returns the version the database is at and the version
// this binary's migrations reach, so processes that do not migrate can
// refuse a database that is behind.
func (s *Store) SchemaVersion(ctx context.Context) (have, want int32, err error) {
	names, err := migrate.FindMigrations(mustSub(migrationFiles, "migrations"))
	if err != nil {
		return 0, 0, err
	}
	want = int32(len(names))
	err = s.pool.QueryRow(ctx, `SELECT coalesce((SELECT version FROM `+versionTable+` LIMIT 1), 0)`).Scan(&have)
	if err != nil {
		// No version table: nothing was ever migrated.
		return 0, want, nil
	}
	return have, want, nil
}

func mustSub(f fs.FS, dir string) fs.FS {
	sub, err := fs.Sub(f, dir)
	if err != nil {
		panic(err)
	}
	return sub
}
