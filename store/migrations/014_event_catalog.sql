-- The event catalog: declared event types with an optional JSON Schema
-- contract, what every event was checked against, and exact per-name counts
-- kept on the record path without a hot row.

-- What happens to an event whose name is not declared: stored (accept) or
-- refused with 422 undeclared_event (reject).
ALTER TABLE workspaces ADD COLUMN undeclared_events text NOT NULL DEFAULT 'accept'
    CHECK (undeclared_events IN ('accept', 'reject'));

-- A declared name. The name never changes; deleting the row removes the
-- declaration, never the events.
CREATE TABLE event_types (
    workspace_id   uuid NOT NULL REFERENCES workspaces (id) ON DELETE CASCADE,
    name           text NOT NULL,
    description    text NOT NULL DEFAULT '' CHECK (length(description) <= 2000),
    -- flag: a violating event is stored with its schema_errors; enforce: it
    -- is refused.
    schema_mode    text NOT NULL DEFAULT 'flag' CHECK (schema_mode IN ('flag', 'enforce')),
    -- The version in event_type_schemas in force; NULL until a schema is
    -- first set. The schema of that version may be NULL (removed).
    schema_version integer,
    created_at     timestamptz NOT NULL DEFAULT now(),
    updated_at     timestamptz NOT NULL DEFAULT now(),
    PRIMARY KEY (workspace_id, name)
);

-- Every schema a name has had, by version. Rows outlive the declaration, so
-- a name deleted and declared again goes on from its last version and an
-- event's schema_version always names one schema.
CREATE TABLE event_type_schemas (
    workspace_id uuid NOT NULL REFERENCES workspaces (id) ON DELETE CASCADE,
    name         text NOT NULL,
    version      integer NOT NULL CHECK (version >= 1),
    -- NULL when this version removed the schema.
    schema       jsonb,
    created_at   timestamptz NOT NULL DEFAULT now(),
    PRIMARY KEY (workspace_id, name, version)
);

-- The version of its type's schema an event was checked against (NULL when
-- the type had none) and, when it did not conform (flag mode), why.
ALTER TABLE events ADD COLUMN schema_version integer;
ALTER TABLE events ADD COLUMN schema_errors jsonb;
-- GET /v1/events?schema_valid=false: violations are rare, so a partial index
-- keeps finding them cheap without costing conforming events anything.
CREATE INDEX events_schema_errors ON events (workspace_id, occurred_at DESC, id DESC) WHERE schema_errors IS NOT NULL;

-- Unexpired, undeleted events per workspace, name and hour of receipt (UTC),
-- spread over 16 shards: a record transaction adds its new events to one
-- shard picked at random, so concurrent requests of one workspace never
-- queue on one row. Soft delete, restore, retention purge and contact
-- deletion add -1/+1 to the event's own hour in the statement that makes
-- the change. Rows older than 26 hours are folded by the sweeper into one
-- row per name at hour 0001-01-01 (shard 0), so a name costs at most about
-- 27 × 16 + 1 rows however old it is.
CREATE TABLE event_name_counts (
    workspace_id uuid NOT NULL REFERENCES workspaces (id) ON DELETE CASCADE,
    name         text NOT NULL,
    hour         timestamptz NOT NULL,
    shard        smallint NOT NULL,
    count        bigint NOT NULL,
    -- The first and last receipt time the row has seen (first_seen_at and
    -- last_seen_at of the name).
    first_at     timestamptz NOT NULL,
    last_at      timestamptz NOT NULL,
    PRIMARY KEY (workspace_id, name, hour, shard)
);
CREATE INDEX event_name_counts_hour ON event_name_counts (hour);

-- Count what is already there, so the catalog is exact from the start.
INSERT INTO event_name_counts (workspace_id, name, hour, shard, count, first_at, last_at)
SELECT workspace_id, name, date_trunc('hour', received_at, 'UTC'), 0,
       count(*) FILTER (WHERE deleted_at IS NULL), min(received_at), max(received_at)
FROM events GROUP BY 1, 2, 3;

---- create above / drop below ----

DROP TABLE event_name_counts;
DROP INDEX events_schema_errors;
ALTER TABLE events DROP COLUMN schema_errors;
ALTER TABLE events DROP COLUMN schema_version;
DROP TABLE event_type_schemas;
DROP TABLE event_types;
ALTER TABLE workspaces DROP COLUMN undeclared_events;
