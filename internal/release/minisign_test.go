package release

import (
	"bytes"
	"encoding/base64"
	"errors"
	"os"
	"strings"
	"testing"
)

// The vectors in testdata were made by the real minisign 0.11
// (`minisign -G -W`, `minisign -S`, `minisign -S -l`); their secret key was
// thrown away.
func readVector(t *testing.T, name string) []byte {
	t.Helper()
	b, err := os.ReadFile("testdata/" + name)
	if err != nil {
		t.Fatal(err)
	}
	return b
}

func TestVerifyMinisignVectors(t *testing.T) {
	pub, err := ParsePublicKey(readVector(t, "minisign.pub"))
	if err != nil {
		t.Fatal(err)
	}
	msg := readVector(t, "message.txt")
	for _, tc := range []struct{ sig, comment string }{
		{"message.txt.minisig", "vector from minisign 0.11"},
		{"message.txt.legacy.minisig", "legacy vector"},
	} {
		t.Run(tc.sig, func(t *testing.T) {
			sig := readVector(t, tc.sig)
			got, err := Verify(pub, msg, sig)
			if err != nil || got != tc.comment {
				t.Fatalf("Verify = %q, %v; want %q", got, err, tc.comment)
			}
			if _, err := Verify(pub, append(bytes.Clone(msg), 'x'), sig); !errors.Is(err, ErrBadSignature) {
				t.Errorf("changed message: err = %v, want ErrBadSignature", err)
			}
			forged := bytes.Replace(sig, []byte(tc.comment), []byte("forged comment"), 1)
			if _, err := Verify(pub, msg, forged); !errors.Is(err, ErrBadSignature) {
				t.Errorf("changed trusted comment: err = %v, want ErrBadSignature", err)
			}
		})
	}
	// The bare base64 line, as users pass it to `minisign -P`.
	line := strings.Split(string(readVector(t, "minisign.pub")), "\n")[1]
	bare, err := ParsePublicKey([]byte(line))
	if err != nil || bare.String() != line || bare.ID != pub.ID {
		t.Errorf("ParsePublicKey(bare) = %v, %v", bare, err)
	}
}

func TestSignRoundTrip(t *testing.T) {
	k, err := GenerateKey(nil)
	if err != nil {
		t.Fatal(err)
	}
	secText, _ := k.MarshalText()
	pubText, _ := k.Public().MarshalText()
	k2, err := ParseSecretKey(secText)
	if err != nil || k2.ID != k.ID || !k2.Key.Equal(k.Key) {
		t.Fatalf("ParseSecretKey(MarshalText) = %v, %v", k2.ID, err)
	}
	pub, err := ParsePublicKey(pubText)
	if err != nil || !strings.Contains(string(pubText), k.ID.String()) {
		t.Fatalf("ParsePublicKey(MarshalText) = %v, %v", pub, err)
	}
	msg := []byte("checksums\n")
	sig, err := Sign(k2, msg, "agentsecrets 1.2.3")
	if err != nil {
		t.Fatal(err)
	}
	if got, err := Verify(pub, msg, sig); err != nil || got != "agentsecrets 1.2.3" {
		t.Fatalf("Verify = %q, %v", got, err)
	}
	again, _ := Sign(k2, msg, "agentsecrets 1.2.3")
	if !bytes.Equal(sig, again) {
		t.Error("signing the same file twice gave two signatures; a release would not be reproducible")
	}
	other, _ := GenerateKey(nil)
	if _, err := Verify(other.Public(), msg, sig); !errors.Is(err, ErrBadSignature) {
		t.Errorf("another key: err = %v, want ErrBadSignature", err)
	}
	sameID := other.Public()
	sameID.ID = k.ID
	if _, err := Verify(sameID, msg, sig); !errors.Is(err, ErrBadSignature) {
		t.Errorf("another key with the same id: err = %v, want ErrBadSignature", err)
	}
	if _, err := Sign(k, msg, "two\nlines"); err == nil {
		t.Error("a two-line trusted comment was accepted")
	}
}

func TestParseSecretKeyRejects(t *testing.T) {
	k, _ := GenerateKey(nil)
	good, _ := k.MarshalText()
	raw, _ := base64.StdEncoding.DecodeString(strings.Split(string(good), "\n")[1])
	reencode := func(edit func([]byte)) []byte {
		b := bytes.Clone(raw)
		edit(b)
		return []byte("untrusted comment: x\n" + base64.StdEncoding.EncodeToString(b) + "\n")
	}
	keyB64 := base64.StdEncoding.EncodeToString(k.Key)
	for _, tc := range []struct {
		name, want string
		text       []byte
	}{
		{"empty", "want one base64 line", nil},
		{"not base64", "not base64", []byte("untrusted comment: x\n!!!\n")},
		{"short", "bytes, want", []byte("untrusted comment: x\nRWQ=\n")},
		{"password", "protected by a password", reencode(func(b []byte) { copy(b[2:4], "Sc") })},
		{"algorithm", "not an Ed25519", reencode(func(b []byte) { copy(b[0:2], "XX") })},
		{"checksum", "checksum mismatch", reencode(func(b []byte) { b[len(b)-1] ^= 1 })},
		{"damaged key", "checksum mismatch", reencode(func(b []byte) { b[60] ^= 1 })},
	} {
		t.Run(tc.name, func(t *testing.T) {
			_, err := ParseSecretKey(tc.text)
			if err == nil || !strings.Contains(err.Error(), tc.want) {
				t.Fatalf("err = %v, want %q", err, tc.want)
			}
			if strings.Contains(err.Error(), keyB64) || strings.Contains(err.Error(), string(raw)) {
				t.Error("the error quotes the secret key")
			}
		})
	}
}

// FuzzVerify feeds untrusted signature files to Verify: it must never
// panic, and never accept a signature it did not get from the key.
func FuzzVerify(f *testing.F) {
	pubText, err := os.ReadFile("testdata/minisign.pub")
	if err != nil {
		f.Fatal(err)
	}
	pub, err := ParsePublicKey(pubText)
	if err != nil {
		f.Fatal(err)
	}
	msg, _ := os.ReadFile("testdata/message.txt")
	good, _ := os.ReadFile("testdata/message.txt.minisig")
	legacy, _ := os.ReadFile("testdata/message.txt.legacy.minisig")
	f.Add(good, []byte("x"))
	f.Add(legacy, pubText)
	f.Add([]byte("untrusted comment: \n\ntrusted comment: \n\n"), []byte(""))
	f.Fuzz(func(t *testing.T, sig, keyText []byte) {
		if _, err := Verify(pub, msg, sig); err == nil && !bytes.Equal(sig, good) && !bytes.Equal(sig, legacy) {
			// Only the untrusted comment and line endings may differ.
			if _, err := Verify(pub, append(bytes.Clone(msg), 0), sig); err == nil {
				t.Fatalf("accepted a signature for two messages: %q", sig)
			}
		}
		ParsePublicKey(keyText)
		ParseSecretKey(keyText)
	})
}
