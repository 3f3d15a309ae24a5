-- Events, conversations, calls (with the simulator's plan), transcripts, recordings.

CREATE TABLE events (
    id TEXT COLLATE "C" PRIMARY KEY,
    org_id TEXT COLLATE "C" NOT NULL REFERENCES organizations (id),
    workspace_id TEXT COLLATE "C" NOT NULL REFERENCES workspaces (id),
    livemode BOOLEAN NOT NULL,
    event_type TEXT NOT NULL,
    data JSONB NOT NULL,
    created_at TIMESTAMPTZ NOT NULL
);
CREATE INDEX events_scope ON events (workspace_id, livemode, id);

CREATE TABLE conversations (
    id TEXT COLLATE "C" PRIMARY KEY,
    org_id TEXT COLLATE "C" NOT NULL REFERENCES organizations (id),
    workspace_id TEXT COLLATE "C" NOT NULL REFERENCES workspaces (id),
    livemode BOOLEAN NOT NULL,
    phone_number TEXT NOT NULL,
    phone_number_id TEXT COLLATE "C",
    participant TEXT NOT NULL,
    contact_id TEXT COLLATE "C",
    last_activity_at TIMESTAMPTZ NOT NULL,
    created_at TIMESTAMPTZ NOT NULL
);
CREATE UNIQUE INDEX conversations_pair ON conversations (workspace_id, livemode, phone_number, participant);
CREATE INDEX conversations_activity ON conversations (workspace_id, livemode, last_activity_at, id);

CREATE TABLE calls (
    id TEXT COLLATE "C" PRIMARY KEY,
    org_id TEXT COLLATE "C" NOT NULL REFERENCES organizations (id),
    workspace_id TEXT COLLATE "C" NOT NULL REFERENCES workspaces (id),
    livemode BOOLEAN NOT NULL,
    direction TEXT NOT NULL,
    status TEXT NOT NULL,
    end_reason TEXT,
    from_number TEXT NOT NULL,
    to_number TEXT NOT NULL,
    contact_id TEXT COLLATE "C",
    conversation_id TEXT COLLATE "C" NOT NULL REFERENCES conversations (id),
    phone_number_id TEXT COLLATE "C",
    agent_id TEXT COLLATE "C",
    campaign_id TEXT COLLATE "C",
    started_at TIMESTAMPTZ,
    answered_at TIMESTAMPTZ,
    ended_at TIMESTAMPTZ,
    duration_seconds BIGINT NOT NULL,
    cost BIGINT NOT NULL,
    metadata JSONB NOT NULL,
    sim_outcome TEXT NOT NULL,
    sim_duration BIGINT NOT NULL,
    next_step_at TIMESTAMPTZ,
    created_at TIMESTAMPTZ NOT NULL,
    updated_at TIMESTAMPTZ NOT NULL
);
CREATE INDEX calls_scope ON calls (workspace_id, livemode, id);
CREATE INDEX calls_status ON calls (workspace_id, livemode, status, id);
CREATE INDEX calls_direction ON calls (workspace_id, livemode, direction, id);
CREATE INDEX calls_contact ON calls (workspace_id, livemode, contact_id, id);
CREATE INDEX calls_agent ON calls (workspace_id, livemode, agent_id, id);
CREATE INDEX calls_campaign ON calls (workspace_id, livemode, campaign_id, id);
CREATE INDEX calls_conversation ON calls (conversation_id, id);
CREATE INDEX calls_next_step ON calls (next_step_at) WHERE next_step_at IS NOT NULL;

CREATE TABLE transcripts (
    call_id TEXT COLLATE "C" PRIMARY KEY REFERENCES calls (id),
    org_id TEXT COLLATE "C" NOT NULL,
    workspace_id TEXT COLLATE "C" NOT NULL,
    livemode BOOLEAN NOT NULL,
    segments JSONB NOT NULL,
    created_at TIMESTAMPTZ NOT NULL
);

CREATE TABLE recordings (
    id TEXT COLLATE "C" PRIMARY KEY,
    org_id TEXT COLLATE "C" NOT NULL,
    workspace_id TEXT COLLATE "C" NOT NULL,
    livemode BOOLEAN NOT NULL,
    call_id TEXT COLLATE "C" NOT NULL REFERENCES calls (id),
    duration_seconds BIGINT NOT NULL,
    created_at TIMESTAMPTZ NOT NULL
);
CREATE INDEX recordings_scope ON recordings (workspace_id, livemode, id);
CREATE INDEX recordings_call ON recordings (call_id);
