package brokerd

import (
	"bytes"
	"encoding/binary"
	"errors"
	"io"
	"testing"
)

func TestFrameRoundTrip(t *testing.T) {
	for _, tt := range []struct {
		name    string
		typ     byte
		payload []byte
	}{
		{"empty", FrameStdin, nil},
		{"small", FrameStdout, []byte("hello")},
		{"one under the single-write size", FrameStderr, bytes.Repeat([]byte{'x'}, 4095)},
		{"split write", FrameAnswer, bytes.Repeat([]byte{'y'}, 4096)},
		{"largest allowed", FrameCall, bytes.Repeat([]byte{0}, MaxFrame)},
	} {
		t.Run(tt.name, func(t *testing.T) {
			var buf bytes.Buffer
			if err := WriteFrame(&buf, tt.typ, tt.payload); err != nil {
				t.Fatal(err)
			}
			if buf.Len() != 5+len(tt.payload) {
				t.Fatalf("wrote %d bytes, want %d", buf.Len(), 5+len(tt.payload))
			}
			typ, got, err := ReadFrame(&buf)
			if err != nil || typ != tt.typ || !bytes.Equal(got, tt.payload) {
				t.Fatalf("read %q (%d bytes), %v; want %q (%d bytes)", typ, len(got), err, tt.typ, len(tt.payload))
			}
			if buf.Len() != 0 {
				t.Fatalf("%d bytes left after one frame", buf.Len())
			}
		})
	}
}

func TestWriteFrameRefusesOversize(t *testing.T) {
	var buf bytes.Buffer
	if err := WriteFrame(&buf, FrameStdout, make([]byte, MaxFrame+1)); !errors.Is(err, ErrFrameTooLarge) {
		t.Fatalf("err = %v, want ErrFrameTooLarge", err)
	}
	if buf.Len() != 0 {
		t.Fatalf("wrote %d bytes of a refused frame", buf.Len())
	}
}

func header(typ byte, n uint32) []byte {
	h := []byte{typ, 0, 0, 0, 0}
	binary.BigEndian.PutUint32(h[1:], n)
	return h
}

func TestReadFrameRefuses(t *testing.T) {
	for _, tt := range []struct {
		name string
		in   []byte
		want error
	}{
		{"nothing", nil, io.EOF},
		{"half a header", []byte{FrameStdin, 0, 0}, io.ErrUnexpectedEOF},
		{"header without its payload", header(FrameStdout, 10), io.ErrUnexpectedEOF},
		{"half a payload", append(header(FrameStdout, 10), "abc"...), io.ErrUnexpectedEOF},
		{"one over the limit", header(FrameRequest, MaxFrame+1), ErrFrameTooLarge},
		{"the largest header", header(FrameRequest, 0xffffffff), ErrFrameTooLarge},
	} {
		t.Run(tt.name, func(t *testing.T) {
			_, _, err := ReadFrame(bytes.NewReader(tt.in))
			if !errors.Is(err, tt.want) {
				t.Fatalf("err = %v, want %v", err, tt.want)
			}
		})
	}
}

// countingReader fails the test if ReadFrame reads past an oversized
// header: the limit is checked before anything is allocated or read.
type countingReader struct {
	r io.Reader
	n int
}

func (c *countingReader) Read(p []byte) (int, error) {
	n, err := c.r.Read(p)
	c.n += n
	return n, err
}

func TestReadFrameOversizeReadsOnlyTheHeader(t *testing.T) {
	cr := &countingReader{r: io.MultiReader(bytes.NewReader(header(FrameStdin, 1<<30)), bytes.NewReader(make([]byte, 1<<20)))}
	if _, _, err := ReadFrame(cr); !errors.Is(err, ErrFrameTooLarge) {
		t.Fatalf("err = %v", err)
	}
	if cr.n != 5 {
		t.Fatalf("read %d bytes, want only the 5-byte header", cr.n)
	}
}

// FuzzReadFrame: any bytes give a frame or an error, never a panic or an
// allocation past MaxFrame, and a frame read back re-encodes to the bytes
// it came from.
func FuzzReadFrame(f *testing.F) {
	f.Add([]byte{})
	f.Add(header(FrameRequest, 2))
	f.Add(append(header(FrameRequest, 2), "{}"...))
	f.Add(header(FrameStdin, 0xffffffff))
	f.Add([]byte("POST /exec HTTP/1.1\r\n"))
	f.Fuzz(func(t *testing.T, in []byte) {
		typ, payload, err := ReadFrame(bytes.NewReader(in))
		if err != nil {
			if payload != nil {
				t.Fatal("payload returned with an error")
			}
			return
		}
		if len(payload) > MaxFrame {
			t.Fatalf("payload of %d bytes", len(payload))
		}
		var out bytes.Buffer
		if err := WriteFrame(&out, typ, payload); err != nil {
			t.Fatal(err)
		}
		if !bytes.Equal(out.Bytes(), in[:out.Len()]) {
			t.Fatal("frame does not re-encode to its input")
		}
	})
}
