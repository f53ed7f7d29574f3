package e2e

import (
	"strings"
	"testing"
	"time"

	"github.com/godbus/dbus/v5"
)

// TestLockedKeychain locks the Secret Service's login collection under a
// vault: commands that need a value fail fast with a clear "locked" error
// and a hint, status and doctor say so, and commands that read only the
// index keep working.
func TestLockedKeychain(t *testing.T) {
	v := NewVault(t, "keychain")
	v.RunIn([]byte("value-before-lock\n"), "secrets", "set", "BEFORE", "--from-stdin").OK(t)
	conn, err := dbus.SessionBus()
	if err != nil {
		t.Fatal(err)
	}
	service := conn.Object("org.freedesktop.secrets", "/org/freedesktop/secrets")
	var locked []dbus.ObjectPath
	var prompt dbus.ObjectPath
	if err := service.Call("org.freedesktop.Secret.Service.Lock", 0, []dbus.ObjectPath{loginCollection}).Store(&locked, &prompt); err != nil {
		t.Fatalf("lock the keyring: %v", err)
	}
	t.Cleanup(func() { unlockLogin(t, service) })

	start := time.Now()
	r := v.RunIn([]byte("value-while-locked\n"), "secrets", "set", "DURING", "--from-stdin")
	e := r.ErrorCode(t, "unavailable", 7)
	if !strings.Contains(e["message"].(string), "locked") || !strings.Contains(e["hint"].(string), "unlock") {
		t.Fatalf("the error should say locked and how to unlock: %v", e)
	}
	if d := time.Since(start); d > 4*time.Second {
		t.Fatalf("a locked keychain took %s to report", d)
	}
	st := v.Run("status").OK(t).JSON(t)
	if b := st["backend"].(map[string]any); b["reachable"] != false || !strings.Contains(b["detail"].(string), "locked") {
		t.Fatalf("status backend = %v", b)
	}
	r = v.Run("doctor")
	doc := r.JSON(t)
	if doc["healthy"] != false || r.Code != 13 {
		t.Fatalf("doctor should report the locked keychain and exit 13: exit %d: %v", r.Code, doc)
	}
	names := v.Run("secrets", "list", "--select", "secrets.#.name").OK(t)
	if strings.TrimSpace(string(names.Stdout)) != `["BEFORE"]` {
		t.Fatalf("list while locked: %s", names.Stdout)
	}
	unlockLogin(t, service)
	v.RunIn([]byte("value-after-unlock\n"), "secrets", "set", "AFTER", "--from-stdin").OK(t)
}

const loginCollection = dbus.ObjectPath("/org/freedesktop/secrets/collection/login")

// unlockLogin unlocks the collection without a prompt through
// gnome-keyring's own master-password call; the password is the one
// scripts/with-secret-service gives the throwaway keyring.
func unlockLogin(t *testing.T, service dbus.BusObject) {
	var output dbus.Variant
	var session dbus.ObjectPath
	if err := service.Call("org.freedesktop.Secret.Service.OpenSession", 0, "plain", dbus.MakeVariant("")).Store(&output, &session); err != nil {
		t.Fatalf("open a Secret Service session: %v", err)
	}
	secret := struct {
		Session     dbus.ObjectPath
		Parameters  []byte
		Value       []byte
		ContentType string
	}{session, []byte{}, []byte("throwaway-password"), "text/plain"}
	call := service.Call("org.gnome.keyring.InternalUnsupportedGuiltRiddenInterface.UnlockWithMasterPassword", 0, loginCollection, secret)
	if call.Err != nil {
		t.Fatalf("unlock the keyring: %v", call.Err)
	}
}
