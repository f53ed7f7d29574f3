//go:build !amd64 || purego

package broker

// pieceClasses is textClasses of one piece.
func pieceClasses(p []byte) (esc, white bool) { return classesGeneric(p) }
