package broker

import (
	"bytes"
	"encoding/base32"
	"encoding/base64"
	"encoding/binary"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"mime/quotedprintable"
	"net/url"
	"strings"
	"testing"
	"unicode/utf16"
)

// rdEchoValue has the characters escapers treat differently: '+' and '/'
// (JSON \u002B, URL %2B and %2F, Python's quote() keeps '/'), the quotes
// (HTML entities), '=' (quoted-printable) and a non-ASCII letter.
const rdEchoValue = `sk_live_4eC39HqLyjWD+arjtT1/zdp7"dc'x=Qé9`

// rdEcho is a response that echoes a value in some form: text is the whole
// response, echo the part of it that is the encoded value.
type rdEcho struct {
	name       string
	text, echo string
}

func rdEchoCases(v string) []rdEcho {
	var cases []rdEcho
	add := func(name, before, echo, after string) {
		cases = append(cases, rdEcho{name, before + echo + after, echo})
	}

	// ASP.NET-style JSON: every character but an ASCII letter or digit as
	// \u00XX ('+' as \u002B), non-ASCII as \uXXXX.
	var aspnet strings.Builder
	for _, c := range v {
		if c < 128 && (c >= 'a' && c <= 'z' || c >= 'A' && c <= 'Z' || c >= '0' && c <= '9') {
			aspnet.WriteRune(c)
		} else {
			fmt.Fprintf(&aspnet, `\u%04X`, c)
		}
	}
	add("ASP.NET JSON, every non-alphanumeric as \\u00XX", `{"error":"invalid key `, aspnet.String(), `"}`)

	// httpbin's "data": the request body (JSON) as a JSON string.
	inner, _ := json.Marshal(map[string]string{"token": v})
	outer, _ := json.Marshal(string(inner))
	add("JSON inside a JSON string", `{"args":{},"data":`, string(outer), `,"origin":"127.0.0.1"}`)

	// base64 wrapped like MIME (76, CRLF) and the GitHub contents API (60,
	// LF), after a file header and an agent-chosen prefix of 0-2 bytes, so
	// the value's encoding crosses a line break at each alignment.
	for _, wrap := range []struct {
		width int
		nl    string
		fill  int // header bytes before the agent's prefix
	}{{76, "\r\n", 45}, {60, "\n", 25}} {
		for pre := range 3 {
			head := "# config file, generated\n" + strings.Repeat("z", wrap.fill-25+pre)
			blob := base64.StdEncoding.EncodeToString([]byte(head + v + "\n# end\n"))
			var wrapped strings.Builder
			for i := 0; i < len(blob); i += wrap.width {
				wrapped.WriteString(blob[i:min(i+wrap.width, len(blob))] + wrap.nl)
			}
			// The characters that carry only the value's bits.
			start, end := (len(head)*8+5)/6, (len(head)+len(v))*8/6
			w := wrapped.String()
			ws, we := start+start/wrap.width*len(wrap.nl), end+end/wrap.width*len(wrap.nl)
			cases = append(cases, rdEcho{fmt.Sprintf("base64 wrapped at %d, prefix %d", wrap.width, pre),
				`{"encoding":"base64","content":"` + w + `"}`, w[ws:we]})
		}
	}

	// A redirect the broker does not follow, with the value URL-encoded
	// twice in return_to=.
	add("double URL-encoding in a Location", "https://app.example.com/login?return_to="+url.QueryEscape("https://api.example.com/cb?key="),
		url.QueryEscape(url.QueryEscape(v)), "&x=1")

	// Python's urllib.parse.quote(v): '/' stays, '~' stays, the rest is %XX.
	add("Python quote()", "/v1/items/", rdPyQuote(v), "/details")

	// PHP's htmlspecialchars(ENT_QUOTES): &quot; and &#039;.
	add("HTML &quot; and &#039;", `<input value="`, strings.NewReplacer(`&`, "&amp;", `"`, "&quot;", `'`, "&#039;", "<", "&lt;", ">", "&gt;").Replace(v), `">`)

	// A truncated echo: all but the last character, all but the first.
	add("truncated: all but the last character", `invalid key "`, v[:len(v)-1], `…"`)
	add("truncated: all but the first character", `invalid key "…`, v[1:], `"`)

	add("base32", "id=", base32.StdEncoding.EncodeToString([]byte(v)), ";")
	add("base32 hex, lower case, unpadded", "id=", strings.ToLower(base32.HexEncoding.WithPadding(base32.NoPadding).EncodeToString([]byte(v))), ";")

	mixed := []byte(hex.EncodeToString([]byte(v)))
	for i := range mixed {
		if i%3 == 0 {
			mixed[i] = bytes.ToUpper(mixed[i : i+1])[0]
		}
	}
	add("mixed-case hex", "digest: ", string(mixed), "\n")

	// Quoted-printable, with a soft line break inside the value.
	var qp bytes.Buffer
	w := quotedprintable.NewWriter(&qp)
	lorem := strings.Repeat("Lorem ipsum ", 5)
	_, _ = w.Write([]byte(lorem + v))
	_ = w.Close()
	add("quoted-printable", "Content-Transfer-Encoding: quoted-printable\r\n\r\n"+lorem, qp.String()[len(lorem):], "\r\n")

	doc, _ := json.Marshal(map[string]string{"token": v})
	add("base64 of a JSON string", `{"state":"`, base64.RawURLEncoding.EncodeToString(doc), `"}`)

	u16le, u16be := rdUTF16(v)
	add("UTF-16LE", "\xff\xfe", u16le, "\x00\x00")
	add("UTF-16BE", "\xfe\xff", u16be, "\x00\x00")

	add("SSE, split over two events", "data: {\"key\":\"", v[:12]+"\n\ndata: "+v[12:], "\"}\n\n")
	return cases
}

