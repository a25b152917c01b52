-- The record path: workspaces and their keys, contacts, the event timeline and
-- the usage counters that meter it.

CREATE TABLE workspaces (
    id             uuid PRIMARY KEY,
    name           text NOT NULL CHECK (length(name) BETWEEN 1 AND 200),
    plan           text NOT NULL CHECK (plan IN ('starter', 'growth', 'scale', 'enterprise')),
    -- Signs outbound webhooks (Standard Webhooks); never leaves the server.
    webhook_secret bytea NOT NULL,
    created_at     timestamptz NOT NULL DEFAULT now()
);

CREATE TABLE api_keys (
    id           uuid PRIMARY KEY,
    workspace_id uuid NOT NULL REFERENCES workspaces (id) ON DELETE CASCADE,
    -- The visible part of the key ("sbk_" and 8 characters), used to find the
    -- row and to name the key in logs and on revocation.
    prefix       text NOT NULL UNIQUE,
    -- SHA-256 of the whole key; the key itself is never stored.
    hash         bytea NOT NULL,
    created_at   timestamptz NOT NULL DEFAULT now(),
    revoked_at   timestamptz
);

CREATE INDEX api_keys_workspace ON api_keys (workspace_id);

CREATE TABLE contacts (
    id           uuid PRIMARY KEY,
    workspace_id uuid NOT NULL REFERENCES workspaces (id) ON DELETE CASCADE,
    -- Always stored lower-cased, so the unique index is case-insensitive.
    email        text NOT NULL CHECK (email = lower(email)),
    first_name   text,
    last_name    text,
    properties   jsonb NOT NULL DEFAULT '{}' CHECK (jsonb_typeof(properties) = 'object'),
    created_at   timestamptz NOT NULL DEFAULT now(),
    updated_at   timestamptz NOT NULL DEFAULT now()
);

CREATE UNIQUE INDEX contacts_workspace_email ON contacts (workspace_id, email);
CREATE INDEX contacts_workspace_id ON contacts (workspace_id, id DESC);

CREATE TABLE events (
    id           uuid PRIMARY KEY,
    workspace_id uuid NOT NULL,
    contact_id   uuid NOT NULL REFERENCES contacts (id) ON DELETE CASCADE,
    name         text NOT NULL,
    properties   jsonb NOT NULL DEFAULT '{}',
    external_id  text,
    goal_type    text CHECK (goal_type IN ('purchase', 'subscription', 'lead', 'signup', 'booking', 'trial', 'other')),
    goal_value   numeric(20, 4),
    occurred_at  timestamptz NOT NULL,
    received_at  timestamptz NOT NULL,
    deleted_at   timestamptz
);

-- external_id makes ingest an idempotent upsert, scoped by workspace so one
-- tenant can never suppress another's events.
CREATE UNIQUE INDEX events_external_id ON events (workspace_id, external_id) WHERE external_id IS NOT NULL;
-- The event log and its name filter, newest first with keyset pagination.
CREATE INDEX events_log ON events (workspace_id, occurred_at DESC, id DESC);
CREATE INDEX events_log_name ON events (workspace_id, name, occurred_at DESC, id DESC);
-- A contact's timeline.
CREATE INDEX events_timeline ON events (contact_id, occurred_at DESC, id DESC);
-- The retention sweeper deletes from the old end of this index in bounded batches.
CREATE INDEX events_received ON events (received_at);

-- Tracked events per workspace per calendar month (UTC). Each write adds to
-- one of several shards picked at random, so concurrent requests of one
-- workspace do not queue on a single hot row; reads sum the shards.
CREATE TABLE usage_counters (
    workspace_id uuid NOT NULL REFERENCES workspaces (id) ON DELETE CASCADE,
    period       date NOT NULL,
    shard        smallint NOT NULL,
    tracked      bigint NOT NULL DEFAULT 0,
    PRIMARY KEY (workspace_id, period, shard)
);

---- create above / drop below ----

DROP TABLE usage_counters;
DROP TABLE events;
DROP TABLE contacts;
DROP TABLE api_keys;
DROP TABLE workspaces;
