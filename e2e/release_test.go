package e2e

// The release build (scripts/release, .goreleaser.yaml), run the way `make
// release-snapshot` runs it, for all five platforms, twice: the archives
// hold agentsecrets and agentsecrets-server, README.md, SKILL.md (and the
// licence once there is one); every binary is built for its platform without cgo, stamped with
// the release's version and commit; the host's binary says so when run;
// checksums.txt matches every artifact; its signature, by a throwaway key
// the test makes with the real minisign, verifies with the real minisign
// and with package release, and fails for a changed file; the skill
// bundle holds skill/ under agentsecrets/, is described in artifacts.json
// and listed in checksums.txt, so the signature covers it; the signing key
// appears nowhere; the second build is byte-identical.
//
// It takes minutes, so it runs only when AGENTSECRETS_TEST_RELEASE=1
// (`make release-check`, a step of scripts/test).

import (
	"archive/tar"
	"archive/zip"
	"bytes"
	"compress/gzip"
	"crypto/sha256"
	"debug/buildinfo"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"slices"
	"strings"
	"testing"

	"github.com/agentsecrets/agentsecrets/internal/release"
)

var releasePlatforms = []string{"linux/amd64", "linux/arm64", "darwin/amd64", "darwin/arm64", "windows/amd64"}

func TestReleaseSnapshot(t *testing.T) {
	if os.Getenv("AGENTSECRETS_TEST_RELEASE") != "1" {
		t.Skip("the release build takes minutes: run `make release-check` (AGENTSECRETS_TEST_RELEASE=1)")
	}
	if viaBroker() {
		t.Skip("the release build runs no command through a broker")
	}
	minisign, err := exec.LookPath("minisign")
	if err != nil {
		t.Fatal("the real minisign is needed to check the signature as users will (apt-get install minisign, brew install minisign)")
	}
	root, err := filepath.Abs("..")
	if err != nil {
		t.Fatal(err)
	}
	tmp := t.TempDir()
	pubFile, keyFile := filepath.Join(tmp, "release.pub"), filepath.Join(tmp, "release.key")
	runTool(t, "", nil, minisign, "-G", "-W", "-p", pubFile, "-s", keyFile)
	keyText, err := os.ReadFile(keyFile)
	if err != nil {
		t.Fatal(err)
	}
	key, err := release.ParseSecretKey(keyText)
	if err != nil {
		t.Fatalf("a key from the real minisign: %v", err)
	}
	secrets := [][]byte{key.Key.Seed()}

	dist := filepath.Join(tmp, "dist")
	out := runTool(t, root, []string{"AGENTSECRETS_SIGNING_KEY=" + keyFile}, filepath.Join(root, "scripts", "release"), "--dist", dist)
	assertNoLeak(t, "scripts/release output", out, secrets)
	for _, name := range listDir(t, dist) {
		assertNoLeak(t, "dist/"+name, readFile(t, filepath.Join(dist, name)), secrets)
	}

	var meta struct{ Version, Commit string }
	if err := json.Unmarshal(readFile(t, filepath.Join(dist, "metadata.json")), &meta); err != nil {
		t.Fatalf("metadata.json: %v", err)
	}
	head := strings.TrimSpace(string(runTool(t, root, nil, "git", "rev-parse", "HEAD")))
	if meta.Commit != head || meta.Version == "" {
		t.Fatalf("metadata.json: version %q commit %q, want commit %s", meta.Version, meta.Commit, head)
	}

	extras := []string{"README.md", "SKILL.md"}
	licences, _ := filepath.Glob(filepath.Join(root, "LICEN[CS]E*"))
	for _, l := range licences {
		extras = append(extras, filepath.Base(l))
	}
	for _, platform := range releasePlatforms {
		goos, goarch, _ := strings.Cut(platform, "/")
		t.Run(goos+"_"+goarch, func(t *testing.T) {
			checkReleaseArchive(t, root, dist, meta.Version, head, goos, goarch, extras)
		})
	}

	checkChecksums(t, dist)
	skillBundle := checkSkillBundle(t, root, dist, meta.Version)

	// The signature, as a user checks it and as package release does.
	sums := filepath.Join(dist, "checksums.txt")
	vOut := runTool(t, "", nil, minisign, "-Vm", sums, "-p", pubFile)
	wantComment := fmt.Sprintf("agentsecrets %s %s checksums.txt", meta.Version, head)
	if !bytes.Contains(vOut, []byte("Trusted comment: "+wantComment)) {
		t.Errorf("minisign -V: %s\nwant the trusted comment %q", vOut, wantComment)
	}
	if got, err := release.Verify(key.Public(), readFile(t, sums), readFile(t, sums+".minisig")); err != nil || got != wantComment {
		t.Errorf("release.Verify = %q, %v", got, err)
	}
	changed := filepath.Join(tmp, "checksums.txt")
	if err := os.WriteFile(changed, append(readFile(t, sums), "0000  agentsecrets_evil.tar.gz\n"...), 0o644); err != nil {
		t.Fatal(err)
	}
	if out, err := exec.Command(minisign, "-Vm", changed, "-x", sums+".minisig", "-p", pubFile).CombinedOutput(); err == nil {
		t.Errorf("minisign accepted a changed checksums.txt: %s", out)
	}
	if _, err := release.Verify(key.Public(), readFile(t, changed), readFile(t, sums+".minisig")); !errors.Is(err, release.ErrBadSignature) {
		t.Errorf("release.Verify of a changed checksums.txt: %v", err)
	}

	// Reproducible: a second build from the same commit is the same, byte
	// for byte, signature included.
	dist2 := filepath.Join(tmp, "dist2")
	runTool(t, root, []string{"AGENTSECRETS_SIGNING_KEY=" + keyFile}, filepath.Join(root, "scripts", "release"), "--dist", dist2)
	for _, name := range []string{"checksums.txt", "checksums.txt.minisig", skillBundle} {
		if a, b := readFile(t, filepath.Join(dist, name)), readFile(t, filepath.Join(dist2, name)); !bytes.Equal(a, b) {
			t.Errorf("%s differs between two builds of one commit:\n%s\n---\n%s", name, a, b)
		}
	}
}

