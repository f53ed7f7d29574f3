package brokersvc

import (
	"encoding/xml"
	"path/filepath"
	"strings"
)

// header opens both service files: they are generated, and an edit is
// lost at the next install.
const header = "Written by `agentsecrets broker install`; it is rewritten by the next install and removed by `agentsecrets broker uninstall`."

// UnitText is the systemd unit of p. systemd creates the state and runtime
// directories with the right owner and mode at every start (the runtime
// one lives on a tmpfs); a directory outside /var/lib or /run is instead
// made writable with ReadWritePaths, because ProtectSystem=strict makes the
// rest of the file system read-only.
func UnitText(p Plan) string {
	var b strings.Builder
	line := func(s ...string) {
		for _, l := range s {
			b.WriteString(l)
			b.WriteByte('\n')
		}
	}
	line("# "+header,
		"[Unit]",
		"Description=agentsecrets broker: uses API credentials on behalf of the agent's user, who cannot read them",
		"Documentation=https://github.com/agentsecrets/agentsecrets/blob/main/docs/broker.md",
		"Wants=network-online.target",
		"After=network-online.target",
		"",
		"[Service]",
		"Type=simple",
		"User="+p.User,
		"Group="+p.Group,
		// Paths and names are validated to need no quoting (plan.go).
		"ExecStart="+strings.Join(p.RunArgs(), " "))
	if rel, ok := under("/var/lib", p.StateDir); ok {
		line("StateDirectory="+rel, "StateDirectoryMode=0700")
	} else {
		line("ReadWritePaths=" + p.StateDir)
	}
	if rel, ok := under("/run", p.SocketDir); ok {
		line("RuntimeDirectory="+rel, "RuntimeDirectoryMode=0750")
	} else {
		line("ReadWritePaths=" + p.SocketDir)
	}
	line("UMask=0077",
		"Restart=on-failure",
		"RestartSec=1s",
		// The broker needs no privilege at all: it reads its own files,
		// listens on a unix socket and dials HTTPS.
		"NoNewPrivileges=yes",
		"CapabilityBoundingSet=",
		"AmbientCapabilities=",
		"ProtectSystem=strict",
		"ProtectHome=yes",
		"PrivateTmp=yes",
		"PrivateDevices=yes",
		// Other users do not even see the broker's /proc entries.
		"ProtectProc=invisible",
		"ProtectKernelTunables=yes",
		"ProtectKernelModules=yes",
		"ProtectKernelLogs=yes",
		"ProtectControlGroups=yes",
		"ProtectClock=yes",
		"ProtectHostname=yes",
		"RestrictNamespaces=yes",
		"RestrictRealtime=yes",
		"RestrictSUIDSGID=yes",
		"RemoveIPC=yes",
		"LockPersonality=yes",
		// Go never maps memory writable and executable at once.
		"MemoryDenyWriteExecute=yes",
		"RestrictAddressFamilies=AF_UNIX AF_INET AF_INET6",
		"SystemCallArchitectures=native",
		"SystemCallFilter=@system-service",
		"SystemCallFilter=~@privileged @resources",
		// A refused call fails with EPERM instead of killing the broker:
		// the Go runtime and resolver treat EPERM as "not available".
		"SystemCallErrorNumber=EPERM",
		"",
		"[Install]",
		"WantedBy=multi-user.target")
	return b.String()
}

// under returns path relative to root when it lies strictly below it.
func under(root, path string) (string, bool) {
	rel, err := filepath.Rel(root, path)
	if err != nil || rel == "." || strings.HasPrefix(rel, "..") {
		return "", false
	}
	return rel, true
}

// PlistText is the launchd daemon of p. launchd has no directory
// management and macOS empties /var/run at boot, so launchd starts the
// broker as root with --as: it recreates its socket directory, then drops
// to p.User for good before it reads anything a client sent.
func PlistText(p Plan) string {
	var b strings.Builder
	key := func(k string) { b.WriteString("\t<key>" + esc(k) + "</key>\n") }
	str := func(indent, s string) { b.WriteString(indent + "<string>" + esc(s) + "</string>\n") }
	b.WriteString(`<?xml version="1.0" encoding="UTF-8"?>` + "\n")
	b.WriteString(`<!DOCTYPE plist PUBLIC "-//Apple//DTD PLIST 1.0//EN" "http://www.apple.com/DTDs/PropertyList-1.0.dtd">` + "\n")
	b.WriteString("<!-- " + header + " -->\n")
	b.WriteString(`<plist version="1.0">` + "\n<dict>\n")
	key("Label")
	str("\t", LaunchLabel)
	key("ProgramArguments")
	b.WriteString("\t<array>\n")
	for _, a := range p.RunAsCommand() {
		str("\t\t", a)
	}
	b.WriteString("\t</array>\n")
	key("RunAtLoad")
	b.WriteString("\t<true/>\n")
	key("KeepAlive")
	b.WriteString("\t<true/>\n")
	key("Umask")
	b.WriteString("\t<integer>63</integer>\n") // 0077
	key("WorkingDirectory")
	str("\t", p.StateDir)
	key("StandardErrorPath")
	str("\t", filepath.Join(p.StateDir, "broker.log"))
	b.WriteString("</dict>\n</plist>\n")
	return b.String()
}

func esc(s string) string {
	var b strings.Builder
	_ = xml.EscapeText(&b, []byte(s)) // a strings.Builder never fails
	return b.String()
}
