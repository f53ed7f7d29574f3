package broker

import (
	"bytes"
	"encoding/base64"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"math/rand/v2"
	"net/http"
	"net/http/httptest"
	"net/url"
	"regexp"
	"runtime"
	"slices"
	"strconv"
	"strings"
	"sync"
	"testing"
	"testing/iotest"
	"time"

	"github.com/agentsecrets/agentsecrets/internal/secret"
)

const rdAlnum = "abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789"

func rdRandString(rng *rand.Rand, alphabet string, n int) string {
	b := make([]byte, n)
	for i := range b {
		b[i] = alphabet[rng.IntN(len(alphabet))]
	}
	return string(b)
}

// rdCanary is a canary with characters every escaping treats differently.
func rdCanary(rng *rand.Rand) []byte {
	return []byte("sk_" + rdRandString(rng, rdAlnum, 24) + `/?&=+ <>"\é€😀` + rdRandString(rng, rdAlnum, 4))
}

// naiveRedact is the reference: at every position the longest form, runs of
// overlapping echoes replaced by one Marker.
func naiveRedact(forms [][]byte, in []byte) ([]byte, bool) {
	out := []byte{}
	cover, hit := 0, false
	for i := range in {
		l := 0
		for _, f := range forms {
			if len(f) > l && bytes.HasPrefix(in[i:], f) {
				l = len(f)
			}
		}
		switch {
		case l > 0 && i < cover:
			cover = max(cover, i+l)
		case l > 0:
			out = append(out, Marker...)
			cover, hit = i+l, true
		case i >= cover:
			out = append(out, in[i])
		}
	}
	return out, hit
}

// rdChunkReader returns data in pieces of the given sizes, cycling through
// them; a size of 0 means "the rest".
type rdChunkReader struct {
	data  []byte
	sizes []int
	i     int
	err   error // returned once data is exhausted (io.EOF if nil)
}

func (c *rdChunkReader) Read(p []byte) (int, error) {
	if len(c.data) == 0 {
		if c.err != nil {
			return 0, c.err
		}
		return 0, io.EOF
	}
	n := len(c.data)
	if s := c.sizes[c.i%len(c.sizes)]; s > 0 && s < n {
		n = s
	}
	c.i++
	n = copy(p, c.data[:n])
	c.data = c.data[n:]
	return n, nil
}

// rdReadAll drains rr with reads of size bufSize, checking the carry-over
// bound after every read.
func rdReadAll(t testing.TB, rr *RedactReader, bufSize int) ([]byte, error) {
	t.Helper()
	var out []byte
	buf := make([]byte, bufSize)
	for {
		n, err := rr.Read(buf)
		out = append(out, buf[:n]...)
		if held := rr.n - rr.ctx; held > rr.r.hold {
			t.Fatalf("holds back %d bytes, hold-back is %d", held, rr.r.hold)
		}
		if err != nil {
			return out, err
		}
	}
}

func rdStream(t testing.TB, r *Redactor, src io.Reader, bufSize int) ([]byte, bool) {
	t.Helper()
	rr := r.Reader(src)
	out, err := rdReadAll(t, rr, bufSize)
	if err != io.EOF {
		t.Fatalf("read: %v", err)
	}
	return out, rr.Redacted()
}

// The forms each value must be redacted in, built here with the standard
// library and not with echoForms.
var rdFormTable = []struct {
	name string
	enc  func(v []byte) string
}{
	{"raw", func(v []byte) string { return string(v) }},
	{"base64 std", base64.StdEncoding.EncodeToString},
	{"base64 std unpadded", base64.RawStdEncoding.EncodeToString},
	{"base64 url", base64.URLEncoding.EncodeToString},
	{"base64 url unpadded", base64.RawURLEncoding.EncodeToString},
	{"hex", hex.EncodeToString},
	{"HEX", func(v []byte) string { return strings.ToUpper(hex.EncodeToString(v)) }},
	{"query escape", func(v []byte) string { return url.QueryEscape(string(v)) }},
	{"path escape", func(v []byte) string { return url.PathEscape(string(v)) }},
	{"query escape lower", func(v []byte) string { return rdLowerEscapes(url.QueryEscape(string(v))) }},
	{"path escape lower", func(v []byte) string { return rdLowerEscapes(url.PathEscape(string(v))) }},
	// Python's quote(safe=""): QueryEscape with %20 for a space.
	{"strict percent", func(v []byte) string { return strings.ReplaceAll(url.QueryEscape(string(v)), "+", "%20") }},
	{"strict percent lower", func(v []byte) string {
		return rdLowerEscapes(strings.ReplaceAll(url.QueryEscape(string(v)), "+", "%20"))
	}},
	{"encodeURIComponent", func(v []byte) string {
		return strings.NewReplacer("+", "%20", "%21", "!", "%2A", "*", "%27", "'", "%28", "(", "%29", ")").Replace(url.QueryEscape(string(v)))
	}},
	// A truncated echo: the whole 3-byte groups of the value only.
	{"base64 whole groups", func(v []byte) string { return base64.RawStdEncoding.EncodeToString(v[:len(v)/3*3]) }},
	{"base64 url whole groups", func(v []byte) string { return base64.RawURLEncoding.EncodeToString(v[:len(v)/3*3]) }},
	{"json", func(v []byte) string { q, _ := json.Marshal(string(v)); return string(q[1 : len(q)-1]) }},
	{"json no html", func(v []byte) string {
		var b bytes.Buffer
		e := json.NewEncoder(&b)
		e.SetEscapeHTML(false)
		_ = e.Encode(string(v))
		return strings.TrimSuffix(b.String(), "\n")[1 : b.Len()-2]
	}},
}

var rdPercentEscape = regexp.MustCompile(`%[0-9A-F]{2}`)

func rdLowerEscapes(s string) string { return rdPercentEscape.ReplaceAllStringFunc(s, strings.ToLower) }

