package broker

// The canonical view: rather than enumerate every way a server can escape a
// value, the redactor decodes what servers commonly write and matches the
// decoded text against the decoded forms. N (canon) is applied to both
// sides, so a form only has to survive N, not be listed.

import (
	"bytes"
	"slices"
	"strings"
	"unicode/utf8"
)

// canonRounds bounds how often the escape decoder runs over its own output:
// JSON inside a JSON string, a double URL-encoding, an entity inside a
// percent escape. Four covers every nesting seen in practice; deeper
// nesting is left to the raw forms.
const canonRounds = 4

// canonFraming is the SSE framing dropped from the canonical view, so that
// an echo split over the data: lines of consecutive events joins up.
const canonFraming = "\ndata:"

// canonBuf holds the scratch buffers of canon, reused between calls, and,
// after a tracking call, the maps of its passes.
type canonBuf struct {
	bufs [3][]byte
	// maps[i] maps the output of pass i back to its input; passes are the
	// decode rounds that changed something, then the whitespace pass.
	maps  [canonRounds + 1][]seg
	nmaps int
	// used[i] is how much of bufs[i] holds decoded text since the last
	// wipe (SECRET: it may be an echo).
	used [3]int
}

// keep stores buffer i after a pass wrote b into it.
func (c *canonBuf) keep(i int, b []byte) {
	c.bufs[i] = b
	c.used[i] = max(c.used[i], len(b))
}

// wipe clears what the passes wrote.
func (c *canonBuf) wipe() {
	for i, b := range c.bufs {
		clear(b[:c.used[i]])
		c.used[i] = 0
	}
}

// seg maps part of a pass's output back to its input: n output bytes from
// out on. A plain seg copies input bytes from in on one to one; an escape
// seg decoded all n of them from the w input bytes at in.
type seg struct {
	out, in, n, w int32
	plain         bool
}

// canon returns N(in): escapes decoded (up to canonRounds greedy passes),
// SSE framing and whitespace dropped. (Mixed-case hex is the canonical
// matcher's business: forms made of hex digits match in either case.)
// With track, it records the maps rawRange needs. The result aliases in
// or c's buffers.
//
// N is a pure function of in: the reader relies on that (the same window
// gives the same view), and that the view of a byte depends only on a
// bounded neighbourhood of it (at most one escape per round on each side).
func (c *canonBuf) canon(in []byte, track bool) []byte {
	cur := in
	c.nmaps = 0
	slot := 0
	esc, white := textClasses(in)
	decoded := false
	if esc {
		for range canonRounds {
			var m []seg
			if track {
				m = c.maps[c.nmaps][:0]
			}
			dst, m, changed := decodeRound(c.bufs[slot][:0], m, cur, track)
			c.keep(slot, dst)
			if !changed {
				break
			}
			if track {
				c.maps[c.nmaps] = m
				c.nmaps++
			}
			cur, decoded = dst, true
			slot ^= 1
			if !hasEscape(cur) {
				break
			}
		}
		if decoded {
			// Decoding can write whitespace (%20, \n).
			white = hasWhitespace(cur)
		}
	}
	// The last pass drops whitespace and SSE framing. It runs over every
	// byte of every body: it finds whitespace 8 bytes at a time and copies
	// the stretches between, and a body without whitespace is its own view.
	if !track && !white {
		return cur
	}
	dst := slices.Grow(c.bufs[2][:0], len(cur))
	m := c.maps[c.nmaps][:0]
	ws := newByteFinder(whitespaceBytes)
	for i := 0; i < len(cur); {
		j := ws.find(cur, i)
		if j > i {
			if track {
				m = append(m, seg{out: int32(len(dst)), in: int32(i), n: int32(j - i), plain: true})
			}
			dst = append(dst, cur[i:j]...)
		}
		i = j + 1
		if bytes.HasPrefix(cur[j:], []byte(canonFraming)) {
			i = j + len(canonFraming)
		}
	}
	c.keep(2, dst)
	if track {
		c.maps[c.nmaps] = m
		c.nmaps++
	}
	return dst
}

