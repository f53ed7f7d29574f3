// Command packaging turns a release's dist directory (scripts/release,
// docs/release.md) into the packages of the other install channels: the
// npm wrapper and per-platform packages, the pip wheels and the refusing
// sdist, the Homebrew formula, and beside them the release's OpenClaw skill
// bundle. Every package carries the very binary of a release archive, whose
// checksum is checked first; nothing is compiled or downloaded here.
//
//	go run ./packaging --dist dist --out dist/channels [--url-base URL]
package main

import (
	"archive/tar"
	"archive/zip"
	"bytes"
	"compress/gzip"
	"crypto/sha256"
	"embed"
	"encoding/hex"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"io"
	"io/fs"
	"os"
	"path/filepath"
	"sort"
	"strings"
	"time"
)

//go:embed npm homebrew all:pip
var templates embed.FS

func main() {
	if err := run(os.Args[1:]); err != nil {
		fmt.Fprintln(os.Stderr, "package-channels:", err)
		var u usageError
		if errors.As(err, &u) {
			os.Exit(2)
		}
		os.Exit(1)
	}
}

type usageError struct{ error }

func run(args []string) error {
	fl := flag.NewFlagSet("package-channels", flag.ContinueOnError)
	dist := fl.String("dist", "dist", "release dist directory (metadata.json, artifacts.json, archives)")
	out := fl.String("out", "", "output directory (created; must be empty or absent)")
	urlBase := fl.String("url-base", "https://github.com/agentsecrets/agentsecrets/releases/download/v{{version}}",
		"where the archives are published; {{version}} is replaced")
	if err := fl.Parse(args); err != nil {
		return usageError{err}
	}
	if *out == "" || fl.NArg() != 0 {
		return usageError{errors.New("usage: package-channels --dist DIR --out DIR [--url-base URL]")}
	}
	rel, err := loadRelease(*dist)
	if err != nil {
		return err
	}
	if err := emptyDir(*out); err != nil {
		return err
	}
	base := strings.ReplaceAll(*urlBase, "{{version}}", rel.Version)
	var made []string
	steps := []func() ([]string, error){
		func() ([]string, error) { return writeNPM(rel, filepath.Join(*out, "npm")) },
		func() ([]string, error) { return writePip(rel, filepath.Join(*out, "pip")) },
		func() ([]string, error) { return writeFormula(rel, base, filepath.Join(*out, "homebrew")) },
		func() ([]string, error) { return writeSkill(rel, *out) },
	}
	for _, step := range steps {
		files, err := step()
		if err != nil {
			return err
		}
		made = append(made, files...)
	}
	return writeSums(*out, made)
}

// release is what the packages need from dist: the version, the commit
// time (every file time, so two runs give the same bytes), the binary of
// each platform and the skill bundle.
type release struct {
	Version string
	Commit  string
	Date    time.Time
	Targets []target
	Skill   bundle
}

// bundle is the skill bundle's archive as the release built it.
type bundle struct {
	Name string // file name in dist
	Data []byte
}

// target is one platform's archive and the binary inside it.
type target struct {
	OS, Arch string // Go's names
	Archive  string // file name in dist
	SHA256   string // of the archive
	Binary   []byte
}

func loadRelease(dist string) (*release, error) {
	var meta struct {
		Version string `json:"version"`
		Commit  string `json:"commit"`
		Date    string `json:"date"`
	}
	if err := readJSON(filepath.Join(dist, "metadata.json"), &meta); err != nil {
		return nil, err
	}
	if meta.Version == "" {
		return nil, fmt.Errorf("%s: no version", filepath.Join(dist, "metadata.json"))
	}
	date, err := time.Parse(time.RFC3339, meta.Date)
	if err != nil {
		return nil, fmt.Errorf("metadata.json date %q: %w", meta.Date, err)
	}
	var arts []struct {
		Name   string `json:"name"`
		Type   string `json:"type"`
		GOOS   string `json:"goos"`
		GOARCH string `json:"goarch"`
		Extra  struct {
			Checksum string `json:"Checksum"`
			ID       string `json:"ID"`
		} `json:"extra"`
	}
	if err := readJSON(filepath.Join(dist, "artifacts.json"), &arts); err != nil {
		return nil, err
	}
	rel := &release{Version: meta.Version, Commit: meta.Commit, Date: date.UTC()}
	for _, a := range arts {
		if a.Type != "Archive" {
			continue
		}
		if a.Extra.ID == skillArchiveID {
			if rel.Skill.Name != "" {
				return nil, fmt.Errorf("artifacts.json lists two skill bundles: %s and %s", rel.Skill.Name, a.Name)
			}
			data, err := readArchive(dist, a.Name, a.Extra.Checksum)
			if err != nil {
				return nil, err
			}
			rel.Skill = bundle{Name: filepath.Base(a.Name), Data: data}
			continue
		}
		if _, ok := npmOS[a.GOOS]; !ok {
			return nil, fmt.Errorf("archive %s: unsupported OS %q", a.Name, a.GOOS)
		}
		if _, ok := npmCPU[a.GOARCH]; !ok {
			return nil, fmt.Errorf("archive %s: unsupported architecture %q", a.Name, a.GOARCH)
		}
		data, err := readArchive(dist, a.Name, a.Extra.Checksum)
		if err != nil {
			return nil, err
		}
		bin, err := extractBinary(a.Name, data, a.GOOS)
		if err != nil {
			return nil, err
		}
		rel.Targets = append(rel.Targets, target{OS: a.GOOS, Arch: a.GOARCH, Archive: filepath.Base(a.Name), SHA256: strings.TrimPrefix(a.Extra.Checksum, "sha256:"), Binary: bin})
	}
	if len(rel.Targets) == 0 {
		return nil, fmt.Errorf("%s lists no archives: build the release first (make release-snapshot)", filepath.Join(dist, "artifacts.json"))
	}
	if rel.Skill.Name == "" {
		return nil, fmt.Errorf("%s lists no skill bundle (archive id %q): build the release with this repository's .goreleaser.yaml (make release-snapshot)", filepath.Join(dist, "artifacts.json"), skillArchiveID)
	}
	sort.Slice(rel.Targets, func(i, j int) bool {
		return rel.Targets[i].OS+rel.Targets[i].Arch < rel.Targets[j].OS+rel.Targets[j].Arch
	})
	return rel, nil
}