// checkReleaseArchive opens one platform's archive: exactly the two
// executables and the extra files, the extras as committed, each
// executable built for the platform, without cgo, trimmed and stamped; the
// host's are run, and `agentsecrets server` reaches the server beside it.
func checkReleaseArchive(t *testing.T, root, dist, version, commit, goos, goarch string, extras []string) {
	suffix, ext := "", ".tar.gz"
	if goos == "windows" {
		suffix, ext = ".exe", ".zip"
	}
	exe, serverExe := "agentsecrets"+suffix, "agentsecrets-server"+suffix
	name := fmt.Sprintf("agentsecrets_%s_%s_%s%s", version, goos, goarch, ext)
	files := readArchive(t, filepath.Join(dist, name))
	want := append([]string{exe, serverExe}, extras...)
	var got []string
	for f := range files {
		got = append(got, f)
	}
	slices.Sort(got)
	slices.Sort(want)
	if !slices.Equal(got, want) {
		t.Fatalf("%s holds %v, want %v", name, got, want)
	}
	for _, f := range extras {
		if !bytes.Equal(files[f].data, readFile(t, filepath.Join(root, f))) {
			t.Errorf("%s: %s differs from the committed file", name, f)
		}
	}
	for _, bin := range []string{exe, serverExe} {
		checkReleaseBinary(t, name+": "+bin, files[bin], version, commit, goos, goarch)
	}

	if goos != runtime.GOOS || goarch != runtime.GOARCH {
		return
	}
	dir := t.TempDir()
	for _, bin := range []string{exe, serverExe} {
		if err := os.WriteFile(filepath.Join(dir, bin), files[bin].data, 0o755); err != nil {
			t.Fatal(err)
		}
		if out := strings.TrimSpace(string(runTool(t, "", nil, filepath.Join(dir, bin), "--version"))); out != "agentsecrets "+version {
			t.Errorf("%s --version = %q, want %q", bin, out, "agentsecrets "+version)
		}
	}
	bin := filepath.Join(dir, exe)
	// `agentsecrets server`, unpacked as the archive holds it, is the
	// server beside it: plain HTTP off loopback is its usage error.
	cmd := exec.Command(bin, "server", "--json", "--listen", "0.0.0.0:8787")
	cmd.Env = []string{"HOME=" + dir, "AGENTSECRETS_HOME=" + filepath.Join(dir, "home")}
	if out, _ := cmd.Output(); !bytes.Contains(out, []byte(`"code":"usage"`)) || !bytes.Contains(out, []byte("--tls-cert")) {
		t.Errorf("%s server --listen 0.0.0.0:8787: %s", exe, out)
	}
	// `agentsecrets version` (JSON) names the commit too; a binary
	// without that command says so with a usage error, and then only
	// --version above is checked.
	cmd = exec.Command(bin, "version")
	var stdout, stderr bytes.Buffer
	cmd.Stdout, cmd.Stderr = &stdout, &stderr
	if err := cmd.Run(); err != nil {
		if bytes.Contains(stdout.Bytes(), []byte("unexpected argument version")) {
			t.Logf("this binary has no `version` command yet: %s", bytes.TrimSpace(stdout.Bytes()))
			return
		}
		t.Fatalf("%s version: %v\nstdout %s\nstderr %s", exe, err, stdout.Bytes(), stderr.Bytes())
	}
	var v struct{ Version, Commit string }
	if err := json.Unmarshal(stdout.Bytes(), &v); err != nil || v.Version != version || v.Commit != commit {
		t.Errorf("%s version = %s (%v), want version %q commit %q", exe, stdout.Bytes(), err, version, commit)
	}
}

