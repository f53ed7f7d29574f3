package main

import (
	"archive/tar"
	"archive/zip"
	"bytes"
	"compress/gzip"
	"crypto/sha256"
	"encoding/base64"
	"fmt"
	"path/filepath"
	"regexp"
	"strings"
	"time"
)

// wheelTags are the platform tags of each target's wheel. The binaries are
// static (CGO_ENABLED=0), so one linux wheel fits glibc and musl alike and
// says so as ruff's and uv's do; macOS wheels name 12.0, the oldest macOS
// the Go toolchain that builds the release supports.
var wheelTags = map[string][]string{
	"linux/amd64":   {"manylinux_2_17_x86_64", "manylinux2014_x86_64", "musllinux_1_1_x86_64"},
	"linux/arm64":   {"manylinux_2_17_aarch64", "manylinux2014_aarch64", "musllinux_1_1_aarch64"},
	"darwin/amd64":  {"macosx_12_0_x86_64"},
	"darwin/arm64":  {"macosx_12_0_arm64"},
	"windows/amd64": {"win_amd64"},
}

var (
	plainVersionRE    = regexp.MustCompile(`^\d+(\.\d+)*$`)
	preVersionRE      = regexp.MustCompile(`^(\d+(?:\.\d+)*)-(alpha|beta|rc)\.?(\d+)$`)
	snapshotVersionRE = regexp.MustCompile(`^(\d+(?:\.\d+)*)-snapshot-([0-9a-f]+)$`)
)

// pythonVersion spells a release version the way PEP 440 wants it:
// 1.2.3 stays, 1.2.3-rc.1 is 1.2.3rc1, and a snapshot 1.2.4-snapshot-abc1234
// is the development release 1.2.4.dev0+abc1234.
func pythonVersion(v string) (string, error) {
	switch {
	case plainVersionRE.MatchString(v):
		return v, nil
	case preVersionRE.MatchString(v):
		m := preVersionRE.FindStringSubmatch(v)
		return m[1] + map[string]string{"alpha": "a", "beta": "b", "rc": "rc"}[m[2]] + m[3], nil
	case snapshotVersionRE.MatchString(v):
		m := snapshotVersionRE.FindStringSubmatch(v)
		return m[1] + ".dev0+" + m[2], nil
	}
	return "", fmt.Errorf("version %q has no PEP 440 spelling here (X.Y.Z, X.Y.Z-rc.N, X.Y.Z-snapshot-COMMIT)", v)
}

const pipSummary = "Lets AI agents call APIs with stored credentials without holding them"

const pipReadme = `# agentsecrets

Lets AI agents call APIs with stored credentials without holding them. This
wheel carries the native agentsecrets binary for one platform; no Go and no
compiler are needed.

    pip install agentsecrets
    pipx run agentsecrets init

Documentation: https://github.com/agentsecrets/agentsecrets
`

// writePip writes one wheel per target and the sdist that refuses to build.
func writePip(rel *release, out string) ([]string, error) {
	ver, err := pythonVersion(rel.Version)
	if err != nil {
		return nil, err
	}
	var files []string
	for _, t := range rel.Targets {
		tags, ok := wheelTags[t.OS+"/"+t.Arch]
		if !ok {
			return nil, fmt.Errorf("no wheel platform tag for %s/%s", t.OS, t.Arch)
		}
		data, err := wheel(rel, ver, t, tags)
		if err != nil {
			return nil, err
		}
		name := fmt.Sprintf("agentsecrets-%s-py3-none-%s.whl", ver, strings.Join(tags, "."))
		path := filepath.Join(out, name)
		if err := writeFile(path, data, 0o644); err != nil {
			return nil, err
		}
		files = append(files, path)
	}
	sdist, err := refusingSdist(rel, ver)
	if err != nil {
		return nil, err
	}
	path := filepath.Join(out, "agentsecrets-"+ver+".tar.gz")
	if err := writeFile(path, sdist, 0o644); err != nil {
		return nil, err
	}
	return append(files, path), nil
}

func metadata(ver string) string {
	return "Metadata-Version: 2.1\nName: agentsecrets\nVersion: " + ver + "\nSummary: " + pipSummary +
		"\nHome-page: https://github.com/agentsecrets/agentsecrets\nRequires-Python: >=3.8\n" +
		"Description-Content-Type: text/markdown\n\n" + pipReadme
}

