package brokerd

import (
	"context"
	"fmt"
	"net"
)

// Peer is who is on the other end of a unix socket connection, as the
// kernel recorded it when the peer connected.
type Peer struct {
	UID uint32
	GID uint32
	// PID is the connecting process (0 where the OS does not say).
	PID int32
}

// PeerOf reads the kernel's credentials of a unix socket's peer.
func PeerOf(c *net.UnixConn) (Peer, error) {
	raw, err := c.SyscallConn()
	if err != nil {
		return Peer{}, fmt.Errorf("peer credentials: %w", err)
	}
	var p Peer
	var credErr error
	if err := raw.Control(func(fd uintptr) { p, credErr = peerCred(int(fd)) }); err != nil {
		return Peer{}, fmt.Errorf("peer credentials: %w", err)
	}
	if credErr != nil {
		return Peer{}, fmt.Errorf("peer credentials: %w", credErr)
	}
	return p, nil
}

type peerKey struct{}

// WithPeer returns ctx carrying the connection's peer.
func WithPeer(ctx context.Context, p Peer) context.Context {
	return context.WithValue(ctx, peerKey{}, p)
}

// PeerFrom returns the peer a connection's context carries.
func PeerFrom(ctx context.Context) (Peer, bool) {
	p, ok := ctx.Value(peerKey{}).(Peer)
	return p, ok
}
