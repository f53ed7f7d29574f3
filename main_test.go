package main

import (
	"os/exec"
	"strings"
	"testing"
)

// TestLinksNoServer: agentsecrets, which every agent's call starts, links
// neither the sync server nor a database driver; agentsecrets-server does
// (cmd/agentsecrets-server). Each start would page in and initialise them.
func TestLinksNoServer(t *testing.T) {
	deps := func(pkg string) []string {
		out, err := exec.Command("go", "list", "-deps", pkg).Output()
		if err != nil {
			t.Fatalf("go list -deps %s: %v", pkg, err)
		}
		return strings.Fields(string(out))
	}
	serverOnly := []string{"github.com/agentsecrets/agentsecrets/internal/server", "modernc.org/sqlite", "github.com/jackc/pgx/v5", "github.com/pressly/goose/v3"}
	for _, dep := range deps(".") {
		for _, bad := range serverOnly {
			if dep == bad || strings.HasPrefix(dep, bad+"/") {
				t.Errorf("agentsecrets links %s", dep)
			}
		}
	}
	linked := strings.Join(deps("./cmd/agentsecrets-server"), "\n") + "\n"
	for _, want := range serverOnly {
		if !strings.Contains(linked, want+"\n") {
			t.Errorf("agentsecrets-server does not link %s", want)
		}
	}
}
