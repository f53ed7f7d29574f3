package broker

import (
	"bytes"
	"fmt"
	"io"
	"math/rand/v2"
	"slices"
	"testing"
	"time"
)

// TestRedactLargeChunkBoundaries: readers read and release up to
// redactReadSize (2 MB) at a time, starting at redactFirstRead (32 KB) and
// doubling, and a StreamReader reads streamChunkSize (256 KB). A value, in
// each of its forms, that straddles one of those units (the source offsets
// 32, 96, 128, 224 and 256 KB, and a source that delivers exactly 128 or
// 256 KB per Read), or ends the body, whole or cut off, comes out as from
// the one-shot Bytes: redacted, through Read and through WriteTo, from a
// Reader and a StreamReader. So does a value across the units a Reader
// reaches only later (480, 992, 2016 and 4064 KB, and a source that
// delivers exactly 2 MB per Read), in a few of its forms: the bodies are
// large.
func TestRedactLargeChunkBoundaries(t *testing.T) {
	rng := rand.New(rand.NewPCG(13, 13))
	v := rdCanary(rng)
	r := NewRedactor([][]byte{v})
	filler := func(n int) []byte { return []byte(rdRandString(rng, rdAlnum+" ", n)) }
	type source struct {
		name string
		mk   func(in []byte) io.Reader
	}
	chunked := func(name string, size int) source {
		return source{name, func(in []byte) io.Reader { return &rdChunkReader{data: in, sizes: []int{size}} }}
	}
	whole := source{"whole", func(in []byte) io.Reader { return bytes.NewReader(in) }}
	check := func(name string, in []byte, sources ...source) {
		t.Helper()
		want, hit := r.Bytes(in)
		if !hit {
			t.Fatalf("%s: Bytes found no echo", name)
		}
		for _, src := range sources {
			got, gotHit := rdStream(t, r, src.mk(in), 32<<10)
			if !bytes.Equal(got, want) || !gotHit {
				t.Errorf("%s, %s, Read: output differs from Bytes (hit %v)", name, src.name, gotHit)
			}
			var out bytes.Buffer
			rr := r.Reader(src.mk(in))
			if _, err := io.Copy(&out, rr); err != nil || !bytes.Equal(out.Bytes(), want) || !rr.Redacted() {
				t.Errorf("%s, %s, WriteTo: output differs from Bytes (%v)", name, src.name, err)
			}
			rr.Release()
			sr := r.StreamReader(src.mk(in), time.Hour)
			out.Reset()
			if _, err := io.Copy(&out, sr); err != nil || !bytes.Equal(out.Bytes(), want) || !sr.Redacted() {
				t.Errorf("%s, %s, StreamReader: output differs from Bytes (%v)", name, src.name, err)
			}
			sr.Release()
		}
	}
	small := []source{whole, chunked("128KB reads", 128<<10), chunked("256KB reads", 256<<10)}
	for _, form := range rdFormTable {
		f := []byte(form.enc(v))
		for _, at := range []int{32 << 10, 96 << 10, 128 << 10, 224 << 10, 256 << 10} {
			for _, cut := range []int{1, len(f) / 2, len(f) - 1} {
				in := append(append(filler(at-cut), f...), filler(4096)...)
				check(fmt.Sprintf("%s across %d KB (%d bytes before)", form.name, at>>10, cut), in, small...)
			}
			// The body ends with the form, or with its first half (the
			// start of an echo cut off by the end).
			check(fmt.Sprintf("%s ends a %d KB body", form.name, at>>10), append(filler(at-len(f)), f...), small...)
			if len(f)/2 >= trailingMin {
				check(fmt.Sprintf("%s half ends a %d KB body", form.name, at>>10), append(filler(at-len(f)/2), f[:len(f)/2]...), small...)
			}
		}
	}
	large := []source{whole, chunked("2MB reads", 2<<20)}
	for _, form := range rdFormTable[:2] {
		f := []byte(form.enc(v))
		for _, at := range []int{480 << 10, 992 << 10, 2016 << 10, 4064 << 10} {
			in := append(append(filler(at-len(f)/2), f...), filler(4096)...)
			check(fmt.Sprintf("%s across %d KB", form.name, at>>10), in, large...)
		}
	}
}

// TestRedactReaderWritesLargeUnits: a body that keeps filling a Reader's
// reads reaches WriteTo's writer in units of 2 MB (less the hold-back), not
// the 256 KB of before: fewer, larger socket calls on both sides are most
// of what a proxy saves on a big body (see redactReadSize). The
// StreamReader's chunks stay at 256 KB: it holds two from the start.
func TestRedactReaderWritesLargeUnits(t *testing.T) {
	rng := rand.New(rand.NewPCG(15, 15))
	r := NewRedactor([][]byte{rdCanary(rng)})
	body := []byte(rdRandString(rng, rdAlnum, 9<<20))
	rr := r.Reader(bytes.NewReader(body))
	defer rr.Release()
	var w rdWriteSizes
	if n, err := rr.WriteTo(&w); err != nil || n != int64(len(body)) {
		t.Fatalf("WriteTo: %d, %v", n, err)
	}
	if got := slices.Max(w.sizes); got < 2<<20-r.hold {
		t.Errorf("largest write %d bytes, want at least 2 MB less the hold-back (%d); writes %v", got, 2<<20-r.hold, w.sizes)
	}
	if got := len(r.getChunk()); got != 256<<10 {
		t.Errorf("StreamReader chunk of %d bytes, want 256 KB", got)
	}
}

// rdWriteSizes records the size of every Write.
type rdWriteSizes struct{ sizes []int }

