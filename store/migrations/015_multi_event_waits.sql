-- A wait_for_event step may await several events ("events" with "mode"):
-- it has one row per awaited name, each claimed on its own, so the record
-- path still finds waits by (contact_id, event_name). mode is '' for a wait
-- on one event, 'any' or 'all' for a wait on several: an 'any' wait is
-- resumed by the first claim of any of its rows, an 'all' wait by the claim
-- that leaves none of its rows unclaimed. Claims on the rows of one wait
-- lock all of them, in key order, first.
ALTER TABLE enrollment_waits ADD COLUMN mode text NOT NULL DEFAULT '';
ALTER TABLE enrollment_waits DROP CONSTRAINT enrollment_waits_pkey,
    ADD PRIMARY KEY (enrollment_id, step_id, event_name);

---- create above / drop below ----

DELETE FROM enrollment_waits WHERE mode <> '';
ALTER TABLE enrollment_waits DROP CONSTRAINT enrollment_waits_pkey,
    ADD PRIMARY KEY (enrollment_id, step_id);
ALTER TABLE enrollment_waits DROP COLUMN mode;
