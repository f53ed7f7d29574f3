package sync

// keys are the fixture's project keys: version 1 only.
func (f *fixture) keys() ProjectKeys { return ProjectKeys{Current: 1, ByVersion: map[int][]byte{1: f.pk}} }
