package broker

// The redactor: stage 5 (Respond) of the broker pipeline. Whatever the
// upstream sends back — headers, body, error text — passes through here
// before a front end sees it, and every echo of a value, in the clear, in a
// common encoding, in a canonical (decoded) view, or in part, becomes
// Marker.

import (
	"bytes"
	"crypto/sha256"
	"encoding/base32"
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
	"time"
	"unicode/utf16"
	"unicode/utf8"
)

// Marker replaces every echo of a value.
const Marker = "[REDACTED]"

// Partial echoes. A run of at least partialLen(len(form)) consecutive bytes
// of a form is an echo: a truncated echo (all but the last character, or
// all but the first) is as much a leak as the whole. The rule
//
//	P = min(L, max(partialMin, ceil(L/2)))
//
// makes P at least half the form, so a public prefix that is less than half
// of a token (sk_live_, ghp_, a JWT's fixed {"alg":"HS256","typ":"JWT"}
// header, which is under half of any JWT that carries a payload and a
// signature) never matches alone, while a truncated echo of a 20+ character
// key (all but a few characters) does. partialMin keeps short forms from
// matching on a handful of bytes: a form of 12 bytes or less matches only
// whole.
const partialMin = 12

func partialLen(l int) int { return min(l, max(partialMin, (l+1)/2)) }

// trailingMin is how long the start of a form must be to count as an echo
// when it is cut off by the end of what arrived (the end of a buffer or a
// stream, or a StreamReader's pause): the "held-back partial match past a
// small length" of issue 8. An upstream that sends half a value and then
// stalls must not get that half out, yet a reflected guess is redacted —
// and counted as an echo event — only once it gets 16 bytes of a form
// right, so guessing a value piecewise needs all of its first 16
// characters at once (8 unknown after a public "sk_live_").
const trailingMin = 16

// maxWindows caps the partial-match patterns per form. A form of length L
// has L-P+1 windows of length P; for a long value (a 4 KB PEM key has forms
// of 4-16 KB) that would be thousands of patterns per form. Past the cap the
// window starts are strided by s = ceil((L-P)/(maxWindows-1)) (the last
// window always ends at the end of the form), so any run of P+s-1 bytes of
// the form contains a window; a matched window is then extended byte by
// byte in both directions along its form, so the whole run is redacted, not
// just the window. Windows are subslices of the form: no copies.
const maxWindows = 64

// spanFactor bounds how far apart, in raw bytes, the ends of a canonical
// echo may be: spanFactor times the longest canonical form. An escape
// writes a character in up to 6 bytes (\u002B), 7 when nested once
// (\\u002B); 8 covers that. Echoes spread wider are not matched in the
// canonical view (their raw forms still are), by Bytes and readers alike.
const spanFactor = 8

// holdSlack is added to the hold-back beyond the widest echo: the canonical
// view of the last bytes of a window can change when more bytes arrive (an
// escape cut in half), so decisions are made only where the view is settled.
const holdSlack = 64

// maxHold caps the hold-back (and so a reader's memory) for very long
// values.
const maxHold = 1 << 20

// minCanonForm is the shortest canonical form matched: N drops whitespace
// and decodes escapes, so very short results would match innocent text.
const minCanonForm = partialMin

// StreamFlushAfter is how long a StreamReader waits for more input before
// it releases what it holds back (see RedactReader).
const StreamFlushAfter = 100 * time.Millisecond

// Redactor knows every form in which a set of values could come back: the
// raw bytes, base64 (std and URL alphabets, padded and not, and the parts of
// a longer base64 blob that only the value determines, also of its escaped
// forms), base32, hex, UTF-16, URL escaping, JSON string escaping and HTML
// entities; and it matches a canonical view of the text (canon) against the
// same view of those forms, which covers escapes it does not enumerate,
// nested escaping, line-wrapped base64, mixed-case hex, quoted-printable and
// echoes split over SSE events. Runs of at least partialLen bytes of any
// form count as echoes too. It is immutable after NewRedactor and safe for
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
// such values should not be secrets anyway. Forms shorter than partialMin
// get a matcher of their own that goes position by position (slower) so
// the long forms keep their skip loop.
type Redactor struct {
	// forms holds every whole raw form, deduplicated and sorted.
	forms [][]byte
	// folded is every form in lower case, deduplicated, shortest first:
	// ContainsFold's patterns, lowered once here rather than per header.
	folded [][]byte
	// sets are the sets of value indexes a pattern stands for: two values
	// can share a form.
	sets [][]int

	raw   matcher // forms and their windows, over the raw text
	canon matcher // N(forms) and their windows, over canon(text)
	// both is the skip index of raw and canon together, for a text that is
	// its own canonical view (no escape, no whitespace: most big bodies),
	// so one probe per block serves both matchers.
	both gramSkip

	// spanCap is the widest raw range an echo may cover; hold is the
	// reader's hold-back (spanCap plus holdSlack). Both depend only on the
	// values, never on the text.
	spanCap int
	hold    int

	scratch *sync.Pool // *scanScratch for Bytes
	bufs    *sync.Pool
	// chunks are a StreamReader's read buffers (*[]byte, streamChunkSize).
	chunks *sync.Pool

	// nvalues is how many values NewRedactor was given (hit indexes are
	// below it).
	nvalues int
	// valueSum identifies the set of values (see valueSetSum).
	valueSum [sha256.Size]byte
}

// NewRedactor builds the patterns for values (raw secret values; empty
// values are ignored but keep their index). A Redactor without values
// passes everything through.
func NewRedactor(values [][]byte) *Redactor {
	r := &Redactor{bufs: &sync.Pool{}, scratch: &sync.Pool{}, chunks: &sync.Pool{}, nvalues: len(values), valueSum: valueSetSum(values)}
	rawSets := map[string][]int{}
	canonSets := map[string][]int{}
	addTo := func(m map[string][]int, f string, i int) {
		if s := m[f]; len(s) == 0 || s[len(s)-1] != i {
			m[f] = append(s, i)
		}
	}
	for i, v := range values {
		if len(v) == 0 {
			continue
		}
		for _, f := range echoForms(v) {
			if f == "" {
				continue
			}
			addTo(rawSets, f, i)
			if c := canonString(f); len(c) >= minCanonForm {
				addTo(canonSets, c, i)
			}
		}
	}
	setIndex := map[string]int32{}
	setOf := func(ids []int) int32 {
		key := fmt.Sprint(ids)
		if k, ok := setIndex[key]; ok {
			return k
		}
		k := int32(len(r.sets))
		setIndex[key] = k
		r.sets = append(r.sets, ids)
		return k
	}
	build := func(m *matcher, sets map[string][]int) {
		var forms []formSet
		for f, ids := range sets {
			forms = append(forms, formSet{[]byte(f), setOf(ids)})
		}
		// Deterministic order: the same values give the same Redactor.
		slices.SortFunc(forms, func(a, b formSet) int { return bytes.Compare(a.form, b.form) })
		m.build(forms)
	}
	build(&r.raw, rawSets)
	r.canon.foldHex = true
	build(&r.canon, canonSets)
	if s := min(r.raw.skip.stride, r.canon.skip.stride); s > 1 {
		r.both.stride = s
		r.both.grams = newGramFilter(r.raw.gramCount() + r.canon.gramCount())
		r.raw.eachGram(r.both.grams.add)
		r.canon.eachGram(r.both.grams.add)
	}
	for f := range rawSets {
		r.forms = append(r.forms, []byte(f))
	}
	slices.SortFunc(r.forms, bytes.Compare)
	for _, f := range r.forms {
		if lf := []byte(strings.ToLower(string(f))); !slices.ContainsFunc(r.folded, func(g []byte) bool { return bytes.Equal(g, lf) }) {
			r.folded = append(r.folded, lf)
		}
	}
	slices.SortStableFunc(r.folded, func(a, b []byte) int { return len(a) - len(b) })
	r.spanCap = min(max(r.raw.maxLen, spanFactor*r.canon.maxLen), maxHold)
	if r.spanCap > 0 {
		r.hold = r.spanCap + holdSlack
	}
	return r
}

