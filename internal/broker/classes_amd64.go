//go:build !purego

package broker

import "golang.org/x/sys/cpu"

// pieceClasses is textClasses of one piece. With AVX2 it is one pass that
// classifies 32 bytes at a time, where classesGeneric makes eight: on a
// body that has neither kind (a download, base64, hex), those eight
// searches were a third of a streaming proxy's CPU time.
func pieceClasses(p []byte) (esc, white bool) {
	if !cpu.X86.HasAVX2 {
		return classesGeneric(p)
	}
	n := len(p) &^ 31
	esc, white = classesAVX2(p[:n])
	if n < len(p) {
		e, w := classesGeneric(p[n:])
		esc, white = esc || e, white || w
	}
	return esc, white
}

// classesAVX2 is classesGeneric of b, whose length is a multiple of 32
// (classes_amd64.s). Its eight bytes are escapeBytes and whitespaceBytes,
// written into its tables: TestPieceClasses tries every byte value at
// every offset.
//
//go:noescape
func classesAVX2(b []byte) (esc, white bool)
