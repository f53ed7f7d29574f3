package broker

// The redactor: stage 5 (Respond) of the broker pipeline. Whatever the
// upstream sends back — headers, body, error text — passes through here
// before a front end sees it, and every echo of an injected value, in the
// clear or in a common encoding, becomes Marker.

import (
	"bytes"
	"encoding/base64"
	"encoding/binary"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"html"
	"io"
	"math/bits"
	"net/url"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"unicode/utf16"
	"unicode/utf8"
)

// Marker replaces every echo of an injected value.
const Marker = "[REDACTED]"

// Redactor knows every form in which a set of values could come back: the
// raw bytes, base64 (std and URL alphabets, padded and not, and the parts of
// a longer base64 blob that only the value determines), hex, URL escaping
// and JSON string escaping. It is immutable after NewRedactor and safe for
// concurrent use.
//
// Matching is leftmost-longest, and overlapping echoes are redacted as their
// union: one Marker replaces the whole run, so no byte of any form stays
// visible. Echoes that merely touch get a Marker each.
//
// A Redactor holds secret-derived bytes (SECRET — never log); its Format
// method prints no field, so %v and friends are safe.
//
// Short values: a value shorter than 4 bytes still has its raw and encoded
// forms redacted, even though that replaces innocent text (a 1-byte value
// redacts every occurrence of that byte). Over-redaction is the safe side;
// such values should not be secrets anyway. Their forms shorter than 4
// bytes also switch the scanner to a slower byte-by-byte path.
type Redactor struct {
	// forms holds every form, deduplicated and sorted, so that "could these
	// last bytes still grow into a form?" is one binary search.
	forms  [][]byte
	maxLen int

	// Forms of 4 bytes or more are indexed by their first 4 bytes (a
	// little-endian uint32 key): starts has a bit for each key, and entries,
	// grouped by the top bits of hashKey(key) (bucket i is
	// entries[bucketStart[i]:bucketStart[i+1]]), hold the forms, longest
	// first within a bucket, so the first one that verifies is the longest
	// match.
	starts      keyBitset
	bucketShift uint
	bucketStart []uint32
	entries     []formEntry

	// Every 4-gram at offsets 0..stride-1 of every long form is in grams.
	// An echo is at least stride+3 bytes long, so of stride consecutive
	// start positions, one 4-gram position inside each possible echo is
	// probed: the scanner tests one 4-gram every stride bytes and looks at
	// the positions of a block only when its 4-gram passes (as Wu-Manber
	// does). stride is 1 (no skipping) when short forms exist.
	stride int
	grams  gramFilter

	// Forms shorter than 4 bytes (from short values), longest first.
	short      [][]byte
	shortFirst [256]bool

	// bufs recycles RedactReader buffers between responses: a proxied
	// request must not pay for zeroing 64 KiB of fresh memory.
	bufs *sync.Pool
}

type formEntry struct {
	key  uint32
	form []byte
}

// NewRedactor builds the patterns for values (raw secret values; empty
// values are ignored). A Redactor without values passes everything through.
func NewRedactor(values [][]byte) *Redactor {
	set := make(map[string]struct{})
	for _, v := range values {
		if len(v) == 0 {
			continue
		}
		for _, f := range echoForms(v) {
			if f != "" {
				set[f] = struct{}{}
			}
		}
	}
	r := &Redactor{stride: 1, bufs: &sync.Pool{}}
	var long [][]byte
	minLong := 0
	for f := range set {
		b := []byte(f)
		r.forms = append(r.forms, b)
		r.maxLen = max(r.maxLen, len(b))
		if len(b) < 4 {
			r.short = append(r.short, b)
			r.shortFirst[b[0]] = true
			continue
		}
		long = append(long, b)
		if minLong == 0 || len(b) < minLong {
			minLong = len(b)
		}
	}
	slices.SortFunc(r.forms, bytes.Compare)
	slices.SortFunc(r.short, func(a, b []byte) int { return len(b) - len(a) })

	// Start index.
	r.starts = newKeyBitset(len(long))
	bucketBits := uint(bits.Len(uint(max(2*len(long)-1, 1))))
	r.bucketShift = 32 - bucketBits
	nb := 1 << bucketBits
	r.entries = make([]formEntry, 0, len(long))
	for _, f := range long {
		k := binary.LittleEndian.Uint32(f)
		r.starts.add(k)
		r.entries = append(r.entries, formEntry{key: k, form: f})
	}
	slices.SortStableFunc(r.entries, func(a, b formEntry) int {
		if ba, bb := hashKey(a.key)>>r.bucketShift, hashKey(b.key)>>r.bucketShift; ba != bb {
			return int(ba) - int(bb)
		}
		return len(b.form) - len(a.form)
	})
	r.bucketStart = make([]uint32, nb+1)
	for _, e := range r.entries {
		r.bucketStart[hashKey(e.key)>>r.bucketShift+1]++
	}
	for i := 1; i <= nb; i++ {
		r.bucketStart[i] += r.bucketStart[i-1]
	}

	// Skip index. With short forms every position must be looked at anyway.
	if len(r.short) == 0 && minLong-3 > 1 {
		r.stride = minLong - 3
		r.grams = newGramFilter(len(long) * r.stride)
		for _, f := range long {
			for d := 0; d < r.stride; d++ {
				r.grams.add(binary.LittleEndian.Uint32(f[d:]))
			}
		}
	}
	return r
}

