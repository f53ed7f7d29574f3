package e2e

import (
	"context"
	"encoding/hex"
	"encoding/json"
	"errors"
	"net/http"
	"os"
	"strings"
	"testing"
	"time"

	"github.com/agentsecrets/agentsecrets/internal/crypto"
	"github.com/agentsecrets/agentsecrets/internal/home"
	"github.com/agentsecrets/agentsecrets/internal/secret"
	"github.com/agentsecrets/agentsecrets/internal/vault"
)

// openStore opens v's vault in the test process, to play a crashed writer:
// write a value without its index entry, or the reverse. The backend is
// opened on its own, as the Store keeps its own unexported.
func openStore(t *testing.T, v *Vault) (*vault.Store, vault.Backend) {
	t.Helper()
	env := map[string]string{}
	for _, kv := range v.Env() {
		k, val, _ := strings.Cut(kv, "=")
		env[k] = val
	}
	getenv := func(k string) string { return env[k] }
	dirs, err := home.Resolve(getenv)
	must(t, err)
	st, err := vault.Open(dirs, vault.Options{Getenv: getenv, Now: time.Now,
		VaultPassphrase: func(bool) ([]byte, error) { return []byte(vaultPassphrase), nil }})
	must(t, err)
	var b vault.Backend
	if st.Config.Backend == vault.KindFile {
		b, err = vault.OpenFileVault(dirs.VaultFile(), st.Config.VaultID, []byte(vaultPassphrase))
		must(t, err)
	} else {
		b = vault.NewKeychain(st.Config.VaultID, getenv)
	}
	return st, b
}

// setAction runs `secrets set NAME` with value on stdin and returns its action.
func setAction(t *testing.T, v *Vault, name, value string) string {
	t.Helper()
	var res struct {
		Secrets []vault.PutResult `json:"secrets"`
	}
	r := v.RunIn([]byte(value), "secrets", "set", name, "--from-stdin").OK(t)
	must(t, json.Unmarshal(r.Stdout, &res))
	return res.Secrets[0].Action
}

func doctorChecks(t *testing.T, v *Vault, args ...string) (bool, map[string]map[string]any) {
	t.Helper()
	r := v.Run(append([]string{"doctor"}, args...)...)
	m := r.JSON(t)
	// A failed check exits check_failed (13) after the full result.
	if want := map[bool]int{true: 0, false: 13}[m["healthy"] == true]; r.Code != want {
		t.Fatalf("doctor %v: exit %d, want %d: %s", args, r.Code, want, r.Stdout)
	}
	checks := map[string]map[string]any{}
	for _, c := range m["checks"].([]any) {
		c := c.(map[string]any)
		checks[c["name"].(string)] = c
	}
	return m["healthy"] == true, checks
}

