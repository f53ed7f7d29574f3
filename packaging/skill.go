package main

import (
	"fmt"
	"os"
	"path/filepath"
	"sort"
)

// writeSkill packs the skill directory as agentsecrets-skill_VERSION.tar.gz
// holding agentsecrets/ and its files, the layout an OpenClaw or
// AgentSkills host unpacks into its skills directory.
func writeSkill(rel *release, dir, out string) ([]string, error) {
	entries, err := os.ReadDir(dir)
	if err != nil {
		return nil, fmt.Errorf("skill bundle: %w", err)
	}
	var files []tarEntry
	for _, e := range entries {
		if !e.Type().IsRegular() {
			return nil, fmt.Errorf("skill bundle: %s is not a regular file; the bundle is flat", filepath.Join(dir, e.Name()))
		}
		data, err := os.ReadFile(filepath.Join(dir, e.Name()))
		if err != nil {
			return nil, fmt.Errorf("skill bundle: %w", err)
		}
		files = append(files, tarEntry{"agentsecrets/" + e.Name(), data, 0o644})
	}
	sort.Slice(files, func(i, j int) bool { return files[i].name < files[j].name })
	data, err := tarGz(rel.Date, files)
	if err != nil {
		return nil, err
	}
	path := filepath.Join(out, "agentsecrets-skill_"+rel.Version+".tar.gz")
	return []string{path}, writeFile(path, data, 0o644)
}