func TestRedactFormsCanary(t *testing.T) {
	// Spot checks written out by hand.
	v := []byte(`pa/ss é<`)
	want := []string{
		`pa/ss é<`,
		`pa%2Fss+%C3%A9%3C`, `pa%2fss+%c3%a9%3c`, // query escape, lower hex
		`pa%2Fss%20%C3%A9%3C`,            // path escape
		`pa/ss é\u003c`,                  // Go JSON
		`pa\/ss é<`,                      // PHP JSON
		`pa/ss \u00e9<`, `pa/ss \u00E9<`, // ensure_ascii
		`pa/ss \u00e9\u003c`, // every escaped char as \u
		`70612f737320c3a93c`, `70612F737320C3A93C`,
		`pa%2Fss%20%C3%A9%3C`, `pa%2fss%20%c3%a9%3c`, // RFC 3986 strict (Python quote, encodeURIComponent)
	}
	r := NewRedactor([][]byte{v})
	have := map[string]bool{}
	for _, f := range r.forms {
		have[string(f)] = true
	}
	for _, w := range want {
		if !have[w] {
			t.Errorf("form %q missing", w)
		}
	}
	emoji := NewRedactor([][]byte{[]byte("k😀\x00\n")})
	for _, w := range []string{`k😀\u0000\n`, `k\ud83d\ude00\u0000\n`, `k\uD83D\uDE00\u0000\n`, `k\ud83d\ude00\u0000\u000a`} {
		if got, hit := emoji.String("<" + w + ">"); got != "<"+Marker+">" || !hit {
			t.Errorf("JSON form %q: got %q", w, got)
		}
	}
	if got, _ := r.String("Basic " + base64.StdEncoding.EncodeToString([]byte("user:pass"))); !strings.Contains(got, "dXNlcjpwYXNz") {
		t.Errorf("a Basic header of another value was redacted: %q", got)
	}
	basic := NewRedactor([][]byte{[]byte("user:pass")})
	if got, hit := basic.String("Basic dXNlcjpwYXNz"); got != "Basic "+Marker || !hit {
		t.Errorf("Basic form: got %q, %v", got, hit)
	}
}

func TestRedactEveryForm(t *testing.T) {
	rng := rand.New(rand.NewPCG(1, 1))
	v := rdCanary(rng)
	r := NewRedactor([][]byte{v, []byte("another-secret-value")})
	for _, tc := range rdFormTable {
		t.Run(tc.name, func(t *testing.T) {
			form := tc.enc(v)
			in := "before " + form + " after"
			want := "before " + Marker + " after"
			if got, hit := r.String(in); got != want || !hit {
				t.Errorf("String(%q) = %q, %v; want %q, true", in, got, hit, want)
			}
			if got, hit := rdStream(t, r, strings.NewReader(in), 7); string(got) != want || !hit {
				t.Errorf("Reader(%q) = %q, %v; want %q, true", in, got, hit, want)
			}
		})
	}
}

func TestRedactBase64InsideBlob(t *testing.T) {
	rng := rand.New(rand.NewPCG(2, 2))
	v := []byte(rdRandString(rng, rdAlnum, 20)) // 20 bytes: every alignment leaves a partial group
	r := NewRedactor([][]byte{v})
	for _, enc := range []*base64.Encoding{base64.StdEncoding, base64.URLEncoding, base64.RawStdEncoding} {
		for pre := 0; pre < 9; pre++ {
			for post := 0; post < 4; post++ {
				blob := make([]byte, 0, pre+len(v)+post)
				blob = append(blob, rdRandString(rng, "\x00\xff\xfe~?>", pre)...)
				blob = append(blob, v...)
				blob = append(blob, rdRandString(rng, "\x00\xff\xfe~?>", post)...)
				e := enc.EncodeToString(blob)
				// The characters whose bits all come from v.
				start, end := (8*pre+5)/6, (8*pre+8*len(v))/6
				core := e[start:end]
				got, hit := r.String(e)
				if !hit || strings.Contains(got, core) {
					t.Errorf("pre=%d post=%d: %q → %q, %v: core %q visible", pre, post, e, got, hit, core)
				}
			}
		}
	}
}

func TestRedactPassThrough(t *testing.T) {
	rng := rand.New(rand.NewPCG(3, 3))
	r := NewRedactor([][]byte{rdCanary(rng), []byte(rdRandString(rng, rdAlnum, 40)), nil, {}})
	inputs := []string{
		"",
		"x",
		"hello, world",
		`{"id":"ch_123","amount":1000,"currency":"usd","description":"sk_ is a prefix, not a key"}`,
		rdRandString(rng, rdAlnum, 100000),
		rdRandString(rng, "\x00\x01\xff\n\r\t \"\\%+/=", 5000),
	}
	for _, in := range inputs {
		b := []byte(in)
		if got, hit := r.Bytes(b); !bytes.Equal(got, b) || hit {
			t.Errorf("Bytes changed clean input (len %d), hit=%v", len(in), hit)
		}
		for _, size := range []int{1, 3, 512, 64 << 10} {
			if got, hit := rdStream(t, r, &rdChunkReader{data: b, sizes: []int{size}}, 100); !bytes.Equal(got, b) || hit {
				t.Errorf("Reader changed clean input (len %d, chunks %d), hit=%v", len(in), size, hit)
			}
		}
		if err := iotest.TestReader(r.Reader(strings.NewReader(in)), b); err != nil {
			t.Error(err)
		}
	}
}

func TestRedactNoValues(t *testing.T) {
	for _, r := range []*Redactor{nil, NewRedactor(nil), NewRedactor([][]byte{{}, nil})} {
		if got, hit := r.String("anything"); got != "anything" || hit {
			t.Errorf("String = %q, %v", got, hit)
		}
		if got, hit := rdStream(t, r, iotest.OneByteReader(strings.NewReader("a stream")), 3); string(got) != "a stream" || hit {
			t.Errorf("Reader = %q, %v", got, hit)
		}
	}
}