type formSet struct {
	form []byte
	set  int32
}

// Format prints the Redactor without its forms, so a stray %v in a log line
// cannot leak them.
// (A value receiver, so that printing a Redactor by value is covered too.)
func (r Redactor) Format(f fmt.State, verb rune) {
	fmt.Fprintf(f, "broker.Redactor{%d forms}", len(r.forms))
}

func (r *Redactor) empty() bool { return r == nil || len(r.forms) == 0 }

// Bytes redacts a complete buffer (response header values, small bodies)
// and reports whether anything was replaced. When nothing was, it returns b
// itself; otherwise a new slice.
func (r *Redactor) Bytes(b []byte) ([]byte, bool) {
	out, hits := r.BytesHits(b)
	return out, len(hits) > 0
}

// BytesHits is Bytes that also says which values echoed: the sorted,
// unique indexes into the values given to NewRedactor of every value that
// had an echo replaced.
func (r *Redactor) BytesHits(b []byte) ([]byte, []int) {
	if r.empty() || len(b) == 0 {
		return b, nil
	}
	sc, _ := r.scratch.Get().(*scanScratch)
	if sc == nil {
		sc = &scanScratch{}
	}
	defer func() {
		sc.wipe()
		r.scratch.Put(sc)
	}()
	spans := r.findSpans(sc, b, true)
	if len(spans) == 0 {
		return b, nil
	}
	var hits hitSet
	out, _ := emitRuns(make([]byte, 0, len(b)+len(Marker)), b, spans, 0, len(b), 0, r.sets, &hits)
	return out, hits.ids
}

// String is Bytes for strings.
func (r *Redactor) String(s string) (string, bool) {
	if r.empty() || s == "" {
		return s, false
	}
	b, hit := r.Bytes([]byte(s))
	if !hit {
		return s, false
	}
	return string(b), true
}

// span is an echo: the range [a, b) of the scanned text, and the set of
// values whose pattern matched there.
type span struct {
	a, b int
	set  int32
}

// scanScratch holds the reusable buffers of one scan.
type scanScratch struct {
	spans  []span
	cspans []span
	canon  canonBuf
	// pass are the lists of blocks that passed a skip index: the raw
	// matcher's, its small matcher's, the canonical and its small one's.
	pass [4][]int32
}

// wipe clears the canonical views, which hold decoded text (SECRET).
func (sc *scanScratch) wipe() { sc.canon.wipe() }

// findSpans returns every echo in text, raw and canonical, sorted by start.
// final: the text ends here for now (a complete buffer, the end of a
// stream, or a StreamReader's pause), so a form cut off by the end counts
// too (trailingMin). It is a pure function of its arguments: the reader
// calls it on its window and relies on getting the same answer for the
// same bytes.
func (r *Redactor) findSpans(sc *scanScratch, text []byte, final bool) []span {
	var view []byte
	var rawBlocks, canonBlocks blockList
	// A text of one piece or less (a header value, a small answer) is in
	// the cache already, and when it is not clean the fused pass would be
	// work done twice: it goes the way below at once.
	clean := false
	if len(text) > classPiece {
		rawBlocks, clean = r.cleanBlocks(sc, text)
	}
	if clean {
		// No escape and no whitespace: the text is its own canonical view,
		// and the blocks where either matcher may match were found in the
		// same pass.
		view, canonBlocks = text, rawBlocks
	} else {
		if r.canon.maxLen > 0 {
			view = sc.canon.canon(text, false)
		}
		if r.both.stride > 1 && len(view) == len(text) && len(text) > 0 && &view[0] == &text[0] {
			// The view aliases the text (its escape bytes escape nothing):
			// the blocks where either matcher may match are found in one
			// pass.
			rawBlocks = r.both.blocks(sc.pass[0][:0], text)
			canonBlocks = rawBlocks
		} else {
			rawBlocks = r.raw.skip.blocks(sc.pass[0][:0], text)
			if view != nil {
				canonBlocks = r.canon.skip.blocks(sc.pass[2][:0], view)
				sc.pass[2] = canonBlocks.pass
			}
		}
	}
	sc.pass[0] = rawBlocks.pass
	spans := r.raw.spans(sc.spans[:0], text, rawBlocks, &sc.pass[1])
	if final {
		if sp := r.raw.trailing(text); sp.b > 0 {
			spans = append(spans, sp)
		}
	}
	if r.canon.maxLen > 0 {
		cs := r.canon.spans(sc.cspans[:0], view, canonBlocks, &sc.pass[3])
		if final {
			if sp := r.canon.trailing(view); sp.b > 0 {
				cs = append(cs, sp)
			}
		}
		if len(cs) > 0 {
			// Rare: map the canonical echoes back to the raw bytes they
			// came from (the maps are built only now).
			sc.canon.canon(text, true)
			for _, s := range cs {
				if a, b := sc.canon.rawRange(s.a, s.b); b-a <= r.spanCap {
					spans = append(spans, span{a, b, s.set})
				}
			}
		}
		sc.cspans = cs
	}
	// Spans come in order of where their pattern matched; extending a
	// window to the left, and the canonical spans, can start earlier.
	byStart := func(x, y span) int { return x.a - y.a }
	if !slices.IsSortedFunc(spans, byStart) {
		slices.SortStableFunc(spans, byStart)
	}
	sc.spans = spans
	return spans
}

// hitSet is a sorted set of value indexes.
type hitSet struct{ ids []int }

