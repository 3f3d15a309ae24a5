-- Usage analytics read an hourly rollup kept current as calls and messages change,
-- instead of scanning every call (issue 13: one tenant's analytics stalled the server).
-- `hour` is the UTC hour of the call's or message's creation, 'YYYY-MM-DDTHH'; absent
-- agents and numbers are ''. The partial hours at the edges of a requested range are
-- read from the tables themselves, through the created_at indexes.

CREATE TABLE usage_rollup (
    org_id TEXT NOT NULL,
    workspace_id TEXT NOT NULL,
    livemode BOOLEAN NOT NULL,
    hour TEXT NOT NULL,
    direction TEXT NOT NULL,
    agent_id TEXT NOT NULL,
    phone_number_id TEXT NOT NULL,
    calls BIGINT NOT NULL DEFAULT 0,
    answered BIGINT NOT NULL DEFAULT 0,
    missed BIGINT NOT NULL DEFAULT 0,
    minutes BIGINT NOT NULL DEFAULT 0,
    messages_in BIGINT NOT NULL DEFAULT 0,
    messages_out BIGINT NOT NULL DEFAULT 0,
    cost BIGINT NOT NULL DEFAULT 0,
    PRIMARY KEY (org_id, workspace_id, livemode, hour, direction, agent_id, phone_number_id)
);

CREATE INDEX calls_created ON calls (workspace_id, livemode, created_at);
CREATE INDEX messages_created ON messages (workspace_id, livemode, created_at);

INSERT INTO usage_rollup (org_id, workspace_id, livemode, hour, direction, agent_id,
    phone_number_id, calls, answered, missed, minutes, cost)
SELECT org_id, workspace_id, livemode, substr(created_at, 1, 13), direction,
    COALESCE(agent_id, ''), COALESCE(phone_number_id, ''), COUNT(*),
    SUM(CASE WHEN answered_at IS NOT NULL THEN 1 ELSE 0 END),
    SUM(CASE WHEN status IN ('busy', 'no_answer', 'failed', 'canceled') THEN 1 ELSE 0 END),
    SUM((duration_seconds + 59) / 60), SUM(cost)
FROM calls GROUP BY 1, 2, 3, 4, 5, 6, 7;

INSERT INTO usage_rollup (org_id, workspace_id, livemode, hour, direction, agent_id,
    phone_number_id, messages_in, messages_out, cost)
SELECT org_id, workspace_id, livemode, substr(created_at, 1, 13), direction, '',
    COALESCE(phone_number_id, ''),
    SUM(CASE WHEN direction = 'inbound' THEN 1 ELSE 0 END),
    SUM(CASE WHEN direction = 'outbound' THEN 1 ELSE 0 END), SUM(cost)
FROM messages WHERE true GROUP BY 1, 2, 3, 4, 5, 6, 7
ON CONFLICT (org_id, workspace_id, livemode, hour, direction, agent_id, phone_number_id)
DO UPDATE SET messages_in = usage_rollup.messages_in + excluded.messages_in,
    messages_out = usage_rollup.messages_out + excluded.messages_out,
    cost = usage_rollup.cost + excluded.cost;
