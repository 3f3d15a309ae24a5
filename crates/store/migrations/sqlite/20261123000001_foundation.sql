-- Foundation: tenancy, API keys and their usage, contacts and notes (SQLite).

CREATE TABLE organizations (
    id TEXT PRIMARY KEY,
    name TEXT NOT NULL,
    default_workspace_id TEXT NOT NULL,
    created_at TEXT NOT NULL
);

CREATE TABLE workspaces (
    id TEXT PRIMARY KEY,
    org_id TEXT NOT NULL REFERENCES organizations (id),
    name TEXT NOT NULL,
    created_at TEXT NOT NULL
);
CREATE INDEX workspaces_org ON workspaces (org_id, id);

CREATE TABLE settings (
    name TEXT PRIMARY KEY,
    value TEXT NOT NULL
);

CREATE TABLE api_keys (
    id TEXT PRIMARY KEY,
    org_id TEXT NOT NULL REFERENCES organizations (id),
    workspace_id TEXT REFERENCES workspaces (id),
    name TEXT NOT NULL,
    mode TEXT NOT NULL CHECK (mode IN ('live', 'test')),
    permissions TEXT NOT NULL,
    token_digest BLOB NOT NULL UNIQUE,
    prefix TEXT NOT NULL,
    last_four TEXT NOT NULL,
    created_at TEXT NOT NULL,
    created_by TEXT NOT NULL,
    expires_at TEXT,
    revoked_at TEXT,
    rotated_from TEXT,
    last_used_at TEXT,
    last_ip TEXT
);
CREATE INDEX api_keys_org ON api_keys (org_id, id);

CREATE TABLE api_key_usage (
    key_id TEXT NOT NULL REFERENCES api_keys (id),
    day BIGINT NOT NULL,
    count BIGINT NOT NULL,
    PRIMARY KEY (key_id, day)
);

CREATE TABLE api_key_changes (
    seq INTEGER PRIMARY KEY AUTOINCREMENT,
    key_id TEXT NOT NULL,
    changed_at TEXT NOT NULL
);
CREATE INDEX api_key_changes_at ON api_key_changes (changed_at);

CREATE TABLE contacts (
    id TEXT PRIMARY KEY,
    org_id TEXT NOT NULL REFERENCES organizations (id),
    workspace_id TEXT NOT NULL REFERENCES workspaces (id),
    livemode BOOLEAN NOT NULL,
    first_name TEXT,
    last_name TEXT,
    phone_number TEXT,
    email TEXT,
    company TEXT,
    job_title TEXT,
    external_id TEXT,
    custom_fields TEXT NOT NULL DEFAULT '{}',
    created_at TEXT NOT NULL,
    updated_at TEXT NOT NULL
);
CREATE INDEX contacts_scope ON contacts (workspace_id, livemode, id);
CREATE UNIQUE INDEX contacts_external_id ON contacts (workspace_id, livemode, external_id)
    WHERE external_id IS NOT NULL;

CREATE TABLE notes (
    id TEXT PRIMARY KEY,
    org_id TEXT NOT NULL REFERENCES organizations (id),
    workspace_id TEXT NOT NULL REFERENCES workspaces (id),
    livemode BOOLEAN NOT NULL,
    contact_id TEXT REFERENCES contacts (id) ON DELETE CASCADE,
    content TEXT NOT NULL,
    created_by TEXT NOT NULL,
    created_at TEXT NOT NULL
);
CREATE INDEX notes_contact ON notes (contact_id, id);