func (h *hitSet) add(ids []int) {
	for _, id := range ids {
		if i, found := slices.BinarySearch(h.ids, id); !found {
			h.ids = slices.Insert(h.ids, i, id)
		}
	}
}

// emitRuns writes in[from:to] to dst with every echo replaced: spans
// (sorted by start) that overlap form one run and one Marker. cover is the
// end of the run whose Marker was emitted last (≤ from if none reaches
// into [from, to)); spans starting at or after to are left for later. It
// returns dst and the new cover, and adds the values of every span it
// redacted to hits.
func emitRuns(dst, in []byte, spans []span, from, to, cover int, sets [][]int, hits *hitSet) ([]byte, int) {
	pos := from
	for _, sp := range spans {
		if sp.b <= from || sp.a >= to {
			continue
		}
		hits.add(sets[sp.set])
		if sp.a < cover {
			cover = max(cover, sp.b)
			continue
		}
		lit, s := max(pos, cover), max(sp.a, from)
		if s > lit {
			dst = append(dst, in[lit:s]...)
		}
		dst = append(dst, Marker...)
		cover, pos = sp.b, s
	}
	if lit := max(pos, cover); lit < to {
		dst = append(dst, in[lit:to]...)
	}
	return dst, cover
}

// matcher finds patterns — whole forms and their partial windows — in a
// text.
type matcher struct {
	forms  [][]byte
	maxLen int // longest form

	// foldHex: forms made only of hex digits (hexRunMin or more) match in
	// either case, so mixed-case hex is an echo. They are stored in lower
	// case, and the text's 4-grams are looked up as they are and with the
	// ASCII case bit set (which lower-cases A-F and leaves digits alone).
	// The skip index holds every case of their 4-grams instead.
	foldHex bool
	hasFold bool
	// fold[i]: forms[i] matches in either case.
	fold []bool

	// Patterns of 4 bytes or more are indexed by their first 4 bytes (a
	// little-endian uint32 key): starts has a bit for each key, and
	// entries, grouped by the top bits of hashKey(key) (bucket i is
	// entries[bucketStart[i]:bucketStart[i+1]]), hold the patterns.
	starts      keyBitset
	bucketShift uint
	bucketStart []uint32
	entries     []pattern

	// skip indexes the 4-grams of the long forms (see gramSkip).
	skip gramSkip

	// Forms shorter than 4 bytes (from short values), longest first.
	short      []pattern
	shortFirst [256]bool

	// small matches the forms shorter than partialMin, if any.
	small *matcher
}

// hexRunMin is the shortest form that matches in either case when it is
// made of hex digits only. Shorter forms, and forms with other characters,
// keep their case: "valuE" is not an echo of "value".
const hexRunMin = 8

// foldBits sets the ASCII case bit in each byte of a 4-gram.
const foldBits = 0x20202020

// pattern is forms[form][off:off+n]: the whole form, or one of its windows.
type pattern struct {
	key          uint32
	form, off, n int32
	set          int32
	fold         bool
}

func (m *matcher) bytes(p *pattern) []byte { return m.forms[p.form][p.off : p.off+p.n] }

func (m *matcher) build(forms []formSet) {
	m.skip.stride = 1
	for _, fs := range forms {
		m.maxLen = max(m.maxLen, len(fs.form))
	}
	// Forms shorter than partialMin (the forms of short values) go to a
	// matcher of their own: they need a scan position by position, which
	// should neither pay for the long forms' big index nor slow the long
	// forms' skip loop down to one position at a time.
	if m.maxLen >= partialMin {
		var small, long []formSet
		for _, fs := range forms {
			if len(fs.form) < partialMin {
				small = append(small, fs)
			} else {
				long = append(long, fs)
			}
		}
		if len(small) > 0 {
			m.small = &matcher{foldHex: m.foldHex}
			m.small.build(small)
			forms = long
		}
	}
	npat := 0
	for _, fs := range forms {
		npat += min(max(len(fs.form)-partialLen(len(fs.form))+1, 1), maxWindows+1)
	}
	long := make([]pattern, 0, npat)
	minLong, grams := 0, 0
	for _, fs := range forms {
		f := fs.form
		fold := m.foldHex && len(f) >= hexRunMin && isHex(f)
		if fold {
			f = bytes.ToLower(f)
			m.hasFold = true
		}
		fi := int32(len(m.forms))
		m.forms = append(m.forms, f)
		m.fold = append(m.fold, fold)
		if len(f) < 4 {
			m.short = append(m.short, pattern{form: fi, n: int32(len(f)), set: fs.set})
			m.shortFirst[f[0]] = true
			continue
		}
		grams += len(f) - 3
		p := partialLen(len(f))
		if minLong == 0 || p < minLong {
			minLong = p
		}
		starts := len(f) - p + 1
		step := 1
		if starts > maxWindows {
			step = (len(f) - p + maxWindows - 2) / (maxWindows - 1)
		}
		add := func(off int) {
			long = append(long, pattern{key: binary.LittleEndian.Uint32(f[off:]), form: fi, off: int32(off), n: int32(p), set: fs.set, fold: fold})
		}
		for off := 0; off < starts; off += step {
			add(off)
		}
		if (starts-1)%step != 0 {
			add(starts - 1)
		}
	}
	slices.SortFunc(m.short, func(a, b pattern) int { return int(b.n - a.n) })

	// Start index.
	m.starts = newKeyBitset(len(long))
	bucketBits := uint(bits.Len(uint(max(2*len(long)-1, 1))))
	m.bucketShift = 32 - bucketBits
	nb := 1 << bucketBits
	m.bucketStart = make([]uint32, nb+1)
	for _, e := range long {
		m.starts.add(e.key)
		m.bucketStart[hashKey(e.key)>>m.bucketShift+1]++
	}
	for i := 1; i <= nb; i++ {
		m.bucketStart[i] += m.bucketStart[i-1]
	}
	// A counting sort into the buckets (patterns keep their order within
	// one): build time matters, the broker builds a Redactor per set of
	// secret versions.
	m.entries = make([]pattern, len(long))
	next := slices.Clone(m.bucketStart[:nb])
	for _, e := range long {
		b := hashKey(e.key) >> m.bucketShift
		m.entries[next[b]] = e
		next[b]++
	}

	// Skip index for the long patterns (short ones are looked for apart).
	if minLong-3 > 1 {
		m.skip.stride = minLong - 3
		m.skip.grams = newGramFilter(m.gramCount())
		m.eachGram(m.skip.grams.add)
	}
}