// Format prints the Redactor without its forms, so a stray %v in a log line
// cannot leak them.
// (A value receiver, so that printing a Redactor by value is covered too.)
func (r Redactor) Format(f fmt.State, verb rune) {
	fmt.Fprintf(f, "broker.Redactor{%d forms}", len(r.forms))
}

// Bytes redacts a complete buffer (response header values, small bodies)
// and reports whether anything was replaced. When nothing was, it returns b
// itself; otherwise a new slice.
func (r *Redactor) Bytes(b []byte) ([]byte, bool) {
	if r == nil || len(r.forms) == 0 {
		return b, false
	}
	if _, l := r.next(b, 0, len(b)); l == 0 {
		return b, false
	}
	out, _, _, hit := r.scan(make([]byte, 0, len(b)+len(Marker)), b, 0, true)
	return out, hit
}

// String is Bytes for strings.
func (r *Redactor) String(s string) (string, bool) {
	if r == nil || len(r.forms) == 0 || s == "" {
		return s, false
	}
	b, hit := r.Bytes([]byte(s))
	if !hit {
		return s, false
	}
	return string(b), true
}

// scan redacts in, appending the result to dst. cover is how many leading
// bytes of in lie inside a run whose Marker was already emitted. Unless
// final, scan stops at the first position whose outcome more input could
// still change (its bytes are a proper prefix of a form); it returns the
// output, how many bytes of in it decided, the cover left over for the
// undecided rest, and whether it emitted a Marker.
//
// Output is the same however the input is split: a position is decided only
// when every form that could start there fits in the bytes seen.
func (r *Redactor) scan(dst, in []byte, cover int, final bool) ([]byte, int, int, bool) {
	n := len(in)
	if len(r.forms) == 0 {
		return append(dst, in...), n, 0, false
	}
	// Positions before safe have every form's length of input after them.
	safe := n
	if !final {
		safe = max(n-r.maxLen+1, 0)
	}
	hit := false
	stop := n
	for i := 0; i < n; {
		var j, l int
		if i < safe {
			if j, l = r.next(in, i, safe); l == 0 {
				i = safe
				continue
			}
		} else {
			if r.couldGrow(in[i:]) {
				stop = i
				break
			}
			if j, l = i, r.longestAt(in, i); l == 0 {
				i++
				continue
			}
		}
		if j < cover {
			// An echo overlapping the current run: extend the run.
			cover = max(cover, j+l)
		} else {
			dst = append(dst, in[cover:j]...)
			dst = append(dst, Marker...)
			hit = true
			cover = j + l
		}
		i = j + 1
	}
	if cover < stop {
		dst = append(dst, in[cover:stop]...)
	}
	return dst, stop, max(cover-stop, 0), hit
}

// next returns the first position in [from, to) where a form starts, and
// the length of the longest form there; (to, 0) if there is none.
func (r *Redactor) next(in []byte, from, to int) (int, int) {
	i := from
	if s := r.stride; s > 1 {
		for ; i < to && i+s+3 <= len(in); i += s {
			// The 4-gram at i+s-1 lies inside any form starting in [i, i+s).
			if !r.grams.has(binary.LittleEndian.Uint32(in[i+s-1:])) {
				continue
			}
			for j, end := i, min(i+s, to); j < end; j++ {
				if l := r.longestAt(in, j); l > 0 {
					return j, l
				}
			}
		}
	}
	// Position by position: the start bitset and the first bytes of short
	// forms say where to verify.
	st := r.starts
	for ; i < to && i+4 <= len(in); i++ {
		if !st.has(binary.LittleEndian.Uint32(in[i:])) && !r.shortFirst[in[i]] {
			continue
		}
		if l := r.longestAt(in, i); l > 0 {
			return i, l
		}
	}
	for ; i < to; i++ {
		if l := r.longestAt(in, i); l > 0 {
			return i, l
		}
	}
	return to, 0
}

