-- Idempotency-Key on ingest: the first answer to a request, kept per
-- workspace and key, is the answer to every retry of it with the same body.
-- The row is written in the transaction that records the request, so the
-- answer and the events commit together or not at all.
CREATE TABLE idempotency_keys (
    workspace_id uuid NOT NULL REFERENCES workspaces (id) ON DELETE CASCADE,
    key          text NOT NULL,
    -- SHA-256 of the request body: the same key with another body is refused.
    request_hash bytea NOT NULL,
    -- The recorded outcome of the first request.
    outcome      jsonb,
    created_at   timestamptz NOT NULL DEFAULT now(),
    PRIMARY KEY (workspace_id, key)
);

-- The sweeper deletes expired keys from the old end.
CREATE INDEX idempotency_keys_created ON idempotency_keys (created_at);

---- create above / drop below ----

DROP TABLE idempotency_keys;
