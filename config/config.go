// Package config reads Signalbox's settings from the environment once, into
// a typed struct that is validated before anything starts.
package config

import (
	"errors"
	"fmt"
	"math"
	"net"
	"net/url"
	"strconv"
	"strings"
	"time"

	"go.temporal.io/sdk/client"
)

// Config is every setting of every process role.
type Config struct {
	// DatabaseURL is the PostgreSQL connection string (DATABASE_URL).
	DatabaseURL string
	// HTTPAddr is where the API listens (HTTP_ADDR, default 127.0.0.1:8080).
	HTTPAddr string
	// TemporalAddress and TemporalNamespace locate Temporal
	// (TEMPORAL_ADDRESS, default 127.0.0.1:7233; TEMPORAL_NAMESPACE, default
	// "default").
	TemporalAddress   string
	TemporalNamespace string
	// TemporalCompression is how gRPC messages to Temporal are compressed
	// (TEMPORAL_COMPRESSION, none or gzip; default none). The SDK's default
	// is gzip, which saves bandwidth on a slow link but costs CPU on both
	// ends for every message, workflow histories included: next to a
	// self-hosted server, the dev server spent about a fifth more CPU per
	// enrollment with it (43.4 vs 36.5 ms in one make bench trial).
	TemporalCompression string
	// EventRetention is how long events are kept after receipt
	// (EVENT_RETENTION, a Go duration or days like "730d"; default 730d).
	EventRetention time.Duration
	// RetentionInterval is how often the sweeper deletes expired events
	// (RETENTION_INTERVAL, default 1m).
	RetentionInterval time.Duration
	// LogLevel is debug, info, warn or error (LOG_LEVEL, default info);
	// LogFormat is json or text (LOG_FORMAT, default json).
	LogLevel  string
	LogFormat string
	// DBMaxConns caps the connection pool (DB_MAX_CONNS, default 0 = auto).
	DBMaxConns int32
	// DBStatementTimeout and DBLockTimeout bound each statement of a record
	// transaction and each of its waits for a lock (DB_STATEMENT_TIMEOUT,
	// default 10s; DB_LOCK_TIMEOUT, default 3s; whole milliseconds, the lock
	// timeout shorter). Such a transaction's statements take milliseconds;
	// past these bounds something else is wrong, and the request is better
	// answered 503 than left to stall a group commit that mixes workspaces.
	// `signalbox migrate` is not bound by them.
	DBStatementTimeout time.Duration
	DBLockTimeout      time.Duration
	// Committers is how many group commits may run at once (INGEST_COMMITTERS).
	Committers int
	// AuthCacheTTL is how long a checked API key is trusted before it is
	// looked up again; it bounds how long a revoked key keeps working
	// (AUTH_CACHE_TTL, default 5s).
	AuthCacheTTL time.Duration
	// Tracing is on when any OTEL_* exporter setting is present.
	Tracing bool
	// TriggerCacheTTL bounds how long another replica's change to an
	// automation takes to reach this one (TRIGGER_CACHE_TTL, default 5s).
	TriggerCacheTTL time.Duration
	// CatalogCacheTTL bounds how long another replica's change to the
	// event catalog (declarations, schemas, the undeclared-event setting)
	// takes to reach this one (CATALOG_CACHE_TTL, default 5s).
	CatalogCacheTTL time.Duration
	// BenchSkipNameCounts leaves the event catalog's per-name counters
	// uncounted (BENCH_SKIP_NAME_COUNTS): only signalbox-bench sets it, on
	// a second API, as the baseline of what the counters cost. The
	// catalog's counts are wrong under it.
	BenchSkipNameCounts bool
	// OutboxPoll is how often the outbox is swept for intents not yet
	// delivered (OUTBOX_POLL, default 1s).
	OutboxPoll time.Duration
	// SMTPURL is where send_email steps send (SMTP_URL, e.g.
	// smtp://user:pass@mail.example.com:587); EmailFrom is the sender
	// (EMAIL_FROM).
	SMTPURL   string
	EmailFrom string
	// WebhookAllowPrivate lets webhooks reach private, loopback and
	// link-local addresses (WEBHOOK_ALLOW_PRIVATE=true); WebhookAllowlist
	// allows chosen ranges only (WEBHOOK_ALLOWLIST, comma-separated CIDRs).
	WebhookAllowPrivate bool
	WebhookAllowlist    string
	// WorkerConcurrency caps activities run at once per worker process
	// (WORKER_CONCURRENCY, default 100).
	WorkerConcurrency int
	// WorkerPollers is how many long polls a worker process keeps open for
	// workflow tasks, and as many for activity tasks (WORKER_POLLERS,
	// default 8). A task that finds no poller waiting at that instant is
	// written to the server's database and read back, which costs the
	// server more than handing it over; with the SDK's default of 2 the
	// pollers are often between polls.
	WorkerPollers int
	// BookkeepingRetryLimit bounds how long an enrollment retries a write
	// or read of its own records (step log, wait index, finish) before the
	// step fails and the enrollment ends failed (BOOKKEEPING_RETRY_LIMIT,
	// default 1h: longer than a database restart or failover).
	BookkeepingRetryLimit time.Duration
	// EnrollmentRetention is how long an ended enrollment is kept, with its
	// step log (ENROLLMENT_RETENTION, default 400d).
	EnrollmentRetention time.Duration
	// DecisionRetention is how long the record path's decisions are kept
	// for GET /v1/events/{id}/decisions (DECISION_RETENTION, default 30d);
	// 0 keeps none.
	DecisionRetention time.Duration
	// IdempotencyKeyTTL is how long an Idempotency-Key's first answer is
	// kept (IDEMPOTENCY_KEY_TTL, default 24h).
	IdempotencyKeyTTL time.Duration
	// QueueReleaseEvery is how often workers start the queued enrollments
	// of automations whose limits queue (QUEUE_RELEASE_EVERY, default 1s).
	QueueReleaseEvery time.Duration
	// ReconcileEvery is how often each active enrollment is checked against
	// its workflow in Temporal, to record the real end of one that closed
	// outside Signalbox (RECONCILE_EVERY, default 10m).
	ReconcileEvery time.Duration

	// Inbound sources.
	//
	// PublicURL is the API's address as senders reach it, such as
	// https://signalbox.example.com (PUBLIC_URL): a source's url is
	// PublicURL/in/{token}, or the path alone when unset.
	PublicURL string
	// SourceCacheTTL is how long a source looked up by the token of its URL
	// is trusted by an API process; another replica's change (a rotated
	// URL, a disabled source) takes up to this long to apply there
	// (SOURCE_CACHE_TTL, default 5s).
	SourceCacheTTL time.Duration
	// DeliveryRetention is how long a source's deliveries are kept
	// (DELIVERY_RETENTION, default 30d); DeliveryMaxPerSource bounds them
	// per source, the oldest swept first (DELIVERY_MAX_PER_SOURCE, default
	// 10000).
	DeliveryRetention    time.Duration
	DeliveryMaxPerSource int
	// HealthAddr is where a worker serves /healthz, /readyz and /metrics
	// (HEALTH_ADDR, default none: the worker serves no HTTP). The API
	// serves them on HTTP_ADDR.
	HealthAddr string
	// BacklogEvery is how often each process reads the outbox backlog for
	// its gauges and /readyz (OUTBOX_BACKLOG_EVERY, default 10s).
	BacklogEvery time.Duration
}