// eachGram calls add with every 4-gram of every form, in every case the
// text may have it in for a form that matches in either case.
func (m *matcher) eachGram(add func(uint32)) {
	for i, f := range m.forms {
		for d := 0; d+4 <= len(f); d++ {
			k := binary.LittleEndian.Uint32(f[d:])
			if !m.fold[i] {
				add(k)
				continue
			}
			// Each lower-case letter a-f may come upper-case: every
			// subset of them, with the case bit cleared.
			var letters uint32
			for b := range 4 {
				if c := f[d+b]; c >= 'a' && c <= 'f' {
					letters |= 0x20 << (8 * b)
				}
			}
			for sub := letters; ; sub = (sub - 1) & letters {
				add(k &^ sub)
				if sub == 0 {
					break
				}
			}
		}
	}
}

// gramCount is how many keys eachGram adds.
func (m *matcher) gramCount() int {
	n := 0
	m.eachGram(func(uint32) { n++ })
	return n
}

func isHex(b []byte) bool {
	for _, c := range b {
		if _, ok := hexDigit(c); !ok {
			return false
		}
	}
	return true
}

// spans appends every match in text: at each position where a pattern
// starts, the widest match there (a window extended along its form as far
// as the text agrees). blocks are text's blocks that passed m's skip index
// (or one that holds all of m's 4-grams, with a stride no longer than
// m's); smallPass is scratch for m.small's.
func (m *matcher) spans(dst []span, text []byte, blocks blockList, smallPass *[]int32) []span {
	if m.maxLen == 0 {
		return dst
	}
	// The next match of each kind is found with its own loop and kept
	// until the scan passes it, so no stretch of text is scanned twice.
	lj, lsp := -1, span{} // long forms
	sj, ssp := -1, span{} // small.long
	sm := m.small
	var smallBlocks blockList
	if sm != nil {
		smallBlocks = sm.skip.blocks((*smallPass)[:0], text)
		*smallPass = smallBlocks.pass
	}
	for i := 0; i < len(text); {
		if lj < i {
			lj, lsp = m.nextLong(text, i, blocks)
		}
		j, sp := lj, lsp
		if sm != nil {
			if sj < i {
				sj, ssp = sm.nextLong(text, i, smallBlocks)
			}
			if sj < j || sj == j && ssp.b > sp.b {
				j, sp = sj, ssp
			}
		}
		// Short forms: nextLong found them too when it went position by
		// position; a skip loop can jump over them.
		if short := m; len(short.short) > 0 || sm != nil && len(sm.short) > 0 {
			if sm != nil {
				short = sm
			}
			if short.skip.stride > 1 || len(short.entries) == 0 {
				if js := short.nextShort(text, i, j); js < j {
					j, sp = js, short.at(text, js)
				}
			}
		}
		if sp.b == 0 {
			break
		}
		// A run of matches of the same values (a self-overlapping value)
		// is one span.
		if k := len(dst) - 1; k >= 0 && dst[k].set == sp.set && sp.a >= dst[k].a && sp.a < dst[k].b {
			dst[k].b = max(dst[k].b, sp.b)
		} else {
			dst = append(dst, sp)
		}
		i = j + 1
	}
	return dst
}

// trailing returns the longest match at the end of text of a prefix of a
// form at least trailingMin bytes long (a zero span if none): an echo cut
// off by the end of what arrived. Only the final scans ask, when nothing
// more will come for now.
func (m *matcher) trailing(text []byte) span {
	if len(text) < trailingMin || m.maxLen < trailingMin {
		return span{}
	}
	if m.skip.stride > 1 {
		// The text's last 4 bytes are in any such match: one probe says
		// whether to look.
		if !m.skip.grams.has(binary.LittleEndian.Uint32(text[len(text)-4:])) {
			return span{}
		}
	}
	for i := max(0, len(text)-m.maxLen); i+trailingMin <= len(text); i++ {
		rest := text[i:]
		k := binary.LittleEndian.Uint32(rest)
		for _, key := range [2]uint32{k, k | foldBits} {
			if key != k && !m.hasFold || !m.starts.has(key) {
				continue
			}
			b := hashKey(key) >> m.bucketShift
			for e := m.bucketStart[b]; e < m.bucketStart[b+1]; e++ {
				p := &m.entries[e]
				if p.key != key || p.off != 0 || key != k && !p.fold {
					continue
				}
				if f := m.forms[p.form]; len(rest) < len(f) && prefixOf(rest, f, p.fold) {
					return span{i, len(text), p.set}
				}
			}
		}
	}
	return span{}
}

// prefixOf reports whether text is a prefix of form (in lower case when
// fold).
func prefixOf(text, form []byte, fold bool) bool {
	if fold {
		return equalFold(text, form[:len(text)])
	}
	return bytes.Equal(text, form[:len(text)])
}

// nextShort returns the first position in [from, to) where a short form
// starts, or to.
func (m *matcher) nextShort(in []byte, from, to int) int {
	for i := from; i < to; i++ {
		if !m.shortFirst[in[i]] {
			continue
		}
		for p := range m.short {
			if bytes.HasPrefix(in[i:], m.bytes(&m.short[p])) {
				return i
			}
		}
	}
	return to
}

// nextLong returns the first position ≥ from where a pattern of 4 bytes or
// more starts (or, scanning position by position, any pattern), and the
// widest match there; (len(in), zero span) if none. It looks only at the
// blocks of in that passed the skip index, and at the positions past them.
func (m *matcher) nextLong(in []byte, from int, blocks blockList) (int, span) {
	i, to := from, len(in)
	if len(m.entries) == 0 {
		return to, span{}
	}
	if s := blocks.stride; s > 1 {
		k, _ := slices.BinarySearch(blocks.pass, int32(from/s))
		for _, b := range blocks.pass[k:] {
			for j, end := max(from, int(b)*s), int(b)*s+s; j < end; j++ {
				if sp := m.at(in, j); sp.b > 0 {
					return j, sp
				}
			}
		}
		i = max(from, blocks.end(len(in)))
	}
	// Position by position: the start bitset and the first bytes of short
	// forms say where to verify (at looks at both).
	st := m.starts
	for ; i+4 <= to; i++ {
		k := binary.LittleEndian.Uint32(in[i:])
		if !st.has(k) && !m.shortFirst[in[i]] && !(m.hasFold && st.has(k|foldBits)) {
			continue
		}
		if sp := m.at(in, i); sp.b > 0 {
			return i, sp
		}
	}
	for ; i < to; i++ {
		if sp := m.at(in, i); sp.b > 0 {
			return i, sp
		}
	}
	return to, span{}
}