func TestRedactMatching(t *testing.T) {
	M := Marker
	tests := []struct {
		name   string
		values []string
		in     string
		want   string
	}{
		{"start", []string{"s3cr3t-value"}, "s3cr3t-value tail", M + " tail"},
		{"end", []string{"s3cr3t-value"}, "head s3cr3t-value", "head " + M},
		{"whole", []string{"s3cr3t-value"}, "s3cr3t-value", M},
		{"adjacent", []string{"s3cr3t-value"}, "s3cr3t-values3cr3t-value", M + M},
		{"prefix value, longer echo", []string{"abcdef12", "abcdef1234"}, "xabcdef1234y", "x" + M + "y"},
		{"prefix value, shorter echo", []string{"abcdef12", "abcdef1234"}, "xabcdef123y", "x" + M + "3y"},
		{"prefix values adjacent", []string{"abcdef12", "abcdef1234"}, "abcdef12abcdef1234abcdef12", M + M + M},
		{"overlap is one run", []string{"abcdef12", "ef12ghij"}, "<abcdef12ghij>", "<" + M + ">"},
		{"nested", []string{"abcdef1234", "cdef12"}, "-abcdef1234-cdef12-", "-" + M + "-" + M + "-"},
		{"self overlap", []string{"aaaaaaaa"}, "b" + strings.Repeat("a", 1000) + "b", "b" + M + "b"},
		{"near miss", []string{"s3cr3t-value"}, "s3cr3t-valu s3cr3t-valuE", "s3cr3t-valu s3cr3t-valuE"},
		{"short value", []string{"ab"}, "xxabyy YWI= 6162", "xx" + M + "yy " + M + " " + M},
		{"one byte value", []string{"q"}, "aqqa q", "a" + M + M + "a " + M},
		{"short prefix values", []string{"ab", "abc"}, "xabcx abx", "x" + M + "x " + M + "x"},
		{"short and long", []string{"ab", "s3cr3t-value"}, "s3cr3t-value ab", M + " " + M},
		{"marker in value", []string{"[REDACTED]x"}, "[REDACTED]x[REDACTED]", M + "[REDACTED]"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			var vals [][]byte
			for _, v := range tc.values {
				vals = append(vals, []byte(v))
			}
			r := NewRedactor(vals)
			wantHit := tc.want != tc.in
			if got, hit := r.String(tc.in); got != tc.want || hit != wantHit {
				t.Errorf("String = %q, %v; want %q, %v", got, hit, tc.want, wantHit)
			}
			if ref, _ := naiveRedact(r.forms, []byte(tc.in)); string(ref) != tc.want {
				t.Errorf("reference = %q; the table is wrong", ref)
			}
			rdCheckAllSplits(t, r, []byte(tc.in), []byte(tc.want), wantHit)
		})
	}
}

// rdCheckAllSplits reads in through every way of cutting it into two pieces,
// every fixed chunk size, and the iotest readers; each must give want.
func rdCheckAllSplits(t *testing.T, r *Redactor, in, want []byte, wantHit bool) {
	t.Helper()
	check := func(how string, src io.Reader, bufSize int) {
		t.Helper()
		got, hit := rdStream(t, r, src, bufSize)
		if !bytes.Equal(got, want) || hit != wantHit {
			t.Errorf("%s: got %q, %v; want %q, %v", how, got, hit, want, wantHit)
		}
	}
	for k := 0; k <= len(in); k++ {
		check(fmt.Sprintf("split at %d", k), &rdChunkReader{data: in, sizes: []int{k, 0}}, 4096)
	}
	for c := 1; c <= len(in); c++ {
		check(fmt.Sprintf("chunks of %d", c), &rdChunkReader{data: in, sizes: []int{c}}, 4096)
	}
	check("OneByteReader", iotest.OneByteReader(bytes.NewReader(in)), 4096)
	check("HalfReader", iotest.HalfReader(bytes.NewReader(in)), 4096)
	check("DataErrReader", iotest.DataErrReader(bytes.NewReader(in)), 4096)
	check("1-byte reads", bytes.NewReader(in), 1)
	check("3-byte reads", iotest.HalfReader(bytes.NewReader(in)), 3)
	if err := iotest.TestReader(r.Reader(bytes.NewReader(in)), want); err != nil {
		t.Error(err)
	}
}

func TestRedactSplitEveryBoundary(t *testing.T) {
	rng := rand.New(rand.NewPCG(4, 4))
	v := rdCanary(rng)
	r := NewRedactor([][]byte{v, []byte(rdRandString(rng, rdAlnum, 32))})
	var in bytes.Buffer
	in.WriteString(base64.StdEncoding.EncodeToString(v)) // at the very start
	for i, tc := range rdFormTable {
		fmt.Fprintf(&in, "<%d>%s", i, tc.enc(v))
	}
	in.WriteString(string(v) + hex.EncodeToString(v)) // adjacent echoes at the very end
	want, _ := naiveRedact(r.forms, in.Bytes())
	if n := bytes.Count(want, []byte(Marker)); n != len(rdFormTable)+3 {
		t.Fatalf("reference has %d markers, want %d: %q", n, len(rdFormTable)+3, want)
	}
	if got, _ := r.Bytes(in.Bytes()); !bytes.Equal(got, want) {
		t.Fatalf("Bytes = %q, want %q", got, want)
	}
	rdCheckAllSplits(t, r, in.Bytes(), want, true)
}

var errRedactBoom = errors.New("boom")

func TestRedactErrorMidStream(t *testing.T) {
	v := []byte("s3cr3t-value-0123456789")
	r := NewRedactor([][]byte{v})
	// A broken stream drops what it held back: it may be an echo cut off
	// mid-value, and part of a secret is still a leak. The hold-back is
	// always the last r.hold bytes, so pad cases that should come out.
	pad := strings.Repeat("x", r.hold)
	tests := []struct {
		name, in, want string
	}{
		{"after echo", "ok " + string(v) + " tail" + pad, "ok " + Marker + " tail"},
		{"echo at end", "ok " + string(v) + pad, "ok " + Marker},
		{"held-back bytes are dropped", "ok " + pad, "ok "},
		{"echo cut mid-value is dropped", "ok " + string(v[:10]), ""},
		{"nothing", "", ""},
	}
	for _, tc := range tests {
		for _, size := range []int{1, 4, 1000} {
			t.Run(fmt.Sprintf("%s/%d", tc.name, size), func(t *testing.T) {
				rr := r.Reader(&rdChunkReader{data: []byte(tc.in), sizes: []int{size}, err: errRedactBoom})
				got, err := rdReadAll(t, rr, 5)
				if string(got) != tc.want || err != errRedactBoom {
					t.Errorf("got %q, %v; want %q, %v", got, err, tc.want, errRedactBoom)
				}
				for range 3 {
					if n, err := rr.Read(make([]byte, 10)); n != 0 || err != errRedactBoom {
						t.Errorf("after the error: %d, %v", n, err)
					}
				}
			})
		}
	}
	// The error is sticky even when the source would recover.
	rr := r.Reader(iotest.TimeoutReader(strings.NewReader("a " + string(v) + " b" + pad)))
	got, err := rdReadAll(t, rr, 64)
	if string(got) != "a "+Marker+" b" || err != iotest.ErrTimeout {
		t.Errorf("TimeoutReader: %q, %v", got, err)
	}
	if _, err := rr.Read(make([]byte, 10)); err != iotest.ErrTimeout {
		t.Errorf("error not sticky: %v", err)
	}
	if !rr.Redacted() {
		t.Error("Redacted() false after a redaction")
	}
}

