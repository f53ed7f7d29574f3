package main

import (
	"bytes"
	"context"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/tls"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/json"
	"encoding/pem"
	"math/big"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/agentsecrets/agentsecrets/commands"
)

// testEnv is an Env of agentsecrets-server with its own throwaway home; out
// is its stdout.
func testEnv(t *testing.T) (*commands.Env, *bytes.Buffer) {
	t.Helper()
	io, _, out, _ := commands.TestIO()
	root := t.TempDir()
	vars := map[string]string{"AGENTSECRETS_HOME": filepath.Join(root, "home"), "HOME": root}
	return &commands.Env{IO: io, Getenv: func(k string) string { return vars[k] }, Now: time.Now, Cwd: root, Serve: serve}, out
}

// TestServerRefusesBadSetup: plain HTTP off loopback, half a TLS pair and
// an unknown database are usage errors with a hint, before anything
// listens or opens; so is the word "server", which agentsecrets leaves out.
func TestServerRefusesBadSetup(t *testing.T) {
	for _, c := range []struct {
		args []string
		hint string
	}{
		{[]string{"--listen", "0.0.0.0:0"}, "--tls-cert"},
		{[]string{"--listen", "192.0.2.1:8787"}, "--tls-cert"},
		{[]string{"--listen", ":8787"}, "--tls-cert"},
		{[]string{"--tls-cert", "c.pem"}, "both"},
		// A value that is the command's name is a value.
		{[]string{"--tls-cert", "server"}, "both"},
		{[]string{"--db", "mysql://db/x"}, "--db"},
		{[]string{"--db", "sqlite:"}, "--db"},
		{[]string{"server", "--listen", "127.0.0.1:0"}, "agentsecrets server --help"},
	} {
		env, out := testEnv(t)
		if code := commands.ServerMain(append(c.args, "--json"), env); code != 2 {
			t.Errorf("%v: exit %d, want 2 (usage): %s", c.args, code, out)
			continue
		}
		var res commands.ErrorResult
		if err := json.Unmarshal(out.Bytes(), &res); err != nil || res.Error.Code != "usage" || !strings.Contains(res.Error.Hint, c.hint) {
			t.Errorf("%v: %s", c.args, out)
		}
	}
}

// syncBuffer is a stderr the test reads while the server writes to it.
type syncBuffer struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (s *syncBuffer) Write(p []byte) (int, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.Write(p)
}

func (s *syncBuffer) String() string {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.String()
}

// runServer starts `agentsecrets-server ARGS` (no word "server") in-process and returns its
// URL (from the "listening" log line) and a stop function that ends it as
// a signal would and returns its exit status and stdout.
func runServer(t *testing.T, args ...string) (string, *syncBuffer, func() (int, string)) {
	t.Helper()
	env, out := testEnv(t)
	logs := &syncBuffer{}
	env.IO.Err = logs
	ctx, cancel := context.WithCancel(context.Background())
	env.Context = ctx
	done := make(chan int, 1)
	go func() { done <- commands.ServerMain(append([]string{"--json"}, args...), env) }()
	var url string
	deadline := time.Now().Add(10 * time.Second)
	for url == "" {
		for _, line := range strings.Split(logs.String(), "\n") {
			var l struct{ Msg, URL string }
			if json.Unmarshal([]byte(line), &l) == nil && l.Msg == "listening" {
				url = l.URL
			}
		}
		select {
		case code := <-done:
			t.Fatalf("server exited %d: %s %s", code, out, logs)
		default:
		}
		if time.Now().After(deadline) {
			t.Fatalf("no listening line: %s", logs)
		}
		time.Sleep(10 * time.Millisecond)
	}
	return url, logs, func() (int, string) {
		cancel()
		return <-done, out.String()
	}
}

// TestServerCommand runs the command on its default SQLite database in the
// state directory, answers /healthz and /readyz, and on the signal stops
// and prints its result.
func TestServerCommand(t *testing.T) {
	url, logs, stop := runServer(t, "--listen", "127.0.0.1:0")
	for _, p := range []string{"/healthz", "/readyz"} {
		resp, err := http.Get(url + p)
		if err != nil || resp.StatusCode != 200 {
			t.Fatalf("GET %s: %v %v", p, resp, err)
		}
		resp.Body.Close()
	}
	code, out := stop()
	var res commands.ServerResult
	if code != 0 || json.Unmarshal([]byte(out), &res) != nil || res.Backend != "sqlite" || !strings.HasSuffix(res.DB, "server.db") || res.Signup != "closed" || res.TLS {
		t.Fatalf("exit %d: %s", code, out)
	}
	if _, err := os.Stat(strings.TrimPrefix(res.DB, "sqlite:")); err != nil {
		t.Fatal(err)
	}
	if !strings.Contains(logs.String(), `"route":"GET /readyz"`) {
		t.Fatalf("no request log: %s", logs)
	}
}

// TestServerTLS: with a certificate the server may listen on every
// interface, and it speaks only TLS there.
func TestServerTLS(t *testing.T) {
	dir := t.TempDir()
	certFile, keyFile, pool := selfSigned(t, dir)
	url, _, stop := runServer(t, "--listen", "0.0.0.0:0", "--tls-cert", certFile, "--tls-key", keyFile, "--db", "sqlite:"+filepath.Join(dir, "s.db"))
	_, port, _ := net.SplitHostPort(strings.TrimPrefix(url, "https://"))
	client := &http.Client{Transport: &http.Transport{TLSClientConfig: &tls.Config{RootCAs: pool}}}
	resp, err := client.Get("https://127.0.0.1:" + port + "/healthz")
	if err != nil || resp.StatusCode != 200 {
		t.Fatalf("https: %v %v", resp, err)
	}
	resp.Body.Close()
	if resp, err := http.Get("http://127.0.0.1:" + port + "/healthz"); err == nil && resp.StatusCode == 200 {
		t.Fatal("plain HTTP answered on the TLS port")
	}
	if code, out := stop(); code != 0 || !strings.Contains(out, `"tls": true`) && !strings.Contains(out, `"tls":true`) {
		t.Fatalf("exit %d: %s", code, out)
	}
}

func selfSigned(t *testing.T, dir string) (certFile, keyFile string, pool *x509.CertPool) {
	t.Helper()
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	tmpl := &x509.Certificate{SerialNumber: big.NewInt(1), Subject: pkix.Name{CommonName: "test"}, NotBefore: time.Now().Add(-time.Hour),
		NotAfter: time.Now().Add(time.Hour), IPAddresses: []net.IP{net.ParseIP("127.0.0.1")}, KeyUsage: x509.KeyUsageDigitalSignature,
		ExtKeyUsage: []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth}}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, tmpl, &key.PublicKey, key)
	if err != nil {
		t.Fatal(err)
	}
	kder, err := x509.MarshalECPrivateKey(key)
	if err != nil {
		t.Fatal(err)
	}
	certFile, keyFile = filepath.Join(dir, "cert.pem"), filepath.Join(dir, "key.pem")
	os.WriteFile(certFile, pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: der}), 0o600)
	os.WriteFile(keyFile, pem.EncodeToMemory(&pem.Block{Type: "EC PRIVATE KEY", Bytes: kder}), 0o600)
	cert, _ := x509.ParseCertificate(der)
	pool = x509.NewCertPool()
	pool.AddCert(cert)
	return certFile, keyFile, pool
}
