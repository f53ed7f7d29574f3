//go:build !unix

package osuser

import "os/user"

// os/user asks the system directly where there is no unix name service.
func nsUser(string) (*user.User, bool)   { return nil, false }
func nsGroupIds(string) ([]string, bool) { return nil, false }
func nsGroup(string) (*user.Group, bool) { return nil, false }