// at returns the widest match of a pattern starting at in[i], extended
// along its form in both directions; a zero span if none starts there.
func (m *matcher) at(in []byte, i int) span {
	rest := in[i:]
	best := span{}
	if len(rest) >= 4 {
		k := binary.LittleEndian.Uint32(rest)
		best = m.atKey(in, i, k, false, best)
		if m.hasFold && k|foldBits != k {
			best = m.atKey(in, i, k|foldBits, true, best)
		}
	}
	if best.b == 0 && len(m.short) > 0 && len(rest) > 0 && m.shortFirst[rest[0]] {
		for p := range m.short {
			if bytes.HasPrefix(rest, m.bytes(&m.short[p])) {
				return span{i, i + int(m.short[p].n), m.short[p].set}
			}
		}
	}
	return best
}

// atKey looks at the patterns keyed k (only the case-folding ones when
// folded) and returns the wider of best and their widest match at in[i].
func (m *matcher) atKey(in []byte, i int, k uint32, folded bool, best span) span {
	if !m.starts.has(k) {
		return best
	}
	b := hashKey(k) >> m.bucketShift
	for e := m.bucketStart[b]; e < m.bucketStart[b+1]; e++ {
		p := &m.entries[e]
		if p.key != k || folded && !p.fold {
			continue
		}
		f, n, off, fold := m.forms[p.form], int(p.n), int(p.off), p.fold
		if i+n > len(in) {
			continue
		}
		if fold {
			if !equalFold(in[i:i+n], f[off:off+n]) {
				continue
			}
		} else if !bytes.Equal(in[i:i+n], f[off:off+n]) {
			continue
		}
		end := i + n
		for o := off + n; o < len(f) && end < len(in) && byteEq(in[end], f[o], fold); o++ {
			end++
		}
		start := i
		for o := off; o > 0 && start > 0 && byteEq(in[start-1], f[o-1], fold); o-- {
			start--
		}
		if end > best.b || end == best.b && start < best.a {
			best = span{start, end, p.set}
		}
	}
	return best
}

// byteEq compares a text byte with a form byte (in lower case when fold).
func byteEq(a, f byte, fold bool) bool {
	if fold {
		a = lowerASCII(a)
	}
	return a == f
}

