package brokerd

import (
	"os"
	"testing"

	"github.com/agentsecrets/agentsecrets/internal/errcode"
)

func TestResolve(t *testing.T) {
	// The default looks for the standard socket; on a machine with a
	// broker installed the answer differs, and the table below is about
	// the variable.
	standard := ""
	if fi, err := os.Stat(DefaultSocket()); err == nil && fi.Mode()&os.ModeSocket != 0 {
		standard = DefaultSocket()
	}
	for _, tt := range []struct {
		name, value, want string
		code              errcode.Code
	}{
		{"unset: the standard socket if it exists", "", standard, ""},
		{"none forces local mode", "none", "", ""},
		{"unix path", "unix:/tmp/x/broker.sock", "/tmp/x/broker.sock", ""},
		{"relative unix path", "unix:run/broker.sock", "run/broker.sock", ""},
		{"unix without a path", "unix:", "", errcode.Usage},
		{"tcp is not a broker address", "tcp:127.0.0.1:80", "", errcode.Usage},
		{"a bare path", "/run/agentsecrets/broker.sock", "", errcode.Usage},
		{"None is not none", "None", "", errcode.Usage},
		{"garbage", "\x00garbage", "", errcode.Usage},
	} {
		t.Run(tt.name, func(t *testing.T) {
			got, err := Resolve(func(k string) string {
				if k == EnvBroker {
					return tt.value
				}
				return ""
			})
			if tt.code != "" {
				rep := errcode.Classify(err)
				if err == nil || rep.Code != tt.code || rep.Hint == "" {
					t.Fatalf("Resolve(%q) = %q, %v; want a %s error with a hint", tt.value, got, err, tt.code)
				}
				return
			}
			if err != nil || got != tt.want {
				t.Fatalf("Resolve(%q) = %q, %v; want %q", tt.value, got, err, tt.want)
			}
		})
	}
}
