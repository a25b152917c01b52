package store

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"fmt"
	"net/url"
	"strings"
	"time"

	"github.com/jackc/pgx/v5"
)

// CreateScratchDatabase makes a migrated database named prefix and random
// hex digits on the server at serverURL, for tests and benchmarks, and
// returns its name and connection string. DropDatabase removes it.
func CreateScratchDatabase(ctx context.Context, serverURL, prefix string) (name, dbURL string, err error) {
	var b [6]byte
	_, _ = rand.Read(b[:])
	name = prefix + hex.EncodeToString(b[:])
	if dbURL, err = WithDatabase(serverURL, name); err != nil {
		return "", "", err
	}
	conn, err := pgx.Connect(ctx, serverURL)
	if err != nil {
		return "", "", fmt.Errorf("connect to PostgreSQL: %w", err)
	}
	defer conn.Close(context.WithoutCancel(ctx))
	if _, err := conn.Exec(ctx, "CREATE DATABASE "+pgx.Identifier{name}.Sanitize()); err != nil {
		return "", "", fmt.Errorf("create database %s: %w", name, err)
	}
	if _, err := Migrate(ctx, dbURL); err != nil {
		_ = DropDatabase(serverURL, name)
		return "", "", err
	}
	return name, dbURL, nil
}

// DropDatabase removes a database, disconnecting anyone still on it.
func DropDatabase(serverURL, name string) error {
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	conn, err := pgx.Connect(ctx, serverURL)
	if err != nil {
		return err
	}
	defer conn.Close(ctx)
	_, err = conn.Exec(ctx, "DROP DATABASE IF EXISTS "+pgx.Identifier{name}.Sanitize()+" WITH (FORCE)")
	return err
}

// WithDatabase points a connection string, in URL or keyword/value form, at
// the database name.
func WithDatabase(dsn, name string) (string, error) {
	if strings.HasPrefix(dsn, "postgres://") || strings.HasPrefix(dsn, "postgresql://") {
		u, err := url.Parse(dsn)
		if err != nil {
			return "", fmt.Errorf("parse database url: %w", err)
		}
		u.Path, u.RawPath = "/"+name, ""
		return u.String(), nil
	}
	// In the keyword/value form a later keyword wins.
	return strings.TrimSpace(dsn) + " dbname=" + name, nil
}
