package e2e

import (
	"fmt"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"testing"
)

// TestBrokerMigrate: a local vault with a canary value, an allowlist entry,
// a binding and a second project moves into the broker; the value reaches
// no output and no file but the daemon's (encrypted) vault; the local vault
// is gone; a call through the broker then works; a re-run is a no-op.
func TestBrokerMigrate(t *testing.T) {
	canary := randomValue(t, "CANARY_migrate_")
	canary2 := randomValue(t, "CANARY_p2_")
	up := newUpstream(t, func(w http.ResponseWriter, r *http.Request, body string) { fmt.Fprint(w, `{"ok":true}`) })
	local := brokerVault(t, map[string]string{"KEY": canary}, up)
	local.Run("project", "create", "p2").OK(t)
	local.RunIn([]byte(canary2), "secrets", "set", "K2", "--from-stdin", "--project", "p2").OK(t)
	local.Run("secrets", "bind", "K2", "--release", "env", "--project", "p2", "--passphrase-file", local.AdminFile).OK(t)

	d := startBroker(t, currentUser(t))
	// The same user and home, now with the broker configured.
	v := local.with("AGENTSECRETS_BROKER=unix:" + d.Socket)
	outs := []*Result{v.Run("init", "--admin-passphrase-file", v.AdminFile).OK(t)}
	// Until it moves, the local vault is unused: broker status says so.
	before := v.Run("broker", "status").OK(t)
	if !strings.Contains(string(before.Stdout), "broker migrate") {
		t.Errorf("broker status does not mention the unused local vault: %s", before.Stdout)
	}

	m := v.Run("broker", "migrate", "--passphrase-file", v.AdminFile).OK(t)
	outs = append(outs, m)
	res := m.JSON(t)
	if res["source_deleted"] != true || res["allowlist_added"] != float64(1) || res["bindings_added"] != float64(1) || res["releases_added"] != float64(1) {
		t.Fatalf("migrate: %s", m.Stdout)
	}
	var names []string
	for _, s := range res["secrets"].([]any) {
		s := s.(map[string]any)
		names = append(names, fmt.Sprint(s["workspace"], "/", s["project"], "/", s["name"]))
	}
	if strings.Join(names, " ") != "default/default/KEY default/p2/K2" {
		t.Fatalf("moved %v", names)
	}
	for _, f := range []string{"config.json", "index.json", "vault.enc"} {
		if _, err := os.Stat(filepath.Join(local.Home, f)); !os.IsNotExist(err) {
			t.Errorf("the local %s is still there (%v)", f, err)
		}
	}

	if after := v.Run("broker", "status").OK(t); strings.Contains(string(after.Stdout), "local vault") {
		t.Errorf("broker status still warns after the migration: %s", after.Stdout)
	}
	call := v.Run("call", "--url", up.URL+"/after", "--header", "X-Api-Key=KEY").OK(t)
	outs = append(outs, call)
	reqs := up.requests()
	if got := reqs[len(reqs)-1].Header.Get("X-Api-Key"); got != canary {
		t.Fatalf("the call through the broker did not inject the migrated value")
	}
	if list := v.Run("secrets", "list", "--project", "p2").OK(t); !strings.Contains(string(list.Stdout), `"K2"`) {
		t.Fatalf("p2 not in the broker: %s", list.Stdout)
	}

	again := v.Run("broker", "migrate", "--passphrase-file", v.AdminFile).OK(t)
	outs = append(outs, again)
	if r := again.JSON(t); r["source_deleted"] != false || len(r["secrets"].([]any)) != 0 {
		t.Fatalf("re-run was not a no-op: %s", again.Stdout)
	}
	if n := len(v.Run("secrets", "list").OK(t).JSON(t)["secrets"].([]any)); n != 1 {
		t.Fatalf("%d secrets after a re-run, want 1", n)
	}

	// The value: nowhere but the daemon's vault (where it is encrypted,
	// so not even there in the clear).
	for _, c := range []string{canary, canary2} {
		noneContains(t, "a migrated value", c, filepath.Dir(local.Home), outs...)
		noneContains(t, "a migrated value", c, d.State)
		log := d.log()
		noValue(t, "the daemon's log", log, c)
		for _, r := range outs {
			noValue(t, "output of "+strings.Join(r.Args, " "), append(r.Stdout, r.Stderr...), c)
		}
	}
}

// TestBrokerMigrateConflict: a name the broker already holds with another
// value stops the migration and the local vault stays whole.
func TestBrokerMigrateConflict(t *testing.T) {
	local := NewVault(t, "file")
	local.RunIn([]byte(randomValue(t, "v_local_")), "secrets", "set", "KEY", "--from-stdin").OK(t)
	d := startBroker(t, currentUser(t))
	v := local.with("AGENTSECRETS_BROKER=unix:" + d.Socket)
	v.Run("init", "--admin-passphrase-file", v.AdminFile).OK(t)
	v.RunIn([]byte(randomValue(t, "v_broker_")), "secrets", "set", "KEY", "--from-stdin").OK(t)

	r := v.Run("broker", "migrate", "--passphrase-file", v.AdminFile)
	r.ErrorCode(t, "conflict", r.Code)
	if r.Code == 0 {
		t.Fatal("a conflicting migration succeeded")
	}
	if _, err := os.Stat(filepath.Join(local.Home, "index.json")); err != nil {
		t.Fatalf("the local vault was touched: %v", err)
	}
	local.Run("secrets", "list").OK(t)
}

// TestBrokerMigrateFinishesInterrupted: a migration that died after
// deleting the local values (here the vault file) but before the index
// is finished by a re-run: the names the broker holds are confirmed, the
// rest of the local vault is deleted.
func TestBrokerMigrateFinishesInterrupted(t *testing.T) {
	local := NewVault(t, "file")
	local.RunIn([]byte(randomValue(t, "v_")), "secrets", "set", "KEY", "--from-stdin").OK(t)
	index, err := os.ReadFile(filepath.Join(local.Home, "index.json"))
	must(t, err)
	config, err := os.ReadFile(filepath.Join(local.Home, "config.json"))
	must(t, err)
	d := startBroker(t, currentUser(t))
	v := local.with("AGENTSECRETS_BROKER=unix:" + d.Socket)
	v.Run("init", "--admin-passphrase-file", v.AdminFile).OK(t)
	v.Run("broker", "migrate", "--passphrase-file", v.AdminFile).OK(t)
	// The crash: the vault file is gone, the index and config are not.
	must(t, os.WriteFile(filepath.Join(local.Home, "index.json"), index, 0o600))
	must(t, os.WriteFile(filepath.Join(local.Home, "config.json"), config, 0o600))

	r := v.Run("broker", "migrate", "--passphrase-file", v.AdminFile).OK(t).JSON(t)
	s := r["secrets"].([]any)
	if r["source_deleted"] != true || len(s) != 1 || s[0].(map[string]any)["action"] != "finished" {
		t.Fatalf("re-run after the interruption: %v", r)
	}
	if _, err := os.Stat(filepath.Join(local.Home, "index.json")); !os.IsNotExist(err) {
		t.Fatalf("the local index is still there: %v", err)
	}
}
