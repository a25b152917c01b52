-- Segments and event analytics: saved segment definitions, rollups of each
-- event name's volume and goal values by UTC hour and day, and a cache of
-- exact distinct-contact counts per chart bucket that the rollups' change
-- counters validate. New events reach the rollups in the record path's
-- usage statement (store/rollup.go); every other change to events (an
-- upsert's update, soft delete, restore, purge, a contact's deletion)
-- through the statement triggers below, in the statement that makes it.

CREATE TABLE segments (
    id           uuid PRIMARY KEY,
    workspace_id uuid NOT NULL REFERENCES workspaces (id) ON DELETE CASCADE,
    name         text NOT NULL,
    definition   jsonb NOT NULL,
    created_at   timestamptz NOT NULL DEFAULT now(),
    updated_at   timestamptz NOT NULL DEFAULT now()
);

CREATE INDEX segments_workspace ON segments (workspace_id, id DESC);

-- Live (not soft-deleted) events per name and UTC hour (hod 0-23) or whole
-- UTC day (hod -1). A write adds to one of a few shards picked per
-- statement, so concurrent writers of one busy name do not queue on one
-- row; readers sum the shards. changes only ever grows: it counts the
-- events that entered or left the row, so a reader can tell whether
-- anything in an hour changed since it last looked.
CREATE TABLE event_rollups (
    workspace_id uuid NOT NULL REFERENCES workspaces (id) ON DELETE CASCADE,
    name         text NOT NULL,
    hod          smallint NOT NULL,
    day          date NOT NULL,
    shard        smallint NOT NULL,
    events       bigint NOT NULL,
    goal_events  bigint NOT NULL,
    goal_sum     numeric NOT NULL,
    changes      bigint NOT NULL,
    PRIMARY KEY (workspace_id, name, hod, day, shard)
);

-- event_rollups_apply adds a statement's changed rows to the rollups: +1
-- for each row that became live, -1 for each that stopped being live.
-- (Inserts are added by the record path itself, without a trigger.)
CREATE FUNCTION event_rollups_apply() RETURNS trigger LANGUAGE plpgsql AS $$
DECLARE
    pick smallint := floor(random() * 4)::smallint;
BEGIN
    IF TG_OP = 'DELETE' THEN
        INSERT INTO event_rollups AS r (workspace_id, name, hod, day, shard, events, goal_events, goal_sum, changes)
        SELECT d.workspace_id, d.name, h.hod, d.day, pick, sum(d.n), sum(d.gn), sum(d.gs), sum(abs(d.n))
        FROM (SELECT workspace_id, name, (occurred_at AT TIME ZONE 'UTC')::date AS day,
                     extract(hour FROM occurred_at AT TIME ZONE 'UTC')::smallint AS hour,
                     -1 AS n, -(goal_value IS NOT NULL)::int AS gn, -coalesce(goal_value, 0) AS gs
              FROM old_rows WHERE deleted_at IS NULL) d
        CROSS JOIN LATERAL (VALUES (d.hour), (-1::smallint)) AS h(hod)
        GROUP BY 1, 2, 3, 4
        ORDER BY 1, 2, 3, 4
        ON CONFLICT (workspace_id, name, hod, day, shard) DO UPDATE SET
            events = r.events + excluded.events, goal_events = r.goal_events + excluded.goal_events,
            goal_sum = r.goal_sum + excluded.goal_sum, changes = r.changes + excluded.changes;
    ELSE
        -- An update counts only when it changes what the rollups see: the
        -- row leaving or entering the live set, its time or its goal.
        INSERT INTO event_rollups AS r (workspace_id, name, hod, day, shard, events, goal_events, goal_sum, changes)
        SELECT d.workspace_id, d.name, h.hod, d.day, pick, sum(d.n), sum(d.gn), sum(d.gs), sum(abs(d.n))
        FROM (SELECT x.workspace_id, x.name, (x.occurred_at AT TIME ZONE 'UTC')::date AS day,
                     extract(hour FROM x.occurred_at AT TIME ZONE 'UTC')::smallint AS hour,
                     x.sign AS n, x.sign * (x.goal_value IS NOT NULL)::int AS gn, x.sign * coalesce(x.goal_value, 0) AS gs
              FROM old_rows o JOIN new_rows n ON n.id = o.id
              CROSS JOIN LATERAL (VALUES
                  (o.workspace_id, o.name, o.occurred_at, o.goal_value, -1, o.deleted_at IS NULL),
                  (n.workspace_id, n.name, n.occurred_at, n.goal_value, 1, n.deleted_at IS NULL))
                  AS x(workspace_id, name, occurred_at, goal_value, sign, live)
              WHERE x.live
                AND ((o.deleted_at IS NULL) IS DISTINCT FROM (n.deleted_at IS NULL)
                     OR o.occurred_at IS DISTINCT FROM n.occurred_at
                     OR o.goal_value IS DISTINCT FROM n.goal_value)) d
        CROSS JOIN LATERAL (VALUES (d.hour), (-1::smallint)) AS h(hod)
        GROUP BY 1, 2, 3, 4
        ORDER BY 1, 2, 3, 4
        ON CONFLICT (workspace_id, name, hod, day, shard) DO UPDATE SET
            events = r.events + excluded.events, goal_events = r.goal_events + excluded.goal_events,
            goal_sum = r.goal_sum + excluded.goal_sum, changes = r.changes + excluded.changes;
    END IF;
    RETURN NULL;
