package main

import (
	"bytes"
	"fmt"
	"os"
	"path/filepath"
	"text/template"
)

type brewArch struct{ Brew, URL, SHA256 string }

type brewOS struct {
	Brew  string
	Archs []brewArch
}

// writeFormula writes a tap-ready formula (Formula/agentsecrets.rb in a tap
// repository) whose URLs are the archives' published addresses and whose
// checksums are the archives' own.
func writeFormula(rel *release, urlBase string, out string) ([]string, error) {
	src, err := templates.ReadFile("homebrew/agentsecrets.rb.tmpl")
	if err != nil {
		return nil, fmt.Errorf("formula template: %w", err)
	}
	tmpl, err := template.New("formula").Parse(string(src))
	if err != nil {
		return nil, fmt.Errorf("formula template: %w", err)
	}
	var oses []brewOS
	for _, goos := range []struct{ goos, brew string }{{"darwin", "macos"}, {"linux", "linux"}} {
		o := brewOS{Brew: goos.brew}
		for _, arch := range []struct{ goarch, brew string }{{"arm64", "arm"}, {"amd64", "intel"}} {
			for _, t := range rel.Targets {
				if t.OS == goos.goos && t.Arch == arch.goarch {
					o.Archs = append(o.Archs, brewArch{Brew: arch.brew, URL: urlBase + "/" + t.Archive, SHA256: t.SHA256})
				}
			}
		}
		if len(o.Archs) > 0 {
			oses = append(oses, o)
		}
	}
	if len(oses) == 0 {
		fmt.Fprintln(os.Stderr, "package-channels: no macOS or Linux archive: no Homebrew formula")
		return nil, nil
	}
	var b bytes.Buffer
	if err := tmpl.Execute(&b, map[string]any{"Version": rel.Version, "OSes": oses}); err != nil {
		return nil, fmt.Errorf("formula: %w", err)
	}
	path := filepath.Join(out, "agentsecrets.rb")
	return []string{path}, writeFile(path, b.Bytes(), 0o644)
}