func rdPyQuote(s string) string {
	var b strings.Builder
	for i := 0; i < len(s); i++ {
		c := s[i]
		if c >= 'a' && c <= 'z' || c >= 'A' && c <= 'Z' || c >= '0' && c <= '9' || strings.IndexByte("_.-~/", c) >= 0 {
			b.WriteByte(c)
		} else {
			fmt.Fprintf(&b, "%%%02X", c)
		}
	}
	return b.String()
}

func rdUTF16(s string) (le, be string) {
	var l, b []byte
	for _, u := range utf16.Encode([]rune(s)) {
		l = binary.LittleEndian.AppendUint16(l, u)
		b = binary.BigEndian.AppendUint16(b, u)
	}
	return string(l), string(b)
}

// rdCheckRedacted fails when out still shows the middle of the echo: no 8
// consecutive bytes of its middle half may survive.
func rdCheckRedacted(t *testing.T, c rdEcho, out string) {
	t.Helper()
	mid := c.echo[len(c.echo)/4 : len(c.echo)*3/4]
	for i := 0; i+8 <= len(mid); i++ {
		if strings.Contains(out, mid[i:i+8]) {
			t.Errorf("%s: %q of the echo survives in %q", c.name, mid[i:i+8], out)
			return
		}
	}
}

// TestRedactRealWorldEchoes covers the echo forms the review got through
// (issue 8 §2): each is redacted whole and in a stream cut anywhere.
func TestRedactRealWorldEchoes(t *testing.T) {
	r := NewRedactor([][]byte{[]byte("an-unrelated-secret-value-0001"), []byte(rdEchoValue)})
	for _, c := range rdEchoCases(rdEchoValue) {
		t.Run(c.name, func(t *testing.T) {
			out, hit := r.String(c.text)
			if !hit {
				t.Fatalf("no redaction in %q", c.text)
			}
			rdCheckRedacted(t, c, out)
			in := []byte(c.text)
			for k := 0; k <= len(in); k++ {
				got, _ := rdStream(t, r, &rdChunkReader{data: in, sizes: []int{k, 0}}, 4096)
				if string(got) != out {
					t.Fatalf("Reader split at %d = %q, Bytes = %q", k, got, out)
				}
			}
			for size := 1; size <= 7; size++ {
				got, _ := rdStream(t, r, &rdChunkReader{data: in, sizes: []int{size}}, 3)
				if string(got) != out {
					t.Fatalf("Reader in chunks of %d = %q, Bytes = %q", size, got, out)
				}
			}
		})
	}
}

