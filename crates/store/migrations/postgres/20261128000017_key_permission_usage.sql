-- Requests per key, per day and per permission exercised (least privilege from usage):
-- added to in batches by each node's usage flush, like api_key_usage.
CREATE TABLE api_key_permission_usage (
    key_id TEXT COLLATE "C" NOT NULL REFERENCES api_keys (id),
    day BIGINT NOT NULL,
    permission TEXT COLLATE "C" NOT NULL,
    count BIGINT NOT NULL,
    last_used_at TIMESTAMPTZ NOT NULL,
    PRIMARY KEY (key_id, day, permission)
);
