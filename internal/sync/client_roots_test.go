package sync

import (
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/pem"
	"math/big"
	"net/http"
	"os"
	"path/filepath"
	"testing"
	"time"
)

// TestClientRootsLoadedOnlyForACAFile: without AGENTSECRETS_CA_FILE the
// client leaves RootCAs unset, so Go loads the system roots only at the
// first TLS handshake. Loading them eagerly parsed every certificate under
// /etc/ssl on each command, about 20 ms of CPU, even for a plain-HTTP
// loopback server or a `secrets diff` that ends at one request: it made
// `secrets diff` 2.7x a `status` process against a 1.5x target. With a CA
// file the pool is the system roots plus that CA, as before.
func TestClientRootsLoadedOnlyForACAFile(t *testing.T) {
	roots := func(getenv func(string) string) bool {
		t.Helper()
		c, err := NewClient(Options{Server: "https://sync.example.com", Email: "a@example.com", Getenv: getenv})
		if err != nil {
			t.Fatal(err)
		}
		return c.http.Transport.(*http.Transport).TLSClientConfig.RootCAs != nil
	}
	if roots(func(string) string { return "" }) || roots(nil) {
		t.Error("the client loaded a root pool without a CA file")
	}
	ca := filepath.Join(t.TempDir(), "ca.pem")
	if err := os.WriteFile(ca, testCAPEM(t), 0o600); err != nil {
		t.Fatal(err)
	}
	if !roots(func(k string) string {
		if k == CAFileEnv {
			return ca
		}
		return ""
	}) {
		t.Error("the client ignored the CA file")
	}
}

// testCAPEM is a fresh self-signed CA certificate in PEM form.
func testCAPEM(t *testing.T) []byte {
	t.Helper()
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	tmpl := &x509.Certificate{SerialNumber: big.NewInt(1), Subject: pkix.Name{CommonName: "test-ca"},
		NotBefore: time.Now().Add(-time.Hour), NotAfter: time.Now().Add(time.Hour), IsCA: true, BasicConstraintsValid: true}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, tmpl, &key.PublicKey, key)
	if err != nil {
		t.Fatal(err)
	}
	return pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: der})
}