func TestCanon(t *testing.T) {
	tests := []struct{ name, in, want string }{
		{"plain", "abc", "abc"},
		{"JSON short escapes", `a\"b\\c\/d\ne\rf\tg\bh\fi`, "a\"b\\c/defg\bh\fi"},
		{"JSON \\u, both cases", `\u002B\u002b\u00e9`, "++é"},
		{"JSON surrogate pair", `\ud83d\ude00`, "😀"},
		{"JSON lone surrogate", `\ud83dx`, "\uFFFDx"},
		{"percent, both cases", "%2B%2b%C3%A9", "++é"},
		{"percent, not an escape", "%zz%4", "%zz%4"},
		{"HTML named", "&quot;&amp;&lt;&gt;&apos;", `"&<>'`},
		{"HTML numeric", "&#43;&#x2B;&#X2b;&#233;", "++\u002bé"},
		{"HTML unknown", "&nbsp;&#;&#x;", "&nbsp;&#;&#x;"},
		{"quoted-printable", "a=3Db=C3=A9", "a=bé"},
		{"quoted-printable soft breaks", "abc=\r\ndef=\nghi", "abcdefghi"},
		{"quoted-printable lower case is not", "a=3db", "a=3db"},
		{"double URL-encoding", "%252B", "+"},
		{"JSON in a JSON string", `\\u002B`, "+"},
		{"entity in percent", "%26quot%3B", `"`},
		{"four rounds at most", "%2525252541", "%41"},
		{"whitespace dropped", "ab cd\tef\r\ngh\n", "abcdefgh"},
		{"SSE framing dropped", "data: abc\n\ndata: def\ndata:ghi", "data:abcdefghi"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			if got := canonString(tc.in); got != tc.want {
				t.Errorf("canon(%q) = %q, want %q", tc.in, got, tc.want)
			}
		})
	}
}

// TestCanonRawRange checks that every canonical byte maps back to the raw
// bytes it came from.
func TestCanonRawRange(t *testing.T) {
	tests := []struct {
		in     string
		a, b   int // canonical range
		ra, rb int // raw range
	}{
		{"xx\\u002Byy", 2, 3, 2, 8},
		{"xx%252Byy", 2, 3, 2, 7},
		{"ab cd", 1, 3, 1, 4},
		{"a\n\ndata: bc", 1, 3, 9, 11},
		{"a\n\ndata: bc", 0, 2, 0, 10},
		{"a&quot;b", 0, 3, 0, 8},
		{"\\u00e9", 0, 2, 0, 6},
	}
	for _, tc := range tests {
		var c canonBuf
		view := c.canon([]byte(tc.in), true)
		if ra, rb := c.rawRange(tc.a, tc.b); ra != tc.ra || rb != tc.rb {
			t.Errorf("%q (view %q): [%d,%d) maps to [%d,%d), want [%d,%d)", tc.in, view, tc.a, tc.b, ra, rb, tc.ra, tc.rb)
		}
	}
}

// TestTextClasses: textClasses looks at a text a piece at a time; a byte
// that starts an escape, or whitespace, is found in any piece, at either
// end of one, and the canonical view of a text of several pieces with one
// such byte is what decoding it and dropping its whitespace give.
func TestTextClasses(t *testing.T) {
	n := 3*classPiece + 7
	for _, c := range []byte(escapeBytes + whitespaceBytes) {
		wantEsc := strings.IndexByte(escapeBytes, c) >= 0
		for _, at := range []int{0, classPiece - 1, classPiece, 2*classPiece + 1, n - 1} {
			text := bytes.Repeat([]byte{'a'}, n)
			text[at] = c
			if esc, white := textClasses(text); esc != wantEsc || white == wantEsc {
				t.Errorf("%q at %d of %d: escape %v, whitespace %v", c, at, n, esc, white)
			}
		}
	}
	if esc, white := textClasses(bytes.Repeat([]byte{'a'}, n)); esc || white {
		t.Errorf("plain text: escape %v, whitespace %v", esc, white)
	}
	// A space at the start of the last piece, and an escape that decodes
	// to one at the end of the first.
	text := bytes.Repeat([]byte{'a'}, n)
	copy(text[classPiece-3:], "%20")
	text[3*classPiece] = ' '
	var c canonBuf
	if got := c.canon(text, false); !bytes.Equal(got, bytes.Repeat([]byte{'a'}, n-4)) {
		t.Errorf("canon of a text of %d bytes with %%20 and a space: %d bytes, not the %d letters", n, len(got), n-4)
	}
}
