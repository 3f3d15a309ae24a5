-- Campaigns and their recipients (a recipient's call_id is set when it is called).

CREATE TABLE campaigns (
    id TEXT COLLATE "C" PRIMARY KEY,
    org_id TEXT COLLATE "C" NOT NULL REFERENCES organizations (id),
    workspace_id TEXT COLLATE "C" NOT NULL REFERENCES workspaces (id),
    livemode BOOLEAN NOT NULL,
    name TEXT NOT NULL,
    agent_id TEXT COLLATE "C" NOT NULL,
    from_number TEXT NOT NULL,
    phone_number_id TEXT COLLATE "C",
    status TEXT NOT NULL,
    status_reason TEXT,
    created_at TIMESTAMPTZ NOT NULL,
    updated_at TIMESTAMPTZ NOT NULL
);
CREATE INDEX campaigns_scope ON campaigns (workspace_id, livemode, id);
CREATE INDEX campaigns_running ON campaigns (status) WHERE status = 'running';

CREATE TABLE campaign_recipients (
    campaign_id TEXT COLLATE "C" NOT NULL REFERENCES campaigns (id),
    position BIGINT NOT NULL,
    number TEXT NOT NULL,
    call_id TEXT COLLATE "C",
    PRIMARY KEY (campaign_id, position)
);
CREATE INDEX campaign_recipients_pending ON campaign_recipients (campaign_id, position) WHERE call_id IS NULL;