// longestAt returns the length of the longest form that in[i:] starts with,
// or 0.
func (r *Redactor) longestAt(in []byte, i int) int {
	rest := in[i:]
	if len(rest) >= 4 {
		k := binary.LittleEndian.Uint32(rest)
		if r.starts.has(k) {
			b := hashKey(k) >> r.bucketShift
			for _, e := range r.entries[r.bucketStart[b]:r.bucketStart[b+1]] {
				if e.key == k && bytes.HasPrefix(rest, e.form) {
					return len(e.form)
				}
			}
		}
	}
	if len(r.short) > 0 && len(rest) > 0 && r.shortFirst[rest[0]] {
		for _, f := range r.short {
			if bytes.HasPrefix(rest, f) {
				return len(f)
			}
		}
	}
	return 0
}

// couldGrow reports whether tail is a proper prefix of some form: then more
// input could still make an echo start (or a run extend) at tail[0]. The
// smallest form greater than tail has tail as a prefix if any form does.
func (r *Redactor) couldGrow(tail []byte) bool {
	if len(tail) >= 4 && !r.starts.has(binary.LittleEndian.Uint32(tail)) {
		return false // only a long form could be longer than tail
	}
	lo, hi := 0, len(r.forms)
	for lo < hi {
		m := int(uint(lo+hi) >> 1)
		if bytes.Compare(r.forms[m], tail) <= 0 {
			lo = m + 1
		} else {
			hi = m
		}
	}
	return lo < len(r.forms) && bytes.HasPrefix(r.forms[lo], tail)
}

// hashKey spreads a 4-byte key over 32 bits (Fibonacci hashing); the start
// bitset and the buckets use its top bits.
func hashKey(k uint32) uint32 { return k * 0x9E3779B1 }

// keyBitset is a one-bit-per-key filter over 4-byte keys, 64 to 128 bits per
// key: about 1% of the keys not added pass, each costing a look at a short
// bucket.
type keyBitset struct {
	words []uint64
	shift uint
}

func newKeyBitset(keys int) keyBitset {
	log := min(max(uint(bits.Len(uint(max(keys, 1)*64-1))), 12), 24) // 4 Kib .. 16 Mib
	return keyBitset{words: make([]uint64, 1<<(log-6)), shift: 32 - log}
}

func (b keyBitset) add(k uint32) {
	i := hashKey(k) >> b.shift
	b.words[i>>6] |= 1 << (i & 63)
}

func (b keyBitset) has(k uint32) bool {
	i := hashKey(k) >> b.shift
	return b.words[i>>6]&(1<<(i&63)) != 0
}

// gramFilter is a blocked Bloom filter over 4-byte keys: three bits in one
// 64-bit word per key, 16 to 32 bits per key, so about 0.5% of the keys not
// added pass. One load per probe; small enough to stay in cache.
type gramFilter struct {
	words []uint64
	shift uint
}

func newGramFilter(keys int) gramFilter {
	log := min(max(uint(bits.Len(uint(max(keys, 1)*16-1))), 12), 26) // 4 Kib .. 64 Mib
	return gramFilter{words: make([]uint64, 1<<(log-6)), shift: 64 - (log - 6)}
}

// probe returns the word index and the three bits of k. The word comes from
// the top bits of a 64-bit Fibonacci hash, the bits from bits 26..43, which
// all depend on every bit of k and not on the word bits (shift ≥ 44).
func (f gramFilter) probe(k uint32) (uint64, uint64) {
	h := uint64(k) * 0x9E3779B97F4A7C15
	return h >> f.shift, 1<<(h>>26&63) | 1<<(h>>32&63) | 1<<(h>>38&63)
}

func (f gramFilter) add(k uint32) {
	w, m := f.probe(k)
	f.words[w] |= m
}

func (f gramFilter) has(k uint32) bool {
	w, m := f.probe(k)
	return f.words[w]&m == m
}

