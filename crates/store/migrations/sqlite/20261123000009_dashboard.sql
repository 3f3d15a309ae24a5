-- Dashboard: users of an organization, their sessions, the first-run setup link,
-- failed sign-ins (throttling) and the audit log (SQLite).
-- Session and setup tokens are stored only as keyed digests.

CREATE TABLE users (
    id TEXT PRIMARY KEY,
    org_id TEXT NOT NULL REFERENCES organizations (id),
    email TEXT NOT NULL UNIQUE,
    password_hash TEXT NOT NULL,
    role TEXT NOT NULL CHECK (role IN ('owner', 'admin', 'member')),
    created_at TEXT NOT NULL
);
CREATE INDEX users_org ON users (org_id, id);

CREATE TABLE user_sessions (
    token_digest BLOB PRIMARY KEY,
    user_id TEXT NOT NULL REFERENCES users (id),
    created_at TEXT NOT NULL,
    expires_at TEXT NOT NULL,
    -- Where the person is looking: a workspace of their organization, live or test.
    workspace_id TEXT,
    mode TEXT NOT NULL DEFAULT 'live' CHECK (mode IN ('live', 'test'))
);
CREATE INDEX user_sessions_user ON user_sessions (user_id);

CREATE TABLE setup_tokens (
    token_digest BLOB PRIMARY KEY,
    created_at TEXT NOT NULL,
    expires_at TEXT NOT NULL,
    used_at TEXT
);

CREATE TABLE login_failures (
    id TEXT PRIMARY KEY,
    email TEXT NOT NULL,
    ip TEXT NOT NULL,
    at TEXT NOT NULL
);
CREATE INDEX login_failures_by ON login_failures (email, ip, at);
CREATE INDEX login_failures_by_email ON login_failures (email, at);
CREATE INDEX login_failures_by_ip ON login_failures (ip, at);
CREATE INDEX login_failures_at ON login_failures (at);

CREATE TABLE audit_log (
    id TEXT PRIMARY KEY,
    org_id TEXT NOT NULL REFERENCES organizations (id),
    actor TEXT NOT NULL,
    action TEXT NOT NULL,
    target TEXT NOT NULL,
    detail TEXT NOT NULL,
    ip TEXT,
    at TEXT NOT NULL
);
CREATE INDEX audit_log_org ON audit_log (org_id, id);
