-- Rotating a workspace's webhook signing secret keeps the previous one for
-- a while: deliveries carry a signature under each, so receivers can
-- switch without losing any.
ALTER TABLE workspaces ADD COLUMN previous_webhook_secret bytea;
ALTER TABLE workspaces ADD COLUMN previous_webhook_secret_until timestamptz;

---- create above / drop below ----

ALTER TABLE workspaces DROP COLUMN previous_webhook_secret_until;
ALTER TABLE workspaces DROP COLUMN previous_webhook_secret;
