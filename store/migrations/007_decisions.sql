-- What the record path decided for each event and each automation whose
-- trigger, wait or exit names it: enrolled, condition_false (with the
-- values read), once_already, resumed, exited, ... A log kept
-- DECISION_RETENTION (30 days) and swept from the old end; no foreign keys,
-- so it outlives the enrollments and events it names.
CREATE TABLE decisions (
    id            uuid PRIMARY KEY,
    workspace_id  uuid NOT NULL,
    event_id      uuid NOT NULL,
    automation_id uuid NOT NULL,
    version       integer NOT NULL,
    kind          text NOT NULL CHECK (kind IN ('trigger', 'wait', 'exit')),
    outcome       text NOT NULL,
    enrollment_id uuid,
    detail        jsonb NOT NULL DEFAULT '{}',
    -- When the event was received.
    at            timestamptz NOT NULL
);

CREATE INDEX decisions_event ON decisions (event_id);
CREATE INDEX decisions_automation ON decisions (automation_id, id DESC);
CREATE INDEX decisions_at ON decisions (at);

---- create above / drop below ----

DROP TABLE decisions;
