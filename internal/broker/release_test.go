package broker

import (
	"encoding/base64"
	"fmt"
	"strings"
	"testing"

	"github.com/agentsecrets/agentsecrets/internal/secret"
	"github.com/agentsecrets/agentsecrets/internal/vault"
)

func TestReleasedHidesAndFindsValues(t *testing.T) {
	const value = "rel-value-0123456789abcdef"
	ref := Ref{Selection: vault.Selection{Workspace: "w", Project: "p"}, Name: "KEY"}
	v := []byte(value)
	r := &Released{refs: []Ref{ref}, values: map[Ref]secret.Value{ref: secret.New(v)}, redactor: NewRedactor([][]byte{[]byte(value)})}
	for _, s := range []string{fmt.Sprintf("%v", r), fmt.Sprintf("%+v", *r), fmt.Sprintf("%#v", r), fmt.Sprint(r)} {
		if strings.Contains(s, "rel-value") {
			t.Fatalf("formatting leaks the value: %s", s)
		}
	}
	for _, arg := range []string{value, "--token=" + value, base64.StdEncoding.EncodeToString([]byte(value)), "--unrelated-argument"} {
		want := arg != "--unrelated-argument"
		if got := r.Contains(arg); got != want {
			t.Errorf("Contains(%q) = %v, want %v", arg, got, want)
		}
	}
	if ref.String() != "w/p/KEY" {
		t.Errorf("Ref.String() = %q", ref.String())
	}
	r.Wipe()
	if strings.Trim(string(v), "\x00") != "" || !r.Value(ref).Empty() {
		t.Fatal("Wipe left the value")
	}
	if !r.Contains(value) {
		t.Fatal("Wipe must keep the redactor: output may still be flowing")
	}
}
