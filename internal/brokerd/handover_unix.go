//go:build linux || darwin

package brokerd

import (
	"errors"
	"fmt"
	"io"
	"net"
	"os"
	"syscall"
)

// sendConn sends conn's descriptor over uc with one byte of data.
func sendConn(uc *net.UnixConn, conn syscall.Conn) error {
	raw, err := conn.SyscallConn()
	if err != nil {
		return err
	}
	var serr error
	if err := raw.Control(func(fd uintptr) {
		_, _, serr = uc.WriteMsgUnix([]byte{0}, syscall.UnixRights(int(fd)), nil)
	}); err != nil {
		return err
	}
	return serr
}

// receiveConn reads the next descriptor a client hands over and returns
// it as a connection (io.EOF: the client closed the hand-over connection). Anything but exactly one socket is
// refused and closed.
func receiveConn(uc net.Conn) (net.Conn, error) {
	u, ok := uc.(*net.UnixConn)
	if !ok {
		return nil, errors.New("not a unix socket connection")
	}
	oob := make([]byte, syscall.CmsgSpace(4*4))
	n, oobn, _, _, err := u.ReadMsgUnix(make([]byte, 1), oob)
	if err != nil {
		return nil, err
	}
	if n == 0 && oobn == 0 {
		return nil, io.EOF
	}
	msgs, err := syscall.ParseSocketControlMessage(oob[:oobn])
	if err != nil {
		return nil, fmt.Errorf("receive the connection: %w", err)
	}
	var fds []int
	for _, m := range msgs {
		if got, err := syscall.ParseUnixRights(&m); err == nil {
			fds = append(fds, got...)
		}
	}
	if len(fds) != 1 {
		for _, fd := range fds {
			syscall.Close(fd)
		}
		return nil, fmt.Errorf("receive the connection: %d descriptors, want 1", len(fds))
	}
	f := os.NewFile(uintptr(fds[0]), "proxy connection")
	defer f.Close()
	c, err := net.FileConn(f)
	if err != nil {
		return nil, fmt.Errorf("receive the connection: %w", err)
	}
	if _, ok := c.(*net.TCPConn); !ok {
		c.Close()
		return nil, errors.New("receive the connection: not a TCP connection")
	}
	return c, nil
}
