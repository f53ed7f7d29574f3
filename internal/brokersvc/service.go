package brokersvc

import (
	"context"
	"errors"
	"io/fs"
	"os"
	"strings"

	"github.com/agentsecrets/agentsecrets/internal/errcode"
)

// startService (re)starts the broker through the service manager. A
// restart, not a plain start, so that a re-install's new binary and
// --user list take effect. Without systemd nothing is started and the
// report carries the `broker run --as` command instead.
func startService(ctx context.Context, r Runner, p Plan, rep *Report) error {
	var err error
	switch {
	case p.OS == "darwin":
		// bootout fails when the daemon is not loaded, which is fine.
		_, _ = r.Run(ctx, "launchctl", "bootout", "system/"+LaunchLabel)
		err = runAll(ctx, r,
			[]string{"launchctl", "enable", "system/" + LaunchLabel},
			[]string{"launchctl", "bootstrap", "system", p.ServiceFile})
	case p.Systemd:
		err = runAll(ctx, r,
			[]string{"systemctl", "daemon-reload"},
			[]string{"systemctl", "enable", UnitName},
			[]string{"systemctl", "restart", UnitName})
	default:
		rep.add("service", Skipped, "systemd is not running; start the broker with the run_as command")
		rep.RunAs = p.RunAsCommand()
		return nil
	}
	if err != nil {
		return errcode.WithHint(errcode.Errorf(errcode.Unavailable, "start the broker service: %w", err), startHint(p))
	}
	rep.add("service", Started, serviceName(p))
	rep.Started = true
	return nil
}

func startHint(p Plan) string {
	if p.OS == "darwin" {
		return "sudo launchctl print system/" + LaunchLabel
	}
	return "journalctl -u " + UnitName
}

func serviceName(p Plan) string {
	if p.OS == "darwin" {
		return LaunchLabel
	}
	return UnitName
}

// stopService stops and disables the broker and removes its service file.
func stopService(ctx context.Context, r Runner, p Plan, rep *Report) error {
	_, err := os.Lstat(p.ServiceFile)
	present := err == nil
	switch {
	case !present:
	case p.OS == "darwin":
		// Not loaded is not an error here either.
		_, _ = r.Run(ctx, "launchctl", "bootout", "system/"+LaunchLabel)
		rep.add("service", Stopped, LaunchLabel)
	case p.Systemd:
		if _, err := r.Run(ctx, "systemctl", "disable", "--now", UnitName); err != nil {
			return errcode.WithHint(errcode.Errorf(errcode.Unavailable, "stop the broker service: %w", err), "sudo systemctl status "+UnitName)
		}
		rep.add("service", Stopped, UnitName)
	}
	if err := os.Remove(p.ServiceFile); err != nil && !errors.Is(err, fs.ErrNotExist) {
		return errcode.Errorf(errcode.Internal, "remove %s: %w", p.ServiceFile, err)
	}
	if !present {
		rep.add("service file", Absent, p.ServiceFile)
		return nil
	}
	rep.add("service file", Removed, p.ServiceFile)
	if p.OS == "linux" && p.Systemd {
		if _, err := r.Run(ctx, "systemctl", "daemon-reload"); err != nil {
			return errcode.Errorf(errcode.Unavailable, "reload systemd: %w", err)
		}
	}
	return nil
}

// serviceState asks the service manager for the broker's state: systemd's
// ActiveState ("active", "failed"…) or launchd's state ("running"…); ""
// when no service manager runs the broker here.
func serviceState(ctx context.Context, r Runner, p Plan) string {
	switch {
	case p.OS == "darwin":
		out, err := r.Run(ctx, "launchctl", "print", "system/"+LaunchLabel)
		if err != nil {
			return "not loaded"
		}
		for _, ln := range strings.Split(string(out), "\n") {
			if k, v, ok := strings.Cut(strings.TrimSpace(ln), " = "); ok && k == "state" {
				return v
			}
		}
		return "loaded"
	case p.Systemd:
		// is-active exits non-zero for every state but active and still
		// prints the state.
		out, _ := r.Run(ctx, "systemctl", "is-active", UnitName)
		return strings.TrimSpace(string(out))
	}
	return ""
}
