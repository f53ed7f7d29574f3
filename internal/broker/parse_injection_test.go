package broker

import (
	"slices"
	"strings"
	"testing"
)

// TestParseInjection: the one translator of injection specs, for every
// style and every malformed shape each front end can send.
func TestParseInjection(t *testing.T) {
	for _, c := range []struct {
		style, spec string
		want        Injection
		err         bool
	}{
		{"bearer", "KEY", Injection{Style: StyleBearer, Secret: "KEY"}, false},
		{"Bearer", " KEY ", Injection{Style: StyleBearer, Secret: "KEY"}, false},
		{"basic", "USERPASS", Injection{Style: StyleBasic, Secret: "USERPASS"}, false},
		{"header", "X-Api-Key=K", Injection{Style: StyleHeader, Field: "X-Api-Key", Secret: "K"}, false},
		{"QUERY", "userId=K", Injection{Style: StyleQuery, Field: "userId", Secret: "K"}, false},
		{"query", " api_key = K ", Injection{Style: StyleQuery, Field: "api_key ", Secret: "K"}, false},
		{"body", "auth.token.0=K", Injection{Style: StyleBody, Field: "auth.token.0", Secret: "K"}, false},
		{"form", "client_secret=K", Injection{Style: StyleForm, Field: "client_secret", Secret: "K"}, false},
		{"bearer", "", Injection{}, true},
		{"bearer", "a=K", Injection{}, true},      // a field on a style that takes none
		{"basic", "TWO WORDS", Injection{}, true}, // a value, not a name
		{"header", "K", Injection{}, true},
		{"header", "=K", Injection{}, true},
		{"query", "p=", Injection{}, true},
		{"query", "p=a=b", Injection{}, true},
		{"form", "f=TWO WORDS", Injection{}, true},
		{"cookie", "sid=K", Injection{}, true},
		{"", "K", Injection{}, true},
	} {
		got, err := ParseInjection(c.style, c.spec)
		if (err != nil) != c.err || got != c.want {
			t.Errorf("ParseInjection(%q, %q) = %+v, %v; want %+v (error %v)", c.style, c.spec, got, err, c.want, c.err)
		}
	}
}

// FuzzParseInjection: any input yields a known style and a name with no
// separator in it, or an error that quotes none of the spec (a value typed
// where a name belongs must not come back).
func FuzzParseInjection(f *testing.F) {
	for _, s := range [][2]string{{"bearer", "K"}, {"query", "a=B"}, {"body", "a.0=K"}, {"cookie", "x"}, {"header", "sk_live_secretvalue"}} {
		f.Add(s[0], s[1])
	}
	f.Fuzz(func(t *testing.T, style, spec string) {
		in, err := ParseInjection(style, spec)
		if err != nil {
			if s := strings.TrimSpace(spec); len(s) >= 8 && strings.Contains(err.Error(), s) {
				t.Fatalf("error quotes the spec: %v", err)
			}
			return
		}
		switch in.Style {
		case StyleBearer, StyleBasic:
			if in.Field != "" {
				t.Fatalf("field on %s", in.Style)
			}
		case StyleHeader, StyleQuery, StyleBody, StyleForm:
			if in.Field == "" {
				t.Fatalf("no field on %s", in.Style)
			}
		default:
			t.Fatalf("unknown style %q", in.Style)
		}
		if in.Secret == "" || strings.ContainsAny(in.Secret, "= \t\r\n") {
			t.Fatalf("secret name %q", in.Secret)
		}
	})
}

// TestSpecsInjections: flags in a fixed order, errors naming the call
// flag (api_call mirrors them), never the spec.
func TestSpecsInjections(t *testing.T) {
	got, err := Specs{Bearer: "A", Header: []string{"X=B"}, Query: []string{"q=C"}, BodyField: []string{"a.b=D"}, Form: []string{"f=E"}}.Injections()
	if err != nil || len(got) != 5 || got[0].Style != StyleBearer || got[4].Style != StyleForm {
		t.Fatalf("%+v %v", got, err)
	}
	_, err = Specs{Query: []string{"sk_live_0123456789"}}.Injections()
	if err == nil || !strings.Contains(err.Error(), "--query") || strings.Contains(err.Error(), "sk_live") {
		t.Errorf("bad spec: %v", err)
	}
	_, err = Specs{BodyField: []string{"x"}}.Injections()
	if err == nil || !strings.Contains(err.Error(), "--body-field") {
		t.Errorf("bad body field: %v", err)
	}
}

// TestLowerStyleLikeToLower: a style name is accepted in exactly the
// cases strings.ToLower would make it one, Unicode letters that fold to
// ASCII ones (Kelvin K, long s) included, and reads as the same style.
func TestLowerStyleLikeToLower(t *testing.T) {
	inputs := []string{"", "b", "Bearer", "BEARER", "bearer", "bEaReR", "Basic", "HEADER", "Query", "BODY", "Form",
		"bearer ", "Bearers", "baſic", "BAſIC", "\u212Aey", "form\u212A", "quer\u0130", "bodY", "header\x00", "Fórm"}
	for _, s := range inputs {
		lower := strings.ToLower(s)
		want := slices.Contains(styleNames[:], lower)
		got := lowerStyle(s)
		if slices.Contains(styleNames[:], got) != want || want && got != lower {
			t.Errorf("lowerStyle(%q) = %q; strings.ToLower gives %q", s, got, lower)
		}
		if FieldStyle(s) != (want && lower != StyleBearer && lower != StyleBasic) {
			t.Errorf("FieldStyle(%q) = %v", s, FieldStyle(s))
		}
	}
}
