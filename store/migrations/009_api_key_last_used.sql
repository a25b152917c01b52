-- When each API key last authenticated a request, for `signalbox apikey
-- list`: written at most once a minute per key and API replica.
ALTER TABLE api_keys ADD COLUMN last_used_at timestamptz;

---- create above / drop below ----

ALTER TABLE api_keys DROP COLUMN last_used_at;
