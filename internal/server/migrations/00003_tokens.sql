-- Service tokens (issue 11, stage B). Portable SQL as in 00001. A token is
-- a workspace member: it has an accounts row (id "tok-" + token id, the
-- same in the email column, which holds no '@' and so never collides with
-- a person's email nor signs in with a password), one device row that all
-- its sessions hang from, and a members row. This table holds what only a
-- token has. The server keeps SHA-256 of the token's auth key, never the
-- token secret.

-- +goose Up
CREATE TABLE service_tokens (
    id TEXT PRIMARY KEY,
    account_id TEXT NOT NULL UNIQUE REFERENCES accounts (id),
    device_id TEXT NOT NULL REFERENCES devices (id),
    workspace_id TEXT NOT NULL REFERENCES workspaces (id),
    name TEXT NOT NULL,
    role TEXT NOT NULL,
    -- JSON array of project names; [] is every project.
    projects TEXT NOT NULL,
    auth_hash BYTEA NOT NULL,
    created_by TEXT NOT NULL REFERENCES accounts (id),
    created_at BIGINT NOT NULL,
    expires_at BIGINT NOT NULL,
    last_used_at BIGINT,
    revoked_at BIGINT
);
CREATE INDEX service_tokens_workspace ON service_tokens (workspace_id);
-- Names are unique among a workspace's live tokens, enforced by the
-- database so two replicas cannot both create one.
CREATE UNIQUE INDEX service_tokens_name ON service_tokens (workspace_id, name) WHERE revoked_at IS NULL;

-- +goose Down
DROP TABLE service_tokens;
