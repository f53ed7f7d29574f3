-- Key versions and removals (issue 11, stage C). Portable SQL as in 00001.
-- A removal rotates: the workspace key gets version key_version + 1, every
-- project a new key, and the project's older keys, re-wrapped under the
-- new workspace key, live in project_keys. All of it is opaque ciphertext.

-- +goose Up
ALTER TABLE workspaces ADD COLUMN key_version BIGINT NOT NULL DEFAULT 1;

CREATE TABLE project_keys (
    workspace_id TEXT NOT NULL,
    project TEXT NOT NULL,
    key_version BIGINT NOT NULL,
    wrapped_key BYTEA NOT NULL,
    PRIMARY KEY (workspace_id, project, key_version),
    FOREIGN KEY (workspace_id, project) REFERENCES projects (workspace_id, name)
);

-- One row per account removed from a workspace (and not added back since),
-- so its requests there answer "removed" rather than "no such workspace".
CREATE TABLE removals (
    workspace_id TEXT NOT NULL REFERENCES workspaces (id),
    account_id TEXT NOT NULL,
    removed_by TEXT NOT NULL,
    key_version BIGINT NOT NULL,
    removed_at BIGINT NOT NULL,
    PRIMARY KEY (workspace_id, account_id)
);

-- +goose Down
DROP TABLE removals;
DROP TABLE project_keys;
ALTER TABLE workspaces DROP COLUMN key_version;
