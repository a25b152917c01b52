-- Intents Temporal refused for good (invalid argument, unknown namespace,
-- a payload over its limit) are settled as failed rather than retried
-- forever; they no longer hold back the intents queued behind them.
ALTER TABLE outbox ADD COLUMN failed_at timestamptz;

DROP INDEX outbox_pending;
DROP INDEX outbox_workflow_pending;
CREATE INDEX outbox_pending ON outbox (seq) WHERE delivered_at IS NULL AND failed_at IS NULL;
CREATE INDEX outbox_workflow_pending ON outbox (workflow_id, seq) WHERE delivered_at IS NULL AND failed_at IS NULL;

-- The reconciler checks each active enrollment against its workflow in
-- Temporal now and then; checked_at is when it last did (or when the
-- enrollment started), and a claim moves it on, as a lease.
ALTER TABLE enrollments ADD COLUMN checked_at timestamptz NOT NULL DEFAULT now();
CREATE INDEX enrollments_unchecked ON enrollments (checked_at) WHERE status = 'active';

---- create above / drop below ----

DROP INDEX enrollments_unchecked;
ALTER TABLE enrollments DROP COLUMN checked_at;
DROP INDEX outbox_pending;
DROP INDEX outbox_workflow_pending;
CREATE INDEX outbox_pending ON outbox (seq) WHERE delivered_at IS NULL;
CREATE INDEX outbox_workflow_pending ON outbox (workflow_id, seq) WHERE delivered_at IS NULL;
ALTER TABLE outbox DROP COLUMN failed_at;