// rawRange maps the canonical range [a, b) of the last tracking canon call
// back to the range of its input the bytes came from.
func (c *canonBuf) rawRange(a, b int) (int, int) {
	lo, hi := int32(a), int32(b-1) // hi inclusive
	for i := c.nmaps - 1; i >= 0; i-- {
		m := c.maps[i]
		s := m[segAt(m, lo)]
		if s.plain {
			lo = s.in + lo - s.out
		} else {
			lo = s.in
		}
		s = m[segAt(m, hi)]
		if s.plain {
			hi = s.in + hi - s.out
		} else {
			hi = s.in + s.w - 1
		}
	}
	return int(lo), int(hi) + 1
}

// segAt returns the index of the seg holding output byte k.
func segAt(m []seg, k int32) int {
	i, _ := slices.BinarySearchFunc(m, k, func(s seg, k int32) int {
		switch {
		case s.out+s.n <= k:
			return -1
		case s.out > k:
			return 1
		}
		return 0
	})
	return i
}

// canonString is canon for building forms.
func canonString(s string) string {
	var c canonBuf
	return string(c.canon([]byte(s), false))
}

// byteFinder finds the next occurrence of any of a few bytes. It keeps the
// next position of each byte, so each is searched for (with the vectorised
// bytes.IndexByte) once over the whole text: most bodies have no escape
// byte at all, and whitespace only every few bytes.
type byteFinder struct {
	chars string
	next  [4]int // next[k]: index of chars[k] at or after the last search, -1: not searched
}

func newByteFinder(chars string) byteFinder {
	return byteFinder{chars: chars, next: [4]int{-1, -1, -1, -1}}
}

// find returns the index of the first of f's bytes in b at or after i, or
// len(b). Calls must not go backwards in the same b.
func (f *byteFinder) find(b []byte, i int) int {
	best := len(b)
	for k := range len(f.chars) {
		if f.next[k] < i {
			if j := bytes.IndexByte(b[i:], f.chars[k]); j >= 0 {
				f.next[k] = i + j
			} else {
				f.next[k] = len(b)
			}
		}
		best = min(best, f.next[k])
	}
	return best
}

const (
	escapeBytes     = "\\%&="
	whitespaceBytes = " \n\t\r"
)

func hasWhitespace(b []byte) bool { return hasAnyByte(b, whitespaceBytes) }

// hasEscape reports whether b has a byte that can start an escape.
func hasEscape(b []byte) bool { return hasAnyByte(b, escapeBytes) }

func hasAnyByte(b []byte, chars string) bool {
	for i := range len(chars) {
		if bytes.IndexByte(b, chars[i]) >= 0 {
			return true
		}
	}
	return false
}

// classPiece is the unit of textClasses and of Redactor.cleanBlocks: a
// piece stays in the first-level cache for all the work on it, where a
// pass over a whole reader window (up to 2 MB) would bring it from further
// out each time.
const classPiece = 16 << 10

// textClasses reports whether b has a byte that can start an escape, and
// whether it has whitespace, piece by piece until it knows both.
func textClasses(b []byte) (esc, white bool) {
	for len(b) > 0 && !(esc && white) {
		p := b[:min(len(b), classPiece)]
		b = b[len(p):]
		e, w := pieceClasses(p)
		esc, white = esc || e, white || w
	}
	return esc, white
}

// classesGeneric is pieceClasses without assembly: one vectorised
// bytes.IndexByte search per byte, eight in all for a piece that has
// neither kind.
func classesGeneric(p []byte) (esc, white bool) {
	return hasAnyByte(p, escapeBytes), hasAnyByte(p, whitespaceBytes)
}

// decodeRound is one greedy left-to-right pass of the escape decoder over
// src, appending to dst (and, with track, its map to m). It reports
// whether it decoded anything.
func decodeRound(dst []byte, m []seg, src []byte, track bool) ([]byte, []seg, bool) {
	changed := false
	var tmp [utf8.UTFMax]byte
	copied := 0 // src[copied:i] is plain, not yet appended
	flush := func(i int) {
		if i > copied && track {
			m = append(m, seg{out: int32(len(dst)), in: int32(copied), n: int32(i - copied), plain: true})
		}
		dst = append(dst, src[copied:i]...)
	}
	esc := newByteFinder(escapeBytes)
	for i := 0; i < len(src); i++ {
		if i = esc.find(src, i); i == len(src) {
			break
		}
		n, k := decodeEscape(src[i:], &tmp)
		if n == 0 {
			continue
		}
		flush(i)
		changed = true
		if track && k > 0 {
			m = append(m, seg{out: int32(len(dst)), in: int32(i), n: int32(k), w: int32(n)})
		}
		dst = append(dst, tmp[:k]...)
		i += n - 1
		copied = i + 1
	}
	flush(len(src))
	return dst, m, changed
}

