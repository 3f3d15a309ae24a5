-- Wallets (one per organization and mode), their ledger, idempotency keys, phone numbers.

CREATE TABLE wallets (
    org_id TEXT NOT NULL REFERENCES organizations (id),
    livemode BOOLEAN NOT NULL,
    balance BIGINT NOT NULL,
    updated_at TEXT NOT NULL,
    PRIMARY KEY (org_id, livemode)
);

CREATE TABLE wallet_transactions (
    id TEXT PRIMARY KEY,
    org_id TEXT NOT NULL REFERENCES organizations (id),
    livemode BOOLEAN NOT NULL,
    amount BIGINT NOT NULL,
    kind TEXT NOT NULL,
    reference_id TEXT,
    description TEXT NOT NULL,
    created_at TEXT NOT NULL
);
CREATE INDEX wallet_transactions_org ON wallet_transactions (org_id, livemode, id);

CREATE TABLE idempotency_keys (
    org_id TEXT NOT NULL,
    workspace_id TEXT NOT NULL,
    livemode BOOLEAN NOT NULL,
    idem_key TEXT NOT NULL,
    fingerprint TEXT NOT NULL,
    status_code INTEGER NOT NULL,
    body TEXT NOT NULL,
    created_at TEXT NOT NULL,
    PRIMARY KEY (org_id, workspace_id, livemode, idem_key)
);
CREATE INDEX idempotency_keys_created ON idempotency_keys (created_at);

CREATE TABLE phone_numbers (
    id TEXT PRIMARY KEY,
    org_id TEXT NOT NULL REFERENCES organizations (id),
    workspace_id TEXT NOT NULL REFERENCES workspaces (id),
    livemode BOOLEAN NOT NULL,
    number TEXT NOT NULL,
    country TEXT NOT NULL,
    number_type TEXT NOT NULL,
    name TEXT,
    agent_id TEXT,
    forward_to TEXT,
    status TEXT NOT NULL CHECK (status IN ('active', 'released')),
    monthly_cost BIGINT NOT NULL,
    created_at TEXT NOT NULL,
    updated_at TEXT NOT NULL,
    released_at TEXT
);
CREATE INDEX phone_numbers_scope ON phone_numbers (workspace_id, livemode, id);
-- A number has one owner at a time, across the installation.
CREATE UNIQUE INDEX phone_numbers_owned ON phone_numbers (number, livemode) WHERE status = 'active';
