package broker

import (
	"encoding/base64"
	"fmt"
	"strings"
	"testing"

	"github.com/agentsecrets/agentsecrets/internal/vault"
)

func TestReleasedHidesAndFindsValues(t *testing.T) {
	const secret = "rel-value-0123456789abcdef"
	ref := Ref{Selection: vault.Selection{Workspace: "w", Project: "p"}, Name: "KEY"}
	v := []byte(secret)
	r := &Released{refs: []Ref{ref}, values: map[Ref][]byte{ref: v}, redactor: NewRedactor([][]byte{[]byte(secret)})}
	for _, s := range []string{fmt.Sprintf("%v", r), fmt.Sprintf("%+v", *r), fmt.Sprintf("%#v", r), fmt.Sprint(r)} {
		if strings.Contains(s, "rel-value") {
			t.Fatalf("formatting leaks the value: %s", s)
		}
	}
	for _, arg := range []string{secret, "--token=" + secret, base64.StdEncoding.EncodeToString([]byte(secret)), "--unrelated-argument"} {
		want := arg != "--unrelated-argument"
		if got := r.Contains(arg); got != want {
			t.Errorf("Contains(%q) = %v, want %v", arg, got, want)
		}
	}
	if ref.String() != "w/p/KEY" {
		t.Errorf("Ref.String() = %q", ref.String())
	}
	r.Wipe()
	if strings.Trim(string(v), "\x00") != "" || r.Value(ref) != nil {
		t.Fatal("Wipe left the value")
	}
	if !r.Contains(secret) {
		t.Fatal("Wipe must keep the redactor: output may still be flowing")
	}
}
