-- OAuth for remote MCP clients. A grant is an API key row of kind 'oauth' (so the
-- permission decision, the cap, revocation, usage and the audit log are a key's);
-- its tokens and codes are stored only as HMAC digests.
ALTER TABLE api_keys ADD COLUMN kind TEXT NOT NULL DEFAULT 'key' CHECK (kind IN ('key', 'oauth'));
ALTER TABLE api_keys ADD COLUMN oauth_client_id TEXT;

-- Registered clients: by Dynamic Client Registration (id `oacl_…`) or by a Client ID
-- Metadata Document (id = the document's https URL). Not of any organization.
CREATE TABLE oauth_clients (
    id TEXT COLLATE "C" PRIMARY KEY,
    name TEXT NOT NULL,
    redirect_uris TEXT NOT NULL,
    registration TEXT NOT NULL CHECK (registration IN ('dynamic', 'metadata_document')),
    created_at TIMESTAMPTZ NOT NULL,
    fetched_at TIMESTAMPTZ
);

CREATE TABLE oauth_codes (
    code_digest BYTEA PRIMARY KEY,
    key_id TEXT COLLATE "C" NOT NULL REFERENCES api_keys (id),
    client_id TEXT NOT NULL,
    redirect_uri TEXT NOT NULL,
    code_challenge TEXT NOT NULL,
    resource TEXT NOT NULL,
    expires_at TIMESTAMPTZ NOT NULL,
    used_at TIMESTAMPTZ
);
CREATE INDEX oauth_codes_key ON oauth_codes (key_id);

CREATE TABLE oauth_tokens (
    token_digest BYTEA PRIMARY KEY,
    key_id TEXT COLLATE "C" NOT NULL REFERENCES api_keys (id),
    kind TEXT NOT NULL CHECK (kind IN ('access', 'refresh')),
    resource TEXT NOT NULL,
    created_at TIMESTAMPTZ NOT NULL,
    expires_at TIMESTAMPTZ NOT NULL,
    used_at TIMESTAMPTZ
);
CREATE INDEX oauth_tokens_key ON oauth_tokens (key_id);
