package server

import "sync"

// pullCache keeps, per project, the encoded answer to a full pull (nothing
// known) and the number of versions in it. Versions are only ever added,
// never changed or deleted, and a full pull holds every version up to the
// heads it read, so an equal version count in the database means exactly
// the versions of the cached answer: a request that counts the same
// number may send the cached bytes instead of reading and encoding every
// version again. The count is read on every request, so a push through
// any replica is a miss and nothing stale is served; authentication and
// membership are checked before the cache is consulted, so a revocation
// takes effect at once. The cache holds only ciphertext, sent only to
// members.
type pullCache struct {
	mu      sync.Mutex
	entries map[pullKey]pullEntry
	size    int // bytes of all bodies
	budget  int
}

type pullKey struct{ ws, project string }

type pullEntry struct {
	versions int
	body     []byte
}

// pullCacheBudget bounds the bytes of cached answers: a 200-secret
// project's answer is a few hundred kB.
const pullCacheBudget = 64 << 20

func newPullCache(budget int) *pullCache {
	return &pullCache{entries: map[pullKey]pullEntry{}, budget: budget}
}

// get returns the cached answer for the project holding versions versions.
func (c *pullCache) get(ws, project string, versions int) ([]byte, bool) {
	c.mu.Lock()
	defer c.mu.Unlock()
	e, ok := c.entries[pullKey{ws, project}]
	if !ok || e.versions != versions {
		return nil, false
	}
	return e.body, true
}

// put stores the answer holding versions versions, replacing the project's
// older one and evicting others while over budget. The caller must not
// change body afterwards.
func (c *pullCache) put(ws, project string, versions int, body []byte) {
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
	c.entries[k] = pullEntry{versions: versions, body: body}
	c.size += len(body)
}
