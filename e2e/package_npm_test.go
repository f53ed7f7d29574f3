package e2e

// The npm channel: the packages packaging/ writes, packed and installed
// from their tarballs by the real npm (Node 24 from scripts/jstools), with
// no registry and no install script; then the launcher runs the binary
// with its exit status, stdin/stdout and signals passed through.

import (
	"bufio"
	"bytes"
	"encoding/json"
	"io"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"strings"
	"syscall"
	"testing"
)

// npmInstall is one offline install of the npm packages.
type npmInstall struct {
	Build  *channelBuild
	Global string   // the prefix of `npm i -g`; its bin holds the launcher
	Local  string   // a project with the packages in node_modules
	Env    []string // PATH with Node 24 first, npm's cache and config private
}

func (n *npmInstall) bin() string { return filepath.Join(n.Global, "bin", "agentsecrets") }

// pathEnv returns env with PATH replaced.
func pathEnv(env []string, path string) []string {
	out := []string{"PATH=" + path}
	for _, e := range env {
		if !strings.HasPrefix(e, "PATH=") {
			out = append(out, e)
		}
	}
	return out
}

func installNPM(t *testing.T) *npmInstall {
	t.Helper()
	if runtime.GOOS == "windows" {
		t.Skip("the launcher's tests drive POSIX signals")
	}
	node := jsTool(t, "node")
	npm, err := exec.LookPath("npm")
	if err != nil {
		t.Fatalf("npm is not on PATH (scripts/jstools installs it): %v", err)
	}
	b := channels(t, hostPlatform())
	root := t.TempDir()
	n := &npmInstall{Build: b, Global: filepath.Join(root, "global"), Local: filepath.Join(root, "project")}
	n.Env = []string{
		"PATH=" + filepath.Dir(node) + ":" + os.Getenv("PATH"),
		"HOME=" + filepath.Join(root, "home"),
		"npm_config_cache=" + filepath.Join(root, "npm-cache"),
		"npm_config_userconfig=" + filepath.Join(root, "npmrc"),
		"npm_config_update_notifier=false", "npm_config_fund=false", "npm_config_audit=false",
	}
	runNPM := func(dir string, args ...string) string {
		t.Helper()
		cmd := exec.Command(npm, args...)
		cmd.Dir, cmd.Env = dir, n.Env
		out, err := cmd.CombinedOutput()
		if err != nil {
			t.Fatalf("npm %v: %v\n%s", args, err, out)
		}
		return string(out)
	}

	// No install script of any kind: nothing runs, nothing is fetched.
	var tarballs []string
	packs := filepath.Join(root, "packs")
	must(t, os.MkdirAll(packs, 0o755))
	// A real snapshot (AGENTSECRETS_TEST_DIST) has every platform's
	// package; npm installs the wrapper and the host's.
	host := map[string]string{"linux/amd64": "linux-x64", "linux/arm64": "linux-arm64", "darwin/amd64": "darwin-x64", "darwin/arm64": "darwin-arm64"}[hostPlatform()]
	dirs := []string{filepath.Join(b.Out, "npm", "agentsecrets"), filepath.Join(b.Out, "npm", "agentsecrets-"+host)}
	for _, dir := range dirs {
		data, err := os.ReadFile(filepath.Join(dir, "package.json"))
		must(t, err)
		var m map[string]any
		must(t, json.Unmarshal(data, &m))
		if m["scripts"] != nil {
			t.Errorf("%s has scripts: %v", dir, m["scripts"])
		}
		out := runNPM(dir, "pack", "--pack-destination", packs, "--json")
		var packed []struct{ Filename string }
		if err := json.Unmarshal([]byte(out[strings.Index(out, "["):]), &packed); err != nil || len(packed) != 1 {
			t.Fatalf("npm pack --json: %v\n%s", err, out)
		}
		tarballs = append(tarballs, filepath.Join(packs, packed[0].Filename))
	}
	if len(tarballs) != 2 {
		t.Fatalf("want the wrapper and the host's package, got %v", tarballs)
	}
	// --offline: a registry lookup would fail the install rather than
	// quietly fetch something.
	must(t, os.MkdirAll(n.Local, 0o755))
	must(t, os.WriteFile(filepath.Join(n.Local, "package.json"), []byte(`{"name":"project","private":true}`), 0o644))
	runNPM(n.Local, append([]string{"install", "--offline"}, tarballs...)...)
	runNPM(root, append([]string{"install", "--offline", "-g", "--prefix", n.Global}, tarballs...)...)
	return n
}

