// Package buildinfo owns what a binary knows about its own build: the
// version, commit and date a release stamps in with -ldflags -X, and what
// the Go toolchain recorded (debug.ReadBuildInfo) when it was built another
// way (go install, go build from a clone).
//
// A release build sets, for example:
//
//	-X github.com/agentsecrets/agentsecrets/internal/buildinfo.version=1.2.3
//	-X github.com/agentsecrets/agentsecrets/internal/buildinfo.commit=0123abc
//	-X github.com/agentsecrets/agentsecrets/internal/buildinfo.date=2026-12-01T00:00:00Z
package buildinfo

import (
	"runtime"
	"runtime/debug"
	"strings"
)

// Set by the linker (-X) in release builds; never assigned by code.
var (
	version string
	commit  string
	date    string
)

// devVersion is what a build says when neither a release nor the Go
// toolchain recorded a version (go build in a clone without VCS data).
const devVersion = "0.0.0-dev"

// Info describes this binary.
type Info struct {
	Version  string `json:"version"`
	Commit   string `json:"commit,omitempty"`
	Date     string `json:"date,omitempty"`
	Modified bool   `json:"modified,omitempty"`
	Go       string `json:"go"`
	OS       string `json:"os"`
	Arch     string `json:"arch"`
	Module   string `json:"module,omitempty"`
	// Source says where Version came from: "release" (stamped by the
	// release build), "module" (go install of a tagged version) or "vcs"
	// (a build from a clone, described by its commit).
	Source string `json:"source"`
}

// Read returns what this binary knows about its build. Stamped values win;
// the toolchain's record fills in the rest.
func Read() Info {
	in := Info{Version: version, Commit: commit, Date: date, Go: runtime.Version(), OS: runtime.GOOS, Arch: runtime.GOARCH, Source: "release"}
	bi, ok := debug.ReadBuildInfo()
	if ok {
		in.Module = bi.Main.Path
		if bi.GoVersion != "" {
			in.Go = bi.GoVersion
		}
		for _, s := range bi.Settings {
			switch s.Key {
			case "vcs.revision":
				if in.Commit == "" {
					in.Commit = s.Value
				}
			case "vcs.time":
				if in.Date == "" {
					in.Date = s.Value
				}
			case "vcs.modified":
				in.Modified = s.Value == "true"
			}
		}
	}
	if in.Version != "" {
		return in
	}
	switch {
	case ok && bi.Main.Version != "" && bi.Main.Version != "(devel)":
		in.Version, in.Source = strings.TrimPrefix(bi.Main.Version, "v"), "module"
		if isPseudo(bi.Main.Version) {
			// Since Go 1.24 a build in a clone is versioned from its
			// commit: that is the VCS speaking, not a tagged release.
			in.Source = "vcs"
		}
	default:
		in.Version, in.Source = devVersion, "vcs"
	}
	return in
}

// isPseudo reports whether v is a Go pseudo-version: it ends in a
// yyyymmddhhmmss timestamp and a 12-digit commit prefix (then +dirty for a
// build from a modified tree).
func isPseudo(v string) bool {
	v = strings.TrimSuffix(v, "+dirty")
	i := strings.LastIndexByte(v, '-')
	if !strings.HasPrefix(v, "v") || i < 16 || len(v)-i-1 != 12 || !allIn(v[i+1:], "0123456789abcdef") {
		return false
	}
	return allIn(v[i-14:i], "0123456789") && (v[i-15] == '-' || v[i-15] == '.')
}

func allIn(s, set string) bool {
	for _, r := range s {
		if !strings.ContainsRune(set, r) {
			return false
		}
	}
	return true
}

// Version is the short version string: what --version and the User-Agent
// carry.
func Version() string { return Read().Version }
