-- Ended enrollments are swept ENROLLMENT_RETENTION (400 days) after they
-- end, from the old end of this index.
CREATE INDEX enrollments_ended ON enrollments (ended_at) WHERE status <> 'active';

---- create above / drop below ----

DROP INDEX enrollments_ended;
