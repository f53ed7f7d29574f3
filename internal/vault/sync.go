package vault

import "time"

// Account names the sync account a vault is signed in to. It holds no key
// and no token: the account key, the unwrapped private keys and the session
// tokens are backend items (keychain or encrypted file), never index fields.
type Account struct {
	Server     string    `json:"server"`
	Email      string    `json:"email"`
	ID         string    `json:"id"`
	DeviceID   string    `json:"device_id"`
	DeviceName string    `json:"device_name,omitempty"`
	SignedInAt time.Time `json:"signed_in_at"`
	// SignedOutAt is set by logout, which keeps the account key and the
	// identity (a later login needs only the password); nil while signed in.
	SignedOutAt *time.Time `json:"signed_out_at,omitempty"`
	// SealPublic and SignPublic are the account's public keys (X25519,
	// Ed25519), as the server published them when this device signed in:
	// the stored private keys are checked against them on every use, and
	// their fingerprints are what people compare across devices.
	SealPublic []byte `json:"seal_public_key,omitempty"`
	SignPublic []byte `json:"sign_public_key,omitempty"`
}

// RemoteWorkspace links a local workspace to its copy on a sync server.
type RemoteWorkspace struct {
	Server string `json:"server"`
	ID     string `json:"id"`
}

// ProjectSync is a project's sync state: when it last pulled and pushed,
// and what the last diff found.
type ProjectSync struct {
	AutoPush bool       `json:"auto_push,omitempty"`
	LastPull *time.Time `json:"last_pull,omitempty"`
	LastPush *time.Time `json:"last_push,omitempty"`
}

// SecretSync is the remote version a secret last matched.
type SecretSync struct {
	// Version is the remote version number; Hash the hash of its envelope,
	// which the next version must name as its previous one.
	Version int    `json:"version"`
	Hash    string `json:"hash"`
}
