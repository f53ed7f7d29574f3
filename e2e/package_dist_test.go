package e2e

// The install channels' tests start from a release dist directory laid out
// as scripts/release writes it (docs/release.md): archives holding the
// binary, the skill bundle, metadata.json and artifacts.json.
// AGENTSECRETS_TEST_DIST names a real snapshot (make release-snapshot) to
// package; without it the tests build the platforms they need with the
// release's flags and stamps and archive them, and the skill bundle, the
// same way. Then they run packaging/ on it, as
// scripts/package-channels does.

import (
	"archive/tar"
	"archive/zip"
	"bytes"
	"compress/gzip"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"strings"
	"sync"
	"testing"
	"time"
)

const stampPkg = "github.com/agentsecrets/agentsecrets/internal/buildinfo"

// channelBuild is one dist directory and the packages made from it.
type channelBuild struct {
	Dist, Out        string
	Version, Commit  string
	Archives         map[string]string // "goos/goarch" -> archive file name
	ArchiveChecksums map[string]string // archive file name -> sha256 hex
}

var (
	channelMu     sync.Mutex
	channelBuilds = map[string]*channelBuild{}
)

// channels returns the packages made from a dist holding at least the
// given platforms, building it once per test binary.
func channels(t *testing.T, platforms ...string) *channelBuild {
	t.Helper()
	channelMu.Lock()
	defer channelMu.Unlock()
	key := strings.Join(platforms, ",")
	if b := channelBuilds[key]; b != nil {
		return b
	}
	work := filepath.Join(filepath.Dir(binary), "channels", strings.NewReplacer("/", "-", ",", "_").Replace(key))
	dist := os.Getenv("AGENTSECRETS_TEST_DIST")
	if dist == "" {
		dist = filepath.Join(work, "dist")
		buildDist(t, dist, platforms)
	}
	b := readDist(t, dist)
	for _, p := range platforms {
		if b.Archives[p] == "" {
			t.Fatalf("%s has no archive for %s", dist, p)
		}
	}
	b.Out = filepath.Join(work, "out")
	must(t, os.RemoveAll(b.Out))
	cmd := exec.Command("go", "run", "../packaging", "--dist", b.Dist, "--out", b.Out)
	if out, err := cmd.CombinedOutput(); err != nil {
		t.Fatalf("packaging: %v\n%s", err, out)
	}
	channelBuilds[key] = b
	return b
}

// hostPlatform is the platform these tests run their packages on.
func hostPlatform() string { return runtime.GOOS + "/" + runtime.GOARCH }

// buildDist builds each platform's binary as .goreleaser.yaml does
// (CGO off, -trimpath, stamped), packs the skill bundle as its meta
// archive "skill" does, and writes the release's layout.
func buildDist(t *testing.T, dist string, platforms []string) {
	t.Helper()
	must(t, os.MkdirAll(dist, 0o755))
	commit := strings.TrimSpace(gitOut(t, "rev-parse", "HEAD"))
	date := strings.TrimSpace(gitOut(t, "show", "-s", "--format=%cI", "HEAD"))
	when, err := time.Parse(time.RFC3339, date)
	must(t, err)
	version := "0.0.1-snapshot-" + commit[:7]
	readme, err := os.ReadFile("../README.md")
	must(t, err)
	skill, err := os.ReadFile("../SKILL.md")
	must(t, err)
	type artifact struct {
		Name   string            `json:"name"`
		Path   string            `json:"path"`
		GOOS   string            `json:"goos"`
		GOARCH string            `json:"goarch"`
		Type   string            `json:"type"`
		Extra  map[string]string `json:"extra"`
	}
	var arts []artifact
	var sums strings.Builder
	addArchive := func(name string, data []byte, goos, goarch, id string) {
		must(t, os.WriteFile(filepath.Join(dist, name), data, 0o644))
		sum := sha256.Sum256(data)
		fmt.Fprintf(&sums, "%x  %s\n", sum, name)
		arts = append(arts, artifact{Name: name, Path: filepath.Join(dist, name), GOOS: goos, GOARCH: goarch, Type: "Archive",
			Extra: map[string]string{"Checksum": "sha256:" + hex.EncodeToString(sum[:]), "ID": id}})
	}
	for _, p := range platforms {
		goos, goarch, _ := strings.Cut(p, "/")
		exe := "agentsecrets"
		if goos == "windows" {
			exe += ".exe"
		}
		binPath := filepath.Join(dist, goos+"_"+goarch, exe)
		ldflags := "-s -w -X " + stampPkg + ".version=" + version + " -X " + stampPkg + ".commit=" + commit + " -X " + stampPkg + ".date=" + date
		build := exec.Command("go", "build", "-trimpath", "-buildvcs=false", "-ldflags", ldflags, "-o", binPath, "..")
		build.Env = append(os.Environ(), "CGO_ENABLED=0", "GOOS="+goos, "GOARCH="+goarch)
		if out, err := build.CombinedOutput(); err != nil {
			t.Fatalf("build %s: %v\n%s", p, err, out)
		}
		bin, err := os.ReadFile(binPath)
		must(t, err)
		files := []struct {
			name string
			data []byte
			mode int64
		}{{exe, bin, 0o755}, {"README.md", readme, 0o644}, {"SKILL.md", skill, 0o644}}
		var buf bytes.Buffer
		name := "agentsecrets_" + version + "_" + goos + "_" + goarch
		if goos == "windows" {
			name += ".zip"
			zw := zip.NewWriter(&buf)
			for _, f := range files {
				w, err := zw.Create(f.name)
				must(t, err)
				_, err = w.Write(f.data)
				must(t, err)
			}
			must(t, zw.Close())
		} else {
			name += ".tar.gz"
			gz := gzip.NewWriter(&buf)
			tw := tar.NewWriter(gz)
			for _, f := range files {
				must(t, tw.WriteHeader(&tar.Header{Name: f.name, Mode: f.mode, Size: int64(len(f.data)), ModTime: when, Typeflag: tar.TypeReg}))
				_, err := tw.Write(f.data)
				must(t, err)
			}
			must(t, tw.Close())
			must(t, gz.Close())
		}
		addArchive(name, buf.Bytes(), goos, goarch, "agentsecrets")
	}
	var bundle bytes.Buffer
	gz := gzip.NewWriter(&bundle)
	tw := tar.NewWriter(gz)
	skillFiles, err := os.ReadDir("../skill")
	must(t, err)
	for _, e := range skillFiles {
		data, err := os.ReadFile(filepath.Join("../skill", e.Name()))
		must(t, err)
		must(t, tw.WriteHeader(&tar.Header{Name: "agentsecrets/" + e.Name(), Mode: 0o644, Size: int64(len(data)), ModTime: when, Typeflag: tar.TypeReg}))
		_, err = tw.Write(data)
		must(t, err)
	}
	must(t, tw.Close())
	must(t, gz.Close())
	addArchive("agentsecrets-skill_"+version+".tar.gz", bundle.Bytes(), "", "", "skill")
	must(t, os.WriteFile(filepath.Join(dist, "checksums.txt"), []byte(sums.String()), 0o644))
	writeJSONFile(t, filepath.Join(dist, "artifacts.json"), arts)
	writeJSONFile(t, filepath.Join(dist, "metadata.json"), map[string]string{
		"project_name": "agentsecrets", "version": version, "commit": commit, "date": date})
}