func TestRedactNoProgress(t *testing.T) {
	r := NewRedactor([][]byte{[]byte("s3cr3t-value")})
	rr := r.Reader(rdEmptyReader{})
	if n, err := rr.Read(make([]byte, 10)); n != 0 || err != io.ErrNoProgress {
		t.Errorf("got %d, %v", n, err)
	}
}

type rdEmptyReader struct{}

func (rdEmptyReader) Read([]byte) (int, error) { return 0, nil }

// TestRedactServerSentEvents checks that events flow through a StreamReader:
// a Read returns what the upstream sent once the upstream pauses, and an echo
// that continues after such a flush is still redacted (and counted).
func TestRedactServerSentEvents(t *testing.T) {
	v := "sk_live_" + rdRandString(rand.New(rand.NewPCG(5, 5)), rdAlnum, 32)
	r := NewRedactor([][]byte{[]byte("unused-other-value-123"), []byte(v)})
	pr, pw := io.Pipe()
	defer pr.Close()
	rr := r.StreamReader(pr, 20*time.Millisecond)
	defer rr.Release()
	buf := make([]byte, 4096)

	write := func(s string) {
		go func() {
			if _, err := pw.Write([]byte(s)); err != nil {
				t.Errorf("write: %v", err)
			}
		}()
	}
	read := func(want string) {
		t.Helper()
		type result struct {
			n   int
			err error
		}
		done := make(chan result, 1)
		go func() {
			n, err := rr.Read(buf)
			done <- result{n, err}
		}()
		select {
		case res := <-done:
			if got := string(buf[:res.n]); got != want || res.err != nil {
				t.Fatalf("Read = %q, %v; want %q", got, res.err, want)
			}
		case <-time.After(5 * time.Second):
			t.Fatalf("Read blocked; want %q", want)
		}
	}

	write("data: hello\n\n")
	read("data: hello\n\n")
	if len(rr.Hits()) != 0 {
		t.Errorf("Hits = %v before any echo", rr.Hits())
	}
	write("data: {\"key\":\"" + v + "\"}\n\n")
	read("data: {\"key\":\"" + Marker + "\"}\n\n")
	// A short start of an echo is released at the pause like anything
	// else; the rest, after the pause, is still redacted.
	write("data: " + v[:12])
	read("data: " + v[:12])
	write(v[12:] + "\n\n")
	read(Marker + "\n\n")
	// From trailingMin bytes on, the start of a value cut off by the pause
	// is an echo already, and what follows belongs to the same run.
	write("data: " + v[:trailingMin+4])
	read("data: " + Marker)
	write(v[trailingMin+4:] + "\n\n")
	read("\n\n")
	if got := rr.Hits(); !slices.Equal(got, []int{1}) {
		t.Errorf("Hits = %v, want [1]", got)
	}
	go pw.Close()
	if n, err := rr.Read(buf); n != 0 || err != io.EOF {
		t.Errorf("at the end: %d, %v", n, err)
	}
}

func TestRedactHeaderValues(t *testing.T) {
	token := "ghp_" + rdRandString(rand.New(rand.NewPCG(6, 6)), rdAlnum, 36)
	r := NewRedactor([][]byte{[]byte(token), []byte("user:hunter2")})
	tests := []struct{ in, want string }{
		{"Bearer " + token, "Bearer " + Marker},
		{"Basic " + base64.StdEncoding.EncodeToString([]byte("user:hunter2")), "Basic " + Marker},
		{"https://api.example.com/cb?token=" + url.QueryEscape(token) + "&x=1", "https://api.example.com/cb?token=" + Marker + "&x=1"},
		// Half of the token (partialLen of 40) is an echo; less is not.
		{`invalid token "` + token[:19] + `…"`, `invalid token "` + token[:19] + `…"`},
		{`invalid token "` + token[:20] + `…"`, `invalid token "` + Marker + `…"`},
		{`invalid token "…` + token[20:] + `"`, `invalid token "…` + Marker + `"`},
		{"application/json", "application/json"},
		{"", ""},
	}
	for _, tc := range tests {
		got, hit := r.String(tc.in)
		if got != tc.want || hit != (tc.in != tc.want) {
			t.Errorf("String(%q) = %q, %v; want %q", tc.in, got, hit, tc.want)
		}
		b := []byte(tc.in)
		gotb, hitb := r.Bytes(b)
		if string(gotb) != tc.want || hitb != hit {
			t.Errorf("Bytes(%q) = %q, %v", tc.in, gotb, hitb)
		}
	}
}

// TestRedactContainsFold: a header name holds an echo in any letter case
// (Go canonicalises names), in every form, ASCII or not, and a name
// without one is not flagged. Checked against the definition: some form,
// lowered, is in the lowered name.
func TestRedactContainsFold(t *testing.T) {
	token := "ghp_" + rdRandString(rand.New(rand.NewPCG(7, 7)), rdAlnum, 36)
	values := [][]byte{[]byte(token), []byte("Grüße-Schlüssel-Ünïcode-42"), []byte("k")}
	r := NewRedactor(values)
	want := func(name string) bool {
		ln := strings.ToLower(name)
		for _, v := range values {
			for _, f := range echoForms(v) {
				if f != "" && strings.Contains(ln, strings.ToLower(f)) {
					return true
				}
			}
		}
		return false
	}
	names := []string{"Content-Type", "X-" + token, "X-" + strings.ToUpper(token), "X-" + hex.EncodeToString([]byte(token)),
		"X-" + strings.ToUpper(hex.EncodeToString([]byte(token))), "X-" + base64.StdEncoding.EncodeToString([]byte(token)),
		"X-" + strings.ToUpper("Grüße-Schlüssel-Ünïcode-42"), "X-" + token[:len(token)-1], "x", "Kk", strings.Repeat("A", 200) + token,
		"X-Grüße", ""}
	for _, name := range names {
		if got := r.ContainsFold(name); got != want(name) {
			t.Errorf("ContainsFold(%q) = %v, want %v", name, got, !got)
		}
	}
	if !r.ContainsFold("X-" + strings.ToUpper(token)) {
		t.Error("an upper-cased token in a name was not found")
	}
	if NewRedactor(nil).ContainsFold("X-" + token) {
		t.Error("a redactor without values flagged a name")
	}
}

