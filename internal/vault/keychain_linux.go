package vault

import (
	"errors"
	"os"
	"path/filepath"
)

// keychainReachable decides, without calling D-Bus, whether a session bus
// exists. godbus would otherwise run dbus-launch and leave a stray bus and
// keyring daemon behind on a headless machine.
func keychainReachable(getenv func(string) string) error {
	if getenv("DBUS_SESSION_BUS_ADDRESS") != "" {
		return nil
	}
	if rt := getenv("XDG_RUNTIME_DIR"); rt != "" {
		if _, err := os.Stat(filepath.Join(rt, "bus")); err == nil {
			return nil
		}
	}
	return errors.New("no D-Bus session bus (DBUS_SESSION_BUS_ADDRESS is empty and $XDG_RUNTIME_DIR/bus does not exist), so no Secret Service")
}
