package crypto

import (
	"bytes"
	"crypto/hmac"
	"crypto/sha256"
	"encoding/hex"
	"testing"

	"golang.org/x/crypto/argon2"
)

// syncVectorAccountKey is the account key of the vectors: bytes 0x00..0x1f.
func syncVectorAccountKey() []byte {
	k := make([]byte, AccountKeySize)
	for i := range k {
		k[i] = byte(i)
	}
	return k
}

// TestAccountKeysVectors pins the two-secret derivation (docs/protocol.md
// copies these values). The smallest Argon2id parameters Validate accepts
// keep it fast while still running the real derivation.
func TestAccountKeysVectors(t *testing.T) {
	tests := []struct {
		name     string
		password string
		kdf      KDFParams
		auth     string
		wrap     string
	}{
		{
			name:     "t1 m19456 p1",
			password: "correct horse battery staple",
			kdf:      cheapKDF("0123456789abcdef"),
			auth:     "f418d5a9e10bf530350a526811b91daa5b51399873bc1974a987786c0f96c574",
			wrap:     "f41bb66ebf709558d86c9365ae217d8a37ac4cf6405357e7b43fcfca242281ef",
		},
		{
			name:     "empty password, other salt",
			password: "",
			kdf:      cheapKDF("somesaltsomesalt"),
			auth:     "724e7ada7d9ff2a1d7565ace343266c43cf8af12f2849577510a74c6ed07d264",
			wrap:     "3463d7b67f7acf65bbd4fbd6b9f7075e1bdbfe33d30c4bb347d1bf4507bf92b2",
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			auth, wrap, err := AccountKeys([]byte(tt.password), syncVectorAccountKey(), tt.kdf)
			if err != nil {
				t.Fatal(err)
			}
			if h := hex.EncodeToString(auth); h != tt.auth {
				t.Errorf("auth key = %s, want %s", h, tt.auth)
			}
			if h := hex.EncodeToString(wrap); h != tt.wrap {
				t.Errorf("wrap key = %s, want %s", h, tt.wrap)
			}
		})
	}
}

// TestAccountKeysIsTheDocumentedFormula recomputes the derivation from
// argon2.IDKey and HMAC-SHA-256 by hand (RFC 5869 with one output block),
// so the vectors above say what docs/protocol.md says, not merely what
// the code happened to compute.
func TestAccountKeysIsTheDocumentedFormula(t *testing.T) {
	kdf := cheapKDF("0123456789abcdef")
	password, ak := []byte("pw"), syncVectorAccountKey()
	hm := func(key []byte, parts ...[]byte) []byte {
		m := hmac.New(sha256.New, key)
		for _, p := range parts {
			m.Write(p)
		}
		return m.Sum(nil)
	}
	ikm := append(argon2.IDKey(password, kdf.Salt, kdf.Time, kdf.MemoryK, kdf.Threads, 32), ak...)
	prk := hm(kdf.Salt, ikm)
	wantAuth := hm(prk, []byte("agentsecrets v1 auth key"), []byte{1})
	wantWrap := hm(prk, []byte("agentsecrets v1 private-key wrap"), []byte{1})
	auth, wrap, err := AccountKeys(password, ak, kdf)
	if err != nil {
		t.Fatal(err)
	}
	if !bytes.Equal(auth, wantAuth) || !bytes.Equal(wrap, wantWrap) {
		t.Fatalf("AccountKeys differs from HKDF-SHA-256(salt, Argon2id ‖ account key)")
	}
	if bytes.Equal(auth, wrap) {
		t.Fatal("auth key equals wrap key")
	}
}

// TestAccountKeysNeedsBothSecrets: changing either secret changes both
// outputs, and a malformed account key or weak KDF is refused.
func TestAccountKeysNeedsBothSecrets(t *testing.T) {
	kdf := cheapKDF("0123456789abcdef")
	a1, w1, err := AccountKeys([]byte("pw"), syncVectorAccountKey(), kdf)
	if err != nil {
		t.Fatal(err)
	}
	other := syncVectorAccountKey()
	other[31] ^= 1
	for name, in := range map[string]struct{ pw, ak []byte }{
		"other password":    {[]byte("pW"), syncVectorAccountKey()},
		"other account key": {[]byte("pw"), other},
	} {
		a2, w2, err := AccountKeys(in.pw, in.ak, kdf)
		if err != nil {
			t.Fatal(err)
		}
		if bytes.Equal(a1, a2) || bytes.Equal(w1, w2) {
			t.Errorf("%s: same keys", name)
		}
	}
	if _, _, err := AccountKeys([]byte("pw"), make([]byte, 16), kdf); err == nil {
		t.Error("16-byte account key accepted")
	}
	if _, _, err := AccountKeys([]byte("pw"), syncVectorAccountKey(), cheapKDF("short")); err == nil {
		t.Error("short salt accepted")
	}
}

