package server

import (
	"math"
	"sync"
	"time"
)

// Limit is a token bucket: Burst attempts at once, one more every Every.
type Limit struct {
	Burst int
	Every time.Duration
}

// limiter keeps one bucket per key (a client IP or an account email) in
// memory. It is per replica: N replicas behind a balancer allow up to N
// times the rate, which still turns a brute force from millions of guesses
// into a handful. Buckets that have refilled are dropped when the map grows.
type limiter struct {
	limit Limit
	now   func() time.Time

	mu      sync.Mutex
	buckets map[string]*bucket
}

type bucket struct {
	tokens float64
	at     time.Time
}

const limiterMaxKeys = 100_000

func newLimiter(l Limit, now func() time.Time) *limiter {
	return &limiter{limit: l, now: now, buckets: map[string]*bucket{}}
}

// allow takes one token for key; when none is left it reports how long
// until one is.
func (l *limiter) allow(key string) (bool, time.Duration) {
	if l.limit.Burst <= 0 {
		return true, 0
	}
	now := l.now()
	l.mu.Lock()
	defer l.mu.Unlock()
	b := l.buckets[key]
	if b == nil {
		if len(l.buckets) >= limiterMaxKeys {
			l.sweep(now)
		}
		b = &bucket{tokens: float64(l.limit.Burst), at: now}
		l.buckets[key] = b
	}
	b.tokens = math.Min(float64(l.limit.Burst), b.tokens+float64(now.Sub(b.at))/float64(l.limit.Every))
	b.at = now
	if b.tokens >= 1 {
		b.tokens--
		return true, 0
	}
	return false, time.Duration((1 - b.tokens) * float64(l.limit.Every))
}

// sweep drops buckets that are full again: forgetting them changes nothing.
func (l *limiter) sweep(now time.Time) {
	for k, b := range l.buckets {
		if b.tokens+float64(now.Sub(b.at))/float64(l.limit.Every) >= float64(l.limit.Burst) {
			delete(l.buckets, k)
		}
	}
}
