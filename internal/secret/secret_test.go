package secret

import (
	"bytes"
	"encoding/base64"
	"encoding/hex"
	"encoding/json"
	"encoding/xml"
	"fmt"
	"log/slog"
	"net/url"
	"strconv"
	"strings"
	"testing"
)

const canary = "sk_live_CANARY_0123456789abcdef"

// leaks reports which form of the canary, if any, s contains.
func leaks(s string) string {
	forms := map[string]string{
		"raw":    canary,
		"hex":    hex.EncodeToString([]byte(canary)),
		"HEX":    strings.ToUpper(hex.EncodeToString([]byte(canary))),
		"base64": base64.StdEncoding.EncodeToString([]byte(canary)),
		"url":    url.QueryEscape(canary),
		"quoted": strconv.Quote(canary),
		// A byte slice printed with %v or %d.
		"bytes": strings.Trim(fmt.Sprint([]byte(canary)[:8]), "[]"),
	}
	for name, f := range forms {
		if strings.Contains(s, f) {
			return name
		}
	}
	return ""
}

type exported struct {
	Name  string
	Value Value
	Ptr   *Value
}

type unexported struct {
	name  string
	value Value
}

// TestFormatPrintsRedaction: every fmt verb, flag and width on a Value, a
// pointer to one, and a struct, slice, map and nested struct holding one
// prints the redaction and no form of the bytes. A Value in an unexported
// field, where fmt cannot call its methods, prints an address, never a byte
// (also with a bad verb, where fmt follows one pointer).
func TestFormatPrintsRedaction(t *testing.T) {
	v := New([]byte(canary))
	holders := []struct {
		name   string
		arg    any
		redact bool // the redaction must appear (false: fmt cannot call Format)
	}{
		{"value", v, true},
		{"pointer", &v, true},
		{"struct", exported{Name: "KEY", Value: v, Ptr: &v}, true},
		{"struct pointer", &exported{Name: "KEY", Value: v}, true},
		{"slice", []Value{v, v}, true},
		{"array", [1]Value{v}, true},
		{"map value", map[string]Value{"KEY": v}, true},
		{"any slice", []any{v, "x"}, true},
		{"nested", struct{ In exported }{exported{Value: v}}, true},
		{"unexported field", unexported{name: "KEY", value: v}, false},
		{"unexported pointer", &unexported{value: v}, false},
		{"unexported in slice", []unexported{{value: v}}, false},
	}
	verbs := []string{"%v", "%+v", "%#v", "%s", "%q", "%x", "%X", "% x", "%#x", "%d", "%b", "%o", "%c", "%U",
		"%e", "%g", "%t", "%p", "%T", "%10.3x", "%-40s", "%08d", "%[1]v"}
	for _, h := range holders {
		for _, verb := range verbs {
			out := fmt.Sprintf(verb, h.arg)
			if form := leaks(out); form != "" {
				t.Errorf("%s with %s prints the %s form: %s", h.name, verb, form, out)
			}
			if h.redact && verb != "%T" && verb != "%p" && !strings.Contains(out, Redacted) {
				t.Errorf("%s with %s prints no redaction: %s", h.name, verb, out)
			}
		}
		for _, out := range []string{fmt.Sprint(h.arg), fmt.Sprintln(h.arg)} {
			if form := leaks(out); form != "" {
				t.Errorf("%s with Sprint prints the %s form: %s", h.name, form, out)
			}
		}
	}
	if v.String() != Redacted || v.GoString() != Redacted {
		t.Errorf("String %q GoString %q", v.String(), v.GoString())
	}
	// An error wrapping a value through %v or %w-less formatting.
	if err := fmt.Errorf("bad value %v (%q)", v, v); leaks(err.Error()) != "" {
		t.Errorf("error text leaks: %v", err)
	}
}

// TestEncodersPrintRedaction: encoding/json, encoding/xml (TextMarshaler)
// and log/slog's text and JSON handlers print the redaction for a Value and
// for structs, slices and maps holding one.
func TestEncodersPrintRedaction(t *testing.T) {
	v := New([]byte(canary))
	type tagged struct {
		Name  string `json:"name" xml:"name"`
		Value Value  `json:"value" xml:"value"`
	}
	encoders := map[string]func(any) (string, error){
		"json": func(a any) (string, error) { b, err := json.Marshal(a); return string(b), err },
		"json indent": func(a any) (string, error) {
			b, err := json.MarshalIndent(a, "", " ")
			return string(b), err
		},
		"xml": func(a any) (string, error) { b, err := xml.Marshal(a); return string(b), err },
		"slog text": func(a any) (string, error) {
			var buf bytes.Buffer
			slog.New(slog.NewTextHandler(&buf, nil)).Info("m", "v", a)
			return buf.String(), nil
		},
		"slog json": func(a any) (string, error) {
			var buf bytes.Buffer
			slog.New(slog.NewJSONHandler(&buf, nil)).Info("m", "v", a)
			return buf.String(), nil
		},
	}
	args := map[string]any{
		"value":  v,
		"struct": tagged{Name: "KEY", Value: v},
		"slice":  []Value{v},
		"map":    map[string]Value{"KEY": v},
	}
	for en, enc := range encoders {
		for an, a := range args {
			if en == "xml" && an == "map" {
				continue // encoding/xml cannot encode maps at all
			}
			out, err := enc(a)
			if err != nil {
				t.Errorf("%s of %s: %v", en, an, err)
				continue
			}
			if form := leaks(out); form != "" || !strings.Contains(out, Redacted) {
				t.Errorf("%s of %s: leaked form %q or no redaction: %s", en, an, form, out)
			}
		}
	}
	if b, _ := v.MarshalText(); string(b) != Redacted {
		t.Errorf("MarshalText = %q", b)
	}
}

// TestWipe: Wipe zeroes the bytes a caller handed to New and empties every
// copy of the Value; Clone survives its original's Wipe.
func TestWipe(t *testing.T) {
	b := []byte(canary)
	v := New(b)
	cp := v
	clone := v.Clone()
	if !v.Equal(New([]byte(canary))) || v.Equal(New([]byte("other"))) || !clone.Equal(v) {
		t.Fatal("Equal is wrong")
	}
	v.Wipe()
	if !bytes.Equal(b, make([]byte, len(canary))) {
		t.Fatalf("the backing bytes survive Wipe: %q", b)
	}
	if !cp.Empty() || cp.Reveal() != nil || !v.Empty() {
		t.Fatal("a copy still holds bytes after Wipe")
	}
	if string(clone.Reveal()) != canary {
		t.Fatal("Wipe of the original wiped its Clone")
	}
	var zero Value
	zero.Wipe()
	if !zero.Empty() || zero.Reveal() != nil || !zero.Clone().Empty() || zero.String() != Redacted {
		t.Fatal("the zero Value misbehaves")
	}
}
