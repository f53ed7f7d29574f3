package policy

import (
	"bytes"
	"encoding/base64"
	"encoding/hex"
	"encoding/json"
	"errors"
	"strings"
	"testing"

	"github.com/agentsecrets/agentsecrets/internal/crypto"
	"github.com/agentsecrets/agentsecrets/internal/errcode"
)

func TestNewApprovalRejectsWeak(t *testing.T) {
	for _, p := range []string{"", "a", "1234567"} {
		_, err := NewApproval([]byte(p))
		if !errors.Is(err, ErrWeakPassphrase) {
			t.Errorf("NewApproval(%d chars) err = %v, want ErrWeakPassphrase", len(p), err)
		}
		if c := errcode.Classify(err).Code; c != errcode.Usage {
			t.Errorf("NewApproval(%d chars) classifies as %q, want usage", len(p), c)
		}
	}
}

func TestApprovalVerify(t *testing.T) {
	const pass = "correct horse 8"
	a, err := NewApproval([]byte(pass))
	if err != nil {
		t.Fatalf("NewApproval: %v", err)
	}
	if err := a.KDF.Validate(); err != nil {
		t.Fatalf("stored KDF params invalid: %v", err)
	}
	if len(a.Hash) != crypto.KeySize {
		t.Fatalf("hash is %d bytes, want %d", len(a.Hash), crypto.KeySize)
	}
	tests := []struct {
		name     string
		pass     string
		wantCode errcode.Code // "" means success
	}{
		{"right", pass, ""},
		{"wrong", "correct horse 9", errcode.Denied},
		{"prefix", pass[:8], errcode.Denied},
		{"extra char", pass + " ", errcode.Denied},
		{"case differs", strings.ToUpper(pass), errcode.Denied},
		{"empty", "", errcode.Denied},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			err := a.Verify([]byte(tt.pass))
			if tt.wantCode == "" {
				if err != nil {
					t.Fatalf("Verify(right) = %v", err)
				}
				return
			}
			if err == nil {
				t.Fatal("Verify accepted a wrong passphrase")
			}
			if c := errcode.Classify(err).Code; c != tt.wantCode {
				t.Fatalf("Verify error %v classifies as %q, want %q", err, c, tt.wantCode)
			}
			if !errors.Is(err, ErrApprovalDenied) {
				t.Fatalf("Verify error %v is not ErrApprovalDenied", err)
			}
		})
	}
}

func TestApprovalVerifyAfterJSONRoundTrip(t *testing.T) {
	const pass = "stored passphrase"
	a, err := NewApproval([]byte(pass))
	if err != nil {
		t.Fatal(err)
	}
	data, err := json.Marshal(a)
	if err != nil {
		t.Fatal(err)
	}
	var back Approval
	if err := json.Unmarshal(data, &back); err != nil {
		t.Fatal(err)
	}
	if err := back.Verify([]byte(pass)); err != nil {
		t.Fatalf("Verify after JSON round trip: %v", err)
	}
	if err := back.Verify([]byte("other passphrase")); !errors.Is(err, ErrApprovalDenied) {
		t.Fatalf("Verify(wrong) after JSON round trip = %v, want ErrApprovalDenied", err)
	}
}

func TestApprovalVerifyBroken(t *testing.T) {
	a, err := NewApproval([]byte("some passphrase"))
	if err != nil {
		t.Fatal(err)
	}
	tests := []struct {
		name string
		a    Approval
	}{
		{"zero value", Approval{}},
		{"no hash", Approval{KDF: a.KDF}},
		{"weakened kdf", Approval{KDF: crypto.KDFParams{Time: 1, MemoryK: 8, Threads: 1, Salt: a.KDF.Salt}, Hash: a.Hash}},
		{"short salt", Approval{KDF: crypto.KDFParams{Time: 3, MemoryK: 64 * 1024, Threads: 4, Salt: a.KDF.Salt[:8]}, Hash: a.Hash}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			err := tt.a.Verify([]byte("some passphrase"))
			if err == nil {
				t.Fatal("Verify accepted a broken approval")
			}
			// A broken record is not a wrong passphrase.
			if errors.Is(err, ErrApprovalDenied) {
				t.Fatalf("Verify error %v reads as a wrong passphrase", err)
			}
		})
	}
}

func TestApprovalStoresNoPassphrase(t *testing.T) {
	const pass = "Tr0ub4dor&3-unique-marker"
	a, err := NewApproval([]byte(pass))
	if err != nil {
		t.Fatal(err)
	}
	data, err := json.Marshal(a)
	if err != nil {
		t.Fatal(err)
	}
	forms := map[string]string{
		"raw":       pass,
		"base64":    base64.StdEncoding.EncodeToString([]byte(pass)),
		"base64url": base64.RawURLEncoding.EncodeToString([]byte(pass)),
		"hex":       hex.EncodeToString([]byte(pass)),
		"HEX":       strings.ToUpper(hex.EncodeToString([]byte(pass))),
	}
	for name, f := range forms {
		if bytes.Contains(data, []byte(f)) {
			t.Errorf("stored approval contains the passphrase (%s): %s", name, data)
		}
	}
	// The raw struct holds no copy either.
	if bytes.Contains(a.Hash, []byte(pass)) || bytes.Contains(a.KDF.Salt, []byte(pass)) {
		t.Error("Approval struct holds the passphrase bytes")
	}
	b, err := NewApproval([]byte(pass))
	if err != nil {
		t.Fatal(err)
	}
	if bytes.Equal(a.Hash, b.Hash) || bytes.Equal(a.KDF.Salt, b.KDF.Salt) {
		t.Error("two approvals of the same passphrase share a salt or hash")
	}
}