func TestRedactFormatHidesForms(t *testing.T) {
	v := "s3cr3t-value-0123456789"
	r := NewRedactor([][]byte{[]byte(v)})
	rr := r.Reader(strings.NewReader("x" + v[:8]))
	_, _ = rr.Read(make([]byte, 1)) // leaves part of v in the carry-over
	for _, verb := range []string{"%v", "%+v", "%#v", "%s", "%x", "%q"} {
		for _, x := range []any{r, rr, *r, struct{ R *Redactor }{r}} {
			s := fmt.Sprintf(verb, x)
			if strings.Contains(s, "s3cr3t") || strings.Contains(s, hex.EncodeToString([]byte("s3cr3t"))) {
				t.Errorf("Sprintf(%s) leaks: %s", verb, s)
			}
		}
	}
}

// rdLoopReader returns the same chunk forever.
type rdLoopReader struct{ chunk []byte }

func (l rdLoopReader) Read(p []byte) (int, error) { return copy(p, l.chunk), nil }

func TestRedactReadDoesNotAllocate(t *testing.T) {
	rng := rand.New(rand.NewPCG(7, 7))
	v := []byte(rdRandString(rng, rdAlnum, 40))
	chunk := []byte(rdRandString(rng, rdAlnum+" ", 30000) + string(v) + "x" + base64.StdEncoding.EncodeToString(v) + rdRandString(rng, rdAlnum, 40))
	r := NewRedactor([][]byte{v})
	rr := r.Reader(rdLoopReader{chunk})
	buf := make([]byte, 32<<10)
	for range 10 {
		_, _ = rr.Read(buf)
	}
	if a := testing.AllocsPerRun(200, func() { _, _ = rr.Read(buf) }); a != 0 {
		t.Errorf("%v allocations per Read", a)
	}
}

// rdFuzzForms are the encodings FuzzRedact inserts and then checks for.
var rdFuzzForms = []func([]byte) string{
	func(v []byte) string { return string(v) },
	base64.StdEncoding.EncodeToString,
	base64.RawStdEncoding.EncodeToString,
	base64.URLEncoding.EncodeToString,
	base64.RawURLEncoding.EncodeToString,
	hex.EncodeToString,
	func(v []byte) string { return strings.ToUpper(hex.EncodeToString(v)) },
}

func rdFuzzValue(rng *rand.Rand) []byte {
	switch rng.IntN(8) {
	case 0:
		return []byte(rdRandString(rng, rdAlnum, 1+rng.IntN(3))) // short
	case 1:
		b := make([]byte, 4+rng.IntN(30))
		for i := range b {
			b[i] = byte(rng.Uint32())
		}
		return b
	case 2:
		return []byte(rdRandString(rng, "ab", 4+rng.IntN(8))) // self-overlapping
	default:
		return []byte(rdRandString(rng, rdAlnum+"-_:/+=", 6+rng.IntN(40)))
	}
}

func FuzzRedact(f *testing.F) {
	f.Add([]byte("hello, world"), int64(1), uint8(0), uint8(0))
	f.Add([]byte("hello, world"), int64(2), uint8(1), uint8(3))
	f.Add([]byte(`{"a":"b","c":[1,2,3]}`), int64(3), uint8(3), uint8(5))
	f.Add(bytes.Repeat([]byte("ab"), 100), int64(4), uint8(2), uint8(2))
	f.Add([]byte("data: x\n\n[REDACTED]"), int64(5), uint8(7), uint8(1))
	f.Fuzz(func(t *testing.T, data []byte, seed int64, nvals, ninsert uint8) {
		rng := rand.New(rand.NewPCG(uint64(seed), uint64(nvals)<<8|uint64(ninsert)))
		values := make([][]byte, 1+int(nvals%4))
		for i := range values {
			values[i] = rdFuzzValue(rng)
		}
		r := NewRedactor(values)

		in := append([]byte(nil), data...)
		inserted := int(ninsert % 6)
		for range inserted {
			form := rdFuzzForms[rng.IntN(len(rdFuzzForms))](values[rng.IntN(len(values))])
			at := rng.IntN(len(in) + 1)
			in = append(in[:at], append([]byte(form), in[at:]...)...)
		}

		// The reference knows whole raw forms only; the redactor also
		// redacts partial and canonical echoes, so it may redact more, never
		// less.
		_, wantHit := naiveRedact(r.forms, in)
		want, hit := r.Bytes(in)
		if wantHit && !hit {
			t.Fatalf("Bytes(%q) = %q, missed an echo the reference found", in, want)
		}
		wantHit = hit
		var got []byte
		sizes := make([]int, 1+rng.IntN(5))
		for i := range sizes {
			sizes[i] = 1 + rng.IntN(1+rng.IntN(100))
		}
		got, hit = rdStream(t, r, &rdChunkReader{data: in, sizes: sizes}, 1+rng.IntN(64))
		if !bytes.Equal(got, want) || hit != wantHit {
			t.Fatalf("Reader(%q) in chunks %v = %q, %v; reference %q, %v", in, sizes, got, hit, want, wantHit)
		}

		// No form survives between markers.
		for _, seg := range bytes.Split(got, []byte(Marker)) {
			for _, v := range values {
				for _, enc := range rdFuzzForms {
					if form := enc(v); bytes.Contains(seg, []byte(form)) {
						t.Fatalf("form %q of %q visible in %q", form, v, got)
					}
				}
			}
		}
		if inserted == 0 && !wantHit && !bytes.Equal(got, data) {
			t.Fatalf("clean input changed: %q → %q", data, got)
		}
	})
}

