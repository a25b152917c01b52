package config

import (
	"testing"
	"time"

	"github.com/stretchr/testify/require"
	"go.temporal.io/sdk/client"
)

func env(m map[string]string) func(string) string {
	return func(k string) string { return m[k] }
}

func TestDefaults(t *testing.T) {
	t.Parallel()
	c, err := FromEnv(env(map[string]string{"DATABASE_URL": "postgres://x"}))
	require.NoError(t, err)
	require.Equal(t, "127.0.0.1:8080", c.HTTPAddr)
	require.Equal(t, "127.0.0.1:7233", c.TemporalAddress)
	require.Equal(t, "default", c.TemporalNamespace)
	require.Equal(t, 730*24*time.Hour, c.EventRetention)
	require.Equal(t, 5*time.Second, c.AuthCacheTTL)
	require.Equal(t, 5*time.Second, c.TriggerCacheTTL)
	require.Equal(t, 5*time.Second, c.CatalogCacheTTL)
	require.False(t, c.BenchSkipNameCounts)
	require.Equal(t, time.Second, c.OutboxPoll)
	require.Equal(t, 10*time.Second, c.DBStatementTimeout)
	require.Equal(t, 3*time.Second, c.DBLockTimeout)
	require.Equal(t, 100, c.WorkerConcurrency)
	require.Equal(t, 8, c.WorkerPollers)
	require.Equal(t, time.Hour, c.BookkeepingRetryLimit)
	require.Equal(t, 10*time.Minute, c.ReconcileEvery)
	require.Equal(t, 24*time.Hour, c.IdempotencyKeyTTL)
	require.Equal(t, 30*24*time.Hour, c.DecisionRetention)
	require.Equal(t, 400*24*time.Hour, c.EnrollmentRetention)
	require.Equal(t, "none", c.TemporalCompression)
	require.IsType(t, &client.GrpcCompressionNone{}, c.GrpcCompression())
	require.False(t, c.Tracing)
	require.False(t, c.WebhookAllowPrivate)
}

func TestSettings(t *testing.T) {
	t.Parallel()
	c, err := FromEnv(env(map[string]string{
		"DATABASE_URL": "postgres://x", "HTTP_ADDR": ":9000", "EVENT_RETENTION": "30d",
		"AUTH_CACHE_TTL": "1s", "DB_MAX_CONNS": "40", "INGEST_COMMITTERS": "3", "WEBHOOK_ALLOW_PRIVATE": "true",
		"WORKER_POLLERS": "16", "TEMPORAL_COMPRESSION": "gzip", "BOOKKEEPING_RETRY_LIMIT": "5m", "RECONCILE_EVERY": "30s", "DB_STATEMENT_TIMEOUT": "1m", "DB_LOCK_TIMEOUT": "250ms",
		"OTEL_EXPORTER_OTLP_ENDPOINT": "http://collector:4318", "LOG_FORMAT": "text", "LOG_LEVEL": "debug",
	}))
	require.NoError(t, err)
	require.Equal(t, 30*24*time.Hour, c.EventRetention)
	require.Equal(t, time.Second, c.AuthCacheTTL)
	require.EqualValues(t, 40, c.DBMaxConns)
	require.Equal(t, 3, c.Committers)
	require.Equal(t, 16, c.WorkerPollers)
	require.Equal(t, 5*time.Minute, c.BookkeepingRetryLimit)
	require.Equal(t, 30*time.Second, c.ReconcileEvery)
	require.Equal(t, time.Minute, c.DBStatementTimeout)
	require.Equal(t, 250*time.Millisecond, c.DBLockTimeout)
	require.IsType(t, &client.GrpcCompressionGzip{}, c.GrpcCompression())
	require.True(t, c.WebhookAllowPrivate)
	require.True(t, c.Tracing)
	require.Equal(t, "text", c.LogFormat)
}

// TestBadValuesFailFast checks that every bad setting is refused, each
// named in the error, so a process never starts half-configured.
func TestBadValuesFailFast(t *testing.T) {
	t.Parallel()
	for key, value := range map[string]string{
		"EVENT_RETENTION":         "forever",
		"RETENTION_INTERVAL":      "-1s",
		"AUTH_CACHE_TTL":          "0s",
		"TRIGGER_CACHE_TTL":       "x",
		"OUTBOX_POLL":             "1",
		"DB_MAX_CONNS":            "0",
		"INGEST_COMMITTERS":       "many",
		"WEBHOOK_ALLOW_PRIVATE":   "perhaps",
		"WORKER_CONCURRENCY":      "-3",
		"WORKER_POLLERS":          "5000",
		"TEMPORAL_COMPRESSION":    "zstd",
		"BOOKKEEPING_RETRY_LIMIT": "0s",
		"RECONCILE_EVERY":         "soon",
		"HTTP_ADDR":               "no-port",
		"LOG_LEVEL":               "loud",
		"LOG_FORMAT":              "xml",
		"DB_STATEMENT_TIMEOUT":    "0s",
		"DB_LOCK_TIMEOUT":         "1.5ms",
		"ENROLLMENT_RETENTION":    "soon",
		"DECISION_RETENTION":      "-1d",
		"IDEMPOTENCY_KEY_TTL":     "-5m",
		"CATALOG_CACHE_TTL":       "0s",
		"BENCH_SKIP_NAME_COUNTS":  "sometimes",
	} {
		_, err := FromEnv(env(map[string]string{"DATABASE_URL": "postgres://x", key: value}))
		require.ErrorContains(t, err, key, "%s=%s", key, value)
	}
	_, err := FromEnv(env(nil))
	require.ErrorContains(t, err, "DATABASE_URL")

	for _, v := range []map[string]string{
		{"DB_STATEMENT_TIMEOUT": "-1s"},
		{"DB_STATEMENT_TIMEOUT": "10d"},
		{"DB_STATEMENT_TIMEOUT": "100us"},
		{"DB_STATEMENT_TIMEOUT": "600h"},
		{"DB_LOCK_TIMEOUT": "soon"},
		// A lock wait no shorter than the statement would never time out.
		{"DB_STATEMENT_TIMEOUT": "2s", "DB_LOCK_TIMEOUT": "2s"},
		{"DB_LOCK_TIMEOUT": "30s"},
	} {
		v["DATABASE_URL"] = "postgres://x"
		_, err := FromEnv(env(v))
		require.ErrorContains(t, err, "DB_", "%v", v)
	}
}

func TestDecisionRetentionOff(t *testing.T) {
	t.Parallel()
	c, err := FromEnv(env(map[string]string{"DATABASE_URL": "postgres://x", "DECISION_RETENTION": "0"}))
	require.NoError(t, err)
	require.Zero(t, c.DecisionRetention)
}

func TestParseDuration(t *testing.T) {
	t.Parallel()
	for in, want := range map[string]time.Duration{"90s": 90 * time.Second, "72h": 72 * time.Hour, "7d": 7 * 24 * time.Hour} {
		got, err := ParseDuration(in)
		require.NoError(t, err)
		require.Equal(t, want, got, in)
	}
	for _, in := range []string{"", "d", "-1d", "1w"} {
		_, err := ParseDuration(in)
		require.Error(t, err, in)
	}
}
