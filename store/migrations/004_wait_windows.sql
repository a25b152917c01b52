-- A wait's window opens where the enrollment logically reached the step
-- (the trigger's receipt, or the end of the delay or wait before it), on
-- PostgreSQL's clock. Events recorded in one transaction share a receipt
-- time; among them, only those after after_event_id (in id order, which is
-- their order in the request) fall inside a window that opens at that
-- event.
ALTER TABLE enrollment_waits ADD COLUMN after_event_id uuid;

---- create above / drop below ----

ALTER TABLE enrollment_waits DROP COLUMN after_event_id;
