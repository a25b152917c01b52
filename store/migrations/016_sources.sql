-- Inbound sources: a URL per source that takes a third party's webhooks
-- (Stripe, a billing system) and maps each payload to an event. The
-- source's definition (paths, fixed name, verification and its secret) is
-- one document, read by the API and cached per process; the token is the
-- last segment of the URL and the only credential of /in/{token}.
CREATE TABLE sources (
    id           uuid PRIMARY KEY,
    workspace_id uuid NOT NULL REFERENCES workspaces (id) ON DELETE CASCADE,
    name         text NOT NULL,
    token        text NOT NULL,
    enabled      boolean NOT NULL DEFAULT true,
    definition   jsonb NOT NULL,
    created_at   timestamptz NOT NULL DEFAULT now(),
    updated_at   timestamptz NOT NULL DEFAULT now(),
    -- A deleted source answers 404 at once; the sweeper deletes its
    -- deliveries in batches, then the row.
    deleted_at   timestamptz
);

CREATE UNIQUE INDEX sources_token ON sources (token);
CREATE INDEX sources_workspace ON sources (workspace_id, id DESC) WHERE deleted_at IS NULL;

-- Every payload a source received, with what became of it. Written in the
-- record transaction of its event, by the statement that counts usage, so
-- a delivery costs no statement and no round trip of its own. One index
-- only (the key, which also serves the newest-first listing and the
-- sweeper), and no foreign key: each would be checked, or locked, by every
-- delivery of a busy source.
CREATE TABLE source_deliveries (
    source_id   uuid NOT NULL,
    id          uuid NOT NULL,
    received_at timestamptz NOT NULL,
    status      text NOT NULL CHECK (status IN ('accepted', 'skipped', 'rejected')),
    reason      text,
    event_id    uuid,
    duplicate   boolean NOT NULL DEFAULT false,
    replay_of   uuid,
    -- The body exactly as received (which may not be JSON at all).
    payload     bytea NOT NULL,
    PRIMARY KEY (source_id, id)
);

---- create above / drop below ----

DROP TABLE source_deliveries;
DROP TABLE sources;
