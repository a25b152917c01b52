-- Control: an enrollment ended on request keeps the reason given; an
-- automation deleted through the API is archived (no new enrollments; its
-- name is free again), not removed with its history.
ALTER TABLE enrollments ADD COLUMN exit_reason text;
ALTER TABLE automations ADD COLUMN archived_at timestamptz;

DROP INDEX automations_workspace_name;
CREATE UNIQUE INDEX automations_workspace_name ON automations (workspace_id, name) WHERE archived_at IS NULL;

---- create above / drop below ----

DROP INDEX automations_workspace_name;
CREATE UNIQUE INDEX automations_workspace_name ON automations (workspace_id, name);
ALTER TABLE automations DROP COLUMN archived_at;
ALTER TABLE enrollments DROP COLUMN exit_reason;
