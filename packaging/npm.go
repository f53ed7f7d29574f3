package main

import (
	"encoding/json"
	"fmt"
	"path/filepath"
	"regexp"
)

// npm's names for Go's operating systems and architectures, the values of
// the platform packages' os and cpu fields and of process.platform and
// process.arch, which the launcher uses to find its package.
var (
	npmOS  = map[string]string{"linux": "linux", "darwin": "darwin", "windows": "win32"}
	npmCPU = map[string]string{"amd64": "x64", "arm64": "arm64"}
)

var semverRE = regexp.MustCompile(`^\d+\.\d+\.\d+(-[0-9A-Za-z.-]+)?(\+[0-9A-Za-z.-]+)?$`)

const npmReadme = `# agentsecrets

Lets AI agents call APIs with stored credentials without holding them. This
npm package installs the native agentsecrets binary for your platform (from
its optional dependency %s) and a small launcher; nothing is downloaded at
install time.

    npx agentsecrets init
    npm i -g agentsecrets

Documentation: https://github.com/agentsecrets/agentsecrets
`

// writeNPM writes one directory per package, ready for npm pack or npm
// publish: the wrapper agentsecrets, whose optionalDependencies name every
// platform package at this exact version, and @agentsecrets/OS-CPU per
// platform with the binary and its os/cpu fields, so npm installs only the
// one that matches.
func writeNPM(rel *release, out string) ([]string, error) {
	if !semverRE.MatchString(rel.Version) {
		return nil, fmt.Errorf("version %q is not semver, which npm requires", rel.Version)
	}
	var files []string
	optional := map[string]string{}
	for _, t := range rel.Targets {
		name := "@agentsecrets/" + npmOS[t.OS] + "-" + npmCPU[t.Arch]
		dir := filepath.Join(out, "agentsecrets-"+npmOS[t.OS]+"-"+npmCPU[t.Arch])
		optional[name] = rel.Version
		manifest := map[string]any{
			"name":            name,
			"version":         rel.Version,
			"description":     "The agentsecrets binary for " + npmOS[t.OS] + " " + npmCPU[t.Arch] + "; install the agentsecrets package, which picks it.",
			"license":         "SEE LICENSE IN README.md",
			"homepage":        "https://github.com/agentsecrets/agentsecrets",
			"repository":      map[string]string{"type": "git", "url": "git+https://github.com/agentsecrets/agentsecrets.git"},
			"os":              []string{npmOS[t.OS]},
			"cpu":             []string{npmCPU[t.Arch]},
			"files":           []string{"bin/"},
			"preferUnplugged": true,
		}
		f, err := writeManifest(dir, manifest)
		if err != nil {
			return nil, err
		}
		bin := filepath.Join(dir, "bin", exeName(t.OS))
		if err := writeFile(bin, t.Binary, 0o755); err != nil {
			return nil, err
		}
		readme := filepath.Join(dir, "README.md")
		if err := writeFile(readme, fmt.Appendf(nil, npmReadme, name), 0o644); err != nil {
			return nil, err
		}
		files = append(files, f, bin, readme)
	}

	dir := filepath.Join(out, "agentsecrets")
	manifest := map[string]any{
		"name":                 "agentsecrets",
		"version":              rel.Version,
		"description":          "Lets AI agents call APIs with stored credentials without holding them (native binary, no install scripts).",
		"license":              "SEE LICENSE IN README.md",
		"homepage":             "https://github.com/agentsecrets/agentsecrets",
		"repository":           map[string]string{"type": "git", "url": "git+https://github.com/agentsecrets/agentsecrets.git"},
		"keywords":             []string{"secrets", "credentials", "ai-agents", "mcp", "keychain"},
		"bin":                  map[string]string{"agentsecrets": "bin/agentsecrets.js"},
		"files":                []string{"bin/"},
		"engines":              map[string]string{"node": ">=18"},
		"optionalDependencies": optional,
	}
	f, err := writeManifest(dir, manifest)
	if err != nil {
		return nil, err
	}
	shim, err := templates.ReadFile("npm/agentsecrets/bin/agentsecrets.js")
	if err != nil {
		return nil, fmt.Errorf("npm launcher: %w", err)
	}
	shimPath := filepath.Join(dir, "bin", "agentsecrets.js")
	if err := writeFile(shimPath, shim, 0o755); err != nil {
		return nil, err
	}
	readme := filepath.Join(dir, "README.md")
	if err := writeFile(readme, fmt.Appendf(nil, npmReadme, "@agentsecrets/OS-CPU"), 0o644); err != nil {
		return nil, err
	}
	return append(files, f, shimPath, readme), nil
}

func writeManifest(dir string, manifest map[string]any) (string, error) {
	data, err := json.MarshalIndent(manifest, "", "  ")
	if err != nil {
		return "", fmt.Errorf("npm manifest: %w", err)
	}
	path := filepath.Join(dir, "package.json")
	return path, writeFile(path, append(data, '\n'), 0o644)
}
