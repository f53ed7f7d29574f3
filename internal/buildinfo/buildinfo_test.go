package buildinfo

import (
	"runtime"
	"testing"
)

func TestReadWithoutStamp(t *testing.T) {
	in := Read()
	// A test binary has no stamp and no module version.
	if in.Version != devVersion || in.Source != "vcs" {
		t.Errorf("Read() = %+v, want version %q from vcs", in, devVersion)
	}
	if in.OS != runtime.GOOS || in.Arch != runtime.GOARCH || in.Go == "" {
		t.Errorf("Read() = %+v, platform fields wrong", in)
	}
}

func TestReadStamped(t *testing.T) {
	old := [3]string{version, commit, date}
	defer func() { version, commit, date = old[0], old[1], old[2] }()
	version, commit, date = "1.2.3", "abc123", "2026-12-01T00:00:00Z"
	in := Read()
	if in.Version != "1.2.3" || in.Commit != "abc123" || in.Date != "2026-12-01T00:00:00Z" || in.Source != "release" {
		t.Errorf("Read() = %+v, want the stamped values", in)
	}
	if Version() != "1.2.3" {
		t.Errorf("Version() = %q", Version())
	}
}

func TestIsPseudo(t *testing.T) {
	for v, want := range map[string]bool{
		"v0.0.0-20261202120000-0123456789ab":        true,
		"v0.0.0-20261202120000-0123456789ab+dirty":  true,
		"v1.2.4-0.20261202120000-0123456789ab":      true,
		"v1.2.3-rc.1.0.20261202120000-0123456789ab": true,
		"v1.2.3":                            false,
		"v1.2.3-rc.1":                       false,
		"v1.2.3-20261202120000":             false,
		"v0.0.0-2026120212000-0123456789ab": false,
		"20261202120000-0123456789ab":       false,
		"-20261202120000-0123456789ab":      false,
		"(devel)":                           false,
		"":                                  false,
	} {
		if got := isPseudo(v); got != want {
			t.Errorf("isPseudo(%q) = %v, want %v", v, got, want)
		}
	}
}