// checkReleaseBinary: executable, built for the platform without cgo,
// trimmed, and stamped with the release's version and commit.
func checkReleaseBinary(t *testing.T, name string, f archiveFile, version, commit, goos, goarch string) {
	t.Helper()
	if f.mode&0o111 == 0 && goos != "windows" {
		t.Errorf("%s is not executable (mode %v)", name, f.mode)
	}
	bi, err := buildinfo.Read(bytes.NewReader(f.data))
	if err != nil {
		t.Fatalf("%s: build info: %v", name, err)
	}
	settings := map[string]string{}
	for _, s := range bi.Settings {
		settings[s.Key] = s.Value
	}
	for k, v := range map[string]string{"GOOS": goos, "GOARCH": goarch, "CGO_ENABLED": "0", "-trimpath": "true"} {
		if settings[k] != v {
			t.Errorf("%s: build setting %s = %q, want %q", name, k, settings[k], v)
		}
	}
	// -trimpath keeps -ldflags out of the build info; the stamped strings
	// are in the binary's data.
	for _, stamp := range []string{version, commit} {
		if !bytes.Contains(f.data, []byte(stamp)) {
			t.Errorf("%s: %s is not stamped into the binary", name, stamp)
		}
	}
}

type archiveFile struct {
	data []byte
	mode os.FileMode
}

func readArchive(t *testing.T, path string) map[string]archiveFile {
	t.Helper()
	files := map[string]archiveFile{}
	add := func(name string, mode os.FileMode, r io.Reader) {
		data, err := io.ReadAll(r)
		if err != nil {
			t.Fatalf("%s: %s: %v", path, name, err)
		}
		if _, dup := files[name]; dup {
			t.Errorf("%s: %s twice", path, name)
		}
		files[name] = archiveFile{data, mode}
	}
	if strings.HasSuffix(path, ".zip") {
		zr, err := zip.OpenReader(path)
		if err != nil {
			t.Fatal(err)
		}
		defer zr.Close()
		for _, f := range zr.File {
			rc, err := f.Open()
			if err != nil {
				t.Fatal(err)
			}
			add(f.Name, f.Mode(), rc)
			rc.Close()
		}
		return files
	}
	f, err := os.Open(path)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	gz, err := gzip.NewReader(f)
	if err != nil {
		t.Fatalf("%s: %v", path, err)
	}
	tr := tar.NewReader(gz)
	for {
		h, err := tr.Next()
		if err == io.EOF {
			return files
		}
		if err != nil {
			t.Fatalf("%s: %v", path, err)
		}
		if h.Typeflag != tar.TypeReg {
			t.Errorf("%s: %s is not a regular file", path, h.Name)
			continue
		}
		add(h.Name, h.FileInfo().Mode(), tr)
	}
}