// Reader wraps a response body: streaming, chunk-boundary-safe redaction.
func (r *Redactor) Reader(src io.Reader) *RedactReader {
	if r == nil {
		r = &Redactor{stride: 1}
	}

	return &RedactReader{r: r, src: src}
}

// redactReadSize is how much a RedactReader asks its source for at a time.
const redactReadSize = 32 << 10

// redactMaxEmptyReads bounds how often the source may return 0, nil in a row
// (as bufio does).
const redactMaxEmptyReads = 100

// RedactReader redacts a stream as it is read. Built like age's
// stream.DecryptReader: a carry-over buffer holds the input bytes whose
// fate is not decided yet — at most the longest form minus one byte, and
// only while they could still be the start of an echo — and the first
// error from the source is sticky: later reads return the remaining
// buffered (redacted) bytes, then that error, forever.
//
// Bytes are released as soon as no form can start in them, so a stream of
// server-sent events flows event by event. Buffers are reused: a Read
// allocates nothing in the steady state.
type RedactReader struct {
	r   *Redactor
	src io.Reader

	in    []byte // carry-over: in[:n] is input not yet decided (SECRET — may hold part of an echo)
	n     int
	cover int // in[:cover] lies inside a run already replaced by Marker

	out    []byte // redacted output not yet returned: out[off:]
	off    int
	err    error // sticky source error
	hit    atomic.Bool
	nEmpty int
}

// Format prints the reader without its buffers.
func (rr *RedactReader) Format(f fmt.State, verb rune) {
	fmt.Fprint(f, "broker.RedactReader{}")
}

// Redacted reports whether any replacement happened so far. It is safe to
// call after EOF and concurrently with Read.
func (rr *RedactReader) Redacted() bool { return rr.hit.Load() }

// Read implements io.Reader.
func (rr *RedactReader) Read(p []byte) (int, error) {
	if len(p) == 0 {
		return 0, nil
	}
	for {
		if rr.off < len(rr.out) {
			k := copy(p, rr.out[rr.off:])
			rr.off += k
			return k, nil
		}
		rr.out, rr.off = rr.out[:0], 0
		if rr.err != nil {
			if rr.n == 0 {
				return 0, rr.err
			}
			if rr.err != io.EOF {
				// The stream broke. What is still held back could be the
				// start of an echo cut off mid-value: drop it rather than
				// hand out part of a secret.
				clear(rr.in[:rr.n])
				rr.n = 0
				return 0, rr.err
			}
			rr.process(true)
			continue
		}
		if rr.in == nil {
			rr.in, rr.out = rr.r.getBufs()
		}
		k, err := rr.src.Read(rr.in[rr.n:])
		if k < 0 || k > len(rr.in)-rr.n {
			k, err = 0, fmt.Errorf("broker: source returned an invalid count %d", k)
		}
		rr.n += k
		if err != nil {
			rr.err = err
		} else if k == 0 {
			if rr.nEmpty++; rr.nEmpty >= redactMaxEmptyReads {
				rr.err = io.ErrNoProgress
			}
			continue
		}
		rr.nEmpty = 0
		rr.process(rr.err == io.EOF)
	}
}

// process decides what it can of in[:n], appends it to out and keeps the
// undecided tail at the front of in. final: the source has ended.
// Release hands the reader's buffers back for reuse, wiped first because
// they may hold part of an echo. The reader must not be used afterwards.
func (rr *RedactReader) Release() {
	if rr == nil || rr.in == nil || rr.r.bufs == nil {
		return
	}
	clear(rr.in)
	clear(rr.out[:cap(rr.out)])
	rr.r.bufs.Put(&readerBufs{in: rr.in, out: rr.out[:0]})
	rr.in, rr.out, rr.n, rr.off = nil, nil, 0, 0
}

type readerBufs struct{ in, out []byte }

func (r *Redactor) getBufs() (in, out []byte) {
	if r.bufs != nil {
		if b, ok := r.bufs.Get().(*readerBufs); ok {
			return b.in, b.out
		}
	}
	return make([]byte, redactReadSize+r.maxLen), nil
}

func (rr *RedactReader) process(final bool) {
	out, used, cover, hit := rr.r.scan(rr.out[:0], rr.in[:rr.n], rr.cover, final)
	rr.out = out
	rr.n = copy(rr.in, rr.in[used:rr.n])
	rr.cover = cover
	if hit && !rr.hit.Load() {
		rr.hit.Store(true)
	}
}

