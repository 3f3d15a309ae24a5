-- Foundation: tenancy, API keys and their usage, contacts and notes (PostgreSQL).
-- Ids use COLLATE "C" so they sort by bytes, as cursor pagination expects.

CREATE TABLE organizations (
    id TEXT COLLATE "C" PRIMARY KEY,
    name TEXT NOT NULL,
    default_workspace_id TEXT COLLATE "C" NOT NULL,
    created_at TIMESTAMPTZ NOT NULL
);

CREATE TABLE workspaces (
    id TEXT COLLATE "C" PRIMARY KEY,
    org_id TEXT COLLATE "C" NOT NULL REFERENCES organizations (id),
    name TEXT NOT NULL,
    created_at TIMESTAMPTZ NOT NULL
);
CREATE INDEX workspaces_org ON workspaces (org_id, id);

CREATE TABLE settings (
    name TEXT PRIMARY KEY,
    value TEXT NOT NULL
);

CREATE TABLE api_keys (
    id TEXT COLLATE "C" PRIMARY KEY,
    org_id TEXT COLLATE "C" NOT NULL REFERENCES organizations (id),
    workspace_id TEXT COLLATE "C" REFERENCES workspaces (id),
    name TEXT NOT NULL,
    mode TEXT NOT NULL CHECK (mode IN ('live', 'test')),
    permissions TEXT NOT NULL,
    token_digest BYTEA NOT NULL UNIQUE,
    prefix TEXT NOT NULL,
    last_four TEXT NOT NULL,
    created_at TIMESTAMPTZ NOT NULL,
    created_by TEXT NOT NULL,
    expires_at TIMESTAMPTZ,
    revoked_at TIMESTAMPTZ,
    rotated_from TEXT COLLATE "C",
    last_used_at TIMESTAMPTZ,
    last_ip TEXT
);
CREATE INDEX api_keys_org ON api_keys (org_id, id);

CREATE TABLE api_key_usage (
    key_id TEXT COLLATE "C" NOT NULL REFERENCES api_keys (id),
    day BIGINT NOT NULL,
    count BIGINT NOT NULL,
    PRIMARY KEY (key_id, day)
);

CREATE TABLE api_key_changes (
    seq BIGINT GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    key_id TEXT COLLATE "C" NOT NULL,
    changed_at TIMESTAMPTZ NOT NULL
);
CREATE INDEX api_key_changes_at ON api_key_changes (changed_at);

CREATE TABLE contacts (
    id TEXT COLLATE "C" PRIMARY KEY,
    org_id TEXT COLLATE "C" NOT NULL REFERENCES organizations (id),
    workspace_id TEXT COLLATE "C" NOT NULL REFERENCES workspaces (id),
    livemode BOOLEAN NOT NULL,
    first_name TEXT,
    last_name TEXT,
    phone_number TEXT,
    email TEXT,
    company TEXT,
    job_title TEXT,
    external_id TEXT,
    custom_fields JSONB NOT NULL DEFAULT '{}',
    created_at TIMESTAMPTZ NOT NULL,
    updated_at TIMESTAMPTZ NOT NULL
);
CREATE INDEX contacts_scope ON contacts (workspace_id, livemode, id);
CREATE UNIQUE INDEX contacts_external_id ON contacts (workspace_id, livemode, external_id)
    WHERE external_id IS NOT NULL;

CREATE TABLE notes (
    id TEXT COLLATE "C" PRIMARY KEY,
    org_id TEXT COLLATE "C" NOT NULL REFERENCES organizations (id),
    workspace_id TEXT COLLATE "C" NOT NULL REFERENCES workspaces (id),
    livemode BOOLEAN NOT NULL,
    contact_id TEXT COLLATE "C" REFERENCES contacts (id) ON DELETE CASCADE,
    content TEXT NOT NULL,
    created_by TEXT NOT NULL,
    created_at TIMESTAMPTZ NOT NULL
);
CREATE INDEX notes_contact ON notes (contact_id, id);