func (w *rdWriteSizes) Write(p []byte) (int, error) {
	w.sizes = append(w.sizes, len(p))
	return len(p), nil
}

// TestRedactReleaseWipesWhatWasWritten: Release wipes only as far as the
// reader wrote (and a source may have scribbled), so a pooled buffer must
// come back all zero, for a Reader and a StreamReader alike.
func TestRedactReleaseWipesWhatWasWritten(t *testing.T) {
	rng := rand.New(rand.NewPCG(14, 14))
	v := rdCanary(rng)
	r := NewRedactor([][]byte{v})
	body := append(append([]byte(rdRandString(rng, rdAlnum, 300<<10)), v...), rdRandString(rng, rdAlnum, 1000)...)
	for _, mk := range []func() *RedactReader{
		func() *RedactReader { return r.Reader(bytes.NewReader(body)) },
		func() *RedactReader { return r.StreamReader(bytes.NewReader(body), time.Hour) },
		// A source that writes all it is offered, and reports less.
		func() *RedactReader { return r.Reader(&rdScribbler{data: body}) },
	} {
		rr := mk()
		if _, err := io.Copy(io.Discard, rr); err != nil {
			t.Fatal(err)
		}
		rr.Release()
		b, ok := r.bufs.Get().(*readerBufs)
		if !ok {
			t.Skip("the pool dropped the buffers")
		}
		if i := bytes.IndexFunc(b.in, func(c rune) bool { return c != 0 }); i >= 0 {
			t.Fatalf("window buffer not wiped at %d of %d", i, len(b.in))
		}
		if i := bytes.IndexFunc(b.out[:cap(b.out)], func(c rune) bool { return c != 0 }); i >= 0 {
			t.Fatalf("output buffer not wiped at %d", i)
		}
	}
}

// rdScribbler fills all of p with 'x' and then reports at most 1000 bytes
// of data, as io.Reader allows.
type rdScribbler struct{ data []byte }

func (s *rdScribbler) Read(p []byte) (int, error) {
	if len(s.data) == 0 {
		return 0, io.EOF
	}
	for i := range p {
		p[i] = 'x'
	}
	n := copy(p[:min(len(p), 1000)], s.data)
	s.data = s.data[n:]
	return n, nil
}

// TestRedactWriteTo: WriteTo continues where Read stopped, and reports the
// writer's failure, and a short write, as its error.
func TestRedactWriteTo(t *testing.T) {
	v := []byte("sk_live_0123456789abcdefghijkl")
	in := []byte("head " + string(v) + " tail")
	r := NewRedactor([][]byte{v})
	want, _ := r.Bytes(in)
	rr := r.Reader(bytes.NewReader(in))
	head := make([]byte, 3)
	if n, err := rr.Read(head); err != nil || n != 3 {
		t.Fatal(n, err)
	}
	var out bytes.Buffer
	if n, err := rr.WriteTo(&out); err != nil || int(n) != len(want)-3 || string(head)+out.String() != string(want) {
		t.Fatalf("WriteTo after Read: %d %v %q", n, err, string(head)+out.String())
	}
	rr.Release()
	for _, w := range []io.Writer{rdFailWriter{io.ErrClosedPipe}, rdFailWriter{}} {
		rr := r.Reader(bytes.NewReader(in))
		if _, err := rr.WriteTo(w); err == nil {
			t.Errorf("%T: no error", w)
		}
		rr.Release()
	}
}

// rdFailWriter takes one byte and fails with err (nil: a short write).
type rdFailWriter struct{ err error }

func (f rdFailWriter) Write(p []byte) (int, error) { return min(len(p), 1), f.err }

// TestRedactReaderLongBodies: bodies of several windows, with and without
// whitespace (so that the canonical view is a copy, or the text itself),
// with up to 200 echoes, from sources that split them at random, come out
// of Read, WriteTo and a StreamReader as from Bytes. A reader hands out
// what no echo touched straight from its window, and slides the window
// only once that is out.
func TestRedactReaderLongBodies(t *testing.T) {
	for seed := range 40 {
		rng := rand.New(rand.NewPCG(uint64(seed), 7))
		values := rdBenchValues(rng, 1+rng.IntN(4))
		body := rdBenchBody(rng, 300<<10+rng.IntN(800<<10), values, rng.IntN(200))
		if seed%2 == 0 {
			body = bytes.ReplaceAll(bytes.ReplaceAll(body, []byte(" "), []byte("_")), []byte("\n"), []byte("."))
		}
		r := NewRedactor(values)
		want, hit := r.Bytes(body)
		got, gotHit := rdStream(t, r, &rdChunkReader{data: body, sizes: []int{1 + rng.IntN(100000), 7, 300000}}, 1+rng.IntN(70000))
		if !bytes.Equal(got, want) || gotHit != hit {
			t.Fatalf("seed %d: Read: output differs from Bytes (hit %v, want %v)", seed, gotHit, hit)
		}
		var out bytes.Buffer
		rr := r.Reader(&rdChunkReader{data: body, sizes: []int{1 + rng.IntN(100000)}})
		if _, err := io.Copy(&out, rr); err != nil || !bytes.Equal(out.Bytes(), want) {
			t.Fatalf("seed %d: WriteTo: output differs from Bytes (%v)", seed, err)
		}
		rr.Release()
		out.Reset()
		sr := r.StreamReader(&rdChunkReader{data: body, sizes: []int{1 + rng.IntN(100000)}}, time.Hour)
		if _, err := io.Copy(&out, sr); err != nil || !bytes.Equal(out.Bytes(), want) {
			t.Fatalf("seed %d: StreamReader: output differs from Bytes (%v)", seed, err)
		}
		sr.Release()
	}
}
