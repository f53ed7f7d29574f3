package home

import (
	"os"
	"path/filepath"
	"runtime"
	"strings"
	"testing"
)

// TestResolve covers the rules for each OS: AGENTSECRETS_HOME wins (made
// absolute if relative), XDG_* variables are used only when absolute,
// $HOME is the fallback and must be absolute, and the absence of what a
// rule needs is an error naming AGENTSECRETS_HOME. Cases for another OS
// are skipped: Resolve follows runtime.GOOS.
func TestResolve(t *testing.T) {
	cwd, err := os.Getwd()
	if err != nil {
		t.Fatal(err)
	}
	abs := func(parts ...string) string {
		return filepath.Join(append([]string{string(filepath.Separator)}, parts...)...)
	}
	if runtime.GOOS == "windows" {
		abs = func(parts ...string) string { return filepath.Join(append([]string{`C:\`}, parts...)...) }
	}
	same := func(d string) Dirs { return Dirs{Config: d, Data: d, State: d, Explicit: true} }
	unix := func(cfg, data, state string) Dirs { return Dirs{Config: cfg, Data: data, State: state} }
	const anyOS, linux, darwin, windows = "", "xdg", "darwin", "windows"
	cases := []struct {
		name    string
		os      string // anyOS, linux (every OS using XDG), darwin, windows
		env     map[string]string
		want    Dirs
		wantErr string
	}{
		{"AGENTSECRETS_HOME absolute", anyOS,
			map[string]string{"AGENTSECRETS_HOME": abs("ash"), "HOME": abs("h"), "XDG_CONFIG_HOME": abs("x")},
			same(abs("ash")), ""},
		{"AGENTSECRETS_HOME relative is made absolute", anyOS,
			map[string]string{"AGENTSECRETS_HOME": "rel/ash"},
			same(filepath.Join(cwd, "rel", "ash")), ""},
		{"AGENTSECRETS_HOME alone, nothing else set", anyOS,
			map[string]string{"AGENTSECRETS_HOME": abs("ash")},
			same(abs("ash")), ""},

		{"HOME only", linux, map[string]string{"HOME": abs("h")},
			unix(abs("h", ".config", appName), abs("h", ".local", "share", appName), abs("h", ".local", "state", appName)), ""},
		{"XDG variables win over HOME", linux,
			map[string]string{"HOME": abs("h"), "XDG_CONFIG_HOME": abs("c"), "XDG_DATA_HOME": abs("d"), "XDG_STATE_HOME": abs("s")},
			unix(abs("c", appName), abs("d", appName), abs("s", appName)), ""},
		{"one XDG variable, the others from HOME", linux,
			map[string]string{"HOME": abs("h"), "XDG_DATA_HOME": abs("d")},
			unix(abs("h", ".config", appName), abs("d", appName), abs("h", ".local", "state", appName)), ""},
		{"relative XDG variables are ignored", linux,
			map[string]string{"HOME": abs("h"), "XDG_CONFIG_HOME": "c", "XDG_DATA_HOME": "./d", "XDG_STATE_HOME": "s/t"},
			unix(abs("h", ".config", appName), abs("h", ".local", "share", appName), abs("h", ".local", "state", appName)), ""},
		{"every XDG variable set, no HOME", linux,
			map[string]string{"XDG_CONFIG_HOME": abs("c"), "XDG_DATA_HOME": abs("d"), "XDG_STATE_HOME": abs("s")},
			unix(abs("c", appName), abs("d", appName), abs("s", appName)), ""},
		{"no HOME and a missing XDG variable", linux,
			map[string]string{"XDG_CONFIG_HOME": abs("c"), "XDG_DATA_HOME": abs("d")}, Dirs{}, "AGENTSECRETS_HOME"},
		{"nothing set", linux, map[string]string{}, Dirs{}, "AGENTSECRETS_HOME"},
		{"relative HOME counts as unset", linux, map[string]string{"HOME": "h"}, Dirs{}, "absolute"},

		{"HOME", darwin, map[string]string{"HOME": abs("h"), "XDG_CONFIG_HOME": abs("x")},
			unix(abs("h", "Library", "Application Support", appName), abs("h", "Library", "Application Support", appName), abs("h", "Library", "Application Support", appName, "state")), ""},
		{"nothing set", darwin, map[string]string{}, Dirs{}, "AGENTSECRETS_HOME"},
		{"relative HOME counts as unset", darwin, map[string]string{"HOME": "h"}, Dirs{}, "absolute"},

		{"AppData and LocalAppData", windows, map[string]string{"AppData": abs("r"), "LocalAppData": abs("l")},
			unix(abs("r", appName), abs("l", appName), abs("l", appName, "state")), ""},
		{"LocalAppData missing", windows, map[string]string{"AppData": abs("r")}, Dirs{}, "AGENTSECRETS_HOME"},
		{"relative AppData", windows, map[string]string{"AppData": "r", "LocalAppData": abs("l")}, Dirs{}, "absolute"},
	}
	osClass := runtime.GOOS
	if osClass != darwin && osClass != windows {
		osClass = linux
	}
	for _, c := range cases {
		t.Run(c.os+"/"+c.name, func(t *testing.T) {
			if c.os != anyOS && c.os != osClass {
				t.Skipf("rule for %s; this is %s", c.os, runtime.GOOS)
			}
			got, err := Resolve(func(k string) string { return c.env[k] })
			if c.wantErr != "" {
				if err == nil || !strings.Contains(err.Error(), c.wantErr) {
					t.Fatalf("Resolve = %+v, %v; want an error mentioning %q", got, err, c.wantErr)
				}
				return
			}
			if err != nil || got != c.want {
				t.Fatalf("Resolve = %+v, %v\nwant %+v", got, err, c.want)
			}
			for _, d := range got.All() {
				if !filepath.IsAbs(d) {
					t.Errorf("%s is not absolute", d)
				}
			}
		})
	}
}
