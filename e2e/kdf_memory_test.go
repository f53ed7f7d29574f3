package e2e

import (
	"io"
	"net/http"
	"os"
	"testing"
)

// kdfGarbageRSS is a resident size no long-running process of ours
// reaches once its file vault is unlocked: Argon2id's 64 MiB of work
// memory, kept until the next collection, put a proxy at 82 MB after its
// start and 147 MB under load before that collection came; returned at
// once (vault.Options.OnUnlock), it starts at 21 and stays under 28.
const kdfGarbageRSS = 48

// needProc skips where a process's resident size cannot be read from
// /proc (macOS).
func needProc(t *testing.T) {
	t.Helper()
	if _, err := os.Stat("/proc/self/status"); err != nil {
		t.Skip("needs /proc to read a process's resident size")
	}
}

// TestProxyFileVaultMemory: a proxy on a file vault gives back the key
// derivation's memory before it serves, and does not grow into it under
// load.
func TestProxyFileVaultMemory(t *testing.T) {
	if viaBroker() {
		t.Skip("`proxy start` hands its connections to the broker daemon: TestBrokerFileVaultMemory")
	}
	needProc(t)
	up := newUpstream(t, func(w http.ResponseWriter, r *http.Request, body string) {
		io.WriteString(w, `{"balance":1}`)
	})
	v := brokerVault(t, map[string]string{"KEY": "sk_kdf_memory_0123456789abcdef"}, up)
	cmd, addr, token := launchProxy(t, v.Env(), v.Dir)
	pid := cmd.Process.Pid
	if rss := procStatus(pid, "VmRSS"); rss < 0 || rss >= kdfGarbageRSS {
		t.Fatalf("proxy RSS %.1f MB once listening, want under %d", rss, kdfGarbageRSS)
	}
	proxyGets(t, addr, token, up.URL+"/v1/balance", 3000)
	if rss := procStatus(pid, "VmRSS"); rss >= kdfGarbageRSS {
		t.Fatalf("proxy RSS %.1f MB after 3,000 requests, want under %d", rss, kdfGarbageRSS)
	}
}

// TestBrokerFileVaultMemory: the broker daemon, which creates and unlocks
// its clients' file vaults, gives back the key derivation's memory.
func TestBrokerFileVaultMemory(t *testing.T) {
	needProc(t)
	d := startBrokerDaemon(t, "")
	v := d.client(t)
	v.Run("init", "--admin-passphrase-file", v.AdminFile).OK(t)
	if rss := procStatus(d.cmd.Process.Pid, "VmRSS"); rss < 0 || rss >= kdfGarbageRSS {
		t.Fatalf("daemon RSS %.1f MB after creating a vault, want under %d", rss, kdfGarbageRSS)
	}
	v.RunIn([]byte(randomValue(t, "sk_kdf_")), "secrets", "set", "KEY", "--from-stdin").OK(t)
	v.Run("secrets", "list").OK(t)
	if rss := procStatus(d.cmd.Process.Pid, "VmRSS"); rss < 0 || rss >= kdfGarbageRSS {
		t.Fatalf("daemon RSS %.1f MB with the vault unlocked, want under %d", rss, kdfGarbageRSS)
	}
}
