-- The distinct contacts of a week or month chart's current bucket from its
-- start up to a recent whole UTC hour (stop), kept like
-- event_contact_buckets' entries with the sum of the rollups' change
-- counters over those hours: a chart then reads the bucket's events only
-- from stop on, adding those whose contact has no event before it. One row
-- per chart (name, interval, zone) and bucket; a later stop replaces it.
CREATE TABLE event_contact_partials (
    workspace_id uuid NOT NULL REFERENCES workspaces (id) ON DELETE CASCADE,
    name         text NOT NULL,
    bucket       text NOT NULL,
    tz           text NOT NULL,
    start        timestamptz NOT NULL,
    stop         timestamptz NOT NULL,
    changes      bigint NOT NULL,
    contacts     bigint NOT NULL,
    computed_at  timestamptz NOT NULL DEFAULT now(),
    PRIMARY KEY (workspace_id, name, bucket, tz, start)
);

---- create above / drop below ----

DROP TABLE event_contact_partials;