// FromEnv reads the configuration with getenv (os.Getenv in production) and
// validates it.
func FromEnv(getenv func(string) string) (Config, error) {
	c := Config{
		DatabaseURL:         getenv("DATABASE_URL"),
		HTTPAddr:            or(getenv("HTTP_ADDR"), "127.0.0.1:8080"),
		TemporalAddress:     or(getenv("TEMPORAL_ADDRESS"), "127.0.0.1:7233"),
		TemporalNamespace:   or(getenv("TEMPORAL_NAMESPACE"), "default"),
		TemporalCompression: or(getenv("TEMPORAL_COMPRESSION"), "none"),
		LogLevel:            or(getenv("LOG_LEVEL"), "info"),
		LogFormat:           or(getenv("LOG_FORMAT"), "json"),
	}
	var errs []error
	var err error
	if c.EventRetention, err = duration(getenv, "EVENT_RETENTION", 730*24*time.Hour); err != nil {
		errs = append(errs, err)
	}
	if c.RetentionInterval, err = duration(getenv, "RETENTION_INTERVAL", time.Minute); err != nil {
		errs = append(errs, err)
	}
	if c.AuthCacheTTL, err = duration(getenv, "AUTH_CACHE_TTL", 5*time.Second); err != nil {
		errs = append(errs, err)
	}
	if c.TriggerCacheTTL, err = duration(getenv, "TRIGGER_CACHE_TTL", 5*time.Second); err != nil {
		errs = append(errs, err)
	}
	if c.CatalogCacheTTL, err = duration(getenv, "CATALOG_CACHE_TTL", 5*time.Second); err != nil {
		errs = append(errs, err)
	}
	if v := getenv("BENCH_SKIP_NAME_COUNTS"); v != "" {
		if c.BenchSkipNameCounts, err = strconv.ParseBool(v); err != nil {
			errs = append(errs, fmt.Errorf("BENCH_SKIP_NAME_COUNTS: %q is not true or false", v))
		}
	}
	if c.OutboxPoll, err = duration(getenv, "OUTBOX_POLL", time.Second); err != nil {
		errs = append(errs, err)
	}
	if c.BookkeepingRetryLimit, err = duration(getenv, "BOOKKEEPING_RETRY_LIMIT", time.Hour); err != nil {
		errs = append(errs, err)
	}
	if c.QueueReleaseEvery, err = duration(getenv, "QUEUE_RELEASE_EVERY", time.Second); err != nil {
		return c, err
	}
	if c.ReconcileEvery, err = duration(getenv, "RECONCILE_EVERY", 10*time.Minute); err != nil {
		errs = append(errs, err)
	}
	if c.IdempotencyKeyTTL, err = duration(getenv, "IDEMPOTENCY_KEY_TTL", 24*time.Hour); err != nil {
		errs = append(errs, err)
	}
	if c.EnrollmentRetention, err = duration(getenv, "ENROLLMENT_RETENTION", 400*24*time.Hour); err != nil {
		errs = append(errs, err)
	}
	if v := getenv("DECISION_RETENTION"); v == "0" {
		c.DecisionRetention = 0
	} else if c.DecisionRetention, err = duration(getenv, "DECISION_RETENTION", 30*24*time.Hour); err != nil {
		errs = append(errs, fmt.Errorf("%w (or 0 to keep no decisions)", err))
	}
	if c.DBStatementTimeout, err = milliseconds(getenv, "DB_STATEMENT_TIMEOUT", 10*time.Second); err != nil {
		errs = append(errs, err)
	}
	if c.DBLockTimeout, err = milliseconds(getenv, "DB_LOCK_TIMEOUT", 3*time.Second); err != nil {
		errs = append(errs, err)
	}
	if c.DBStatementTimeout > 0 && c.DBLockTimeout >= c.DBStatementTimeout {
		errs = append(errs, fmt.Errorf("DB_LOCK_TIMEOUT (%s) must be shorter than DB_STATEMENT_TIMEOUT (%s), which would end the wait first",
			c.DBLockTimeout, c.DBStatementTimeout))
	}
	c.SMTPURL, c.EmailFrom, c.WebhookAllowlist = getenv("SMTP_URL"), getenv("EMAIL_FROM"), getenv("WEBHOOK_ALLOWLIST")
	if v := getenv("WEBHOOK_ALLOW_PRIVATE"); v != "" {
		b, err := strconv.ParseBool(v)
		if err != nil {
			errs = append(errs, fmt.Errorf("WEBHOOK_ALLOW_PRIVATE: want true or false, got %q", v))
		}
		c.WebhookAllowPrivate = b
	}
	if c.WorkerConcurrency, err = positive(getenv, "WORKER_CONCURRENCY", 100, math.MaxInt32); err != nil {
		errs = append(errs, err)
	}
	if c.WorkerPollers, err = positive(getenv, "WORKER_POLLERS", 8, 1024); err != nil {
		errs = append(errs, err)
	}
	dbMaxConns, err := positive(getenv, "DB_MAX_CONNS", 0, math.MaxInt32)
	if err != nil {
		errs = append(errs, err)
	}
	c.DBMaxConns = int32(dbMaxConns)
	if c.Committers, err = positive(getenv, "INGEST_COMMITTERS", 0, 1024); err != nil {
		errs = append(errs, err)
	}
	if err := c.sourcesFromEnv(getenv); err != nil {
		errs = append(errs, err)
	}
	if c.DatabaseURL == "" {
		errs = append(errs, errors.New("DATABASE_URL is required"))
	}
	if _, _, err := net.SplitHostPort(c.HTTPAddr); err != nil {
		errs = append(errs, fmt.Errorf("HTTP_ADDR: %w", err))
	}
	if !contains([]string{"debug", "info", "warn", "error"}, c.LogLevel) {
		errs = append(errs, fmt.Errorf("LOG_LEVEL: want debug, info, warn or error, got %q", c.LogLevel))
	}
	if !contains([]string{"gzip", "none"}, c.TemporalCompression) {
		errs = append(errs, fmt.Errorf("TEMPORAL_COMPRESSION: want gzip or none, got %q", c.TemporalCompression))
	}
	if !contains([]string{"json", "text"}, c.LogFormat) {
		errs = append(errs, fmt.Errorf("LOG_FORMAT: want json or text, got %q", c.LogFormat))
	}
	c.HealthAddr = getenv("HEALTH_ADDR")
	if _, _, err := net.SplitHostPort(c.HealthAddr); c.HealthAddr != "" && err != nil {
		errs = append(errs, fmt.Errorf("HEALTH_ADDR: %w", err))
	}
	if c.BacklogEvery, err = duration(getenv, "OUTBOX_BACKLOG_EVERY", 10*time.Second); err != nil {
		errs = append(errs, err)
	}
	for _, k := range []string{"OTEL_EXPORTER_OTLP_ENDPOINT", "OTEL_EXPORTER_OTLP_TRACES_ENDPOINT", "OTEL_TRACES_EXPORTER"} {
		if v := getenv(k); v != "" && v != "none" {
			c.Tracing = true
		}
	}
	return c, errors.Join(errs...)
}

