package vault

import (
	"context"
	"unicode/utf8"

	"github.com/agentsecrets/agentsecrets/internal/errcode"
	"github.com/agentsecrets/agentsecrets/internal/secret"
)

// Backend stores values by key. Keys are "workspace/project/NAME" for
// secrets and "meta/..." for the vault's own keys. Implementations must
// never include a value in an error.
type Backend interface {
	// Kind is "keychain" or "file".
	Kind() string
	// Probe checks that the backend answers, without changing anything.
	Probe(ctx context.Context) error
	// Get returns ErrValueMissing when key has no value. The Value is the
	// caller's own: wiping it changes nothing stored.
	Get(ctx context.Context, key string) (secret.Value, error)
	// Put stores every item; callers hold the store lock. It keeps no
	// reference to the values.
	Put(ctx context.Context, items map[string]secret.Value) error
	// Delete removes keys; a missing key is not an error.
	Delete(ctx context.Context, keys []string) error
}

// Backend kinds.
const (
	KindKeychain = "keychain"
	KindFile     = "file"
)

var (
	// ErrValueMissing: the index names a secret but the backend has no value.
	ErrValueMissing = errcode.New(errcode.NotFound, "the backend has no value for this secret")
	// ErrNotFound: a workspace, project or secret is not in the index.
	ErrNotFound = errcode.New(errcode.NotFound, "not found")
	// ErrNotInitialised: there is no vault under the home directory.
	ErrNotInitialised = errcode.New(errcode.NotFound, "no vault here yet")
	// ErrEmptyValue and ErrBadValue reject values before anything is stored.
	ErrEmptyValue = errcode.New(errcode.Usage, "empty value")
	ErrBadValue   = errcode.New(errcode.Usage, "value must be UTF-8 text without NUL bytes")
	ErrValueSize  = errcode.New(errcode.TooLarge, "value larger than 64 KiB")
)

// MaxValueSize bounds one value; keychains reject much larger items.
const MaxValueSize = 64 << 10

// CheckValue validates a value before it is stored. Values are text because
// they end up in HTTP headers, query strings and environment variables.
func CheckValue(value secret.Value) error {
	v := value.Reveal()
	switch {
	case len(v) == 0:
		return ErrEmptyValue
	case len(v) > MaxValueSize:
		return ErrValueSize
	case !utf8.Valid(v):
		return ErrBadValue
	}
	for _, c := range v {
		if c == 0 {
			return ErrBadValue
		}
	}
	return nil
}

// itemKey is the backend key of a secret.
func itemKey(sel Selection, name string) string {
	return sel.Workspace + "/" + sel.Project + "/" + name
}

const fingerprintKeyItem = "meta/fingerprint-key"
