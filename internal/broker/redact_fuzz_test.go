package broker

import (
	"bytes"
	"io"
	"math/rand/v2"
	"slices"
	"testing"
	"time"
)

// FuzzRedactSplit: for any input with forms of the values inserted, and any
// split point, the Reader's output is Bytes' output (and a StreamReader's,
// when the source never pauses), and no whole form of a value survives
// between the markers.
func FuzzRedactSplit(f *testing.F) {
	f.Add([]byte("hello, world"), int64(1), uint16(3), uint8(1))
	f.Add([]byte(`{"a":"b\u002Bc","d":"%2B%252B"}`), int64(2), uint16(9), uint8(3))
	f.Add([]byte("data: x\n\ndata: y\n\n"), int64(3), uint16(7), uint8(2))
	f.Add([]byte("=3D=\r\n&quot;&#x2B;"), int64(4), uint16(1), uint8(5))
	f.Add(bytes.Repeat([]byte(`\\`), 50), int64(5), uint16(20), uint8(4))
	f.Fuzz(func(t *testing.T, data []byte, seed int64, split uint16, ninsert uint8) {
		rng := rand.New(rand.NewPCG(uint64(seed), uint64(ninsert)))
		values := make([][]byte, 1+rng.IntN(3))
		for i := range values {
			values[i] = rdFuzzValue(rng)
		}
		r := NewRedactor(values)
		in := append([]byte(nil), data...)
		for range int(ninsert % 5) {
			form := rdFuzzForms[rng.IntN(len(rdFuzzForms))](values[rng.IntN(len(values))])
			at := rng.IntN(len(in) + 1)
			in = append(in[:at], append([]byte(form), in[at:]...)...)
		}
		want, hit := r.Bytes(in)
		k := int(split) % (len(in) + 1)
		got, gotHit := rdStream(t, r, &rdChunkReader{data: in, sizes: []int{k, 0}}, 1+rng.IntN(64))
		if !bytes.Equal(got, want) || gotHit != hit {
			t.Fatalf("Reader split at %d = %q, %v; Bytes = %q, %v", k, got, gotHit, want, hit)
		}
		sr := r.StreamReader(&rdChunkReader{data: in, sizes: []int{k, 0}}, time.Hour)
		got, err := io.ReadAll(sr)
		sr.Release()
		if err != nil || !bytes.Equal(got, want) {
			t.Fatalf("StreamReader split at %d = %q, %v; Bytes = %q", k, got, err, want)
		}
		for _, seg := range bytes.Split(want, []byte(Marker)) {
			for _, v := range values {
				for _, enc := range rdFuzzForms {
					if form := enc(v); bytes.Contains(seg, []byte(form)) {
						t.Fatalf("form %q of %q visible in %q", form, v, want)
					}
				}
			}
		}
	})
}

// rdNoSkip is r without skip indexes: every matcher looks at every
// position, the slow path the skip indexes must agree with.
func rdNoSkip(r *Redactor) *Redactor {
	c := *r
	c.both = gramSkip{}
	for _, m := range []*matcher{&c.raw, &c.canon} {
		m.skip = gramSkip{stride: 1}
		if m.small != nil {
			sm := *m.small
			sm.skip = gramSkip{stride: 1}
			m.small = &sm
		}
	}
	return &c
}

// FuzzRedactSkip: the skip indexes (one per matcher, or one for both
// matchers when the text is its own canonical view) find the same spans as
// looking at every position, final or not, for forms inserted as they are
// and with the case of their letters flipped at random (mixed-case hex).
func FuzzRedactSkip(f *testing.F) {
	f.Add([]byte("0123456789abcdef0123456789abcdef"), int64(1), uint8(3))
	f.Add([]byte(`{"a": "b\u002Bc", "d": "%2B%252B"}`), int64(2), uint8(2))
	f.Add([]byte("data: x\n\ndata: y\n\n"), int64(3), uint8(1))
	f.Add(bytes.Repeat([]byte("ab"), 40), int64(4), uint8(4))
	f.Fuzz(func(t *testing.T, data []byte, seed int64, ninsert uint8) {
		rng := rand.New(rand.NewPCG(uint64(seed), uint64(ninsert)))
		values := make([][]byte, 1+rng.IntN(3))
		for i := range values {
			values[i] = rdFuzzValue(rng)
		}
		r := NewRedactor(values)
		slow := rdNoSkip(r)
		in := append([]byte(nil), data...)
		for range int(ninsert % 6) {
			form := []byte(rdFuzzForms[rng.IntN(len(rdFuzzForms))](values[rng.IntN(len(values))]))
			for i, c := range form {
				if rng.IntN(3) == 0 && (c >= 'a' && c <= 'z' || c >= 'A' && c <= 'Z') {
					form[i] = c ^ 0x20
				}
			}
			if rng.IntN(2) == 0 {
				form = form[:len(form)-rng.IntN(len(form))] // a partial echo, or a cut-off one
			}
			at := rng.IntN(len(in) + 1)
			in = append(in[:at], append(form, in[at:]...)...)
		}
		for _, final := range []bool{false, true} {
			got := slices.Clone(r.findSpans(&scanScratch{}, in, final))
			want := slow.findSpans(&scanScratch{}, in, final)
			if !slices.Equal(got, want) {
				t.Fatalf("final %v: spans %v, looking at every position %v", final, got, want)
			}
		}
	})
}
