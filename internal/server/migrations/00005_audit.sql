-- Team audit stream (issue 11, stage E). Portable SQL as in 00001. Each
-- row is one batch of a member's audit records, sealed by their client to
-- the workspace's admins: the server stores the bytes as sent and reads
-- none of them (no secret name, host or decision is in clear here). id
-- counts from 1 per workspace, in the order batches were stored, so an
-- admin's client pages through them with ?since=ID.

-- +goose Up
CREATE TABLE audit_batches (
    workspace_id TEXT NOT NULL REFERENCES workspaces (id),
    id BIGINT NOT NULL,
    uploader_id TEXT NOT NULL,
    created_at BIGINT NOT NULL,
    batch BYTEA NOT NULL,
    PRIMARY KEY (workspace_id, id)
);

-- +goose Down
DROP TABLE audit_batches;
