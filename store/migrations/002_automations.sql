-- Automations, their enrollments, the indexes the record path reads to
-- resume and exit enrollments, and the outbox of intents for Temporal.

-- emit_event steps record events that may trigger further automations; the
-- depth stops loops.
ALTER TABLE events ADD COLUMN emit_depth smallint NOT NULL DEFAULT 0;

CREATE TABLE automations (
    id              uuid PRIMARY KEY,
    workspace_id    uuid NOT NULL REFERENCES workspaces (id) ON DELETE CASCADE,
    name            text NOT NULL,
    enabled         boolean NOT NULL DEFAULT false,
    current_version integer NOT NULL,
    created_at      timestamptz NOT NULL DEFAULT now(),
    updated_at      timestamptz NOT NULL DEFAULT now()
);

CREATE UNIQUE INDEX automations_workspace_name ON automations (workspace_id, name);

-- Each save is a new version; running enrollments keep the version they
-- started on.
CREATE TABLE automation_versions (
    automation_id uuid NOT NULL REFERENCES automations (id) ON DELETE CASCADE,
    version       integer NOT NULL,
    definition    jsonb NOT NULL,
    trigger_event text NOT NULL,
    created_at    timestamptz NOT NULL DEFAULT now(),
    PRIMARY KEY (automation_id, version)
);

CREATE TABLE enrollments (
    id               uuid PRIMARY KEY,
    workspace_id     uuid NOT NULL REFERENCES workspaces (id) ON DELETE CASCADE,
    automation_id    uuid NOT NULL REFERENCES automations (id) ON DELETE CASCADE,
    version          integer NOT NULL,
    contact_id       uuid NOT NULL REFERENCES contacts (id) ON DELETE CASCADE,
    trigger_event_id uuid NOT NULL,
    workflow_id      text NOT NULL UNIQUE,
    status           text NOT NULL DEFAULT 'active' CHECK (status IN ('active', 'completed', 'exited', 'failed')),
    current_step     text,
    exit_event_id    uuid,
    reason           text,
    started_at       timestamptz NOT NULL DEFAULT now(),
    ended_at         timestamptz
);

CREATE INDEX enrollments_workspace ON enrollments (workspace_id, id DESC);
CREATE INDEX enrollments_automation ON enrollments (automation_id, id DESC);
CREATE INDEX enrollments_contact ON enrollments (contact_id, id DESC);

-- frequency "once": at most one enrollment per automation and contact, ever.
CREATE TABLE enrollment_once (
    automation_id uuid NOT NULL REFERENCES automations (id) ON DELETE CASCADE,
    contact_id    uuid NOT NULL REFERENCES contacts (id) ON DELETE CASCADE,
    enrollment_id uuid NOT NULL,
    PRIMARY KEY (automation_id, contact_id)
);

-- What each enrollment did, step by step.
CREATE TABLE enrollment_steps (
    enrollment_id uuid NOT NULL REFERENCES enrollments (id) ON DELETE CASCADE,
    seq           integer NOT NULL,
    step_id       text NOT NULL,
    step_type     text NOT NULL,
    outcome       text NOT NULL,
    detail        jsonb NOT NULL DEFAULT '{}',
    at            timestamptz NOT NULL DEFAULT now(),
    PRIMARY KEY (enrollment_id, seq)
);

-- Enrollments waiting for an event, by contact and event name: the record
-- path reads this instead of asking Temporal.
CREATE TABLE enrollment_waits (
    enrollment_id uuid NOT NULL REFERENCES enrollments (id) ON DELETE CASCADE,
    step_id       text NOT NULL,
    workspace_id  uuid NOT NULL,
    contact_id    uuid NOT NULL,
    event_name    text NOT NULL,
    condition     text NOT NULL DEFAULT '',
    -- The enrollment's trigger event, for conditions that compare with it.
    trigger       jsonb NOT NULL,
    workflow_id   text NOT NULL,
    began_at      timestamptz NOT NULL,
    expires_at    timestamptz NOT NULL,
    -- Set by the record path when an event resumes the wait, so that each
    -- wait resumes once and the workflow learns of it even at its timeout.
    claimed_event_id uuid,
    PRIMARY KEY (enrollment_id, step_id)
);

CREATE INDEX enrollment_waits_lookup ON enrollment_waits (contact_id, event_name);

-- Event names that end an active enrollment (its version's exit_on).
CREATE TABLE enrollment_exits (
    enrollment_id uuid NOT NULL REFERENCES enrollments (id) ON DELETE CASCADE,
    contact_id    uuid NOT NULL,
    event_name    text NOT NULL,
    PRIMARY KEY (enrollment_id, event_name)
);

CREATE INDEX enrollment_exits_lookup ON enrollment_exits (contact_id, event_name);

-- Intents for Temporal, written in the transaction that records the event
-- and delivered after commit; the sweeper redelivers what is left.
CREATE TABLE outbox (
    id           uuid PRIMARY KEY,
    workspace_id uuid NOT NULL,
    workflow_id  text NOT NULL,
    kind         text NOT NULL CHECK (kind IN ('start', 'signal', 'cancel')),
    payload      jsonb NOT NULL,
    created_at   timestamptz NOT NULL DEFAULT now(),
    attempts     integer NOT NULL DEFAULT 0,
    lease_until  timestamptz,
    last_error   text,
    delivered_at timestamptz,
    outcome      text,
    -- W3C traceparent of the request that recorded the event.
    trace_parent text
);

CREATE INDEX outbox_pending ON outbox (id) WHERE delivered_at IS NULL;
CREATE INDEX outbox_workflow_pending ON outbox (workflow_id, id) WHERE delivered_at IS NULL;

-- Side effects that cannot be made idempotent downstream (an email sent
-- over SMTP) are recorded here once done, per workflow and step.
CREATE TABLE step_effects (
    workflow_id text NOT NULL,
    step_id     text NOT NULL,
    result      jsonb NOT NULL DEFAULT '{}',
    done_at     timestamptz NOT NULL DEFAULT now(),
    PRIMARY KEY (workflow_id, step_id)
);

---- create above / drop below ----

DROP TABLE step_effects;
DROP TABLE outbox;
DROP TABLE enrollment_exits;
DROP TABLE enrollment_waits;
DROP TABLE enrollment_steps;
DROP TABLE enrollment_once;
DROP TABLE enrollments;
DROP TABLE automation_versions;
DROP TABLE automations;
ALTER TABLE events DROP COLUMN emit_depth;
