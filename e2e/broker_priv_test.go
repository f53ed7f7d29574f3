//go:build linux

package e2e

import (
	"bufio"
	"encoding/json"
	"errors"
	"fmt"
	"io/fs"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"testing"

	"github.com/agentsecrets/agentsecrets/internal/brokerd"
	"github.com/agentsecrets/agentsecrets/internal/errcode"
	"golang.org/x/sys/unix"
)

// TestBrokerPrivilegeSeparation runs the broker as its own user and an
// agent as another, and tries every way around the socket the issue
// lists. Each attempt is denied, and no form of the value appears in
// anything the agent got.
func TestBrokerPrivilegeSeparation(t *testing.T) {
	requireRootUsers(t)
	root, bin := openRoot(t)
	brok := newOSUser(t, root, "b")
	agent := newOSUser(t, root, "a")
	third := newOSUser(t, root, "t")
	joinGroup(t, &agent, brok.Name)
	state, sockDir := filepath.Join(root, "state"), filepath.Join(root, "run")
	b := runBroker(t, bin, state, filepath.Join(sockDir, "broker.sock"), "--as", brok.Name, "--user", agent.Name)
	pid := b.cmd.Process.Pid

	// Everything the agent's user got, scanned for the value at the end.
	var got [][]byte
	keep := func(b ...[]byte) { got = append(got, b...) }
	ag := &client{t: t, bin: bin, as: &agent, Socket: b.Socket, Home: agent.Home}
	run := func(stdin []byte, args ...string) *Result {
		t.Helper()
		r := ag.RunIn(stdin, args...)
		keep(r.Stdout, r.Stderr)
		return r
	}

	canary := randomValue(t, "sk_priv_")
	up := newUpstream(t, func(w http.ResponseWriter, r *http.Request, body string) {
		if r.Header.Get("X-Api-Key") != canary {
			w.WriteHeader(http.StatusUnauthorized)
		}
		fmt.Fprint(w, `{"ok":true}`)
	})
	other := newUpstream(t, func(w http.ResponseWriter, r *http.Request, body string) { fmt.Fprint(w, "{}") })
	admin := filepath.Join(agent.Home, "admin.pass")
	must(t, os.WriteFile(admin, []byte(adminPassphrase+"\n"), 0o600))
	must(t, os.Chown(admin, agent.UID, agent.GID))
	localPass := filepath.Join(agent.Home, "vault.pass")
	must(t, os.WriteFile(localPass, []byte(vaultPassphrase+"\n"), 0o600))
	must(t, os.Chown(localPass, agent.UID, agent.GID))

	// The workflow, through the socket as the agent's user.
	initOut := run(nil, "init", "--admin-passphrase-file", admin).OK(t).JSON(t)
	vaultID, _ := initOut["vault_id"].(string)
	run([]byte(canary), "secrets", "set", "KEY", "--from-stdin").OK(t)
	run(nil, "workspace", "allowlist", "add", up.hostport(), "--allow-http", "--allow-private", "--passphrase-file", admin).OK(t)
	run(nil, "secrets", "bind", "KEY", up.hostport(), "--header-name", "X-Api-Key", "--passphrase-file", admin).OK(t)
	call := run(nil, "call", "--url", up.URL+"/v1", "--header", "X-Api-Key=KEY").OK(t)
	if st, _ := call.JSON(t)["status"].(float64); st != 200 {
		t.Fatalf("the upstream did not get the value: %s", call.Stdout)
	}
	if fi, err := os.Stat(state); err != nil || fi.Sys().(*syscall.Stat_t).Uid != uint32(brok.UID) || fi.Mode().Perm() != 0o700 {
		t.Fatalf("state directory: %v %v", fi, err)
	}

	t.Run("state directory", func(t *testing.T) {
		var files []string
		filepath.WalkDir(state, func(p string, d fs.DirEntry, err error) error {
			if err == nil && !d.IsDir() {
				files = append(files, p)
			}
			return nil
		})
		if len(files) < 4 {
			t.Fatalf("expected the vault, its passphrase, the index and the audit log in %s: %v", state, files)
		}
		out, ok := runAs(t, agent, "ls", "-la", state)
		keep(out)
		if ok || !strings.Contains(string(out), "Permission denied") {
			t.Fatalf("ls %s as the agent: %s", state, out)
		}
		for _, f := range files {
			out, ok := runAs(t, agent, "cat", f)
			keep(out)
			if ok {
				t.Errorf("the agent read %s", f)
			}
			err := asUser(t, agent, func() error { _, err := os.ReadFile(f); return err })
			if !errors.Is(err, fs.ErrPermission) {
				t.Errorf("open %s as the agent: %v", f, err)
			}
		}
		// The socket's directory: the agent (a group member) sees only
		// the socket; the third user cannot list it.
		err := asUser(t, agent, func() error {
			ents, err := os.ReadDir(sockDir)
			if err != nil {
				return err
			}
			if len(ents) != 1 || ents[0].Name() != "broker.sock" {
				return fmt.Errorf("socket directory holds %v", ents)
			}
			return nil
		})
		if err != nil {
			t.Error(err)
		}
		if err := asUser(t, third, func() error { _, err := os.ReadDir(sockDir); return err }); !errors.Is(err, fs.ErrPermission) {
			t.Errorf("the third user listed %s: %v", sockDir, err)
		}
	})

	t.Run("every file the agent can read", func(t *testing.T) {
		// The agent's home and everything else under the test's root it
		// can open, read as the agent.
		err := asUser(t, agent, func() error {
			return filepath.WalkDir(root, func(p string, d fs.DirEntry, err error) error {
				if err != nil || d.IsDir() || !d.Type().IsRegular() || strings.HasPrefix(p, filepath.Join(root, "bin")) {
					return nil
				}
				if b, err := os.ReadFile(p); err == nil {
					keep(b)
				}
				return nil
			})
		})
		must(t, err)
	})

	t.Run("ptrace", func(t *testing.T) {
		err := asUser(t, agent, func() error { return unix.PtraceAttach(pid) })
		if !errors.Is(err, unix.EPERM) {
			t.Fatalf("PTRACE_ATTACH to the broker as the agent: %v", err)
		}
		if _, err := exec.LookPath("gdb"); err != nil {
			t.Log("no gdb: PTRACE_ATTACH alone stands for it")
			return
		}
		out, _ := runAs(t, agent, "gdb", "-p", strconv.Itoa(pid), "-batch", "-ex", "info registers", "-ex", "dump memory /dev/stdout 0 0")
		keep(out)
		if !strings.Contains(string(out), "ptrace: Operation not permitted") || strings.Contains(string(out), "rip ") {
			t.Fatalf("gdb attached to the broker as the agent:\n%s", out)
		}
	})

	t.Run("proc", func(t *testing.T) {
		for _, f := range []string{"environ", "mem", "maps", "fd", "cwd/vault.passphrase", "root" + state + "/vault.passphrase"} {
			p := fmt.Sprintf("/proc/%d/%s", pid, f)
			out, ok := runAs(t, agent, "cat", p)
			keep(out)
			if ok {
				t.Errorf("the agent read %s", p)
			}
			err := asUser(t, agent, func() error {
				f, err := os.Open(p)
				if err != nil {
					return err
				}
				defer f.Close()
				buf := make([]byte, 4096)
				n, err := f.Read(buf)
				keep(buf[:n])
				return err
			})
			if !errors.Is(err, fs.ErrPermission) {
				t.Errorf("open %s as the agent: %v", p, err)
			}
		}
		// What any user may read of any process holds no value either.
		for _, f := range []string{"cmdline", "status", "stat"} {
			out, _ := runAs(t, agent, "cat", fmt.Sprintf("/proc/%d/%s", pid, f))
			keep(out)
		}
	})

	t.Run("secret service", func(t *testing.T) {
		cfg, err := os.ReadFile(filepath.Join(state, "config.json"))
		must(t, err)
		if !strings.Contains(string(cfg), `"backend":"file"`) && !strings.Contains(string(cfg), `"backend": "file"`) {
			t.Fatalf("the broker's vault is not its file: %s", cfg)
		}
		env, err := os.ReadFile(fmt.Sprintf("/proc/%d/environ", pid))
		must(t, err)
		if strings.Contains(string(env), "DBUS_SESSION_BUS_ADDRESS") {
			t.Fatal("the broker has a session bus to reach a Secret Service through")
		}
		if _, err := exec.LookPath("secret-tool"); err != nil || os.Getenv("DBUS_SESSION_BUS_ADDRESS") == "" {
			t.Log("no secret-tool or no session bus here: the file backend and the bus-less environment stand for it")
			return
		}
		out, _ := exec.Command("secret-tool", "search", "--all", "--unlock", "service", "agentsecrets/"+vaultID).CombinedOutput()
		keep(out)
		if strings.Contains(string(out), "secret = ") {
			t.Fatalf("a Secret Service item of the broker's vault exists:\n%s", out)
		}
	})

	t.Run("edit writable files", func(t *testing.T) {
		// The agent builds its own vault in its home, where it can write,
		// with the other host allowlisted and bound, and a project link
		// in its working directory.
		local := &client{t: t, bin: bin, as: &agent, Socket: b.Socket, Home: agent.Home,
			Extra: []string{"AGENTSECRETS_BROKER=none", "AGENTSECRETS_VAULT_PASSPHRASE_FILE=" + localPass}}
		for _, args := range [][]string{
			{"init", "--backend", "file", "--admin-passphrase-file", admin},
			{"workspace", "allowlist", "add", other.hostport(), "--allow-http", "--allow-private", "--passphrase-file", admin},
			{"secrets", "set", "KEY", "--from-stdin"},
			{"secrets", "bind", "KEY", other.hostport(), "--header-name", "X-Api-Key", "--passphrase-file", admin},
			{"project", "use", "default", "--link"},
		} {
			r := local.RunIn([]byte("decoy"), args...)
			keep(r.Stdout, r.Stderr)
			r.OK(t)
		}
		if _, err := os.Stat(filepath.Join(agent.Home, ".agentsecrets", "index.json")); err != nil {
			t.Fatalf("the agent's own index: %v", err)
		}
		r := run(nil, "call", "--url", other.URL+"/steal", "--header", "X-Api-Key=KEY")
		r.ErrorCode(t, "denied", 4)
		if n := len(other.requests()); n != 0 {
			t.Fatalf("the non-allowlisted host got %d requests", n)
		}
	})

	t.Run("replay an approval", func(t *testing.T) {
		// The approval of one change does not carry over to the next.
		run(nil, "workspace", "allowlist", "add", other.hostport(), "--allow-http", "--allow-private").ErrorCode(t, "approval_required", 5)

		// Capture the exec request of an approved command from the real
		// client, on a socket this test serves.
		fake := filepath.Join(root, "fake", "broker.sock")
		must(t, os.MkdirAll(filepath.Dir(fake), 0o755))
		ln, err := net.Listen("unix", fake)
		must(t, err)
		defer ln.Close()
		must(t, os.Chmod(fake, 0o666))
		captured := make(chan []byte, 1)
		go func() {
			c, err := ln.Accept()
			if err != nil {
				captured <- nil
				return
			}
			defer c.Close()
			br := bufio.NewReader(c)
			if _, err := http.ReadRequest(br); err != nil {
				captured <- nil
				return
			}
			fmt.Fprintf(c, "HTTP/1.1 101 Switching Protocols\r\nUpgrade: %s\r\nConnection: Upgrade\r\n\r\n", brokerd.Protocol)
			typ, p, err := brokerd.ReadFrame(br)
			if err != nil || typ != brokerd.FrameRequest {
				captured <- nil
				return
			}
			captured <- p
		}()
		approved := []string{"workspace", "allowlist", "add", other.hostport(), "--allow-http", "--allow-private", "--passphrase-file", admin}
		spy := &client{t: t, bin: bin, as: &agent, Socket: fake, Home: agent.Home}
		r := spy.Run(approved...)
		keep(r.Stdout, r.Stderr)
		frame := <-captured
		if frame == nil {
			t.Fatal("captured no request")
		}

		// Replay it as the agent: the broker asks the client's side for
		// the passphrase file again, and the replayer has no answer.
		for _, answer := range []bool{true, false} {
			err := asUser(t, agent, func() error {
				conn, err := net.Dial("unix", b.Socket)
				if err != nil {
					return err
				}
				defer conn.Close()
				br := upgradeExec(t, conn)
				if err := brokerd.WriteFrame(conn, brokerd.FrameRequest, frame); err != nil {
					return err
				}
				typ, p, out := nextFrame(t, br)
				keep(p, out)
				if typ != brokerd.FrameCall && typ != brokerd.FramePrompt {
					return fmt.Errorf("the replayed request ran without asking (frame %q %s)", typ, p)
				}
				if !answer {
					return nil // hang up instead of answering
				}
				a, _ := json.Marshal(brokerd.Answer{Error: brokerd.Report(errcode.New(errcode.ApprovalRequired, "no terminal"))})
				if err := brokerd.WriteFrame(conn, brokerd.FrameAnswer, a); err != nil {
					return err
				}
				typ, p, out = nextFrame(t, br)
				keep(p, out)
				var x brokerd.Exit
				if typ != brokerd.FrameExit || json.Unmarshal(p, &x) != nil || x.Status == 0 {
					return fmt.Errorf("the replayed approval succeeded: %q %s %s", typ, p, out)
				}
				return nil
			})
			must(t, err)
		}
		list := run(nil, "workspace", "allowlist", "list").OK(t)
		if strings.Contains(string(list.Stdout), strconv.Itoa(other.Listener.Addr().(*net.TCPAddr).Port)) {
			t.Fatalf("a replayed approval widened the allowlist: %s", list.Stdout)
		}
	})

	t.Run("third user", func(t *testing.T) {
		tc := &client{t: t, bin: bin, as: &third, Socket: b.Socket, Home: third.Home}
		e := tc.Run("secrets", "list").ErrorCode(t, "denied", 4)
		if msg, _ := e["message"].(string); !strings.Contains(msg, b.Socket) {
			t.Fatalf("the refusal does not name the socket: %v", e)
		}
		if err := asUser(t, third, func() error {
			c, err := net.Dial("unix", b.Socket)
			if err == nil {
				c.Close()
			}
			return err
		}); !errors.Is(err, fs.ErrPermission) {
			t.Fatalf("the third user connected: %v", err)
		}

		// With the directory and socket opened to everyone, the broker
		// still refuses the uid, and says so in its log.
		must(t, os.Chmod(sockDir, 0o755))
		must(t, os.Chmod(b.Socket, 0o666))
		defer os.Chmod(sockDir, 0o750)
		defer os.Chmod(b.Socket, 0o660)
		mark := len(b.Log.Bytes())
		e = tc.Run("secrets", "list").ErrorCode(t, "denied", 4)
		if msg, _ := e["message"].(string); !strings.Contains(msg, "may not use the broker") {
			t.Fatalf("refusal: %v", e)
		}
		b.waitLog(t, mark, fmt.Sprintf("refused uid %d", third.UID))
	})

	// The agent still works through the broker after all of it, and
	// what it may read there (its audit, status, doctor) holds no value.
	run(nil, "call", "--url", up.URL+"/v1", "--header", "X-Api-Key=KEY").OK(t)
	for _, args := range [][]string{{"proxy", "logs"}, {"status"}, {"doctor"}, {"secrets", "list"}} {
		run(nil, args...).OK(t)
	}
	for _, g := range got {
		noValue(t, "what the agent's user got", g, canary)
	}
	noValue(t, "the broker's log", b.Log.Bytes(), canary)
}
