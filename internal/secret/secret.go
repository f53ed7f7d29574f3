// Package secret holds the one type every plaintext secret value travels
// in: Value. Every way Go has of turning a value into text — fmt with any
// verb, encoding/json, encoding.TextMarshaler, log/slog — prints a
// redaction instead of the bytes, so a value that slips into a log line, an
// error, an audit record or a result struct cannot leak. The bytes come out
// only through Reveal, and a test (see vet_test.go) allows that call only in
// the packages that hand values on by design: the vault, the broker and the
// two release commands.
package secret

import (
	"bytes"
	"crypto/subtle"
	"fmt"
	"io"
	"log/slog"
)

// Redacted is what every printed form of a Value shows. It says neither
// the length nor any byte of the value.
const Redacted = "[secret]"

// Value is a plaintext secret value. Copies share the bytes, so Wipe on any
// copy wipes them all. Compare values with Equal; == does not compile.
//
// The bytes are reachable only through a closure. Where fmt cannot call a
// Value's methods (a Value in an unexported field) it prints the fields by
// reflection, and with a bad verb it follows a pointer; reflection never
// sees what a func closes over, so fmt, and reflection-based dumpers such
// as spew, print an address there, never a byte.
type Value struct{ get func() *holder }

type holder struct{ b []byte }

// New wraps b, taking ownership: the caller must not use b afterwards
// (Wipe zeroes it).
func New(b []byte) Value {
	h := &holder{b: b}
	return Value{get: func() *holder { return h }}
}

// h is the holder, nil for the zero Value.
func (v Value) h() *holder {
	if v.get == nil {
		return nil
	}
	return v.get()
}

// Reveal returns the plaintext bytes, not a copy, for the few places that
// must use them: the vault (to store and check them), the broker (to inject
// and redact them) and the release path (to hand them to a child process).
// Any other caller is a finding of the vet-style test in this package.
func (v Value) Reveal() []byte {
	if h := v.h(); h != nil {
		return h.b
	}
	return nil
}

// Empty reports whether v holds no bytes (never set, empty, or wiped).
func (v Value) Empty() bool { return len(v.Reveal()) == 0 }

// Equal compares two values in constant time (for their common length),
// so that callers can deduplicate values without revealing them.
func (v Value) Equal(o Value) bool {
	return subtle.ConstantTimeCompare(v.Reveal(), o.Reveal()) == 1
}

// Clone returns a Value with its own copy of the bytes, for a holder that
// must outlive the owner's Wipe.
func (v Value) Clone() Value {
	if v.h() == nil {
		return Value{}
	}
	return New(bytes.Clone(v.Reveal()))
}

// Wipe zeroes the bytes and drops them, for every copy of v.
func (v Value) Wipe() {
	if h := v.h(); h != nil {
		clear(h.b)
		h.b = nil
	}
}

// String prints the redaction.
func (Value) String() string { return Redacted }

// GoString prints the redaction (%#v).
func (Value) GoString() string { return Redacted }

// Format prints the redaction for every verb and flag: %x or %q would
// otherwise encode the bytes.
func (Value) Format(f fmt.State, _ rune) { io.WriteString(f, Redacted) }

// MarshalJSON encodes the redaction as a JSON string.
func (Value) MarshalJSON() ([]byte, error) { return []byte(`"` + Redacted + `"`), nil }

// MarshalText prints the redaction (encoding/xml, map keys, TOML, YAML).
func (Value) MarshalText() ([]byte, error) { return []byte(Redacted), nil }

// LogValue makes log/slog print the redaction.
func (Value) LogValue() slog.Value { return slog.StringValue(Redacted) }