// GrpcCompression is TemporalCompression as the SDK's client option.
func (c Config) GrpcCompression() client.GrpcCompression {
	if c.TemporalCompression == "none" {
		return &client.GrpcCompressionNone{}
	}
	return &client.GrpcCompressionGzip{}
}

// ParseDuration reads a Go duration, also accepting whole days ("730d").
func ParseDuration(s string) (time.Duration, error) {
	if days, ok := strings.CutSuffix(s, "d"); ok {
		n, err := strconv.Atoi(days)
		if err != nil || n < 0 {
			return 0, fmt.Errorf("invalid duration %q", s)
		}
		return time.Duration(n) * 24 * time.Hour, nil
	}
	return time.ParseDuration(s)
}

func duration(getenv func(string) string, key string, def time.Duration) (time.Duration, error) {
	v := getenv(key)
	if v == "" {
		return def, nil
	}
	d, err := ParseDuration(v)
	if err != nil || d <= 0 {
		return 0, fmt.Errorf("%s: want a positive duration such as 90s, 72h or 730d, got %q", key, v)
	}
	return d, nil
}

// milliseconds reads a duration that PostgreSQL takes in whole
// milliseconds: from 1ms to about 24 days (its limit), without a fraction
// of a millisecond; def when unset.
func milliseconds(getenv func(string) string, key string, def time.Duration) (time.Duration, error) {
	v := getenv(key)
	if v == "" {
		return def, nil
	}
	d, err := time.ParseDuration(v)
	if err != nil || d < time.Millisecond || d%time.Millisecond != 0 || d.Milliseconds() > math.MaxInt32 {
		return 0, fmt.Errorf("%s: want a duration of whole milliseconds from 1ms to %dms, such as 500ms or 10s, got %q",
			key, math.MaxInt32, v)
	}
	return d, nil
}

