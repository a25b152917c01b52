-- Flow control: an automation's limits count the enrollments it started in
-- a sliding window, overall and per contact.
CREATE INDEX enrollments_automation_started ON enrollments (automation_id, started_at);

-- Enrollments over a limit of an automation with "on_limit": "queue" wait
-- here, in order, and start when the window allows.
CREATE TABLE enrollment_queue (
    enrollment_id uuid PRIMARY KEY,
    workspace_id  uuid NOT NULL REFERENCES workspaces (id) ON DELETE CASCADE,
    automation_id uuid NOT NULL REFERENCES automations (id) ON DELETE CASCADE,
    contact_id    uuid NOT NULL REFERENCES contacts (id) ON DELETE CASCADE,
    seq           bigint GENERATED ALWAYS AS IDENTITY,
    -- The start intent: the workflow's input.
    start         jsonb NOT NULL,
    trace_parent  text,
    queued_at     timestamptz NOT NULL DEFAULT now()
);

CREATE INDEX enrollment_queue_order ON enrollment_queue (automation_id, seq);

---- create above / drop below ----

DROP TABLE enrollment_queue;
DROP INDEX enrollments_automation_started;
