package dotenv

import (
	"bytes"
	"errors"
	"fmt"
	"regexp"
	"strings"
	"testing"

	"github.com/agentsecrets/agentsecrets/internal/secret"
)

type kv struct {
	name  string
	value string
	line  int
}

type parseCase struct {
	name    string
	in      string
	want    []kv
	errLine int
	errWhy  string // empty means success is expected
}

var parseCases = []parseCase{
	// Layout: blanks, comments, BOM, line endings.
	{name: "empty input", in: "", want: nil},
	{name: "only blanks and comments", in: "\n  \n\t\n# c\n   # indented\n", want: nil},
	{name: "simple", in: "A=1\nB=two\n", want: []kv{{"A", "1", 1}, {"B", "two", 2}}},
	{name: "no trailing newline", in: "A=1", want: []kv{{"A", "1", 1}}},
	{name: "comments between", in: "# head\nA=1\n\n# mid\nB=2", want: []kv{{"A", "1", 2}, {"B", "2", 5}}},
	{name: "BOM skipped", in: "\xEF\xBB\xBFA=1\n", want: []kv{{"A", "1", 1}}},
	{name: "BOM only at start", in: "A=1\n\xEF\xBB\xBFB=2\n", errLine: 2, errWhy: reasonInvalidName},
	{name: "CRLF", in: "A=1\r\nB=2\r\n\r\n# c\r\nC=3\r\n", want: []kv{{"A", "1", 1}, {"B", "2", 2}, {"C", "3", 5}}},
	{name: "CR before EOF", in: "A=1\r", want: []kv{{"A", "1", 1}}},
	{name: "CRLF after quote", in: "A='x'\r\nB=\"y\"\r\n", want: []kv{{"A", "x", 1}, {"B", "y", 2}}},
	{name: "lone CR kept inside value", in: "A=x\ry\n", want: []kv{{"A", "x\ry", 1}}},

	// Names, '=' and export.
	{name: "spaces around equals", in: "  A \t=\t 1 \n", want: []kv{{"A", "1", 1}}},
	{name: "name charset", in: "_a.B-9=1\nlower=2\n", want: []kv{{"_a.B-9", "1", 1}, {"lower", "2", 2}}},
	{name: "export prefix", in: "export A=1\nexport\t \tB=2\n  export C = 3\n", want: []kv{{"A", "1", 1}, {"B", "2", 2}, {"C", "3", 3}}},
	{name: "variable named export", in: "export=1\nexport =2\n", want: []kv{{"export", "2", 2}}},
	{name: "exporter is a name", in: "exporter=1\n", want: []kv{{"exporter", "1", 1}}},
	{name: "export without assignment", in: "A=1\nexport B\n", errLine: 2, errWhy: reasonMissingEquals},
	{name: "missing equals", in: "A=1\n\nJUSTANAME\n", errLine: 3, errWhy: reasonMissingEquals},
	{name: "empty name", in: "=1\n", errLine: 1, errWhy: reasonInvalidName},
	{name: "name with space", in: "A=1\nBAD NAME=1\n", errLine: 2, errWhy: reasonInvalidName},
	{name: "name starts with digit", in: "1A=1\n", errLine: 1, errWhy: reasonInvalidName},
	{name: "name starts with dash", in: "-A=1\n", errLine: 1, errWhy: reasonInvalidName},
	{name: "name with dollar", in: "A$=1\n", errLine: 1, errWhy: reasonInvalidName},
	{name: "export then nothing", in: "export  =1\n", want: []kv{{"export", "1", 1}}},
	{name: "export then bad name", in: "export 9=1\n", errLine: 1, errWhy: reasonInvalidName},

	// Unquoted values.
	{name: "unquoted trimmed", in: "A=  hello world \t\n", want: []kv{{"A", "hello world", 1}}},
	{name: "unquoted inline comment", in: "A=val # c\nB=val\t# c\n", want: []kv{{"A", "val", 1}, {"B", "val", 2}}},
	{name: "hash without blank is value", in: "URL=http://x/#frag\nH=#abc\n", want: []kv{{"URL", "http://x/#frag", 1}, {"H", "#abc", 2}}},
	{name: "comment right after equals", in: "A= # nothing\n", want: []kv{{"A", "", 1}}},
	{name: "only first blank hash cuts", in: "A=a#b c #d #e\n", want: []kv{{"A", "a#b c", 1}}},
	{name: "unquoted keeps quotes inside", in: `A=it's "x"` + "\n", want: []kv{{"A", `it's "x"`, 1}}},
	{name: "unquoted keeps backslashes", in: `A=a\nb\\c` + "\n", want: []kv{{"A", `a\nb\\c`, 1}}},
	{name: "unquoted equals in value", in: "A=b=c==\n", want: []kv{{"A", "b=c==", 1}}},
	{name: "no interpolation unquoted", in: "A=1\nB=${A}$A$(echo hi)`id`x\n", want: []kv{{"A", "1", 1}, {"B", "${A}$A$(echo hi)`id`x", 2}}},

	// Empty values.
	{name: "empty values", in: "A=\nB=   \nC=''\nD=\"\"\nE=``\n", want: []kv{{"A", "", 1}, {"B", "", 2}, {"C", "", 3}, {"D", "", 4}, {"E", "", 5}}},

	// Single quotes.
	{name: "single literal", in: `A='a\nb "c" $X #d'` + "\n", want: []kv{{"A", `a\nb "c" $X #d`, 1}}},
	{name: "single keeps blanks", in: "A=' x '\n", want: []kv{{"A", " x ", 1}}},
	{name: "single multiline", in: "A='l1\nl2\n\nl4'\nB=2\n", want: []kv{{"A", "l1\nl2\n\nl4", 1}, {"B", "2", 5}}},
	{name: "single multiline CRLF folded", in: "A='l1\r\nl2'\r\nB=2\r\n", want: []kv{{"A", "l1\nl2", 1}, {"B", "2", 3}}},
	{name: "single then comment", in: "A='x' # c\nB='y'#c\nC='z'  \t\n", want: []kv{{"A", "x", 1}, {"B", "y", 2}, {"C", "z", 3}}},
	{name: "single trailing text", in: "A=1\nB='x' y\n", errLine: 2, errWhy: reasonTrailingAfterQuot},
	{name: "single trailing text after multiline", in: "A='x\ny\nz'q\n", errLine: 3, errWhy: reasonTrailingAfterQuot},
	{name: "single unterminated", in: "A=1\nB='abc\nC=3\n", errLine: 2, errWhy: reasonUnterminatedSQ},
	{name: "single no escape of quote", in: `A='a\'b'` + "\n", errLine: 1, errWhy: reasonTrailingAfterQuot},

	// Backticks.
	{name: "backtick literal", in: "A=`a\\n 'b' \"c\" ${X}`\n", want: []kv{{"A", `a\n 'b' "c" ${X}`, 1}}},
	{name: "backtick multiline", in: "A=`x\ny`\nB=1\n", want: []kv{{"A", "x\ny", 1}, {"B", "1", 3}}},
	{name: "backtick trailing text", in: "A=`x`y\n", errLine: 1, errWhy: reasonTrailingAfterQuot},
	{name: "backtick unterminated", in: "A=1\n\nB=`abc\n", errLine: 3, errWhy: reasonUnterminatedBT},

	// Double quotes.
	{name: "double plain", in: `A="hello world"` + "\n", want: []kv{{"A", "hello world", 1}}},
	{name: "double keeps blanks and hash", in: `A=" a # b "` + "\n", want: []kv{{"A", " a # b ", 1}}},
	{name: "double escapes", in: `A="n\n r\r t\t q\" b\\ d\$"` + "\n", want: []kv{{"A", "n\n r\r t\t q\" b\\ d$", 1}}},
	{name: "double unknown escapes kept", in: `A="\a\x41\'\u00e9\ "` + "\n", want: []kv{{"A", `\a\x41\'\u00e9\ `, 1}}},
	{name: "double escaped backslash before quote", in: `A="x\\"` + "\n", want: []kv{{"A", `x\`, 1}}},
	{name: "double no interpolation", in: `A="${HOME} $HOME $(id)"` + "\n", want: []kv{{"A", "${HOME} $HOME $(id)", 1}}},
	{name: "double multiline", in: "A=\"l1\nl2\\tx\nl3\"\nB=2\n", want: []kv{{"A", "l1\nl2\tx\nl3", 1}, {"B", "2", 4}}},
	{name: "double multiline CRLF folded", in: "A=\"l1\r\nl2\"\r\nB=2\r\n", want: []kv{{"A", "l1\nl2", 1}, {"B", "2", 3}}},
	{name: "double backslash newline kept", in: "A=\"a\\\nb\"\nB=1\n", want: []kv{{"A", "a\\\nb", 1}, {"B", "1", 3}}},
	{name: "double backslash CRLF folded", in: "A=\"a\\\r\nb\"\r\nB=1\r\n", want: []kv{{"A", "a\\\nb", 1}, {"B", "1", 3}}},
	{name: "double then comment", in: "A=\"x\" # c \"y\"\nB=\"z\"#c\n", want: []kv{{"A", "x", 1}, {"B", "z", 2}}},
	{name: "double trailing text", in: `A="x"y` + "\n", errLine: 1, errWhy: reasonTrailingAfterQuot},
	{name: "double trailing second quote", in: `A="x" "y"` + "\n", errLine: 1, errWhy: reasonTrailingAfterQuot},
	{name: "double unterminated", in: "A=1\nB=\"abc\nC=3\n", errLine: 2, errWhy: reasonUnterminatedDQ},
	{name: "double escaped closing quote", in: `A="abc\"` + "\n", errLine: 1, errWhy: reasonUnterminatedDQ},
	{name: "double backslash at EOF", in: `A="abc\`, errLine: 1, errWhy: reasonUnterminatedDQ},
	{name: "double other quotes inside", in: "A=\"it's `x`\"\n", want: []kv{{"A", "it's `x`", 1}}},
	{name: "error line after multiline value", in: "A=\"x\ny\"\nB\n", errLine: 3, errWhy: reasonMissingEquals},

	// Duplicates.
	{name: "duplicate last wins", in: "A=1\nB=2\nA=3\n", want: []kv{{"B", "2", 2}, {"A", "3", 3}}},
	{name: "duplicate many", in: "A=1\nA=2\nB=x\nA=\nexport A='4'\n", want: []kv{{"B", "x", 3}, {"A", "4", 5}}},
	{name: "names are case sensitive", in: "a=1\nA=2\n", want: []kv{{"a", "1", 1}, {"A", "2", 2}}},

	// Whole-input rejections.
	{name: "NUL byte", in: "A=1\nB=x\x00y\n", errLine: 2, errWhy: reasonNUL},
	{name: "NUL in comment", in: "# \x00\n", errLine: 1, errWhy: reasonNUL},
	{name: "NUL line counts BOM line", in: "\xEF\xBB\xBFA=1\n\n\x00", errLine: 3, errWhy: reasonNUL},
}

func TestParse(t *testing.T) {
	for _, tc := range parseCases {
		t.Run(tc.name, func(t *testing.T) {
			got, err := Parse([]byte(tc.in))
			if tc.errWhy != "" {
				if got != nil {
					t.Errorf("entries = %v, want nil on error", got)
				}
				var pe *ParseError
				if !errors.As(err, &pe) {
					t.Fatalf("err = %v (%T), want *ParseError", err, err)
				}
				if pe.Line != tc.errLine || pe.Reason != tc.errWhy {
					t.Fatalf("err = {%d %q}, want {%d %q}", pe.Line, pe.Reason, tc.errLine, tc.errWhy)
				}
				return
			}
			if err != nil {
				t.Fatalf("unexpected error: %v", err)
			}
			if len(got) != len(tc.want) {
				t.Fatalf("got %d entries %v, want %d", len(got), got, len(tc.want))
			}
			for i, w := range tc.want {
				g := got[i]
				if g.Name != w.name || string(g.Value.Reveal()) != w.value || g.Line != w.line {
					t.Errorf("entry %d = {%q %q %d}, want {%q %q %d}", i, g.Name, g.Value.Reveal(), g.Line, w.name, w.value, w.line)
				}
				if g.Value.Reveal() == nil {
					t.Errorf("entry %d: Value is nil, want empty non-nil slice", i)
				}
			}
		})
	}
}

func TestErrorFormat(t *testing.T) {
	if got := (&ParseError{Line: 3, Reason: reasonUnterminatedDQ}).Error(); got != "line 3: unterminated double quote" {
		t.Errorf("Error() = %q", got)
	}
	if got := (&ParseError{Line: 0, Reason: reasonTooLarge}).Error(); got != "file larger than 4 MiB" {
		t.Errorf("Error() = %q", got)
	}
}

func TestSizeLimit(t *testing.T) {
	line := []byte("K=" + strings.Repeat("v", 1021) + "\n") // 1 KiB per line
	exact := bytes.Repeat(line, 4096)
	if len(exact) != maxSize {
		t.Fatalf("test input is %d bytes, want %d", len(exact), maxSize)
	}
	if _, err := Parse(exact); err != nil {
		t.Fatalf("exactly 4 MiB: %v", err)
	}
	got, err := Parse(append(exact, '\n'))
	var pe *ParseError
	if got != nil || !errors.As(err, &pe) || pe.Line != 0 || pe.Reason != reasonTooLarge {
		t.Fatalf("4 MiB + 1: entries=%v err=%v, want nil and {0 %q}", got, err, reasonTooLarge)
	}
}

// A caller wipes the file buffer after import; values must survive that.
func TestValuesDoNotAliasInput(t *testing.T) {
	in := []byte("A=plain\nB='single'\nC=\"double\"\nD=`tick`\n")
	got, err := Parse(in)
	if err != nil {
		t.Fatal(err)
	}
	for i := range in {
		in[i] = 'X'
	}
	want := []string{"plain", "single", "double", "tick"}
	for i, e := range got {
		if string(e.Value.Reveal()) != want[i] {
			t.Errorf("%s = %q after wiping input, want %q", e.Name, e.Value.Reveal(), want[i])
		}
	}
}

const canary = "sk_canary_9f8e7d"

func TestErrorsNeverContainInput(t *testing.T) {
	inputs := []string{
		`KEY="` + canary,
		`KEY="` + canary + "\nOTHER=1\n",
		`KEY='` + canary,
		"KEY=`" + canary,
		`bad name=` + canary,
		"9" + canary + `=x`,
		"-" + canary + `=x`,
		`KEY ` + canary,
		canary,
		`export ` + canary,
		`KEY='` + canary + `' trailing`,
		`KEY='x' ` + canary,
		`KEY="x"` + canary,
		`KEY=` + "`x`" + canary,
		`KEY="` + canary + `\"`,
		"KEY=" + canary + "\x00",
		"KEY=\"" + canary + "\"\n" + canary + "\n",
		"KEY=" + canary + "\n" + strings.Repeat("#"+canary+"\n", maxSize/len(canary)),
	}
	for i, in := range inputs {
		got, err := Parse([]byte(in))
		if err == nil {
			t.Errorf("input %d: no error, entries %v", i, got)
			continue
		}
		if got != nil {
			t.Errorf("input %d: entries %v returned with error", i, got)
		}
		var pe *ParseError
		if !errors.As(err, &pe) {
			t.Errorf("input %d: error %T is not *ParseError", i, err)
		}
		for _, frag := range []string{canary, "canary", "sk_", "9f8e7d"} {
			if strings.Contains(err.Error(), frag) {
				t.Errorf("input %d: error %q leaks %q", i, err.Error(), frag)
			}
		}
	}
}

var (
	nameRE = regexp.MustCompile(`^[A-Za-z_][A-Za-z0-9_.-]*$`)
	// '=' is needed for "missing '='"; the reason allowlist is the real check.
	errorRE = regexp.MustCompile(`^line \d+: [a-z' ,0-9A-Z=\-]+$`)

	// knownReasons is the allowlist the fuzzer checks error text against:
	// every byte of an error must come from here or from the line number.
	knownReasons = map[string]bool{
		reasonTooLarge:          true,
		reasonNUL:               true,
		reasonMissingEquals:     true,
		reasonInvalidName:       true,
		reasonUnterminatedDQ:    true,
		reasonUnterminatedSQ:    true,
		reasonUnterminatedBT:    true,
		reasonTrailingAfterQuot: true,
	}
)

// quote is the inverse of the double-quote escapes, used to check that every
// value Parse can produce can also be written back and read unchanged.
func quote(v []byte) string {
	var b strings.Builder
	b.WriteByte('"')
	for _, c := range v {
		switch c {
		case '\\':
			b.WriteString(`\\`)
		case '"':
			b.WriteString(`\"`)
		case '$':
			b.WriteString(`\$`)
		case '\n':
			b.WriteString(`\n`)
		case '\r':
			b.WriteString(`\r`)
		case '\t':
			b.WriteString(`\t`)
		default:
			b.WriteByte(c)
		}
	}
	b.WriteByte('"')
	return b.String()
}

func TestRoundTripTable(t *testing.T) {
	for _, tc := range parseCases {
		if tc.errWhy == "" {
			checkRoundTrip(t, []byte(tc.in))
		}
	}
}

func checkRoundTrip(t *testing.T, in []byte) {
	t.Helper()
	first, err := Parse(in)
	if err != nil {
		return
	}
	var out strings.Builder
	for _, e := range first {
		fmt.Fprintf(&out, "%s=%s\n", e.Name, quote(e.Value.Reveal()))
	}
	if out.Len() > maxSize {
		return // escaping can push a legal file over the limit
	}
	second, err := Parse([]byte(out.String()))
	if err != nil {
		t.Fatalf("re-parse of %q failed: %v", out.String(), err)
	}
	if len(second) != len(first) {
		t.Fatalf("re-parse gave %d entries, want %d", len(second), len(first))
	}
	for i := range first {
		if first[i].Name != second[i].Name || !bytes.Equal(first[i].Value.Reveal(), second[i].Value.Reveal()) {
			t.Fatalf("entry %d: re-parse gave {%q %q}, want {%q %q}",
				i, second[i].Name, second[i].Value.Reveal(), first[i].Name, first[i].Value.Reveal())
		}
	}
}

func FuzzParse(f *testing.F) {
	for _, tc := range parseCases {
		f.Add([]byte(tc.in))
	}
	f.Add([]byte(`KEY="` + canary))
	f.Add([]byte(`KEY='` + canary + `' trailing`))
	f.Fuzz(func(t *testing.T, in []byte) {
		got, err := Parse(in)
		if err != nil {
			if got != nil {
				t.Fatalf("entries %v returned with error %v", got, err)
			}
			var pe *ParseError
			if !errors.As(err, &pe) {
				t.Fatalf("error %T is not *ParseError", err)
			}
			if !knownReasons[pe.Reason] {
				t.Fatalf("reason %q is not in the allowlist", pe.Reason)
			}
			msg := err.Error()
			if pe.Line == 0 {
				if pe.Reason != reasonTooLarge || msg != reasonTooLarge {
					t.Fatalf("line-less error %q", msg)
				}
				return
			}
			if len(msg) >= 120 || !errorRE.MatchString(msg) {
				t.Fatalf("error %q does not have the shape 'line N: reason'", msg)
			}
			if lines := 1 + bytes.Count(in, []byte{'\n'}); pe.Line < 1 || pe.Line > lines {
				t.Fatalf("error line %d outside 1..%d", pe.Line, lines)
			}
			return
		}
		seen := make(map[string]bool, len(got))
		prevLine := 0
		for _, e := range got {
			if e.Line <= prevLine {
				t.Fatalf("%s: line %d not after previous entry's line %d", e.Name, e.Line, prevLine)
			}
			prevLine = e.Line
			if !nameRE.MatchString(e.Name) {
				t.Fatalf("invalid name %q accepted", e.Name)
			}
			if seen[e.Name] {
				t.Fatalf("duplicate name %q", e.Name)
			}
			seen[e.Name] = true
			if e.Value.Reveal() == nil {
				t.Fatalf("%s: nil Value", e.Name)
			}
		}
		checkRoundTrip(t, in)
	})
}

// TestDedupeWipesOverriddenValues: a value overridden by a later assignment
// is returned to nobody, so dedupe wipes it; the kept ones stay intact.
func TestDedupeWipesOverriddenValues(t *testing.T) {
	entry := func(name, v string) (Entry, []byte) {
		b := []byte(v)
		return Entry{Name: name, Value: secret.New(b)}, b
	}
	a1, a1b := entry("A", "first-a")
	b1, b1b := entry("B", "only-b")
	a2, a2b := entry("A", "second-a")
	out := dedupe([]Entry{a1, b1, a2})
	if len(out) != 2 || out[0].Name != "B" || out[1].Name != "A" {
		t.Fatalf("dedupe = %v", out)
	}
	if !bytes.Equal(a1b, make([]byte, len(a1b))) || !a1.Value.Empty() {
		t.Error("the overridden value survives")
	}
	if string(b1b) != "only-b" || string(a2b) != "second-a" {
		t.Error("a kept value was wiped")
	}
}