// echoForms returns every form in which v could come back (with duplicates).
func echoForms(v []byte) []string {
	s := string(v)
	forms := []string{
		s,
		hex.EncodeToString(v),
		strings.ToUpper(hex.EncodeToString(v)),
	}

	// base64: whole-value encodings (the Basic form of "user:pass" among
	// them), then the cores that survive inside a larger blob.
	for _, enc := range []*base64.Encoding{base64.StdEncoding, base64.URLEncoding} {
		forms = append(forms, enc.EncodeToString(v), enc.WithPadding(base64.NoPadding).EncodeToString(v))
		forms = append(forms, base64Cores(enc.WithPadding(base64.NoPadding), v)...)
	}

	// A truncated echo of the whole 3-byte groups only (the encoding of
	// all but the last one or two bytes) is shorter than the offset-0 core
	// when the length is not a multiple of 3, so it is a form of its own.
	if whole := v[:len(v)/3*3]; len(whole) < len(v) && len(whole) >= 6 {
		forms = append(forms, base64.RawStdEncoding.EncodeToString(whole), base64.RawURLEncoding.EncodeToString(whole))
	}

	// URL escaping, as Go writes it (%XX), as RFC 3986 strict encoders
	// write it (Python's quote(safe=""), quote_plus), as JavaScript's
	// encodeURIComponent does, and all of them with lower-case hex digits.
	for _, e := range []string{url.QueryEscape(s), url.PathEscape(s),
		percentEncode(s, "-._~", false), percentEncode(s, "-._~", true), percentEncode(s, "-._~!*'()", false)} {
		forms = append(forms, e, lowerPercent(e))
	}

	// JSON string escaping: Go's default (<, >, & as \u003c...), without
	// HTML escaping, with "/" as "\/" (PHP), with non-ASCII as \uXXXX
	// (Python's ensure_ascii, both hex cases), and every escaped or
	// non-ASCII character as \uXXXX.
	q, _ := json.Marshal(s)
	forms = append(forms, string(q[1:len(q)-1]))
	var buf bytes.Buffer
	enc := json.NewEncoder(&buf)
	enc.SetEscapeHTML(false)
	_ = enc.Encode(s)
	plain := strings.TrimSuffix(buf.String(), "\n")
	plain = plain[1 : len(plain)-1]
	forms = append(forms, plain, strings.ReplaceAll(plain, "/", `\/`))
	forms = append(forms, jsonEscapeASCII(s, false, false), jsonEscapeASCII(s, false, true), jsonEscapeASCII(s, true, false))
	// Gson escapes = and ' as well as <, > and &.
	forms = append(forms, gsonEscape(s))
	// HTML entities, as an error page or template would echo it.
	forms = append(forms, html.EscapeString(s), strings.NewReplacer(`'`, "&#x27;", `"`, "&quot;").Replace(html.EscapeString(s)))
	return forms
}

// gsonEscape is Java's Gson default: JSON escaping plus <, >, &, = and '
// as \u00XX.
func gsonEscape(s string) string {
	esc := jsonEscapeASCII(s, false, false)
	return strings.NewReplacer("<", `\u003c`, ">", `\u003e`, "&", `\u0026`, "=", `\u003d`, "'", `\u0027`).Replace(esc)
}

// base64Cores returns, for each byte alignment of v inside a longer base64
// blob, the characters that depend on v's bytes alone (enc unpadded).
//
// base64 turns each 3 bytes into 4 characters of 6 bits. When v is part of
// a larger encoded buffer, it starts at offset 0, 1 or 2 of a 3-byte group,
// and the characters at its edges mix bits of v with bits of its neighbours.
// Encoding o filler bytes + v and keeping only the characters whose 6 bits
// all fall inside v's bits [8o, 8o+8·len(v)) gives the part of the
// encoding that is the same whatever surrounds v. For v = "hunter2!":
//
//	o=0  aHVudGVyMiE  → aHVudGVyMi   ("hunter2!??"  encodes as aHVudGVyMiE/Pw==)
//	o=1  AGh1bnRlcjIh → h1bnRlcjIh   ("Xhunter2!?"  encodes as WGh1bnRlcjIhPw==)
//	o=2  AABodW50ZXIyIQ → odW50ZXIyI ("XYhunter2!"  encodes as WFlodW50ZXIyIQ==)
//
// Offset 0 matters too: the unpadded encoding of v ends with a character
// that carries zero bits where a following byte would be. Cores shorter
// than 8 characters are dropped: they would match innocent base64 too often.
func base64Cores(enc *base64.Encoding, v []byte) []string {
	var cores []string
	for o := 0; o < 3; o++ {
		b := make([]byte, o+len(v))
		copy(b[o:], v)
		e := enc.EncodeToString(b)
		start, end := (8*o+5)/6, (8*o+8*len(v))/6
		if end-start >= 8 {
			cores = append(cores, e[start:end])
		}
	}
	return cores
}

