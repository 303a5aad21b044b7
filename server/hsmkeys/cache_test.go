package hsmkeys

import (
	"bytes"
	"testing"
	"time"
)

func TestDataKeyCacheForgetsAfterItsTimeAndStaysBounded(t *testing.T) {
	now := time.Unix(1_000_000, 0)
	c := newDataKeyCache(time.Minute, 8)
	dk := []byte("0123456789abcdef0123456789abcdef")
	k := cacheKey("hsm:kts-kek-1", []byte("wrapped"), []byte("owner/name"))
	c.put(k, dk, now)
	if got := c.get(k, now.Add(59*time.Second)); !bytes.Equal(got, dk) {
		t.Fatalf("get within the time = %q", got)
	}
	for _, other := range [][32]byte{
		cacheKey("hsm:kts-kek-2", []byte("wrapped"), []byte("owner/name")),
		cacheKey("hsm:kts-kek-1", []byte("wrapped"), []byte("owner/other")),
		cacheKey("hsm:kts-kek-1", []byte("wrappeD"), []byte("owner/name")),
	} {
		if c.get(other, now) != nil {
			t.Fatal("a key was found for another key ID, deposit or wrapping")
		}
	}
	if got := c.get(k, now.Add(61*time.Second)); got != nil {
		t.Fatal("a data key was returned after its time")
	}

	var kept [][]byte
	for i := range 20 {
		k := cacheKey("id", []byte{byte(i)}, nil)
		c.put(k, dk, now)
		kept = append(kept, c.m[k].key)
	}
	if c.len() > 8 {
		t.Fatalf("the cache holds %d entries, more than its 8", c.len())
	}
	zeroed := 0
	for _, b := range kept {
		if bytes.Equal(b, make([]byte, len(dk))) {
			zeroed++
		}
	}
	if zeroed < 20-8 {
		t.Fatalf("%d evicted keys were zeroed, want at least %d", zeroed, 20-8)
	}
	if newDataKeyCache(0, 8) != nil {
		t.Fatal("a zero time still caches")
	}
}