func equalFold(text, form []byte) bool {
	for i, c := range form {
		if lowerASCII(text[i]) != c {
			return false
		}
	}
	return true
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

// gramFilter is a Bloom filter over 4-byte keys: two bits per key, 32 to 64
// bits per key, so about 0.1-0.4% of the keys not added pass. A bit is
// found by its byte and a table of masks: a probe shifts by constants
// only, which keeps the scanner's loop (a probe every stride bytes of every
// body) short.
type gramFilter struct {
	bits []byte
	mask uint64 // bit indexes: len(bits)*8-1
}

func newGramFilter(keys int) gramFilter {
	log := min(max(uint(bits.Len(uint(max(keys, 1)*32-1))), 12), 26) // 4 Kib .. 64 Mib
	return gramFilter{bits: make([]byte, 1<<(log-3)), mask: 1<<log - 1}
}

// bitOf[i] is bit i of a byte.
var bitOf = [8]byte{1, 2, 4, 8, 16, 32, 64, 128}

// gramBitA and gramBitB are the two bits of k in a filter of mask+1 bits:
// bits 32 and up of two multiplicative hashes, which depend on every bit
// of k. They are apart so that a probe computes the second only when the
// first bit is set.
func gramBitA(k uint32, mask uint64) uint64 { return uint64(k) * 0x9E3779B97F4A7C15 >> 32 & mask }
func gramBitB(k uint32, mask uint64) uint64 { return uint64(k) * 0xC2B2AE3D27D4EB4F >> 32 & mask }

// isSet reports whether bit i of bits is set.
func isSet(bits []byte, i uint64) bool { return bits[i>>3]&bitOf[i&7] != 0 }

func (f gramFilter) add(k uint32) {
	a, b := gramBitA(k, f.mask), gramBitB(k, f.mask)
	f.bits[a>>3] |= bitOf[a&7]
	f.bits[b>>3] |= bitOf[b&7]
}

func (f gramFilter) has(k uint32) bool {
	return isSet(f.bits, gramBitA(k, f.mask)) && isSet(f.bits, gramBitB(k, f.mask))
}

// gramSkip is a skip index (as in Wu-Manber): grams holds every 4-gram of
// the patterns it serves, each at least stride+3 bytes long. A text is cut
// into blocks of stride positions; the 4-gram at the end of a block (at
// b*stride+stride-1) lies inside any match that starts in the block, so
// only the blocks whose 4-gram passes are looked at position by position.
// The text is probed once per stride bytes, whatever starts where, so one
// pass can serve several matchers.
type gramSkip struct {
	stride int // ≤ 1: no skip index
	grams  gramFilter
}

// blockList is where a matcher looks in one text: the blocks that passed,
// in ascending order; the positions from end on are not in any block.
type blockList struct {
	stride int // ≤ 1: look everywhere
	pass   []int32
}

// end is where the blocks of a text of n bytes end: a block is probed
// only if its 4-gram lies within the text.
func (b blockList) end(n int) int {
	if b.stride <= 1 || n < 3 {
		return 0
	}
	return (n - 3) / b.stride * b.stride
}

// blocks appends to pass the blocks of text whose 4-gram passes.
func (g gramSkip) blocks(pass []int32, text []byte) blockList {
	bl := blockList{stride: g.stride, pass: pass}
	if g.stride <= 1 {
		return bl
	}
	s, end := g.stride, bl.end(len(text))
	for p := s - 1; p < end; p += s {
		if p = g.grams.next(text, p, end, s); p < end {
			bl.pass = append(bl.pass, int32(p/s))
		}
	}
	return bl
}

// cleanBlocks returns the blocks of text under r.both when text is its own
// canonical view, one with no escape byte and no whitespace (a download,
// base64, hex), and finds out whether it is in the same pass: classPiece
// bytes at a time, the probes of a piece, then the search for those bytes
// in it while it is in the first-level cache. (canon's search over the
// whole text, then the probes, read a streaming window from memory twice.)
// It reports false when r has no shared skip index, or when a piece has
// one of those bytes, having stopped there: most texts that are not clean
// (JSON, SSE, line-wrapped base64) show it in their first piece, so the
// probes it made before are seldom more than one piece's.
func (r *Redactor) cleanBlocks(sc *scanScratch, text []byte) (blockList, bool) {
	g := r.both
	if r.canon.maxLen == 0 || g.stride <= 1 {
		return blockList{}, false
	}
	bl := blockList{stride: g.stride, pass: sc.pass[0][:0]}
	s, end := g.stride, bl.end(len(text))
	p := s - 1 // the next probe: probes are at s-1, 2s-1, ...
	for from := 0; from < len(text); from += classPiece {
		to := min(from+classPiece, len(text))
		for lim := min(to, end); p < lim; p += s {
			if p = g.grams.next(text, p, lim, s); p == lim {
				// None passed: on to the first probe at or after lim.
				p += (s-1-lim%s+s)%s - s
				continue
			}
			bl.pass = append(bl.pass, int32(p/s))
		}
		if esc, white := pieceClasses(text[from:to]); esc || white {
			sc.pass[0] = bl.pass // keep the scratch
			return blockList{}, false
		}
	}
	return bl, true
}

// next returns the first of the positions p, p+s, ... below end whose
// 4-gram passes, or end. It is kept apart from blocks (and out of line)
// so that the loop's state stays in registers: inlined, the append
// around it made the compiler spill them on every probe.
//
//go:noinline
func (f gramFilter) next(text []byte, p, end, s int) int {
	// has, with the filter's fields in locals (registers) and the 4 bytes
	// sliced as 4: the loop runs once per stride bytes of every body.
	bits, mask := f.bits, f.mask
	for ; p < end; p += s {
		k := binary.LittleEndian.Uint32(text[p : p+4])
		if isSet(bits, gramBitA(k, mask)) && isSet(bits, gramBitB(k, mask)) {
			return p
		}
	}
	return end
}

// Reader wraps a response body: streaming, chunk-boundary-safe redaction.
// Its output is the same however the source splits the body.
func (r *Redactor) Reader(src io.Reader) *RedactReader { return r.newReader(src, 0) }

// StreamReader wraps a streamed response body (server-sent events, a body
// of unknown length): like Reader, and when the source has sent nothing new
// for pause (StreamFlushAfter for callers without a reason to differ), what
// is held back is released as at the end of the body, so events flow. It
// reads the source on a goroutine, which ends when the source's Read
// returns after Release (the broker closes the upstream body first; a src
// that is an io.Closer is closed by Release).
func (r *Redactor) StreamReader(src io.Reader, pause time.Duration) *RedactReader {
	return r.newReader(src, max(pause, time.Millisecond))
}

func (r *Redactor) newReader(src io.Reader, pause time.Duration) *RedactReader {
	if r == nil {
		r = &Redactor{}
	}
	return &RedactReader{r: r, src: src, pause: pause}
}

// redactReadSize is the most a Reader asks its source for at a time, and so
// the most a Read or WriteTo releases at once. A big body is read and
// written on in units of this size (a front end writes each with one
// Write), and the socket calls on both sides are what a fast big body costs
// a proxy beyond the scan: streaming 100 MB across processes on loopback
// (BenchmarkProxyXProcBody in e2e), 1 MB units took the proxy a quarter to
// a third less CPU than 256 KB units, 2 MB units about a seventh less again,
// and 64 KB units more. Only a body that keeps filling the reads gets there
// (see fill): a reader's window, and its output buffer if an echo is
// redacted, are then 2 MB each, while a small response's stay at
// redactFirstRead.
const redactReadSize = 2 << 20

// streamChunkSize is a StreamReader's read size: its reading goroutine
// holds two buffers of this size from the start, for as long as the stream
// lasts (an event stream may stay open for hours), so it is kept below
// redactReadSize.
const streamChunkSize = 256 << 10

// redactFirstRead is the size of a Reader's first read from its source.
const redactFirstRead = 32 << 10

// redactMaxEmptyReads bounds how often the source may return 0, nil in a row
// (as bufio does).
const redactMaxEmptyReads = 100

// RedactReader redacts a stream as it is read. Built like age's
// stream.DecryptReader: a buffer holds the input bytes not yet released,
// and the first error from the source is sticky: later reads return the
// remaining buffered (redacted) bytes, then that error, forever.
//
// Why it is not an oracle. An agent that can make the upstream reflect a
// guess learns only what the reader releases and when. The reader always
// holds back exactly min(H, undecided bytes) of the newest input, where
// H (Redactor.hold) is a function of the values alone — the widest raw
// range an echo can cover plus a fixed slack — and never of the bytes
// themselves. Bytes leave the hold-back only when newer input pushes them
// out, at the end of the body, or (StreamReader) when the source has been
// quiet for the pause, always through the same scan. So the number of
// bytes a Read can return, and the moment it can return them, depend only
// on how many bytes arrived when: a guess that is a prefix of a value and a
// wrong guess of the same length come out at the same time and in the same
// amount. (Earlier versions held back only bytes that could still grow into
// an echo; that told a guesser whether its guess was a prefix.) What does
// differ is the content once a guess is an echo: a whole form, a run of at
// least partialLen bytes of one, or, cut off by the end or a pause, its
// first trailingMin bytes or more. It becomes Marker. That is the point of
// redaction, and it is a signal too, which is why every redaction is an
// echo event (Hits) the broker counts towards the binding's tripwire:
// redaction is the net, the tripwire the boundary. Below those lengths a
// right guess and a wrong one are indistinguishable, so a guesser cannot
// learn a value a character at a time.
//
// After a pause flush the reader keeps the last H released bytes as
// context, so an echo that continues after the flush is still found and
// its unreleased part redacted (and counted). Buffers are reused: a
// Reader's Read allocates nothing in the steady state.
type RedactReader struct {
	r     *Redactor
	src   io.Reader
	pause time.Duration // 0: a Reader, no pause flush

	// buf[:ctx] is released context, buf[ctx:n] input not yet released
	// (SECRET — may hold part of an echo). cover is the end (in buf) of the
	// run whose Marker was emitted last.
	buf    []byte
	n, ctx int
	cover  int
	sc     *scanScratch
	// dirty and outDirty bound what this reader wrote to buf and out, so
	// that Release wipes only that (the pooled buffers are clean beyond
	// it): a small response does not pay for wiping a large buffer. want
	// is the size of a Reader's next read (see fill).
	dirty, outDirty int
	want            int

	// view[off:] is redacted output not yet returned: a part of out, or,
	// when no echo touched it, of buf itself (no copy). keep is how many
	// bytes buf drops from its front once view is handed out.
	out    []byte
	view   []byte
	off    int
	keep   int
	err    error // sticky source error
	nEmpty int

	mu   sync.Mutex
	hits hitSet
	hit  atomic.Bool

	// StreamReader only.
	chunks  chan readChunk
	free    chan []byte
	done    chan struct{}
	timer   *time.Timer
	lastIn  time.Time
	release sync.Once
}

type readChunk struct {
	b   []byte
	n   int
	err error
}

// Format prints the reader without its buffers.
func (rr *RedactReader) Format(f fmt.State, verb rune) {
	fmt.Fprint(f, "broker.RedactReader{}")
}

// Redacted reports whether any replacement happened so far. It is safe to
// call after EOF and concurrently with Read.
func (rr *RedactReader) Redacted() bool { return rr.hit.Load() }

// Hits returns the sorted, unique indexes (into the values given to
// NewRedactor) of every value whose echo was replaced in what was read so
// far. It is safe to call after EOF and concurrently with Read.
func (rr *RedactReader) Hits() []int {
	rr.mu.Lock()
	defer rr.mu.Unlock()
	return slices.Clone(rr.hits.ids)
}

// Read implements io.Reader.
func (rr *RedactReader) Read(p []byte) (int, error) {
	if len(p) == 0 {
		return 0, nil
	}
	if err := rr.fill(); err != nil {
		return 0, err
	}
	k := copy(p, rr.view[rr.off:])
	rr.off += k
	return k, nil
}

// WriteTo implements io.WriterTo, so that io.Copy hands w the redacted
// output straight from the reader's own buffer: one Write per chunk
// processed (up to redactReadSize), with no caller's buffer and no copy
// into it. What is released, and when, is the same as through Read.
func (rr *RedactReader) WriteTo(w io.Writer) (int64, error) {
	var total int64
	for {
		if err := rr.fill(); err != nil {
			if err == io.EOF {
				return total, nil
			}
			return total, err
		}
		k, err := w.Write(rr.view[rr.off:])
		if err == nil && k < len(rr.view)-rr.off {
			err = io.ErrShortWrite
		}
		rr.off += k
		total += int64(k)
		if err != nil {
			return total, err
		}
	}
}

// fill makes sure out[off:] holds redacted output, reading the source as
// needed, or returns the error that ends the stream.
func (rr *RedactReader) fill() error {
	for {
		if rr.off < len(rr.view) {
			return nil
		}
		rr.view, rr.off = nil, 0
		rr.slide()
		if rr.err != nil {
			if rr.n == rr.ctx {
				return rr.err
			}
			if rr.err != io.EOF {
				// The stream broke. What is still held back could be the
				// start of an echo cut off mid-value: drop it rather than
				// hand out part of a secret.
				clear(rr.buf[:rr.n])
				rr.n, rr.ctx = 0, 0
				return rr.err
			}
			rr.process(true)
			continue
		}
		if rr.buf == nil {
			rr.buf, rr.out, rr.sc = rr.r.getBufs()
		}
		if rr.pause > 0 {
			rr.readStream()
			continue
		}
		// Reads start at redactFirstRead (or twice the hold-back) and
		// double while the source fills them, up to maxRead, the window
		// growing once when first needed: a large body is read (and
		// written on) in redactReadSize units, and a small one allocates
		// and wipes little. The size depends only on how many bytes
		// arrived, never on what they are.
		want := max(rr.want, redactFirstRead, 2*rr.r.hold)
		rr.grow(want)
		k, err := rr.src.Read(rr.buf[rr.n : rr.n+want])
		// A source may use all of what it is offered as scratch.
		rr.dirty = max(rr.dirty, rr.n+want)
		if k < 0 || k > want {
			k, err = 0, fmt.Errorf("broker: source returned an invalid count %d", k)
		}
		if k == want {
			rr.want = min(2*want, rr.maxRead())
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

// readStream waits for the next chunk from the reading goroutine, or for
// the pause to pass with bytes held back, and processes what it got.
func (rr *RedactReader) readStream() {
	if rr.done == nil {
		rr.chunks, rr.free, rr.done = make(chan readChunk, 1), make(chan []byte, 2), make(chan struct{})
		rr.free <- rr.r.getChunk()
		rr.free <- rr.r.getChunk()
		rr.timer = time.NewTimer(time.Hour)
		go readChunks(rr.src, rr.chunks, rr.free, rr.done)
	}
	var flush <-chan time.Time
	if rr.n > rr.ctx {
		wait := rr.pause - time.Since(rr.lastIn)
		if wait <= 0 {
			rr.process(true)
			return
		}
		rr.timer.Reset(wait)
		flush = rr.timer.C
	}
	select {
	case c := <-rr.chunks:
		rr.timer.Stop()
		rr.grow(c.n)
		rr.n += copy(rr.buf[rr.n:], c.b[:c.n])
		rr.dirty = max(rr.dirty, rr.n)
		clear(c.b[:c.n])
		rr.free <- c.b
		if c.n > 0 {
			rr.lastIn = time.Now() // the pause counts from the last new byte
		}
		rr.err = c.err
		rr.process(rr.err == io.EOF)
	case <-flush:
		rr.process(true)
	}
}

// readChunks is the StreamReader's reading goroutine: it reads src into
// the buffers it gets from free and hands them over on chunks until the
// source fails or done is closed.
func readChunks(src io.Reader, chunks chan<- readChunk, free <-chan []byte, done <-chan struct{}) {
	empty := 0
	for {
		var b []byte
		select {
		case b = <-free:
		case <-done:
			return
		}
		k, err := src.Read(b)
		select {
		case <-done: // released while reading: nobody will take the bytes
			clear(b[:max(0, min(k, len(b)))])
			return
		default:
		}
		if k < 0 || k > len(b) {
			k, err = 0, fmt.Errorf("broker: source returned an invalid count %d", k)
		}
		if k == 0 && err == nil {
			if empty++; empty < redactMaxEmptyReads {
				select {
				case chunks <- readChunk{b: b}:
				case <-done:
					return
				}
				continue
			}
			err = io.ErrNoProgress
		}
		empty = 0
		select {
		case chunks <- readChunk{b, k, err}:
		case <-done:
			clear(b[:k])
			return
		}
		if err != nil {
			return
		}
	}
}

// process releases what it may of buf[ctx:n] into view: all of it when
// final (end of input, or a pause flush), else all but the last hold bytes.
// buf slides (see slide) only once view has been handed out.
func (rr *RedactReader) process(final bool) {
	hold := rr.r.hold
	rel := rr.n - hold
	if final {
		rel = rr.n
	}
	if rel <= rr.ctx {
		return
	}
	var spans []span
	if !rr.r.empty() {
		spans = rr.r.findSpans(rr.sc, rr.buf[:rr.n], final)
	}
	if untouched(spans, rr.ctx, rel, rr.cover) {
		rr.view = rr.buf[rr.ctx:rel]
	} else {
		rr.mu.Lock()
		rr.out, rr.cover = emitRuns(rr.out[:0], rr.buf, spans, rr.ctx, rel, rr.cover, rr.r.sets, &rr.hits)
		rr.outDirty = max(rr.outDirty, len(rr.out))
		hit := len(rr.hits.ids) > 0
		rr.mu.Unlock()
		if hit && !rr.hit.Load() {
			rr.hit.Store(true)
		}
		rr.view = rr.out
	}
	rr.ctx, rr.keep = rel, max(rel-hold, 0)
}

// untouched reports whether emitRuns would copy in[from:to] as it is: no
// span reaches into it, nor the run of the last Marker.
func untouched(spans []span, from, to, cover int) bool {
	if cover > from {
		return false
	}
	for _, sp := range spans {
		if sp.b > from && sp.a < to {
			return false
		}
	}
	return true
}

// slide drops the first keep bytes of buf, once the output process made
// (which may be part of buf) has been handed out, keeping hold bytes of
// released context before what stays held.
func (rr *RedactReader) slide() {
	if rr.keep == 0 {
		return
	}
	rr.n = copy(rr.buf, rr.buf[rr.keep:rr.n])
	rr.ctx, rr.cover, rr.keep = rr.ctx-rr.keep, rr.cover-rr.keep, 0
}

// Release hands the reader's buffers back for reuse, wiped first because
// they may hold part of an echo, and stops a StreamReader's goroutine. The
// reader must not be used afterwards, nor Release called during a Read.
func (rr *RedactReader) Release() {
	if rr == nil {
		return
	}
	rr.release.Do(func() {
		if rr.done != nil {
			close(rr.done)
			rr.timer.Stop()
			if c, ok := rr.src.(io.Closer); ok {
				c.Close()
			}
			// Buffers the goroutine handed over, or has not taken, are
			// reused; one it still reads into is left to it (and the GC).
			for {
				select {
				case c := <-rr.chunks:
					clear(c.b[:c.n])
					rr.r.putChunk(c.b)
					continue
				case b := <-rr.free:
					rr.r.putChunk(b)
					continue
				default:
				}
				break
			}
		}
		if rr.buf == nil || rr.r.bufs == nil {
			return
		}
		clear(rr.buf[:rr.dirty])
		clear(rr.out[:rr.outDirty])
		rr.sc.wipe()
		rr.r.bufs.Put(&readerBufs{in: rr.buf, out: rr.out[:0], sc: rr.sc})
		rr.buf, rr.out, rr.view, rr.sc, rr.n, rr.ctx, rr.off, rr.keep, rr.dirty, rr.outDirty = nil, nil, nil, nil, 0, 0, 0, 0, 0, 0
	})
}

type readerBufs struct {
	in, out []byte
	sc      *scanScratch
}

// getChunk returns a StreamReader read buffer; putChunk takes back one that
// holds no input (wiped, or never read into).
func (r *Redactor) getChunk() []byte {
	if r.chunks != nil {
		if b, ok := r.chunks.Get().(*[]byte); ok {
			return *b
		}
	}
	return make([]byte, streamChunkSize)
}

func (r *Redactor) putChunk(b []byte) {
	if r.chunks != nil {
		r.chunks.Put(&b)
	}
}

// getBufs returns a window buffer (hold bytes of context, hold bytes held
// back and one read), an output buffer and scan scratch. Every scan covers
// the whole window, so a read is at least twice the hold-back: for long
// values (a PEM key holds back tens of KB) the context and hold-back then
// cost at most as much scanning again as the new bytes.
func (r *Redactor) getBufs() (in, out []byte, sc *scanScratch) {
	if r.bufs != nil {
		if b, ok := r.bufs.Get().(*readerBufs); ok {
			return b.in, b.out, b.sc
		}
	}
	return make([]byte, r.window(redactFirstRead)), nil, &scanScratch{}
}

// maxRead is the largest read a reader makes (a StreamReader's goroutine
// reads streamChunkSize): redactReadSize, or twice the hold-back for very
// long values, so that context and hold-back cost at most as much scanning
// again as the new bytes.
func (rr *RedactReader) maxRead() int {
	if rr.pause > 0 {
		return max(streamChunkSize, 2*rr.r.hold)
	}
	return max(redactReadSize, 2*rr.r.hold)
}

// window is the size of a window buffer for reads of up to read bytes:
// hold bytes of context, hold bytes held back and the read.
func (r *Redactor) window(read int) int { return max(read, 2*r.hold) + 2*r.hold }

// grow makes room in buf for k more bytes (k <= maxRead). A reader starts
// with a window for redactFirstRead, so a small response neither allocates
// nor wipes a large one, and moves to the largest window the first time
// its source sends more at once; the small window is wiped and dropped.
func (rr *RedactReader) grow(k int) {
	if len(rr.buf)-rr.n >= k {
		return
	}
	nb := make([]byte, rr.r.window(rr.maxRead()))
	copy(nb, rr.buf[:rr.n])
	clear(rr.buf[:rr.dirty])
	rr.buf, rr.dirty = nb, rr.n
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

	escaped := len(forms)
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

	// base64 of an escaped form (a JSON document carrying the value, then
	// base64-encoded): the value's bytes change before they are encoded,
	// so the raw value's cores do not match. Every escaped form that
	// differs from the value gets its cores too.
	seen := map[string]bool{s: true}
	for _, e := range slices.Clone(forms[escaped:]) {
		if seen[e] {
			continue
		}
		seen[e] = true
		for _, enc := range []*base64.Encoding{base64.RawStdEncoding, base64.RawURLEncoding} {
			forms = append(forms, base64Cores(enc, []byte(e))...)
		}
	}

	// base32, both alphabets, padded or not, in either case.
	for _, enc := range []*base32.Encoding{base32.StdEncoding, base32.HexEncoding} {
		for _, e := range []string{enc.EncodeToString(v), enc.WithPadding(base32.NoPadding).EncodeToString(v)} {
			forms = append(forms, e, strings.ToLower(e))
		}
	}

	// UTF-16, as Windows APIs and Java/.NET byte dumps write strings.
	units := utf16.Encode([]rune(s))
	le, be := make([]byte, 0, 2*len(units)), make([]byte, 0, 2*len(units))
	for _, u := range units {
		le = binary.LittleEndian.AppendUint16(le, u)
		be = binary.BigEndian.AppendUint16(be, u)
	}
	return append(forms, string(le), string(be))
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
	if r == nil || len(r.folded) == 0 || len(s) < len(r.folded[0]) {
		return false
	}
	// Header names are short ASCII tokens: lowered on the stack, as
	// strings.ToLower would lower them, without an allocation per name.
	var buf [128]byte
	var ls []byte
	if len(s) <= len(buf) && isASCII(s) {
		ls = buf[:len(s)]
		for i := range len(s) {
			c := s[i]
			if 'A' <= c && c <= 'Z' {
				c += 'a' - 'A'
			}
			ls[i] = c
		}
	} else {
		ls = []byte(strings.ToLower(s))
	}
	for _, f := range r.folded {
		if len(f) > len(ls) {
			break
		}
		if bytes.Contains(ls, f) {
			return true
		}
	}
	return false
}

func isASCII(s string) bool {
	for i := range len(s) {
		if s[i] >= utf8.RuneSelf {
			return false
		}
	}
	return true
}

// allIndexes is every value index: the hits of an echo found only in a form
// that cannot say which value it was (a header name matched ignoring case).
func (r *Redactor) allIndexes() []int {
	out := make([]int, r.nvalues)
	for i := range out {
		out[i] = i
	}
	return out
}