// wheel builds a wheel (PEP 427): the package agentsecrets with the binary
// in agentsecrets/bin, a console-script entry point, and a RECORD of every
// file's hash.
func wheel(rel *release, ver string, t target, tags []string) ([]byte, error) {
	var buf bytes.Buffer
	zw := zip.NewWriter(&buf)
	var record strings.Builder
	distInfo := "agentsecrets-" + ver + ".dist-info/"
	add := func(name string, data []byte, mode uint32) error {
		h := &zip.FileHeader{Name: name, Method: zip.Deflate, Modified: zipTime(rel.Date)}
		h.SetMode(0o644)
		if mode != 0 {
			h.SetMode(0o755)
		}
		w, err := zw.CreateHeader(h)
		if err != nil {
			return fmt.Errorf("wheel %s: %w", name, err)
		}
		if _, err := w.Write(data); err != nil {
			return fmt.Errorf("wheel %s: %w", name, err)
		}
		sum := sha256.Sum256(data)
		fmt.Fprintf(&record, "%s,sha256=%s,%d\n", name, base64.RawURLEncoding.EncodeToString(sum[:]), len(data))
		return nil
	}
	var wheelMeta strings.Builder
	wheelMeta.WriteString("Wheel-Version: 1.0\nGenerator: agentsecrets packaging\nRoot-Is-Purelib: false\n")
	for _, tag := range tags {
		wheelMeta.WriteString("Tag: py3-none-" + tag + "\n")
	}
	files := []struct {
		name string
		data []byte
		exec uint32
	}{
		{"agentsecrets/bin/" + exeName(t.OS), t.Binary, 1},
		{distInfo + "METADATA", []byte(metadata(ver)), 0},
		{distInfo + "WHEEL", []byte(wheelMeta.String()), 0},
		{distInfo + "entry_points.txt", []byte("[console_scripts]\nagentsecrets = agentsecrets.__main__:main\n"), 0},
	}
	for _, src := range []string{"__init__.py", "__main__.py"} {
		data, err := templates.ReadFile("pip/agentsecrets/" + src)
		if err != nil {
			return nil, fmt.Errorf("wheel sources: %w", err)
		}
		files = append(files, struct {
			name string
			data []byte
			exec uint32
		}{"agentsecrets/" + src, data, 0})
	}
	for _, f := range files {
		if err := add(f.name, f.data, f.exec); err != nil {
			return nil, err
		}
	}
	record.WriteString(distInfo + "RECORD,,\n")
	h := &zip.FileHeader{Name: distInfo + "RECORD", Method: zip.Deflate, Modified: zipTime(rel.Date)}
	h.SetMode(0o644)
	w, err := zw.CreateHeader(h)
	if err != nil {
		return nil, fmt.Errorf("wheel RECORD: %w", err)
	}
	if _, err := w.Write([]byte(record.String())); err != nil {
		return nil, fmt.Errorf("wheel RECORD: %w", err)
	}
	if err := zw.Close(); err != nil {
		return nil, fmt.Errorf("wheel: %w", err)
	}
	return buf.Bytes(), nil
}

// zipTime keeps a date inside what zip can say (1980 onwards).
func zipTime(t time.Time) time.Time {
	if min := time.Date(1980, 1, 1, 0, 0, 0, 0, time.UTC); t.Before(min) {
		return min
	}
	return t
}

// refusingSdist builds a source distribution whose build backend stops
// with an explanation: pip on a platform without a wheel then says what to
// do instead of trying to compile a Go program.
func refusingSdist(rel *release, ver string) ([]byte, error) {
	backend, err := templates.ReadFile("pip/sdist/refuse_build.py")
	if err != nil {
		return nil, fmt.Errorf("sdist backend: %w", err)
	}
	root := "agentsecrets-" + ver + "/"
	pyproject := "[build-system]\nrequires = []\nbuild-backend = \"refuse_build\"\nbackend-path = [\".\"]\n\n" +
		"[project]\nname = \"agentsecrets\"\nversion = \"" + ver + "\"\ndescription = \"" + pipSummary + "\"\n"
	return tarGz(rel.Date, []tarEntry{
		{root + "PKG-INFO", []byte(metadata(ver)), 0o644},
		{root + "pyproject.toml", []byte(pyproject), 0o644},
		{root + "refuse_build.py", backend, 0o644},
	})
}

type tarEntry struct {
	name string
	data []byte
	mode int64
}

// tarGz writes a gzipped tar whose bytes depend on its entries alone.
func tarGz(mtime time.Time, entries []tarEntry) ([]byte, error) {
	var buf bytes.Buffer
	gz, err := gzip.NewWriterLevel(&buf, gzip.BestCompression)
	if err != nil {
		return nil, fmt.Errorf("gzip: %w", err)
	}
	tw := tar.NewWriter(gz)
	for _, e := range entries {
		h := &tar.Header{Name: e.name, Mode: e.mode, Size: int64(len(e.data)), ModTime: mtime, Typeflag: tar.TypeReg, Format: tar.FormatPAX}
		if err := tw.WriteHeader(h); err != nil {
			return nil, fmt.Errorf("tar %s: %w", e.name, err)
		}
		if _, err := tw.Write(e.data); err != nil {
			return nil, fmt.Errorf("tar %s: %w", e.name, err)
		}
	}
	if err := tw.Close(); err != nil {
		return nil, fmt.Errorf("tar: %w", err)
	}
	if err := gz.Close(); err != nil {
		return nil, fmt.Errorf("gzip: %w", err)
	}
	return buf.Bytes(), nil
}
