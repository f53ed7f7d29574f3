package broker

import "github.com/agentsecrets/agentsecrets/internal/vault"

// Index is the vault's index through the broker's cache: the one index
// cache of a long-running front end (serve.Runtime uses it too).
func (b *Broker) Index() (*vault.Index, error) { return b.currentIndex() }