// rdBenchValues are n random 40-character secrets of printable ASCII, so
// that the URL and JSON escapings differ from the raw value as well.
func rdBenchValues(rng *rand.Rand, n int) [][]byte {
	values := make([][]byte, n)
	for i := range values {
		values[i] = []byte(rdRandString(rng, rdAlnum+rdAlnum+`-_.~+/=!@#$%^&*<>"\`, 40))
	}
	return values
}

// rdBenchBody is about size bytes of JSON lines with ids and words, with
// echoes of values in a few forms sprinkled in.
func rdBenchBody(rng *rand.Rand, size int, values [][]byte, echoes int) []byte {
	words := strings.Fields("the quick brown fox jumps over lazy dog payment customer invoice amount currency usd eur status succeeded pending")
	var b bytes.Buffer
	for b.Len() < size {
		fmt.Fprintf(&b, `{"id":"ch_%s","object":"charge","amount":%d,"description":"%s %s %s","metadata":{"k":"%s"}}`+"\n",
			rdRandString(rng, rdAlnum, 24), rng.IntN(100000), words[rng.IntN(len(words))], words[rng.IntN(len(words))],
			words[rng.IntN(len(words))], rdRandString(rng, rdAlnum+"+/", 32))
	}
	body := b.Bytes()[:size]
	for range echoes {
		form := rdFuzzForms[rng.IntN(len(rdFuzzForms))](values[rng.IntN(len(values))])
		at := rng.IntN(len(body) - len(form))
		copy(body[at:], form)
	}
	return body
}

func BenchmarkRedactReader(b *testing.B) {
	rng := rand.New(rand.NewPCG(8, 8))
	values := rdBenchValues(rng, 20)
	random := make([]byte, 1<<20)
	for i := range random {
		random[i] = byte(rng.Uint32())
	}
	bodies := []struct {
		name   string
		values [][]byte
		body   []byte
	}{
		{"json", values, rdBenchBody(rng, 1<<20, values, 0)},
		{"json-16-echoes", values, rdBenchBody(rng, 1<<20, values, 16)},
		{"base64", values, []byte(base64.StdEncoding.EncodeToString(random))[:1<<20]},
		{"random", values, random},
		{"json-short-value", append(values, []byte("ab")), rdBenchBody(rng, 1<<20, values, 0)},
		// The proxy benchmark's big body (e2e BenchmarkProxyXProc): one
		// value, hex text without escapes or whitespace.
		{"hex-one-value", [][]byte{[]byte("sk_bench_xproc_Zq8Kd2Lp0xWv7Y9t")}, bytes.Repeat([]byte("0123456789abcdef"), 1<<16)},
	}
	for _, bb := range bodies {
		r := NewRedactor(bb.values)
		b.Run(bb.name, func(b *testing.B) {
			b.SetBytes(int64(len(bb.body)))
			b.ReportAllocs()
			buf := make([]byte, 32<<10)
			src := bytes.NewReader(bb.body)
			for b.Loop() {
				src.Reset(bb.body)
				rr := r.Reader(src)
				for {
					if _, err := rr.Read(buf); err != nil {
						break
					}
				}
				rr.Release() // as the broker does: buffers are reused
			}
			b.ReportMetric(float64(len(r.forms)), "forms")
		})
	}
}

func BenchmarkRedactString(b *testing.B) {
	rng := rand.New(rand.NewPCG(9, 9))
	r := NewRedactor(rdBenchValues(rng, 20))
	h := "application/json; charset=utf-8; boundary=" + rdRandString(rng, rdAlnum, 40)
	b.ReportAllocs()
	for b.Loop() {
		r.String(h)
	}
}

// BenchmarkNewRedactor: 1 is a one-shot `call` injecting one secret (which
// builds it twice: for the response and for the output guard), 20 a proxy
// request to an origin with many bound secrets.
func BenchmarkNewRedactor(b *testing.B) {
	for _, n := range []int{1, 20} {
		values := rdBenchValues(rand.New(rand.NewPCG(10, 10)), n)
		b.Run(strconv.Itoa(n), func(b *testing.B) {
			b.ReportAllocs()
			for b.Loop() {
				NewRedactor(values)
			}
		})
	}
}

// TestRedactRealWorldEchoesStream runs the real-world echoes through a
// StreamReader that never pauses, split at every point: the output must be
// the same as Bytes'.
func TestRedactRealWorldEchoesStream(t *testing.T) {
	r := NewRedactor([][]byte{[]byte(rdEchoValue)})
	for _, c := range rdEchoCases(rdEchoValue) {
		want, _ := r.String(c.text)
		in := []byte(c.text)
		for k := 0; k <= len(in); k += 1 + k/16 {
			rr := r.StreamReader(&rdChunkReader{data: in, sizes: []int{k, 0}}, time.Hour)
			got, err := io.ReadAll(rr)
			rr.Release()
			if err != nil || string(got) != want {
				t.Fatalf("%s: StreamReader split at %d = %q, %v; Bytes = %q", c.name, k, got, err, want)
			}
		}
	}
}

func TestRedactHits(t *testing.T) {
	v := []byte("sk_live_" + rdRandString(rand.New(rand.NewPCG(11, 11)), rdAlnum, 24))
	w := []byte("ghp_" + rdRandString(rand.New(rand.NewPCG(12, 12)), rdAlnum, 36))
	// Index 0 is empty and 3 repeats 1: two secrets with the same value
	// share every form, and both echoed.
	r := NewRedactor([][]byte{nil, v, w, v})
	tests := []struct {
		name string
		in   string
		want []int
	}{
		{"none", "nothing to see", nil},
		{"raw, shared value", "x" + string(v) + "y", []int{1, 3}},
		{"other value", "x" + string(w), []int{2}},
		{"both", string(w) + " " + base64.StdEncoding.EncodeToString(v), []int{1, 2, 3}},
		{"canonical only", `"` + strings.ReplaceAll(string(w), "_", `\u005F`) + `"`, []int{2}},
		{"partial", string(w[:len(w)-1]), []int{2}},
		{"one run, two values", string(v) + string(w[1:]), []int{1, 2, 3}},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			_, hits := r.BytesHits([]byte(tc.in))
			if !slices.Equal(hits, tc.want) {
				t.Errorf("BytesHits = %v, want %v", hits, tc.want)
			}
			rr := r.Reader(iotest.OneByteReader(strings.NewReader(tc.in)))
			if _, err := io.ReadAll(rr); err != nil {
				t.Fatal(err)
			}
			if got := rr.Hits(); !slices.Equal(got, tc.want) {
				t.Errorf("Reader Hits = %v, want %v", got, tc.want)
			}
			if rr.Redacted() != (len(tc.want) > 0) {
				t.Errorf("Redacted = %v", rr.Redacted())
			}
		})
	}
}

// rdCounting counts the bytes its reader returned.
type rdCounting struct {
	r io.Reader
	n int
}

func (c *rdCounting) Read(p []byte) (int, error) {
	n, err := c.r.Read(p)
	c.n += n
	return n, err
}

// TestRedactHoldBackIndependentOfContent: after every Read, the reader holds
// back exactly min(hold, unreleased) bytes, whatever they are: clean text, a
// prefix of a value, a partial echo, or a whole one.
func TestRedactHoldBackIndependentOfContent(t *testing.T) {
	rng := rand.New(rand.NewPCG(13, 13))
	v := []byte("sk_live_" + rdRandString(rng, rdAlnum, 32))
	r := NewRedactor([][]byte{v})
	pad := rdRandString(rng, rdAlnum+" ", 2*r.hold)
	for _, body := range []string{
		pad + pad,
		pad + string(v[:10]) + pad,
		pad + string(v[:len(v)-1]),
		pad + string(v) + pad,
		pad + strings.Repeat(string(v[:9]), 200),
		pad + hex.EncodeToString(v),
	} {
		for _, size := range []int{1, 7, 100, 5000} {
			src := &rdCounting{r: &rdChunkReader{data: []byte(body), sizes: []int{size}}}
			rr := r.Reader(src)
			buf := make([]byte, 64<<10)
			for {
				_, err := rr.Read(buf)
				if err != nil {
					break
				}
				// A Read returns only after the source gave bytes; what it
				// holds back then is fixed by the count alone.
				if src.n == len(body) {
					break // the rest goes out at EOF
				}
				released := src.n - (rr.n - rr.ctx)
				if held := rr.n - rr.ctx; held != min(r.hold, src.n) {
					t.Fatalf("size %d: after %d bytes in, %d released, holding %d; want %d", size, src.n, released, held, min(r.hold, src.n))
				}
			}
		}
	}
}

// rdCollector reads rr to the end on a goroutine; snapshot returns what has
// arrived so far.
type rdCollector struct {
	mu   sync.Mutex
	got  []byte
	done chan struct{}
}

func rdCollect(rr *RedactReader) *rdCollector {
	c := &rdCollector{done: make(chan struct{})}
	go func() {
		defer close(c.done)
		buf := make([]byte, 1<<16)
		for {
			n, err := rr.Read(buf)
			c.mu.Lock()
			c.got = append(c.got, buf[:n]...)
			c.mu.Unlock()
			if err != nil {
				return
			}
		}
	}()
	return c
}

func (c *rdCollector) snapshot() []byte {
	c.mu.Lock()
	defer c.mu.Unlock()
	return slices.Clone(c.got)
}

// TestRedactNoPrefixOracle is the reflected-guess attack of issue 8 §1a: an
// upstream echoes the agent's guess and then stalls. When the reader
// releases bytes, and how many, must be the same for a guess that is a
// prefix of the value and a wrong guess of the same length, before the
// stall and after it (at EOF, or at the StreamReader's pause). Below
// trailingMin the bytes are the same too. From trailingMin on, a right
// guess cut off by the stall is redacted: that is an echo, and it is
// reported (Hits) for the broker's tripwire, while a wrong one is not.
func TestRedactNoPrefixOracle(t *testing.T) {
	rng := rand.New(rand.NewPCG(14, 14))
	v := "sk_live_" + rdRandString(rng, rdAlnum, 32)
	r := NewRedactor([][]byte{[]byte(v)})
	lead := `{"echo":"` + rdRandString(rng, rdAlnum, r.hold+100)
	type observation struct {
		beforeStall, afterStall []byte
		hits                    []int
	}
	observe := func(stream bool, guess string) observation {
		pr, pw := io.Pipe()
		var rr *RedactReader
		if stream {
			rr = r.StreamReader(pr, 50*time.Millisecond)
		} else {
			rr = r.Reader(pr)
		}
		defer rr.Release()
		c := rdCollect(rr)
		go pw.Write([]byte(lead + guess))
		time.Sleep(300 * time.Millisecond) // the upstream stalls
		before := c.snapshot()
		pw.Close()
		<-c.done
		return observation{before, c.snapshot()[len(before):], rr.Hits()}
	}
	for _, n := range []int{trailingMin - 1, trailingMin} {
		for _, stream := range []bool{false, true} {
			t.Run(fmt.Sprintf("guess of %d, stream=%v", n, stream), func(t *testing.T) {
				right, wrong := v[:n], v[:n-1]+"!"
				a, b := observe(stream, right), observe(stream, wrong)
				// Timing: the same bytes are out when the upstream stalls.
				released := len(lead) + n - r.hold
				if stream {
					released = len(lead) // the pause released the lead; the guess is in its last scan
				}
				if len(a.beforeStall) < released || !bytes.Equal(a.beforeStall[:released], b.beforeStall[:released]) ||
					len(a.beforeStall) > released+n || len(b.beforeStall) > released+n {
					t.Fatalf("before the stall: %d bytes for the right guess, %d for the wrong one, want the %d-byte lead first", len(a.beforeStall), len(b.beforeStall), released)
				}
				if !stream && (len(a.beforeStall) != released || len(b.beforeStall) != released) {
					t.Errorf("Reader released %d/%d bytes before the stall, want %d", len(a.beforeStall), len(b.beforeStall), released)
				}
				all := func(o observation) string { return string(o.beforeStall) + string(o.afterStall) }
				if got := all(b); got != lead+wrong || len(b.hits) != 0 {
					t.Errorf("wrong guess: %q, hits %v", got[len(lead)-5:], b.hits)
				}
				if n < trailingMin {
					if got := all(a); got != lead+right || len(a.hits) != 0 {
						t.Errorf("short right guess: %q, hits %v", got[len(lead)-5:], a.hits)
					}
				} else if got := all(a); got != lead+Marker || !slices.Equal(a.hits, []int{0}) {
					t.Errorf("right guess of %d: %q, hits %v; want it redacted and reported", n, got[len(lead)-5:], a.hits)
				}
			})
		}
	}
}

// TestRedactStreamReaderNoGoroutineLeak: a StreamReader's reading goroutine
// ends once the upstream body is closed and the reader released, even while
// the upstream is stalled mid-body.
func TestRedactStreamReaderNoGoroutineLeak(t *testing.T) {
	stall := make(chan struct{})
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, req *http.Request) {
		w.Header().Set("Content-Type", "text/event-stream")
		fmt.Fprint(w, "data: hello\n\n")
		w.(http.Flusher).Flush()
		select {
		case <-stall:
		case <-req.Context().Done():
		}
	}))
	defer srv.Close()
	defer close(stall)
	r := NewRedactor([][]byte{[]byte("s3cr3t-value-0123456789")})
	base := runtime.NumGoroutine()
	for range 10 {
		resp, err := http.Get(srv.URL)
		if err != nil {
			t.Fatal(err)
		}
		rr := r.StreamReader(resp.Body, 10*time.Millisecond)
		buf := make([]byte, 100)
		if n, err := rr.Read(buf); string(buf[:n]) != "data: hello\n\n" || err != nil {
			t.Fatalf("Read = %q, %v", buf[:n], err)
		}
		// As the broker does: close the upstream, then release.
		resp.Body.Close()
		rr.Release()
	}
	// A source that is only a Closer: Release closes it. The Read returns
	// (Release must not run during one) with the reading goroutine blocked
	// on the source for the next chunk.
	pr, pw := io.Pipe()
	rr := r.StreamReader(pr, time.Millisecond)
	go pw.Write([]byte("data: x\n\n")) //nolint:errcheck // the Read below takes it
	if n, err := rr.Read(make([]byte, 100)); n == 0 || err != nil {
		t.Fatalf("Read = %d, %v", n, err)
	}
	rr.Release()
	deadline := time.Now().Add(5 * time.Second)
	for runtime.NumGoroutine() > base {
		if time.Now().After(deadline) {
			buf := make([]byte, 1<<20)
			t.Fatalf("%d goroutines, %d before:\n%s", runtime.NumGoroutine(), base, buf[:runtime.Stack(buf, true)])
		}
		time.Sleep(10 * time.Millisecond)
	}
}

// TestRedactLongValue: a 4 KB PEM key as a secret has forms of up to 16 KB;
// the windows are strided, the patterns stay bounded, and partial echoes of
// it are still found.
func TestRedactLongValue(t *testing.T) {
	rng := rand.New(rand.NewPCG(15, 15))
	raw := make([]byte, 3000)
	for i := range raw {
		raw[i] = byte(rng.Uint32())
	}
	b64 := base64.StdEncoding.EncodeToString(raw)
	var pem strings.Builder
	pem.WriteString("-----BEGIN PRIVATE KEY-----\n")
	for i := 0; i < len(b64); i += 64 {
		pem.WriteString(b64[i:min(i+64, len(b64))] + "\n")
	}
	pem.WriteString("-----END PRIVATE KEY-----\n")
	v := pem.String()
	r := NewRedactor([][]byte{[]byte(v)})
	if n := len(r.raw.entries) + len(r.canon.entries); n > 200*(maxWindows+1) {
		t.Errorf("%d patterns for one value", n)
	}
	for _, in := range []string{
		v,
		v[:len(v)*3/4],                        // truncated
		strings.ReplaceAll(v[200:], "\n", ""), // re-wrapped (unwrapped), missing its start
	} {
		out, hit := r.String("key: " + in)
		if !hit || strings.Contains(out, b64[1000:1016]) {
			t.Errorf("echo of %d bytes not redacted: hit=%v", len(in), hit)
		}
	}
	// The public header alone is not an echo.
	if _, hit := r.String("-----BEGIN PRIVATE KEY-----\nMII"); hit {
		t.Error("the PEM header alone was redacted")
	}
}

// TestRedactorBuiltFor: BuiltFor says whether a redactor was built for
// the same set of values, whatever their order or repeats, and only then.
func TestRedactorBuiltFor(t *testing.T) {
	vals := func(vs ...string) []secret.Value {
		out := make([]secret.Value, len(vs))
		for i, v := range vs {
			out[i] = secret.New([]byte(v))
		}
		return out
	}
	built := func(vs ...string) *Redactor {
		b := make([][]byte, len(vs))
		for i, v := range vs {
			b[i] = []byte(v)
		}
		return NewRedactor(b)
	}
	for _, c := range []struct {
		name   string
		r      *Redactor
		values []secret.Value
		minLen int
		want   bool
	}{
		{"same", built("abcdefgh"), vals("abcdefgh"), 8, true},
		{"order and repeats", built("abcdefgh", "ijklmnop", "abcdefgh"), vals("ijklmnop", "abcdefgh"), 8, true},
		{"empty values are not values", built("abcdefgh", ""), vals("abcdefgh", ""), 8, true},
		{"a value the caller leaves out as short", built("abcdefgh"), vals("abcdefgh", "abc"), 8, true},
		{"a short value the redactor has", built("abcdefgh", "abc"), vals("abcdefgh", "abc"), 8, false},
		{"the same short value kept", built("abcdefgh", "abc"), vals("abcdefgh", "abc"), 1, true},
		{"the same bytes cut elsewhere", built("abcdefgh", "ijklmnop"), vals("abcdefghi", "jklmnop"), 1, false},
		{"one more value", built("abcdefgh", "ijklmnop"), vals("abcdefgh"), 8, false},
		{"one fewer value", built("abcdefgh"), vals("abcdefgh", "ijklmnop"), 8, false},
		{"no values left", built("abcdefgh"), vals("abc"), 8, false},
		{"no redactor", nil, vals("abcdefgh"), 8, false},
	} {
		if got := c.r.BuiltFor(c.values, c.minLen); got != c.want {
			t.Errorf("%s: BuiltFor = %v, want %v", c.name, got, c.want)
		}
	}
}