// decodeEscape decodes the escape at the start of s: JSON (\uXXXX with
// surrogate pairs, \" \\ \/ \n \r \t \b \f), percent (%XX, either case),
// HTML entities (&quot; &amp; &lt; &gt; &apos; &#NN; &#xHH;) and
// quoted-printable (=XX in upper-case hex; soft line breaks decode to
// nothing). It returns the bytes consumed (0: no escape) and how many
// decoded bytes it wrote to out.
func decodeEscape(s []byte, out *[utf8.UTFMax]byte) (int, int) {
	switch s[0] {
	case '\\':
		if len(s) < 2 {
			return 0, 0
		}
		if i := strings.IndexByte("\"\\/nrtbf", s[1]); i >= 0 {
			out[0] = "\"\\/\n\r\t\b\f"[i]
			return 2, 1
		}
		switch s[1] {
		case 'u':
			r, ok := hex4(s[2:])
			if !ok {
				return 0, 0
			}
			n := 6
			if r >= 0xD800 && r < 0xDC00 {
				if len(s) >= 12 && s[6] == '\\' && s[7] == 'u' {
					if r2, ok := hex4(s[8:]); ok && r2 >= 0xDC00 && r2 < 0xE000 {
						r, n = 0x10000+(r-0xD800)<<10+(r2-0xDC00), 12
					}
				}
			}
			return n, utf8.EncodeRune(out[:], r) // a lone surrogate becomes U+FFFD, as in encoding/json
		}
	case '%':
		if len(s) >= 3 {
			if h, ok := hexByte(s[1], s[2], true); ok {
				out[0] = h
				return 3, 1
			}
		}
	case '=':
		switch {
		case len(s) >= 3 && s[1] == '\r' && s[2] == '\n':
			return 3, 0
		case len(s) >= 2 && s[1] == '\n':
			return 2, 0
		case len(s) >= 3:
			if h, ok := hexByte(s[1], s[2], false); ok {
				out[0] = h
				return 3, 1
			}
		}
	case '&':
		return decodeEntity(s, out)
	}
	return 0, 0
}

// decodeEntity decodes the HTML entities servers write for the characters
// they escape, and every numeric character reference.
func decodeEntity(s []byte, out *[utf8.UTFMax]byte) (int, int) {
	semi := bytes.IndexByte(s[:min(len(s), 12)], ';')
	if semi < 2 {
		return 0, 0
	}
	name := s[1:semi]
	var r rune
	switch string(name) {
	case "quot":
		r = '"'
	case "amp":
		r = '&'
	case "lt":
		r = '<'
	case "gt":
		r = '>'
	case "apos":
		r = '\''
	default:
		if name[0] != '#' || len(name) < 2 {
			return 0, 0
		}
		digits, base := name[1:], rune(10)
		if digits[0] == 'x' || digits[0] == 'X' {
			digits, base = digits[1:], 16
		}
		if len(digits) == 0 {
			return 0, 0
		}
		for _, d := range digits {
			v, ok := hexDigit(d)
			if !ok || v >= base {
				return 0, 0
			}
			r = r*base + v
		}
		if r > utf8.MaxRune {
			return 0, 0
		}
	}
	return semi + 1, utf8.EncodeRune(out[:], r)
}

func hex4(s []byte) (rune, bool) {
	if len(s) < 4 {
		return 0, false
	}
	var r rune
	for _, c := range s[:4] {
		v, ok := hexDigit(c)
		if !ok {
			return 0, false
		}
		r = r<<4 | v
	}
	return r, true
}

// hexByte decodes two hex digits; lower-case digits only when lower.
func hexByte(a, b byte, lower bool) (byte, bool) {
	if !lower && (a >= 'a' || b >= 'a') {
		return 0, false
	}
	x, ok1 := hexDigit(a)
	y, ok2 := hexDigit(b)
	return byte(x<<4 | y), ok1 && ok2
}

func hexDigit(c byte) (rune, bool) {
	switch {
	case '0' <= c && c <= '9':
		return rune(c - '0'), true
	case 'a' <= c && c <= 'f':
		return rune(c-'a') + 10, true
	case 'A' <= c && c <= 'F':
		return rune(c-'A') + 10, true
	}
	return 0, false
}
