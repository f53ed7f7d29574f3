package brokersvc

import "io/fs"

// owner: Windows files have no uid; Install refuses Windows before it
// asks (see docs/broker.md#windows).
func owner(fs.FileInfo) (uid, gid int, ok bool) { return 0, 0, false }