// checkSkillBundle: the skill bundle is the files of skill/ under
// agentsecrets/, as committed, each with the commit's time; artifacts.json
// describes it as the archive "skill" with its checksum, which
// checksums.txt lists. It returns the bundle's file name.
func checkSkillBundle(t *testing.T, root, dist, version string) string {
	t.Helper()
	name := "agentsecrets-skill_" + version + ".tar.gz"
	files := readArchive(t, filepath.Join(dist, name))
	var want []string
	for _, f := range listDir(t, filepath.Join(root, "skill")) {
		want = append(want, "agentsecrets/"+f)
		if got, ok := files["agentsecrets/"+f]; !ok || !bytes.Equal(got.data, readFile(t, filepath.Join(root, "skill", f))) || got.mode != 0o644 {
			t.Errorf("%s: agentsecrets/%s is not skill/%s as committed (mode %v)", name, f, f, got.mode)
		}
	}
	var got []string
	for f := range files {
		got = append(got, f)
	}
	slices.Sort(got)
	slices.Sort(want)
	if !slices.Equal(got, want) || !slices.Contains(got, "agentsecrets/SKILL.md") {
		t.Errorf("%s holds %v, want %v", name, got, want)
	}

	var arts []struct {
		Name, Type string
		Extra      struct{ ID, Checksum string }
	}
	if err := json.Unmarshal(readFile(t, filepath.Join(dist, "artifacts.json")), &arts); err != nil {
		t.Fatalf("artifacts.json: %v", err)
	}
	sum := sha256.Sum256(readFile(t, filepath.Join(dist, name)))
	var described int
	for _, a := range arts {
		if a.Type == "Archive" && a.Extra.ID == "skill" {
			described++
			if a.Name != name || a.Extra.Checksum != "sha256:"+hex.EncodeToString(sum[:]) {
				t.Errorf("artifacts.json: skill archive %s %s, want %s sha256:%x", a.Name, a.Extra.Checksum, name, sum)
			}
		}
	}
	if described != 1 {
		t.Errorf("artifacts.json describes %d skill archives, want 1", described)
	}
	if !bytes.Contains(readFile(t, filepath.Join(dist, "checksums.txt")), fmt.Appendf(nil, "%x  %s\n", sum, name)) {
		t.Errorf("checksums.txt does not list %s with its sha256", name)
	}
	return name
}

// checkChecksums: every line of checksums.txt matches its file, and every
// archive (the skill bundle's too) and SBOM in dist is listed (an SBOM is
// CycloneDX JSON naming the module's dependencies).
func checkChecksums(t *testing.T, dist string) {
	listed := map[string]bool{}
	for _, line := range strings.Split(strings.TrimSuffix(string(readFile(t, filepath.Join(dist, "checksums.txt"))), "\n"), "\n") {
		sum, name, ok := strings.Cut(line, "  ")
		if !ok {
			t.Fatalf("checksums.txt: malformed line %q", line)
		}
		h := sha256.Sum256(readFile(t, filepath.Join(dist, name)))
		if hex.EncodeToString(h[:]) != sum {
			t.Errorf("checksums.txt: %s does not match", name)
		}
		listed[name] = true
	}
	var archives, sboms int
	for _, name := range listDir(t, dist) {
		switch {
		case strings.HasPrefix(name, "agentsecrets-skill_"):
			// Listed, but not one of the platforms' archives.
		case strings.HasSuffix(name, ".tar.gz") || strings.HasSuffix(name, ".zip"):
			archives++
		case strings.HasSuffix(name, ".cdx.json"):
			sboms++
			var bom struct {
				BOMFormat  string `json:"bomFormat"`
				Components []struct {
					Name string `json:"name"`
				} `json:"components"`
			}
			if err := json.Unmarshal(readFile(t, filepath.Join(dist, name)), &bom); err != nil || bom.BOMFormat != "CycloneDX" {
				t.Errorf("%s: not a CycloneDX document (%v)", name, err)
			}
			if !slices.ContainsFunc(bom.Components, func(c struct {
				Name string `json:"name"`
			}) bool {
				return c.Name == "github.com/alecthomas/kong"
			}) {
				t.Errorf("%s: kong, a dependency of every build, is not among its components", name)
			}
		default:
			continue
		}
		if !listed[name] {
			t.Errorf("%s is not in checksums.txt", name)
		}
	}
	// One SBOM per executable (agentsecrets, agentsecrets-server) and platform.
	if archives != len(releasePlatforms) || sboms != 2*len(releasePlatforms) {
		t.Errorf("dist holds %d archives and %d SBOMs, want %d and %d", archives, sboms, len(releasePlatforms), 2*len(releasePlatforms))
	}
}

func runTool(t *testing.T, dir string, env []string, name string, args ...string) []byte {
	t.Helper()
	cmd := exec.Command(name, args...)
	cmd.Dir = dir
	cmd.Env = append(os.Environ(), env...)
	var out bytes.Buffer
	cmd.Stdout, cmd.Stderr = &out, &out
	if err := cmd.Run(); err != nil {
		t.Fatalf("%s %s: %v\n%s", name, strings.Join(args, " "), err, out.Bytes())
	}
	return out.Bytes()
}

func listDir(t *testing.T, dir string) []string {
	t.Helper()
	entries, err := os.ReadDir(dir)
	if err != nil {
		t.Fatal(err)
	}
	var names []string
	for _, e := range entries {
		if e.Type().IsRegular() {
			names = append(names, e.Name())
		}
	}
	return names
}