END $$;

CREATE TRIGGER events_rollups_update AFTER UPDATE ON events
    REFERENCING OLD TABLE AS old_rows NEW TABLE AS new_rows FOR EACH STATEMENT EXECUTE FUNCTION event_rollups_apply();
CREATE TRIGGER events_rollups_delete AFTER DELETE ON events
    REFERENCING OLD TABLE AS old_rows FOR EACH STATEMENT EXECUTE FUNCTION event_rollups_apply();

-- Rollups of the events already recorded.
INSERT INTO event_rollups (workspace_id, name, hod, day, shard, events, goal_events, goal_sum, changes)
SELECT d.workspace_id, d.name, h.hod, d.day, 0, count(*), count(d.goal_value), coalesce(sum(d.goal_value), 0), count(*)
FROM (SELECT workspace_id, name, goal_value, (occurred_at AT TIME ZONE 'UTC')::date AS day,
             extract(hour FROM occurred_at AT TIME ZONE 'UTC')::smallint AS hour
      FROM events WHERE deleted_at IS NULL) d
CROSS JOIN LATERAL (VALUES (d.hour), (-1::smallint)) AS h(hod)
GROUP BY 1, 2, 3, 4;

-- Exact distinct-contact counts of chart buckets, computed from events and
-- kept with the sum of the rollups' change counters over the bucket's
-- hours at that moment: an entry whose sum still matches is still exact.
CREATE TABLE event_contact_buckets (
    workspace_id uuid NOT NULL REFERENCES workspaces (id) ON DELETE CASCADE,
    name         text NOT NULL,
    bucket       text NOT NULL,
    tz           text NOT NULL,
    start        timestamptz NOT NULL,
    changes      bigint NOT NULL,
    contacts     bigint NOT NULL,
    computed_at  timestamptz NOT NULL DEFAULT now(),
    PRIMARY KEY (workspace_id, name, bucket, tz, start)
);

-- Segment conditions, top contacts and charts read the (contact, time) of
-- one name's or one goal type's live events over a window: covering
-- indexes let them skip the heap (index-only scans). The name index of the
-- event log gains the columns rather than a second index being added.
DROP INDEX events_log_name;
CREATE INDEX events_log_name ON events (workspace_id, name, occurred_at DESC, id DESC)
    INCLUDE (contact_id, received_at, deleted_at);
CREATE INDEX events_goals ON events (workspace_id, goal_type, occurred_at) INCLUDE (contact_id, goal_value, received_at)
    WHERE goal_type IS NOT NULL AND deleted_at IS NULL;

---- create above / drop below ----

DROP INDEX events_goals;
DROP INDEX events_log_name;
CREATE INDEX events_log_name ON events (workspace_id, name, occurred_at DESC, id DESC);

DROP TABLE event_contact_buckets;
DROP TRIGGER events_rollups_delete ON events;
DROP TRIGGER events_rollups_update ON events;
DROP FUNCTION event_rollups_apply();
DROP TABLE event_rollups;
DROP TABLE segments;
