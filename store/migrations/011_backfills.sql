-- Backfills run an automation's trigger over events already recorded, as a
-- durable workflow that goes page by page; this row is its progress, its
-- cursor moved in the transaction that enrolls a page's contacts.
CREATE TABLE backfills (
    id            uuid PRIMARY KEY,
    workspace_id  uuid NOT NULL REFERENCES workspaces (id) ON DELETE CASCADE,
    automation_id uuid NOT NULL REFERENCES automations (id) ON DELETE CASCADE,
    since         timestamptz NOT NULL,
    until         timestamptz NOT NULL,
    mode          text NOT NULL,
    -- Events per second, at most.
    rate          double precision NOT NULL,
    status        text NOT NULL DEFAULT 'running' CHECK (status IN ('running', 'completed', 'cancelled', 'failed')),
    total         bigint NOT NULL,
    processed     bigint NOT NULL DEFAULT 0,
    enrolled      bigint NOT NULL DEFAULT 0,
    -- Events that enrolled nobody, by reason.
    skipped       jsonb NOT NULL DEFAULT '{}',
    cursor_at     timestamptz,
    cursor_id     uuid,
    reason        text,
    created_at    timestamptz NOT NULL DEFAULT now(),
    updated_at    timestamptz NOT NULL DEFAULT now(),
    ended_at      timestamptz
);

CREATE INDEX backfills_workspace ON backfills (workspace_id, id DESC);

-- An event enrolls a contact in an automation at most once: live, or by a
-- backfill, however often either runs.
CREATE UNIQUE INDEX enrollments_trigger_event ON enrollments (automation_id, trigger_event_id);

ALTER TABLE outbox DROP CONSTRAINT outbox_kind_check;
ALTER TABLE outbox ADD CONSTRAINT outbox_kind_check CHECK (kind IN ('start', 'signal', 'cancel', 'backfill'));

---- create above / drop below ----

ALTER TABLE outbox DROP CONSTRAINT outbox_kind_check;
ALTER TABLE outbox ADD CONSTRAINT outbox_kind_check CHECK (kind IN ('start', 'signal', 'cancel'));
DROP INDEX enrollments_trigger_event;
DROP TABLE backfills;
