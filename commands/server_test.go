package commands

import (
	"context"
	"encoding/json"
	"log/slog"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/agentsecrets/agentsecrets/internal/errcode"
	"github.com/agentsecrets/agentsecrets/internal/server"
)

// syncServer serves the sync API over a throwaway SQLite database on
// 127.0.0.1 for the test's length. agentsecrets itself has no server built
// in (the tests of agentsecrets-server run the command).
func syncServer(t *testing.T) string {
	t.Helper()
	ctx := context.Background()
	store, err := server.Open(ctx, "sqlite:"+filepath.Join(t.TempDir(), "server.db"))
	if err != nil {
		t.Fatal(err)
	}
	srv, err := server.New(ctx, server.Options{Store: store, Signup: "closed", Logger: slog.New(slog.DiscardHandler), Now: time.Now})
	if err != nil {
		t.Fatal(err)
	}
	ts := httptest.NewServer(srv)
	t.Cleanup(func() {
		ts.Close()
		store.Close()
	})
	return ts.URL
}

// TestServerHandOffNotFound: without agentsecrets-server beside this
// executable or on PATH, `server` fails as not_found with the way to get
// it, whatever its flags, and nothing listens or is created.
func TestServerHandOffNotFound(t *testing.T) {
	for _, args := range [][]string{
		{"server"},
		{"--json", "server", "--listen", "127.0.0.1:0"},
		{"server", "--db", "sqlite:x.db"},
	} {
		env, out := testEnv(t)
		path := t.TempDir()
		// An executable of that name in a relative PATH entry, or one
		// that is not executable, is not taken.
		if err := os.WriteFile(filepath.Join(path, ServerExecutable), []byte("#!/bin/sh\nexit 0\n"), 0o644); err != nil {
			t.Fatal(err)
		}
		env.Getenv = func(k string) string {
			if k == "PATH" {
				return "relative/dir" + string(filepath.ListSeparator) + path
			}
			return ""
		}
		if code := Main(append(args, "--json"), env); code != errcode.Lookup(errcode.NotFound).Exit {
			t.Errorf("%v: exit %d: %s", args, code, out)
			continue
		}
		var res ErrorResult
		if err := json.Unmarshal(out.Bytes(), &res); err != nil || res.Error.Code != "not_found" ||
			!strings.Contains(res.Error.Message, ServerExecutable) || !strings.Contains(res.Error.Hint, "go install github.com/agentsecrets/agentsecrets/cmd/agentsecrets-server@latest") {
			t.Errorf("%v: %s", args, out)
		}
	}
}

// TestServerWithoutServe: an Env without Serve never runs a server from
// Run, which only agentsecrets-server's Env reaches.
func TestServerWithoutServe(t *testing.T) {
	env, _ := testEnv(t)
	if _, err := (&ServerCmd{Listen: "127.0.0.1:0"}).Run(env); err == nil || errcode.Classify(err).Code != errcode.Internal {
		t.Fatalf("Run without Serve: %v", err)
	}
}