func TestPackageNPMInstall(t *testing.T) {
	n := installNPM(t)
	b := n.Build

	// npx in the project and the global install's launcher both run the
	// release's binary.
	npx, err := exec.LookPath("npx")
	must(t, err)
	cmd := exec.Command(npx, "--offline", "agentsecrets", "version")
	if _, err := os.Stat("../commands/version.go"); err != nil {
		cmd.Args[len(cmd.Args)-1] = "--version"
	}
	cmd.Dir, cmd.Env = n.Local, n.Env
	out, err := cmd.Output()
	if err != nil {
		t.Fatalf("npx agentsecrets version: %v\n%s", err, out)
	}
	if !bytes.Contains(out, []byte(b.Version)) {
		t.Errorf("npx agentsecrets version: %s, want %s", out, b.Version)
	}
	b.checkStamped(t, "npm -g", versionOf(t, n.Env, n.bin()))
	b.checkStamped(t, "npx", versionOf(t, n.Env, npx, "--offline", "--prefix", n.Local, "agentsecrets"))

	v := NewVault(t, "file")
	env := pathEnv(v.Env(), filepath.Dir(jsTool(t, "node"))+":"+os.Getenv("PATH"))
	status := exec.Command(n.bin(), "status")
	status.Env, status.Dir = env, v.Dir
	r := capture(t, status, []string{"status"})
	if r.OK(t).JSON(t)["initialised"] != true {
		t.Errorf("status through the launcher: %s", r.Stdout)
	}
}

// TestPackageNPMPassThrough: what the binary reads, writes and exits with
// is what the launcher's caller sees, and a signal sent to the launcher
// reaches the binary.
func TestPackageNPMPassThrough(t *testing.T) {
	n := installNPM(t)
	v := NewVault(t, "file")
	env := pathEnv(v.Env(), filepath.Dir(jsTool(t, "node"))+":"+os.Getenv("PATH"))
	run := func(exe string, stdin []byte, args ...string) *Result {
		t.Helper()
		cmd := exec.Command(exe, args...)
		cmd.Env, cmd.Dir = env, v.Dir
		if stdin != nil {
			cmd.Stdin = bytes.NewReader(stdin)
		}
		return capture(t, cmd, args)
	}

	// Exit statuses and both output streams, byte for byte.
	for _, args := range [][]string{{"secrets", "get", "NO_SUCH_SECRET"}, {"no-such-command"}, {"secrets", "list"}} {
		direct, shim := run(binary, nil, args...), run(n.bin(), nil, args...)
		if direct.Code != shim.Code || !bytes.Equal(direct.Stdout, shim.Stdout) || !bytes.Equal(direct.Stderr, shim.Stderr) {
			t.Errorf("%v: direct exit %d %q %q; through the launcher exit %d %q %q", args,
				direct.Code, direct.Stdout, direct.Stderr, shim.Code, shim.Stdout, shim.Stderr)
		}
	}
	if r := run(n.bin(), nil, "no-such-command"); r.Code == 0 {
		t.Error("an unknown command exits 0 through the launcher")
	}

	// stdin reaches the binary intact: a value set through the launcher
	// is the one an upstream receives, and no output carries it.
	value := newCanary(t, "npm", "")
	set := run(n.bin(), append(append([]byte{}, value...), '\n'), "secrets", "set", "NPM_KEY", "--from-stdin")
	set.OK(t)
	assertNoLeak(t, "secrets set through the launcher", append(set.Stdout, set.Stderr...), [][]byte{value})
	up := newUpstream(t, func(w http.ResponseWriter, r *http.Request, body string) { io.WriteString(w, "{}") })
	v.Run("workspace", "allowlist", "add", up.hostport(), "--allow-http", "--allow-private", "--passphrase-file", v.AdminFile).OK(t)
	v.Run("secrets", "bind", "NPM_KEY", up.hostport(), "--passphrase-file", v.AdminFile).OK(t)
	call := run(n.bin(), nil, "call", "--url", up.URL+"/x", "--bearer", "NPM_KEY")
	call.OK(t)
	assertNoLeak(t, "call through the launcher", append(call.Stdout, call.Stderr...), [][]byte{value})
	up.mu.Lock()
	got := up.reqs[len(up.reqs)-1].Header.Get("Authorization")
	up.mu.Unlock()
	if got != "Bearer "+string(value) {
		t.Error("the value set through the launcher's stdin is not the one injected")
	}

	// SIGINT to the launcher alone (not its process group, as a terminal
	// would): the proxy stops as it does on its own SIGINT, and the
	// launcher ends with its exit status.
	proxy := exec.Command(n.bin(), "proxy", "start", "--port", "0")
	proxy.Env, proxy.Dir = env, v.Dir
	stderr, err := proxy.StderrPipe()
	must(t, err)
	must(t, proxy.Start())
	t.Cleanup(func() {
		proxy.Process.Kill()
		proxy.Wait()
		run(binary, nil, "proxy", "stop")
	})
	if _, err := bufio.NewReader(stderr).ReadString('\n'); err != nil {
		t.Fatalf("proxy did not start through the launcher: %v", err)
	}
	go io.Copy(io.Discard, stderr)
	if st := run(binary, nil, "proxy", "status").OK(t).JSON(t); st["running"] != true {
		t.Fatalf("proxy status after start: %v", st)
	}
	must(t, proxy.Process.Signal(syscall.SIGINT))
	err = proxy.Wait()
	if err != nil {
		t.Errorf("launcher after SIGINT: %v (the proxy exits 0 on SIGINT)", err)
	}
	// A stopped proxy's status is the result with exit status 7 (unavailable).
	if st := run(binary, nil, "proxy", "status"); st.Code != 7 || st.JSON(t)["running"] != false {
		t.Errorf("proxy status after SIGINT to the launcher: exit %d %s", st.Code, st.Stdout)
	}
}
