package broker

import (
	"context"
	"errors"
	"testing"
)

// TestReachesPrivate: what a denial's hint asks to decide whether the one
// allowlist command it names needs --allow-private.
func TestReachesPrivate(t *testing.T) {
	for _, c := range []struct {
		name, host string
		resolver   *guardResolver
		want       bool
	}{
		{"loopback literal", "127.0.0.1", nil, true},
		{"private literal", "10.0.0.7", nil, true},
		{"public literal", "8.8.8.8", nil, false},
		{"metadata literal: no flag opens it", "169.254.169.254", nil, false},
		{"name on loopback", "api.local.test", answering("::1", "127.0.0.1"), true},
		{"name on a public address", "api.example.com", answering("93.184.215.14"), false},
		{"lookup fails", "api.example.com", &guardResolver{err: errors.New("no such host")}, false},
	} {
		t.Run(c.name, func(t *testing.T) {
			g := &Guard{}
			if c.resolver != nil {
				g.Resolver = c.resolver
			}
			if got := g.ReachesPrivate(context.Background(), c.host); got != c.want {
				t.Fatalf("ReachesPrivate(%s) = %v, want %v", c.host, got, c.want)
			}
		})
	}
}
