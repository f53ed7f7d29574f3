//go:build linux

package e2e

import (
	"bufio"
	"bytes"
	"crypto/rand"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"os/exec"
	"os/user"
	"path/filepath"
	"runtime"
	"strconv"
	"testing"
	"time"
	"unsafe"

	"github.com/agentsecrets/agentsecrets/internal/brokerd"
	"golang.org/x/sys/unix"
)

// Helpers for the broker daemon's e2e tests: real OS users, the daemon as
// a real process on a real unix socket, commands run as another user.

// requireRootUsers skips unless this process can create users and run
// commands as them (CI runs as root).
func requireRootUsers(t *testing.T) {
	t.Helper()
	if os.Geteuid() != 0 {
		t.Skip("needs root to create throwaway users (CI runs the suite as root)")
	}
	for _, tool := range []string{"useradd", "userdel", "usermod", "setpriv"} {
		if _, err := exec.LookPath(tool); err != nil {
			t.Skipf("needs %s to create users and run commands as them", tool)
		}
	}
}

// osUser is a throwaway OS user.
type osUser struct {
	Name     string
	UID, GID int
	Home     string
	// Groups are its supplementary groups, read again by asUser.
	Groups []int
}

// newOSUser creates a user with its own group and a home under root (which
// must be traversable by everyone), and removes both when the test ends.
func newOSUser(t *testing.T, root, role string) osUser {
	t.Helper()
	b := make([]byte, 4)
	rand.Read(b)
	name := "as" + role + hex.EncodeToString(b)
	home := filepath.Join(root, "home-"+role)
	if out, err := exec.Command("useradd", "-U", "-m", "-d", home, "-s", "/usr/sbin/nologin", name).CombinedOutput(); err != nil {
		t.Fatalf("useradd %s: %v: %s", name, err, out)
	}
	t.Cleanup(func() {
		if out, err := exec.Command("userdel", "-r", name).CombinedOutput(); err != nil {
			t.Errorf("userdel %s: %v: %s", name, err, out)
		}
	})
	u, err := user.Lookup(name)
	if err != nil {
		t.Fatal(err)
	}
	uid, _ := strconv.Atoi(u.Uid)
	gid, _ := strconv.Atoi(u.Gid)
	return osUser{Name: name, UID: uid, GID: gid, Home: home}
}

// joinGroup adds u to group's members (the broker's group: its socket's).
func joinGroup(t *testing.T, u *osUser, group string) {
	t.Helper()
	if out, err := exec.Command("usermod", "-aG", group, u.Name).CombinedOutput(); err != nil {
		t.Fatalf("usermod -aG %s %s: %v: %s", group, u.Name, err, out)
	}
	g, err := user.LookupGroup(group)
	must(t, err)
	gid, _ := strconv.Atoi(g.Gid)
	u.Groups = append(u.Groups, gid)
}

// openRoot is a directory every user can traverse (a test's TempDir is
// 0700 root), holding a copy of the binary the other users can run.
func openRoot(t *testing.T) (root, bin string) {
	t.Helper()
	root, err := os.MkdirTemp("", "asbroker-")
	must(t, err)
	t.Cleanup(func() { os.RemoveAll(root) })
	must(t, os.Chmod(root, 0o755))
	bin = filepath.Join(root, "bin", "agentsecrets")
	must(t, os.MkdirAll(filepath.Dir(bin), 0o755))
	data, err := os.ReadFile(binary)
	must(t, err)
	must(t, os.WriteFile(bin, data, 0o755))
	return root, bin
}

// client runs the CLI as a broker client: as u (nil: this process's
// user) through setpriv, with its own home, against socket.
type client struct {
	t      *testing.T
	bin    string
	as     *osUser
	Socket string
	Home   string // HOME, also the working directory
	Extra  []string
}

func (c *client) env() []string {
	return append([]string{"PATH=" + os.Getenv("PATH"), "HOME=" + c.Home,
		"AGENTSECRETS_HOME=" + filepath.Join(c.Home, ".agentsecrets"),
		"AGENTSECRETS_BROKER=unix:" + c.Socket}, c.Extra...)
}

func (c *client) command(stdin io.Reader, args ...string) *exec.Cmd {
	name, argv := c.bin, args
	if c.as != nil {
		name = "setpriv"
		argv = append([]string{"--reuid=" + strconv.Itoa(c.as.UID), "--regid=" + strconv.Itoa(c.as.GID), "--init-groups", "--", c.bin}, args...)
	}
	cmd := exec.Command(name, argv...)
	cmd.Env = c.env()
	cmd.Dir = c.Home
	cmd.Stdin = stdin
	return cmd
}

