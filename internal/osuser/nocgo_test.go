//go:build !cgo

package osuser

const builtWithCgo = false
