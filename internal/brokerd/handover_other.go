//go:build !linux && !darwin

package brokerd

import (
	"net"
	"syscall"

	"github.com/agentsecrets/agentsecrets/internal/errcode"
)

var errNoHandOver = errcode.New(errcode.Unavailable, "the proxy through the broker needs Linux or macOS")

func sendConn(*net.UnixConn, syscall.Conn) error { return errNoHandOver }
func receiveConn(net.Conn) (net.Conn, error)     { return nil, errNoHandOver }
