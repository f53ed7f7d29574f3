//go:build !linux && !darwin

package brokerd

import "github.com/agentsecrets/agentsecrets/internal/errcode"

// DropTo: Windows runs the broker as a service account (docs/broker.md).
func DropTo(name, state, socketDir string) error {
	return errcode.WithHint(errcode.New(errcode.Usage, "--as is for Linux and macOS"), "see docs/broker.md#windows")
}