// TestHKDFRFC5869 checks the HKDF the derivations use against RFC 5869
// appendix A.1 (test case 1).
func TestHKDFRFC5869(t *testing.T) {
	ikm := bytes.Repeat([]byte{0x0b}, 22)
	salt, _ := hex.DecodeString("000102030405060708090a0b0c")
	info, _ := hex.DecodeString("f0f1f2f3f4f5f6f7f8f9")
	// Through the same helpers AccountKeys calls.
	prk, err := hkdfExtract(ikm, salt)
	if err != nil {
		t.Fatal(err)
	}
	if h := hex.EncodeToString(prk); h != "077709362c2e32df0ddc3f0dc47bba6390b6c73bb50f9c3122ec844ad7c2b3e5" {
		t.Fatalf("PRK = %s", h)
	}
	okm, err := hkdfExpand(prk, string(info), 42)
	if err != nil {
		t.Fatal(err)
	}
	if h := hex.EncodeToString(okm); h != "3cb25f25faacd57a90434f64d0362f2a2d2d0a90cf1a5a4c5db02d56ecc4c5bf34007208d5b887185865" {
		t.Fatalf("OKM = %s", h)
	}
}

// TestSyncVectors pins the other sync derivations.
func TestSyncVectors(t *testing.T) {
	pk := syncVectorAccountKey() // any 32 bytes
	fk, err := SyncFingerprintKey(pk)
	if err != nil {
		t.Fatal(err)
	}
	fp, err := SyncFingerprint(pk, "00112233445566778899aabbccddeeff", "api", "STRIPE_KEY", []byte("sk_test_123"))
	if err != nil {
		t.Fatal(err)
	}
	pub := bytes.Repeat([]byte{0x42}, 32)
	tests := []struct{ name, got, want string }{
		{"sync fingerprint key", hex.EncodeToString(fk), "0b96deec3dfef146606b01fea9db85e3b4597699708d7c1befe51e7f8a5565ae"},
		{"sync fingerprint", fp, "4ba40e1f04f908c672f3f1bcb6c54b5f7c224a545e58f58bb6fc40a23f9e5798"},
		{"key fingerprint", KeyFingerprint(pub), "c110 6695 d23d eacc 8065 1221 19d8 1a6c"},
		{"fields", hex.EncodeToString(Fields([]byte("ab"), nil, []byte{0xff})), "00000002616200000000" + "00000001ff"},
	}
	for _, tt := range tests {
		if tt.got != tt.want {
			t.Errorf("%s = %s, want %s", tt.name, tt.got, tt.want)
		}
	}
	if _, err := SyncFingerprintKey(pk[:31]); err == nil {
		t.Error("31-byte project key accepted")
	}
}

// TestSealedBoxAndSignature: a box opens only with its recipient's key and
// not after any bit flips; a signature verifies only its own message and key.
func TestSealedBoxAndSignature(t *testing.T) {
	pub, priv, err := NewX25519()
	if err != nil {
		t.Fatal(err)
	}
	if derived, _ := X25519Public(priv); !bytes.Equal(derived, pub) {
		t.Fatal("X25519Public does not derive the generated public key")
	}
	pub2, priv2, _ := NewX25519()
	box, err := SealAnonymous(pub, []byte("workspace key"))
	if err != nil {
		t.Fatal(err)
	}
	if got, err := OpenAnonymous(pub, priv, box); err != nil || string(got) != "workspace key" {
		t.Fatalf("open = %q, %v", got, err)
	}
	if _, err := OpenAnonymous(pub2, priv2, box); err != ErrSealedBox {
		t.Fatalf("other recipient: %v", err)
	}
	for i := range box {
		m := bytes.Clone(box)
		m[i] ^= 0x80
		if _, err := OpenAnonymous(pub, priv, m); err == nil {
			t.Fatalf("flipped byte %d opened", i)
		}
	}
	seed := bytes.Repeat([]byte{7}, SignSeedSize)
	spub, _ := SignPublic(seed)
	sig, err := Sign(seed, []byte("msg"))
	if err != nil {
		t.Fatal(err)
	}
	if !Verify(spub, []byte("msg"), sig) || Verify(spub, []byte("msh"), sig) || Verify(spub[:31], []byte("msg"), sig) {
		t.Fatal("Verify")
	}
	if h := hex.EncodeToString(sig); h != "48191917f1651e664ae10eb3c63d4d5afc6c7095ddceea9f8bf690178cbc8655c3da8ae4265d541f928f72a6c128e7a6df2ca6279c7f2779ea817bfeba0a0409" {
		t.Errorf("ed25519 signature = %s (deterministic, pinned)", h)
	}
}