// percentEncode escapes every byte but letters, digits and keep as %XX
// (upper-case hex); with spacePlus a space becomes '+'.
func percentEncode(s, keep string, spacePlus bool) string {
	const hexDigits = "0123456789ABCDEF"
	var b strings.Builder
	for i := 0; i < len(s); i++ {
		c := s[i]
		switch {
		case c >= 'a' && c <= 'z' || c >= 'A' && c <= 'Z' || c >= '0' && c <= '9' || strings.IndexByte(keep, c) >= 0:
			b.WriteByte(c)
		case c == ' ' && spacePlus:
			b.WriteByte('+')
		default:
			b.WriteByte('%')
			b.WriteByte(hexDigits[c>>4])
			b.WriteByte(hexDigits[c&15])
		}
	}
	return b.String()
}

// lowerPercent lower-cases the hex digits of every %XX escape.
func lowerPercent(s string) string {
	b := []byte(s)
	for i := 0; i+2 < len(b); i++ {
		if b[i] == '%' {
			b[i+1] = lowerASCII(b[i+1])
			b[i+2] = lowerASCII(b[i+2])
			i += 2
		}
	}
	return string(b)
}

func lowerASCII(c byte) byte {
	if 'A' <= c && c <= 'Z' {
		return c + 'a' - 'A'
	}
	return c
}

// jsonEscapeASCII escapes s as the inside of a JSON string using only ASCII:
// non-ASCII runes (and invalid bytes, as U+FFFD like encoding/json) become
// \uXXXX, surrogate pairs above U+FFFF. With all, every character JSON or
// HTML would escape (", \, control characters, <, >, &) becomes \uXXXX as
// well; without it they get the short escapes (\" \\ \n ...) Python and
// JavaScript write.
func jsonEscapeASCII(s string, all, upper bool) string {
	const lower, upperHex = "0123456789abcdef", "0123456789ABCDEF"
	digits := lower
	if upper {
		digits = upperHex
	}
	var b strings.Builder
	u := func(r rune) {
		b.WriteString(`\u`)
		for shift := 12; shift >= 0; shift -= 4 {
			b.WriteByte(digits[r>>uint(shift)&0xF])
		}
	}
	for _, c := range s { // invalid UTF-8 reads as utf8.RuneError
		switch {
		case c >= utf8.RuneSelf:
			if c > 0xFFFF {
				r1, r2 := utf16.EncodeRune(c)
				u(r1)
				u(r2)
			} else {
				u(c)
			}
		case all && (c < 0x20 || c == '"' || c == '\\' || c == '<' || c == '>' || c == '&'):
			u(c)
		case c == '"' || c == '\\':
			b.WriteByte('\\')
			b.WriteRune(c)
		case c == '\n':
			b.WriteString(`\n`)
		case c == '\r':
			b.WriteString(`\r`)
		case c == '\t':
			b.WriteString(`\t`)
		case c == '\b':
			b.WriteString(`\b`)
		case c == '\f':
			b.WriteString(`\f`)
		case c < 0x20:
			u(c)
		default:
			b.WriteRune(c)
		}
	}
	return b.String()
}

// ContainsFold reports whether s contains any form ignoring ASCII case. It
// is for header names, which HTTP treats case-insensitively and Go
// canonicalises, so an echo in a name arrives in another case.
func (r *Redactor) ContainsFold(s string) bool {
	if r == nil {
		return false
	}
	ls := strings.ToLower(s)
	for _, f := range r.forms {
		if len(f) <= len(ls) && strings.Contains(ls, strings.ToLower(string(f))) {
			return true
		}
	}
	for _, f := range r.short {
		if strings.Contains(ls, strings.ToLower(string(f))) {
			return true
		}
	}
	return false
}
