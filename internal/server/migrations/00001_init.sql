-- The first schema of the sync server. One file serves SQLite and
-- PostgreSQL: only portable types (TEXT, BIGINT, BYTEA, which SQLite stores
-- as given), times as Unix microseconds, no dialect-specific defaults.
-- Everything the server stores is routing metadata, public keys, hashes or
-- opaque ciphertext; never a value, a private key or a token.

-- +goose Up
CREATE TABLE server_keys (
    name TEXT PRIMARY KEY,
    key BYTEA NOT NULL
);

CREATE TABLE accounts (
    id TEXT PRIMARY KEY,
    email TEXT NOT NULL UNIQUE,
    kdf TEXT NOT NULL,
    auth_salt BYTEA NOT NULL,
    auth_hash BYTEA NOT NULL,
    seal_pub BYTEA NOT NULL,
    sign_pub BYTEA NOT NULL,
    wrapped_keys BYTEA NOT NULL,
    created_at BIGINT NOT NULL
);

CREATE TABLE devices (
    id TEXT PRIMARY KEY,
    account_id TEXT NOT NULL REFERENCES accounts (id),
    name TEXT NOT NULL,
    created_at BIGINT NOT NULL,
    last_seen_at BIGINT NOT NULL,
    revoked_at BIGINT
);
CREATE INDEX devices_account ON devices (account_id);

-- Tokens are kept as SHA-256 only. A rotated refresh token stays (rotated_at
-- set) until it expires, so that presenting it again is recognised as reuse.
CREATE TABLE tokens (
    hash BYTEA PRIMARY KEY,
    device_id TEXT NOT NULL REFERENCES devices (id),
    kind TEXT NOT NULL,
    expires_at BIGINT NOT NULL,
    rotated_at BIGINT
);
CREATE INDEX tokens_device ON tokens (device_id);

CREATE TABLE workspaces (
    id TEXT PRIMARY KEY,
    name TEXT NOT NULL,
    created_by TEXT NOT NULL REFERENCES accounts (id),
    created_at BIGINT NOT NULL
);

CREATE TABLE members (
    workspace_id TEXT NOT NULL REFERENCES workspaces (id),
    account_id TEXT NOT NULL REFERENCES accounts (id),
    role TEXT NOT NULL,
    record BYTEA NOT NULL,
    sealed_key BYTEA NOT NULL,
    added_by TEXT NOT NULL,
    added_at BIGINT NOT NULL,
    PRIMARY KEY (workspace_id, account_id)
);
CREATE INDEX members_account ON members (account_id);

CREATE TABLE projects (
    workspace_id TEXT NOT NULL REFERENCES workspaces (id),
    name TEXT NOT NULL,
    wrapped_key BYTEA NOT NULL,
    key_version BIGINT NOT NULL,
    created_by TEXT NOT NULL,
    created_at BIGINT NOT NULL,
    PRIMARY KEY (workspace_id, name)
);

-- The primary key is what makes racing pushes safe on several replicas: two
-- transactions that both read head N and insert N+1 cannot both commit.
CREATE TABLE secret_versions (
    workspace_id TEXT NOT NULL,
    project TEXT NOT NULL,
    name TEXT NOT NULL,
    version BIGINT NOT NULL,
    envelope BYTEA NOT NULL,
    author_id TEXT NOT NULL,
    created_at BIGINT NOT NULL,
    PRIMARY KEY (workspace_id, project, name, version),
    FOREIGN KEY (workspace_id, project) REFERENCES projects (workspace_id, name)
);

CREATE TABLE allowlist_versions (
    workspace_id TEXT NOT NULL REFERENCES workspaces (id),
    version BIGINT NOT NULL,
    document BYTEA NOT NULL,
    author_id TEXT NOT NULL,
    created_at BIGINT NOT NULL,
    PRIMARY KEY (workspace_id, version)
);

-- +goose Down
DROP TABLE allowlist_versions;
DROP TABLE secret_versions;
DROP TABLE projects;
DROP TABLE members;
DROP TABLE workspaces;
DROP TABLE tokens;
DROP TABLE devices;
DROP TABLE accounts;
DROP TABLE server_keys;