// positive reads a whole number from 1 to most; def when unset.
func positive(getenv func(string) string, key string, def, most int) (int, error) {
	v := getenv(key)
	if v == "" {
		return def, nil
	}
	n, err := strconv.Atoi(v)
	if err != nil || n < 1 || n > most {
		return 0, fmt.Errorf("%s: want a whole number from 1 to %d, got %q", key, most, v)
	}
	return n, nil
}

func or(v, def string) string {
	if v == "" {
		return def
	}
	return v
}

func contains(list []string, s string) bool {
	for _, v := range list {
		if v == s {
			return true
		}
	}
	return false
}

// sourcesFromEnv reads the settings of inbound sources.
func (c *Config) sourcesFromEnv(getenv func(string) string) error {
	var errs []error
	var err error
	c.PublicURL = strings.TrimRight(getenv("PUBLIC_URL"), "/")
	if c.PublicURL != "" {
		u, err := url.Parse(c.PublicURL)
		if err != nil || (u.Scheme != "http" && u.Scheme != "https") || u.Host == "" || u.RawQuery != "" || u.Fragment != "" {
			errs = append(errs, fmt.Errorf("PUBLIC_URL: want an http(s) URL such as https://signalbox.example.com, got %q", c.PublicURL))
		}
	}
	if c.SourceCacheTTL, err = duration(getenv, "SOURCE_CACHE_TTL", 5*time.Second); err != nil {
		errs = append(errs, err)
	}
	if c.DeliveryRetention, err = duration(getenv, "DELIVERY_RETENTION", 30*24*time.Hour); err != nil {
		errs = append(errs, err)
	}
	if c.DeliveryMaxPerSource, err = positive(getenv, "DELIVERY_MAX_PER_SOURCE", 10_000, 10_000_000); err != nil {
		errs = append(errs, err)
	}
	return errors.Join(errs...)
}