// TestCrashWindows plays the two crashes on each backend: a value written
// without its index update (an interrupted `secrets set`), and an index
// update without its value delete (an interrupted `secrets delete`). The
// broker refuses the disagreeing value, `secrets set` of the original value
// really stores it, doctor reports both, and doctor --repair fixes both.
func TestCrashWindows(t *testing.T) {
	for _, backend := range []string{"file", "keychain"} {
		t.Run(backend, func(t *testing.T) {
			ctx := context.Background()
			orig, interrupted := randomValue(t, "sk_orig_"), randomValue(t, "sk_new_")
			var got []string
			up := newUpstream(t, func(w http.ResponseWriter, r *http.Request, body string) {
				got = append(got, strings.TrimPrefix(r.Header.Get("Authorization"), "Bearer "))
			})
			v := NewVault(t, backend)
			v.RunIn([]byte(orig), "secrets", "set", "KEY", "--from-stdin").OK(t)
			v.Run("workspace", "allowlist", "add", up.hostport(), "--allow-http", "--allow-private", "--passphrase-file", v.AdminFile).OK(t)
			v.Run("secrets", "bind", "KEY", up.hostport(), "--surface", "header", "--passphrase-file", v.AdminFile).OK(t)
			st, b := openStore(t, v)
			// What `secrets set` does before it is killed: journal the key
			// in the index, then write the value; the final index write
			// (new fingerprint, key cleared) never happens.
			crash := func() {
				must(t, st.Update(ctx, func(ix *vault.Index) error {
					ix.Pending = append(ix.Pending, "default/default/KEY")
					return nil
				}))
				must(t, b.Put(ctx, map[string]secret.Value{"default/default/KEY": secret.New([]byte(interrupted))}))
			}

			// (a) The value of an interrupted set, without its index write.
			crash()
			r := v.Run("call", "--url", up.URL+"/a", "--bearer", "KEY")
			e := r.ErrorCode(t, "conflict", 6)
			if !strings.Contains(e["hint"].(string), "doctor --repair") {
				t.Errorf("hint %v", e["hint"])
			}
			if len(got) != 0 {
				t.Fatalf("the broker sent the disagreeing value")
			}
			healthy, checks := doctorChecks(t, v)
			if healthy || !strings.Contains(checks["consistency"]["detail"].(string), "mismatch default/default/KEY") {
				t.Fatalf("doctor: healthy=%v %v", healthy, checks["consistency"])
			}
			if a := setAction(t, v, "KEY", orig); a != "updated" {
				t.Fatalf("secrets set of the original value after the crash: %s, want updated", a)
			}
			v.Run("call", "--url", up.URL+"/b", "--bearer", "KEY").OK(t)
			if a := setAction(t, v, "KEY", orig); a != "unchanged" {
				t.Fatalf("secrets set of the same value: %s, want unchanged", a)
			}

			// Repair adopts the stored value as a new version.
			crash()
			v.Run("doctor", "--repair").OK(t)
			if healthy, checks := doctorChecks(t, v); !healthy {
				t.Fatalf("after --repair: %v", checks)
			}
			v.Run("call", "--url", up.URL+"/c", "--bearer", "KEY").OK(t)
			if len(got) != 2 || got[0] != orig || got[1] != interrupted {
				t.Fatalf("values sent: %d, want orig then the adopted value", len(got))
			}

			// (b) An interrupted delete: the index no longer names GONE and
			// journals its key, as DeleteSecrets's first step does; the value
			// stays. doctor names it; --repair deletes it now.
			interruptedDelete := func(name string) {
				v.RunIn([]byte(orig), "secrets", "set", name, "--from-stdin").OK(t)
				st, _ := openStore(t, v)
				must(t, st.Update(ctx, func(ix *vault.Index) error {
					delete(ix.Workspaces["default"].Projects["default"].Secrets, name)
					ix.Pending = append(ix.Pending, "default/default/"+name)
					return nil
				}))
			}
			interruptedDelete("GONE")
			_, checks = doctorChecks(t, v)
			if !strings.Contains(checks["leftover_values"]["detail"].(string), "leftover default/default/GONE") {
				t.Fatalf("doctor: %v", checks)
			}
			v.Run("doctor", "--repair").OK(t)
			if _, err := b.Get(ctx, "default/default/GONE"); !errors.Is(err, vault.ErrValueMissing) {
				t.Fatalf("doctor --repair left the orphan: %v", err)
			}
			if healthy, checks := doctorChecks(t, v); !healthy || checks["leftover_values"] != nil {
				t.Fatalf("after --repair: %v", checks)
			}
			// Without --repair, the next write removes it, as it removes
			// leftover temp files.
			interruptedDelete("GONE2")
			v.RunIn([]byte(orig), "secrets", "set", "OTHER", "--from-stdin").OK(t)
			if _, err := b.Get(ctx, "default/default/GONE2"); !errors.Is(err, vault.ErrValueMissing) {
				t.Fatalf("the next write left the orphan: %v", err)
			}
			if healthy, checks := doctorChecks(t, v); !healthy || checks["leftover_values"] != nil {
				t.Fatalf("after the next write: %v", checks)
			}
			for _, r := range []*Result{r} {
				noValue(t, "output", append(r.Stdout, r.Stderr...), interrupted)
			}
		})
	}
}

