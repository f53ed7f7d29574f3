package commands

import (
	"fmt"
	"io"

	"github.com/agentsecrets/agentsecrets/internal/buildinfo"
)

// VersionCmd reports what this binary is. `--version` stays the one-line
// form; this is the whole record, as JSON like every command.
type VersionCmd struct{}

// VersionResult is this binary's build: stamped by a release build's
// -ldflags -X, else what the Go toolchain recorded (debug.ReadBuildInfo).
type VersionResult struct {
	buildinfo.Info
}

// Run reads the build record only: no vault, no network.
func (c *VersionCmd) Run(env *Env) (*VersionResult, error) {
	return &VersionResult{buildinfo.Read()}, nil
}

func (r *VersionResult) WriteText(w io.Writer) error {
	fmt.Fprintf(w, "agentsecrets %s\n", r.Version)
	if r.Commit != "" {
		modified := ""
		if r.Modified {
			modified = " (modified)"
		}
		fmt.Fprintf(w, "commit:   %s%s\n", r.Commit, modified)
	}
	if r.Date != "" {
		fmt.Fprintf(w, "built:    %s\n", r.Date)
	}
	fmt.Fprintf(w, "go:       %s %s/%s\n", r.Go, r.OS, r.Arch)
	if r.Module != "" {
		fmt.Fprintf(w, "module:   %s\n", r.Module)
	}
	fmt.Fprintf(w, "source:   %s\n", r.Source)
	return nil
}
