//go:build !linux && !darwin

package brokerd

import "errors"

// peerCred: elsewhere (Windows uses a named pipe, docs/broker.md) there is
// no peer identity, so the broker refuses every connection.
func peerCred(int) (Peer, error) {
	return Peer{}, errors.New("this OS does not report a unix socket peer's credentials")
}
