-- Order each workflow's intents by a sequence rather than by their UUIDv7
-- ids: ids come from the clocks of several API processes, while a later
-- intent for a workflow (a cancel) is always written by a transaction that
-- began after the earlier one (its start) committed, so its sequence value
-- is larger whatever the clocks say.
ALTER TABLE outbox ADD COLUMN seq bigint GENERATED ALWAYS AS IDENTITY;

DROP INDEX outbox_pending;
DROP INDEX outbox_workflow_pending;
CREATE INDEX outbox_pending ON outbox (seq) WHERE delivered_at IS NULL;
CREATE INDEX outbox_workflow_pending ON outbox (workflow_id, seq) WHERE delivered_at IS NULL;

---- create above / drop below ----

DROP INDEX outbox_pending;
DROP INDEX outbox_workflow_pending;
CREATE INDEX outbox_pending ON outbox (id) WHERE delivered_at IS NULL;
CREATE INDEX outbox_workflow_pending ON outbox (workflow_id, id) WHERE delivered_at IS NULL;
ALTER TABLE outbox DROP COLUMN seq;
