package hsmkeys

import (
	"crypto/sha256"
	"sync"
	"time"
)

// dataKeyCache keeps data keys that went through the HSM (wrapped or
// unwrapped) in memory for a short while, so that a deposit read again soon
// costs no HSM call. An entry is found only with the same key ID, wrapped
// bytes and deposit identity it was made from. Entries older than ttl are
// never returned, and at most max are kept; evicted keys are zeroed.
type dataKeyCache struct {
	ttl time.Duration
	max int
	mu  sync.Mutex
	m   map[[32]byte]cachedKey
}

type cachedKey struct {
	key []byte
	at  time.Time
}

func newDataKeyCache(ttl time.Duration, max int) *dataKeyCache {
	if ttl <= 0 || max <= 0 {
		return nil
	}
	return &dataKeyCache{ttl: ttl, max: max, m: make(map[[32]byte]cachedKey)}
}

func cacheKey(id string, wrapped, aad []byte) [32]byte {
	h := sha256.New()
	h.Write([]byte(id))
	h.Write([]byte{0})
	h.Write(wrapped)
	h.Write([]byte{0})
	h.Write(aad)
	var k [32]byte
	h.Sum(k[:0])
	return k
}

// get returns a copy of the data key, or nil.
func (c *dataKeyCache) get(k [32]byte, now time.Time) []byte {
	if c == nil {
		return nil
	}
	c.mu.Lock()
	defer c.mu.Unlock()
	e, ok := c.m[k]
	if !ok {
		return nil
	}
	if now.Sub(e.at) > c.ttl {
		clear(e.key)
		delete(c.m, k)
		return nil
	}
	return append([]byte(nil), e.key...)
}

// put keeps a copy of the data key.
func (c *dataKeyCache) put(k [32]byte, dataKey []byte, now time.Time) {
	if c == nil {
		return
	}
	c.mu.Lock()
	defer c.mu.Unlock()
	if len(c.m) >= c.max {
		c.evict(now)
	}
	if old, ok := c.m[k]; ok {
		clear(old.key)
	}
	c.m[k] = cachedKey{key: append([]byte(nil), dataKey...), at: now}
}

// evict drops expired entries and, if the cache is still full, a quarter
// of the rest.
func (c *dataKeyCache) evict(now time.Time) {
	for k, e := range c.m {
		if now.Sub(e.at) > c.ttl {
			clear(e.key)
			delete(c.m, k)
		}
	}
	for k, e := range c.m {
		if len(c.m) < c.max*3/4 {
			return
		}
		clear(e.key)
		delete(c.m, k)
	}
}

// len is the number of entries, for tests.
func (c *dataKeyCache) len() int {
	if c == nil {
		return 0
	}
	c.mu.Lock()
	defer c.mu.Unlock()
	return len(c.m)
}
