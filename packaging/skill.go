package main

import (
	"path/filepath"
)

// skillArchiveID is the id of the skill bundle's archive in .goreleaser.yaml.
const skillArchiveID = "skill"

// writeSkill copies the release's skill bundle (the skill directory under
// agentsecrets/, the layout an OpenClaw or AgentSkills host unpacks into
// its skills directory) next to the other packages. The release build
// makes it and signs it with the archives; packaging only checked it
// against artifacts.json.
func writeSkill(rel *release, out string) ([]string, error) {
	path := filepath.Join(out, rel.Skill.Name)
	return []string{path}, writeFile(path, rel.Skill.Data, 0o644)
}
