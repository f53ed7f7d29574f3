package brokerd

import "golang.org/x/sys/unix"

func peerCred(fd int) (Peer, error) {
	c, err := unix.GetsockoptXucred(fd, unix.SOL_LOCAL, unix.LOCAL_PEERCRED)
	if err != nil {
		return Peer{}, err
	}
	p := Peer{UID: c.Uid}
	if c.Ngroups > 0 {
		p.GID = c.Groups[0]
	}
	// LOCAL_PEERPID is newer than LOCAL_PEERCRED; a missing pid is only
	// missing from the audit record.
	if pid, err := unix.GetsockoptInt(fd, unix.SOL_LOCAL, unix.LOCAL_PEERPID); err == nil {
		p.PID = int32(pid)
	}
	return p, nil
}
