package vault

import (
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"time"

	"github.com/agentsecrets/agentsecrets/internal/policy"
)

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
	// Name is the workspace's name on the server (the local name may
	// differ when two remote workspaces share one).
	Name string `json:"name,omitempty"`
	// AllowlistVersion and AllowlistHash are the allowlist document version
	// this device last pulled or pushed and the hash of its envelope, which
	// the next version must name as its previous one.
	AllowlistVersion int    `json:"allowlist_version,omitempty"`
	AllowlistHash    string `json:"allowlist_hash,omitempty"`
	// AllowlistDigest is AllowlistDigest of the local allowlist at that
	// sync: a different digest now means a local change to push.
	AllowlistDigest string `json:"allowlist_digest,omitempty"`
}

// ProjectSync is a project's sync state: when it last pulled and pushed,
// and what the last diff found. A project of a remote workspace without
// one does not exist on the server yet.
type ProjectSync struct {
	AutoPush bool       `json:"auto_push,omitempty"`
	LastPull *time.Time `json:"last_pull,omitempty"`
	LastPush *time.Time `json:"last_push,omitempty"`
	// KeyVersion is the version of the project key the server holds.
	KeyVersion int `json:"key_version,omitempty"`
	// Drift is what the last diff, pull or push found out of sync (names
	// in sync are left out); CheckedAt is when.
	Drift     []Drift    `json:"drift,omitempty"`
	CheckedAt *time.Time `json:"checked_at,omitempty"`
	// Tombstones are secrets deleted locally since they were last synced,
	// with the remote version they matched: the next push stores a
	// deletion version on top of it.
	Tombstones map[string]SecretSync `json:"tombstones,omitempty"`
	// Incoming is a pull in progress: the metadata each pulled secret gets
	// once its value is stored. It is written before the values and
	// cleared with the index write that adopts them, so a pull a crash
	// interrupted is settled per secret by what the backend holds (see
	// Store.settleIncoming): each secret ends at its old or its new version.
	Incoming map[string]*Secret `json:"incoming,omitempty"`
}

// Drift is one name the last check found out of sync.
type Drift struct {
	Name  string `json:"name"`
	State string `json:"state"`
}

// SecretSync is the remote version a secret last matched.
type SecretSync struct {
	// Version is the remote version number; Hash the hash of its envelope,
	// which the next version must name as its previous one.
	Version int    `json:"version"`
	Hash    string `json:"hash"`
	// LocalVersion and Bindings are the local Secret.Version and the
	// BindingsDigest at that sync, so a local change is seen from the
	// index alone, without reading a value.
	LocalVersion int    `json:"local_version,omitempty"`
	Bindings     string `json:"bindings,omitempty"`
	// Deleted: the matched version is a deletion (tombstones only).
	Deleted bool `json:"deleted,omitempty"`
}

// ChangedSinceSync reports whether the secret's value or bindings changed
// since it last matched a remote version (always, if it never did).
func (s *Secret) ChangedSinceSync() bool {
	return s.Synced == nil || s.Version != s.Synced.LocalVersion || BindingsDigest(s.Bindings) != s.Synced.Bindings
}

// MarkSynced records that the secret now matches remote version v with
// envelope hash hash.
func (s *Secret) MarkSynced(version int, hash string) {
	s.Synced = &SecretSync{Version: version, Hash: hash, LocalVersion: s.Version, Bindings: BindingsDigest(s.Bindings)}
}

// SyncedBindings are the bindings as they travel in an envelope: without
// the echo tripwire's suspension, which is this device's own finding and
// stays local.
func SyncedBindings(bs []policy.Binding) []policy.Binding {
	out := make([]policy.Binding, 0, len(bs))
	for _, b := range bs {
		b.SuspendedAt, b.SuspendReason = nil, ""
		out = append(out, b)
	}
	return out
}

// BindingsDigest is a SHA-256 of the synced form of bindings. Bindings are
// policy, not values: a plain hash is fine.
func BindingsDigest(bs []policy.Binding) string {
	return digestJSON(SyncedBindings(bs))
}

// AllowlistDigest is a SHA-256 of an allowlist's entries, in their order.
func AllowlistDigest(entries []policy.AllowEntry) string {
	if entries == nil {
		entries = []policy.AllowEntry{}
	}
	return digestJSON(entries)
}

func digestJSON(v any) string {
	b, _ := json.Marshal(v)
	sum := sha256.Sum256(b)
	return hex.EncodeToString(sum[:])
}

// KeepLocalState carries what stays local to a device from old bindings
// into pulled ones: the echo tripwire's suspension of a binding to the same
// target.
func KeepLocalState(pulled, old []policy.Binding) []policy.Binding {
	out := SyncedBindings(pulled)
	for i := range out {
		for _, o := range old {
			if o.Suspended() && o.Host == out[i].Host && o.Port == out[i].Port && o.PathPrefix == out[i].PathPrefix {
				out[i].SuspendedAt, out[i].SuspendReason = o.SuspendedAt, o.SuspendReason
			}
		}
	}
	return out
}

// Remote reports whether the workspace is synced to a server.
func (w *Workspace) IsRemote() bool { return w.Remote != nil }
