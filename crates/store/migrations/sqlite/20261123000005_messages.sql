-- Messages (SMS) in conversations, and notes on conversations.

CREATE TABLE messages (
    id TEXT PRIMARY KEY,
    org_id TEXT NOT NULL REFERENCES organizations (id),
    workspace_id TEXT NOT NULL REFERENCES workspaces (id),
    livemode BOOLEAN NOT NULL,
    conversation_id TEXT NOT NULL REFERENCES conversations (id),
    direction TEXT NOT NULL,
    status TEXT NOT NULL,
    from_number TEXT NOT NULL,
    to_number TEXT NOT NULL,
    body TEXT NOT NULL,
    contact_id TEXT,
    phone_number_id TEXT,
    segments BIGINT NOT NULL,
    cost BIGINT NOT NULL,
    sim_fail BOOLEAN NOT NULL,
    next_step_at TEXT,
    created_at TEXT NOT NULL,
    updated_at TEXT NOT NULL
);
CREATE INDEX messages_scope ON messages (workspace_id, livemode, id);
CREATE INDEX messages_conversation ON messages (conversation_id, id);
CREATE INDEX messages_next_step ON messages (next_step_at) WHERE next_step_at IS NOT NULL;

ALTER TABLE notes ADD COLUMN conversation_id TEXT REFERENCES conversations (id);
CREATE INDEX notes_conversation ON notes (conversation_id, id);