func writeJSONFile(t *testing.T, path string, v any) {
	t.Helper()
	data, err := json.MarshalIndent(v, "", "  ")
	must(t, err)
	must(t, os.WriteFile(path, data, 0o644))
}

func gitOut(t *testing.T, args ...string) string {
	t.Helper()
	out, err := exec.Command("git", args...).Output()
	if err != nil {
		t.Fatalf("git %v: %v", args, err)
	}
	return string(out)
}

// readDist reads a dist's version, commit and archives, and checks each
// archive against checksums.txt.
func readDist(t *testing.T, dist string) *channelBuild {
	t.Helper()
	var meta struct{ Version, Commit string }
	data, err := os.ReadFile(filepath.Join(dist, "metadata.json"))
	must(t, err)
	must(t, json.Unmarshal(data, &meta))
	b := &channelBuild{Dist: dist, Version: meta.Version, Commit: meta.Commit, Archives: map[string]string{}, ArchiveChecksums: map[string]string{}}
	sums, err := os.ReadFile(filepath.Join(dist, "checksums.txt"))
	must(t, err)
	listed := map[string]string{}
	for _, l := range strings.Split(strings.TrimSpace(string(sums)), "\n") {
		if sum, name, ok := strings.Cut(l, "  "); ok {
			listed[name] = sum
		}
	}
	var arts []struct {
		Name, Type, GOOS, GOARCH string
		Extra                    struct{ ID string }
	}
	data, err = os.ReadFile(filepath.Join(dist, "artifacts.json"))
	must(t, err)
	must(t, json.Unmarshal(data, &arts))
	for _, a := range arts {
		if a.Type != "Archive" || a.Extra.ID == "skill" {
			continue
		}
		f, err := os.ReadFile(filepath.Join(dist, a.Name))
		must(t, err)
		sum := sha256.Sum256(f)
		if listed[a.Name] != hex.EncodeToString(sum[:]) {
			t.Fatalf("%s: checksums.txt says %q, the file's sha256 is %x", a.Name, listed[a.Name], sum)
		}
		b.Archives[a.GOOS+"/"+a.GOARCH] = a.Name
		b.ArchiveChecksums[a.Name] = listed[a.Name]
	}
	return b
}

// versionOf runs `agentsecrets version` through argv and returns its JSON.
// Until the version command exists the short --version form stands in,
// reduced to the same shape (version only).
func versionOf(t *testing.T, env []string, argv ...string) map[string]any {
	t.Helper()
	hasVersionCmd := true
	if _, err := os.Stat("../commands/version.go"); err != nil {
		hasVersionCmd = false
	}
	args := append(append([]string{}, argv[1:]...), "version")
	if !hasVersionCmd {
		args[len(args)-1] = "--version"
	}
	cmd := exec.Command(argv[0], args...)
	cmd.Env = env
	out, err := cmd.Output()
	if err != nil {
		t.Fatalf("%v: %v\n%s", cmd.Args, err, out)
	}
	if !hasVersionCmd {
		f := strings.Fields(string(out))
		return map[string]any{"version": f[len(f)-1]}
	}
	var m map[string]any
	if err := json.Unmarshal(out, &m); err != nil {
		t.Fatalf("%v: not JSON: %v\n%s", cmd.Args, err, out)
	}
	return m
}

// checkStamped fails unless a version record is the dist's.
func (b *channelBuild) checkStamped(t *testing.T, where string, m map[string]any) {
	t.Helper()
	if m["version"] != b.Version {
		t.Errorf("%s: version %v, want %s", where, m["version"], b.Version)
	}
	if c, ok := m["commit"]; ok && c != b.Commit {
		t.Errorf("%s: commit %v, want %s", where, c, b.Commit)
	}
}
