package broker

import (
	"bytes"
	"fmt"
	"math/rand/v2"
	"slices"
	"strings"
	"testing"
)

// TestPieceClasses: every byte value at every offset of pieces of every
// length up to three AVX2 blocks and a tail, alone in a piece of hex text,
// is found as what it is: an escape byte, whitespace, or neither.
func TestPieceClasses(t *testing.T) {
	for n := 1; n <= 3*32+7; n++ {
		p := bytes.Repeat([]byte("0123456789abcdef"), 8)[:n]
		if esc, white := pieceClasses(p); esc || white {
			t.Fatalf("%d bytes of hex: esc %v, white %v", n, esc, white)
		}
		for at := range n {
			for v := range 256 {
				c := p[at]
				p[at] = byte(v)
				esc, white := pieceClasses(p)
				p[at] = c
				wantEsc := strings.IndexByte(escapeBytes, byte(v)) >= 0
				wantWhite := strings.IndexByte(whitespaceBytes, byte(v)) >= 0
				if esc != wantEsc || white != wantWhite {
					t.Fatalf("byte %#x at %d of %d: esc %v, white %v; want %v, %v", v, at, n, esc, white, wantEsc, wantWhite)
				}
			}
		}
	}
}

// FuzzPieceClasses: pieceClasses and textClasses agree with eight plain
// searches on any text.
func FuzzPieceClasses(f *testing.F) {
	f.Add([]byte("0123456789abcdef0123456789abcdef"))
	f.Add([]byte(`{"a": "b\u002Bc", "d": "%2B&x=1"}`))
	f.Add(append(bytes.Repeat([]byte("x"), 40), '\r'))
	f.Fuzz(func(t *testing.T, data []byte) {
		wantEsc, wantWhite := classesGeneric(data)
		if esc, white := pieceClasses(data); esc != wantEsc || white != wantWhite {
			t.Fatalf("pieceClasses: %v, %v; want %v, %v", esc, white, wantEsc, wantWhite)
		}
		if esc, white := textClasses(data); esc != wantEsc || white != wantWhite {
			t.Fatalf("textClasses: %v, %v; want %v, %v", esc, white, wantEsc, wantWhite)
		}
	})
}

// TestCleanBlocks: the fused pass finds the blocks that blocks finds in a
// text without escape bytes or whitespace, on texts around and across
// piece boundaries, for shared skip indexes of several strides; one such
// byte anywhere (at, before or after a boundary) makes it report the text
// not clean.
func TestCleanBlocks(t *testing.T) {
	rng := rand.New(rand.NewPCG(13, 13))
	hex := bytes.Repeat([]byte("0123456789abcdef"), 5*classPiece/16)
	sizes := []int{0, 1, 3, 4, 31, 32, 33, classPiece - 1, classPiece, classPiece + 1, classPiece + 3, 2*classPiece + 17, 5 * classPiece}
	for _, vlen := range []int{12, 20, 31, 64} {
		value := []byte(rdRandString(rng, rdAlnum, vlen))
		r := NewRedactor([][]byte{value})
		if r.both.stride <= 1 {
			t.Fatalf("a %d-byte value: no shared skip index", vlen)
		}
		passed := 0
		for _, n := range sizes {
			text := slices.Clone(hex[:n])
			// The value makes blocks pass: at random, across the first
			// boundary, and just after the second (the first probe of a
			// piece after one where none passed).
			for _, i := range []int{rng.IntN(n + 1), classPiece - vlen/2, 2 * classPiece, rng.IntN(n + 1)} {
				if i >= 0 && i+vlen <= n {
					copy(text[i:], value)
				}
			}
			want := r.both.blocks(nil, text)
			got, ok := r.cleanBlocks(&scanScratch{}, text)
			if !ok || !slices.Equal(got.pass, want.pass) || got.stride != want.stride {
				t.Fatalf("stride %d, %d bytes: blocks %v (clean %v), want %v", r.both.stride, n, got.pass, ok, want.pass)
			}
			passed += len(got.pass)
			for _, b := range []byte(escapeBytes + whitespaceBytes) {
				for _, at := range []int{0, classPiece - 1, classPiece, classPiece + 1, n - 1} {
					if at < 0 || at >= n {
						continue
					}
					c := text[at]
					text[at] = b
					if _, ok := r.cleanBlocks(&scanScratch{}, text); ok {
						t.Fatalf("stride %d, %d bytes, %q at %d: clean", r.both.stride, n, b, at)
					}
					text[at] = c
				}
			}
		}
		if passed == 0 {
			t.Fatalf("stride %d: no block passed in any text", r.both.stride)
		}
	}
}

// BenchmarkPieceClasses: a piece of every size textClasses and cleanBlocks
// hand over, without any of the eight bytes (so all of it is searched),
// with this platform's pieceClasses and with the portable one. A fixed
// cost per call shows at size 0.
func BenchmarkPieceClasses(b *testing.B) {
	for _, n := range []int{0, 64, 1 << 10, classPiece} {
		p := bytes.Repeat([]byte("a"), n)
		for _, impl := range []struct {
			name string
			f    func([]byte) (bool, bool)
		}{{"platform", pieceClasses}, {"generic", classesGeneric}} {
			b.Run(fmt.Sprintf("%s/%d", impl.name, n), func(b *testing.B) {
				b.SetBytes(int64(n))
				for b.Loop() {
					if esc, white := impl.f(p); esc || white {
						b.Fatal("found a byte that is not there")
					}
				}
			})
		}
	}
}
