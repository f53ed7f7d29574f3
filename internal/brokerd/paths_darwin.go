package brokerd

// The standard places of an installed broker (docs/broker.md). The state
// directory is the broker user's AGENTSECRETS_HOME.
const (
	DefaultSocket = "/var/run/agentsecrets/broker.sock"
	DefaultState  = "/var/db/agentsecrets"
	DefaultUser   = "_agentsecrets"
)