// TestFileBackendFindsUnjournalledOrphans: the file vault can be listed,
// so an orphan is found even when no journal names it (a crash of a
// version without the journal).
func TestFileBackendFindsUnjournalledOrphans(t *testing.T) {
	v := NewVault(t, "file")
	_, b := openStore(t, v)
	must(t, b.Put(context.Background(), map[string]secret.Value{"default/default/STRAY": secret.New([]byte(randomValue(t, "x_")))}))
	healthy, checks := doctorChecks(t, v)
	if healthy || !strings.Contains(checks["consistency"]["detail"].(string), "orphan default/default/STRAY") {
		t.Fatalf("doctor: healthy=%v %v", healthy, checks["consistency"])
	}
}

// TestFingerprintsAreSaltedAndHidden: the same value imported under many
// names gets a different fingerprint under each, `secrets list` shows no
// fingerprint, and an index written with the unsalted scheme keeps
// working: the broker sends its values, and `secrets set` of the same value
// says unchanged and upgrades the fingerprint.
func TestFingerprintsAreSaltedAndHidden(t *testing.T) {
	up := newUpstream(t, func(w http.ResponseWriter, r *http.Request, body string) {})
	guess := "user:hunter2"
	v := brokerVault(t, map[string]string{"HUMAN": guess}, up)
	var lines []string
	for _, n := range []string{"G1", "G2", "G3"} {
		lines = append(lines, n+"="+guess)
	}
	envFile := v.Dir + "/guesses.env"
	must(t, os.WriteFile(envFile, []byte(strings.Join(lines, "\n")+"\n"), 0o600))
	v.Run("secrets", "import", envFile).OK(t)

	st, b := openStore(t, v)
	ix, err := st.Index()
	must(t, err)
	seen := map[string]string{}
	for name, s := range ix.Workspaces["default"].Projects["default"].Secrets {
		if other, dup := seen[s.Fingerprint]; dup {
			t.Errorf("%s and %s share a fingerprint", name, other)
		}
		seen[s.Fingerprint] = name
	}
	list := v.Run("secrets", "list").OK(t)
	if strings.Contains(string(list.Stdout), "fingerprint") {
		t.Errorf("secrets list shows fingerprints: %s", list.Stdout)
	}
	for fp := range seen {
		if strings.Contains(string(list.Stdout), fp[:16]) {
			t.Error("secrets list shows a fingerprint prefix")
		}
	}

	// Rewrite HUMAN's fingerprint in the first, unsalted scheme.
	hexKey, err := b.Get(context.Background(), "meta/fingerprint-key")
	must(t, err)
	key, _ := hex.DecodeString(string(hexKey.Reveal()))
	must(t, st.Update(context.Background(), func(ix *vault.Index) error {
		s := ix.Workspaces["default"].Projects["default"].Secrets["HUMAN"]
		s.Fingerprint, s.FingerprintScheme = crypto.Fingerprint(key, []byte(guess)), 0
		return nil
	}))
	v.Run("call", "--url", up.URL+"/x", "--bearer", "HUMAN").OK(t)
	if healthy, checks := doctorChecks(t, v); !healthy {
		t.Fatalf("doctor on an old-scheme index: %v", checks)
	}
	if a := setAction(t, v, "HUMAN", guess); a != "unchanged" {
		t.Fatalf("set of the same value after migration: %s", a)
	}
	ix, err = st.Index()
	must(t, err)
	if s := ix.Workspaces["default"].Projects["default"].Secrets["HUMAN"]; s.FingerprintScheme != 2 ||
		s.Fingerprint != crypto.SecretFingerprint(key, "default", "default", "HUMAN", []byte(guess)) {
		t.Errorf("fingerprint not upgraded: scheme %d", s.FingerprintScheme)
	}
	if a := setAction(t, v, "HUMAN", guess); a != "unchanged" {
		t.Fatalf("set of the same value after the upgrade: %s", a)
	}
}
