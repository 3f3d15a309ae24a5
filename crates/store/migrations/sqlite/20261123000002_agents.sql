CREATE TABLE agents (
    id TEXT PRIMARY KEY,
    org_id TEXT NOT NULL REFERENCES organizations (id),
    workspace_id TEXT NOT NULL REFERENCES workspaces (id),
    livemode BOOLEAN NOT NULL,
    name TEXT NOT NULL,
    prompt TEXT,
    voice TEXT NOT NULL,
    language TEXT NOT NULL,
    greeting TEXT,
    created_at TEXT NOT NULL,
    updated_at TEXT NOT NULL
);
CREATE INDEX agents_scope ON agents (workspace_id, livemode, id);
