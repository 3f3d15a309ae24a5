CREATE TABLE agents (
    id TEXT COLLATE "C" PRIMARY KEY,
    org_id TEXT COLLATE "C" NOT NULL REFERENCES organizations (id),
    workspace_id TEXT COLLATE "C" NOT NULL REFERENCES workspaces (id),
    livemode BOOLEAN NOT NULL,
    name TEXT NOT NULL,
    prompt TEXT,
    voice TEXT NOT NULL,
    language TEXT NOT NULL,
    greeting TEXT,
    created_at TIMESTAMPTZ NOT NULL,
    updated_at TIMESTAMPTZ NOT NULL
);
CREATE INDEX agents_scope ON agents (workspace_id, livemode, id);
