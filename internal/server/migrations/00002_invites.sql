-- Invites to a workspace (issue 11). Portable SQL as in 00001. The server
-- stores the statement and the proof as sent: both are authenticated under
-- the invite code, which only the inviting admin's client and the invitee
-- know, never the server.

-- +goose Up
CREATE TABLE invites (
    id TEXT PRIMARY KEY,
    workspace_id TEXT NOT NULL REFERENCES workspaces (id),
    email TEXT NOT NULL,
    role TEXT NOT NULL,
    invited_by TEXT NOT NULL REFERENCES accounts (id),
    statement BYTEA NOT NULL,
    state TEXT NOT NULL,
    -- Set when the invitee accepts: their account, its public keys as the
    -- server had them then, and the proof their client made of those keys.
    account_id TEXT REFERENCES accounts (id),
    seal_pub BYTEA,
    sign_pub BYTEA,
    proof BYTEA,
    created_at BIGINT NOT NULL,
    accepted_at BIGINT,
    -- When the invite was completed or canceled.
    completed_at BIGINT
);
CREATE INDEX invites_email ON invites (email);
CREATE INDEX invites_workspace ON invites (workspace_id);
-- One pending invite per workspace and email, enforced by the database so
-- that two replicas creating the same invite at once cannot both succeed.
-- The literals are syncapi.InviteOpen and syncapi.InviteAccepted.
CREATE UNIQUE INDEX invites_pending ON invites (workspace_id, email) WHERE state IN ('open', 'accepted');

-- +goose Down
DROP TABLE invites;
