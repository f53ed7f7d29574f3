package server

import (
	"maps"
	"sync"
)

// pullCache keeps, per project, the encoded answer to a full pull (nothing
// known) at the heads it was built from. Versions are never changed once
// written, so the heads determine that answer exactly: a request that read
// the same heads from the database may send the cached bytes instead of
// reading and encoding every version again. The heads are still read on
// every request, so a push through any replica (a new head) is a miss and
// nothing stale is served; authentication and membership are checked
// before the cache is consulted, so a revocation takes effect at once.
// The cache holds only ciphertext the caller is entitled to.
type pullCache struct {
	mu      sync.Mutex
	entries map[pullKey]pullEntry
	size    int // bytes of all bodies
	budget  int
}

type pullKey struct{ ws, project string }

type pullEntry struct {
	heads map[string]int
	body  []byte
}

// pullCacheBudget bounds the bytes of cached answers: a 200-secret
// project's answer is a few hundred kB.
const pullCacheBudget = 64 << 20

func newPullCache(budget int) *pullCache {
	return &pullCache{entries: map[pullKey]pullEntry{}, budget: budget}
}

// get returns the cached answer for the project at exactly these heads.
func (c *pullCache) get(ws, project string, heads map[string]int) ([]byte, bool) {
	c.mu.Lock()
	defer c.mu.Unlock()
	e, ok := c.entries[pullKey{ws, project}]
	if !ok || !maps.Equal(e.heads, heads) {
		return nil, false
	}
	return e.body, true
}

// put stores the answer built at heads, replacing the project's older one
// and evicting others while over budget. The caller must not change heads
// or body afterwards.
func (c *pullCache) put(ws, project string, heads map[string]int, body []byte) {
	if len(body) > c.budget {
		return
	}
	c.mu.Lock()
	defer c.mu.Unlock()
	k := pullKey{ws, project}
	if old, ok := c.entries[k]; ok {
		c.size -= len(old.body)
		delete(c.entries, k)
	}
	for k2, e := range c.entries { // map order: an arbitrary victim
		if c.size+len(body) <= c.budget {
			break
		}
		c.size -= len(e.body)
		delete(c.entries, k2)
	}
	c.entries[k] = pullEntry{heads: heads, body: body}
	c.size += len(body)
}
