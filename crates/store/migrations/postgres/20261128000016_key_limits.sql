-- Per-key limits on calls, messages and money (issue 15, part 2).
-- A key's limits and an organization's defaults for new live keys: JSON text, NULL = none.
ALTER TABLE api_keys ADD COLUMN limits TEXT;
ALTER TABLE organizations ADD COLUMN default_key_limits TEXT;
-- Which key placed a call or sent a message (a campaign's calls: the key that created it).
ALTER TABLE calls ADD COLUMN api_key_id TEXT;
ALTER TABLE messages ADD COLUMN api_key_id TEXT;
ALTER TABLE campaigns ADD COLUMN api_key_id TEXT;
-- Today's calls and messages of a key, and its calls not yet ended.
CREATE INDEX calls_api_key_day ON calls (api_key_id, created_at);
CREATE INDEX calls_api_key_active ON calls (api_key_id)
    WHERE status IN ('queued', 'ringing', 'in_progress');
CREATE INDEX messages_api_key_day ON messages (api_key_id, created_at);