// Run runs one command to the end.
func (c *client) Run(args ...string) *Result { return c.RunIn(nil, args...) }

func (c *client) RunIn(stdin []byte, args ...string) *Result {
	c.t.Helper()
	var in io.Reader
	if stdin != nil {
		in = bytes.NewReader(stdin)
	}
	return capture(c.t, c.command(in, args...), args)
}

// runAs runs any program as u, for the attacks that are not agentsecrets
// commands; it returns the combined output and whether it succeeded.
func runAs(t *testing.T, u osUser, name string, args ...string) ([]byte, bool) {
	t.Helper()
	cmd := exec.Command("setpriv", append([]string{"--reuid=" + strconv.Itoa(u.UID), "--regid=" + strconv.Itoa(u.GID), "--init-groups", "--", name}, args...)...)
	cmd.Env = []string{"PATH=" + os.Getenv("PATH"), "HOME=" + u.Home}
	cmd.Dir = u.Home
	out, err := cmd.CombinedOutput()
	return out, err == nil
}

// The main goroutine keeps the process's main thread: a thread that asUser
// changed cannot be the main one, which the runtime would keep (wedged)
// rather than end, leaving the whole process looking like that user's.
func init() { runtime.LockOSThread() }

// asUser runs fn on an OS thread that has become u for good (groups, gid,
// uid: real, effective and saved, so no capability is left), for the
// attacks made with system calls: open, connect, ptrace. The kernel
// checks them against the thread's credentials, and the thread is never
// handed back to the runtime: it exits with the goroutine.
func asUser(t *testing.T, u osUser, fn func() error) error {
	t.Helper()
	errc := make(chan error, 1)
	go func() {
		runtime.LockOSThread() // never unlocked: the thread dies with us
		groups := []uint32{uint32(u.GID)}
		for _, g := range u.Groups {
			groups = append(groups, uint32(g))
		}
		if _, _, e := unix.RawSyscall(unix.SYS_SETGROUPS, uintptr(len(groups)), uintptr(unsafe.Pointer(&groups[0])), 0); e != 0 {
			errc <- fmt.Errorf("setgroups: %w", e)
			return
		}
		runtime.KeepAlive(groups)
		if _, _, e := unix.RawSyscall(unix.SYS_SETRESGID, uintptr(u.GID), uintptr(u.GID), uintptr(u.GID)); e != 0 {
			errc <- fmt.Errorf("setresgid: %w", e)
			return
		}
		if _, _, e := unix.RawSyscall(unix.SYS_SETRESUID, uintptr(u.UID), uintptr(u.UID), uintptr(u.UID)); e != 0 {
			errc <- fmt.Errorf("setresuid: %w", e)
			return
		}
		errc <- fn()
	}()
	return <-errc
}

// upgradeExec opens an exec connection on conn as the real client does,
// and returns the reader of the broker's frames.
func upgradeExec(t *testing.T, conn net.Conn) *bufio.Reader {
	t.Helper()
	conn.SetDeadline(time.Now().Add(30 * time.Second))
	fmt.Fprintf(conn, "POST /exec HTTP/1.1\r\nHost: broker\r\nUpgrade: %s\r\nConnection: Upgrade\r\nContent-Length: 0\r\n\r\n", brokerd.Protocol)
	br := bufio.NewReader(conn)
	resp, err := http.ReadResponse(br, nil)
	if err != nil {
		t.Fatalf("upgrade: %v", err)
	}
	if resp.StatusCode != http.StatusSwitchingProtocols {
		body, _ := io.ReadAll(resp.Body)
		t.Fatalf("upgrade: HTTP %d: %s", resp.StatusCode, body)
	}
	return br
}

// sendRequest sends an exec request frame for args.
func sendRequest(t *testing.T, conn net.Conn, args ...string) {
	t.Helper()
	b, _ := json.Marshal(brokerd.Request{Args: args})
	must(t, brokerd.WriteFrame(conn, brokerd.FrameRequest, b))
}

// nextFrame reads the broker's frames until one of a type other than
// output, and returns it with the output seen on the way.
func nextFrame(t *testing.T, br *bufio.Reader) (byte, []byte, []byte) {
	t.Helper()
	var out []byte
	for {
		typ, p, err := brokerd.ReadFrame(br)
		if err != nil {
			t.Fatalf("read frame: %v (output so far: %s)", err, out)
		}
		if typ == brokerd.FrameStdout || typ == brokerd.FrameStderr {
			out = append(out, p...)
			continue
		}
		return typ, p, out
	}
}
