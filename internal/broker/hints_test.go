package broker

import (
	"errors"
	"strings"
	"testing"

	"github.com/agentsecrets/agentsecrets/internal/errcode"
)

func TestURLWithoutScheme(t *testing.T) {
	tests := []struct {
		url, hint string
	}{
		{"api.example.com/v1", "https://api.example.com/v1 "},
		{"api.example.com", "https://api.example.com "},
		{"127.0.0.1:8080/x?key=sk_live_abcdef#frag", "https://127.0.0.1:8080/x "},
		{"localhost:3000", "https://localhost:3000 "},
		{"[::1]:8080/v1", "https://[::1]:8080/v1 "},
		// Not a host: no suggestion, the generic message.
		{"sk_live_4eC39HqLyjWDarjtT1zdp7dc", ""},
		{"ftp://api.example.com", ""},
		{"mailto:someone", ""},
	}
	for _, tt := range tests {
		_, err := parseTarget(tt.url)
		if !errors.Is(err, ErrBadRequest) {
			t.Fatalf("%s: err = %v, want a bad request", tt.url, err)
		}
		rep := errcode.Classify(err)
		if tt.hint == "" {
			if strings.Contains(rep.Hint, "https://") && !strings.Contains(rep.Message, "must start") {
				t.Errorf("%s: unexpected suggestion %q", tt.url, rep.Hint)
			}
			continue
		}
		if !strings.Contains(rep.Hint, tt.hint) || rep.Message != "invalid request: the URL has no scheme" {
			t.Errorf("%s: got %+v, want hint with %q", tt.url, rep, tt.hint)
		}
		if strings.Contains(rep.Hint, "sk_live") || strings.Contains(rep.Hint, "frag") {
			t.Errorf("%s: hint quotes the query: %q", tt.url, rep.Hint)
		}
	}
}

func TestHeaderSpecInCurlForm(t *testing.T) {
	const value = "sk_live_4eC39HqLyjWDarjtT1zdp7dc"
	tests := []struct {
		spec, hint string
	}{
		{"Accept: application/json", "-H 'Accept: ...'"},
		{"Authorization: Bearer " + value, "-H 'Authorization: ...'"},
		{"Authorization: Bearer " + value + "==", "-H 'Authorization: ...'"},
		{"bad name: " + value, "-H 'Name: ...'"},
	}
	for _, tt := range tests {
		_, err := Specs{Header: []string{tt.spec}}.Injections()
		rep := errcode.Classify(err)
		if rep.Code != errcode.Usage || !strings.Contains(rep.Message, "-H") || !strings.Contains(rep.Hint, tt.hint) {
			t.Errorf("%q: got %+v, want a usage error pointing at %s", tt.spec, rep, tt.hint)
		}
		if strings.Contains(rep.Message+rep.Hint, value) || strings.Contains(rep.Message+rep.Hint, "application/json") {
			t.Errorf("%q: the error quotes the header's value: %+v", tt.spec, rep)
		}
	}
	if _, err := (Specs{Header: []string{"X-Api-Key=STRIPE_KEY"}}).Injections(); err != nil {
		t.Errorf("a valid spec: %v", err)
	}
}