// readArchive reads an archive of dist and checks it against the checksum
// artifacts.json gives it ("sha256:HEX").
func readArchive(dist, name, checksum string) ([]byte, error) {
	data, err := os.ReadFile(filepath.Join(dist, filepath.Base(name)))
	if err != nil {
		return nil, fmt.Errorf("read archive: %w", err)
	}
	sum := sha256.Sum256(data)
	got := hex.EncodeToString(sum[:])
	if want, ok := strings.CutPrefix(checksum, "sha256:"); !ok || want != got {
		return nil, fmt.Errorf("archive %s: sha256 %s, artifacts.json says %q", name, got, checksum)
	}
	return data, nil
}

func readJSON(path string, v any) error {
	data, err := os.ReadFile(path)
	if err != nil {
		return fmt.Errorf("read release description: %w", err)
	}
	if err := json.Unmarshal(data, v); err != nil {
		return fmt.Errorf("parse %s: %w", path, err)
	}
	return nil
}

func exeName(goos string) string {
	if goos == "windows" {
		return "agentsecrets.exe"
	}
	return "agentsecrets"
}

// extractBinary reads the binary at the archive's root.
func extractBinary(name string, data []byte, goos string) ([]byte, error) {
	want := exeName(goos)
	if strings.HasSuffix(name, ".zip") {
		zr, err := zip.NewReader(bytes.NewReader(data), int64(len(data)))
		if err != nil {
			return nil, fmt.Errorf("open %s: %w", name, err)
		}
		for _, f := range zr.File {
			if f.Name == want {
				rc, err := f.Open()
				if err != nil {
					return nil, fmt.Errorf("open %s in %s: %w", want, name, err)
				}
				defer rc.Close()
				return io.ReadAll(rc)
			}
		}
		return nil, fmt.Errorf("%s holds no %s", name, want)
	}
	gz, err := gzip.NewReader(bytes.NewReader(data))
	if err != nil {
		return nil, fmt.Errorf("open %s: %w", name, err)
	}
	tr := tar.NewReader(gz)
	for {
		h, err := tr.Next()
		if errors.Is(err, io.EOF) {
			return nil, fmt.Errorf("%s holds no %s", name, want)
		}
		if err != nil {
			return nil, fmt.Errorf("read %s: %w", name, err)
		}
		if h.Name == want && h.Typeflag == tar.TypeReg {
			return io.ReadAll(tr)
		}
	}
}

func emptyDir(dir string) error {
	entries, err := os.ReadDir(dir)
	if err == nil && len(entries) > 0 {
		return usageError{fmt.Errorf("%s is not empty: give a new --out directory", dir)}
	}
	if err := os.MkdirAll(dir, 0o755); err != nil {
		return fmt.Errorf("create output directory: %w", err)
	}
	return nil
}

// writeFile writes through a temporary name, so an interrupted run never
// leaves a half-written package under its final name.
func writeFile(path string, data []byte, mode fs.FileMode) error {
	if err := os.MkdirAll(filepath.Dir(path), 0o755); err != nil {
		return fmt.Errorf("create %s: %w", filepath.Dir(path), err)
	}
	tmp := path + ".tmp"
	if err := os.WriteFile(tmp, data, mode); err != nil {
		return fmt.Errorf("write %s: %w", path, err)
	}
	if err := os.Chmod(tmp, mode); err != nil {
		return fmt.Errorf("chmod %s: %w", path, err)
	}
	if err := os.Rename(tmp, path); err != nil {
		return fmt.Errorf("write %s: %w", path, err)
	}
	return nil
}

// writeSums lists every package file with its SHA-256 (sha256sum -c format).
func writeSums(out string, files []string) error {
	var b strings.Builder
	for _, f := range files {
		data, err := os.ReadFile(f)
		if err != nil {
			return fmt.Errorf("checksum: %w", err)
		}
		sum := sha256.Sum256(data)
		rel, err := filepath.Rel(out, f)
		if err != nil {
			return fmt.Errorf("checksum: %w", err)
		}
		fmt.Fprintf(&b, "%x  %s\n", sum, filepath.ToSlash(rel))
	}
	return writeFile(filepath.Join(out, "checksums.txt"), []byte(b.String()), 0o644)
}
