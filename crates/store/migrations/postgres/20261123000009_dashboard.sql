-- Dashboard: users of an organization, their sessions, the first-run setup link,
-- failed sign-ins (throttling) and the audit log (PostgreSQL).
-- Session and setup tokens are stored only as keyed digests.

CREATE TABLE users (
    id TEXT COLLATE "C" PRIMARY KEY,
    org_id TEXT COLLATE "C" NOT NULL REFERENCES organizations (id),
    email TEXT NOT NULL UNIQUE,
    password_hash TEXT NOT NULL,
    role TEXT NOT NULL CHECK (role IN ('owner', 'admin', 'member')),
    created_at TIMESTAMPTZ NOT NULL
);
CREATE INDEX users_org ON users (org_id, id);

CREATE TABLE user_sessions (
    token_digest BYTEA PRIMARY KEY,
    user_id TEXT COLLATE "C" NOT NULL REFERENCES users (id),
    created_at TIMESTAMPTZ NOT NULL,
    expires_at TIMESTAMPTZ NOT NULL,
    -- Where the person is looking: a workspace of their organization, live or test.
    workspace_id TEXT COLLATE "C",
    mode TEXT NOT NULL DEFAULT 'live' CHECK (mode IN ('live', 'test'))
);
CREATE INDEX user_sessions_user ON user_sessions (user_id);

CREATE TABLE setup_tokens (
    token_digest BYTEA PRIMARY KEY,
    created_at TIMESTAMPTZ NOT NULL,
    expires_at TIMESTAMPTZ NOT NULL,
    used_at TIMESTAMPTZ
);

CREATE TABLE login_failures (
    id TEXT COLLATE "C" PRIMARY KEY,
    email TEXT NOT NULL,
    ip TEXT NOT NULL,
    at TIMESTAMPTZ NOT NULL
);
CREATE INDEX login_failures_by ON login_failures (email, ip, at);
CREATE INDEX login_failures_by_email ON login_failures (email, at);
CREATE INDEX login_failures_by_ip ON login_failures (ip, at);
CREATE INDEX login_failures_at ON login_failures (at);

CREATE TABLE audit_log (
    id TEXT COLLATE "C" PRIMARY KEY,
    org_id TEXT COLLATE "C" NOT NULL REFERENCES organizations (id),
    actor TEXT NOT NULL,
    action TEXT NOT NULL,
    target TEXT NOT NULL,
    detail TEXT NOT NULL,
    ip TEXT,
    at TIMESTAMPTZ NOT NULL
);
CREATE INDEX audit_log_org ON audit_log (org_id, id);
