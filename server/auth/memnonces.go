package auth

import (
	"context"
	"sync"
	"time"
)

// MemoryNonces is a NonceStore in memory, for a server whose database is
// read-only (the passive of a pair). It forgets nonces when they expire and
// when the process restarts; see docs/SECURITY.md for what that allows.
type MemoryNonces struct {
	mu      sync.Mutex
	seen    map[string]time.Time // fingerprint + "/" + nonce → expiry
	inserts int
}

// NewMemoryNonces returns an empty store.
func NewMemoryNonces() *MemoryNonces {
	return &MemoryNonces{seen: map[string]time.Time{}}
}

// UseNonce implements NonceStore.
func (m *MemoryNonces) UseNonce(_ context.Context, fingerprint, nonce string, expires time.Time) (bool, error) {
	k := fingerprint + "/" + nonce
	m.mu.Lock()
	defer m.mu.Unlock()
	now := time.Now()
	if exp, ok := m.seen[k]; ok && exp.After(now) {
		return false, nil
	}
	m.seen[k] = expires
	if m.inserts++; m.inserts%1024 == 0 {
		for key, exp := range m.seen {
			if !exp.After(now) {
				delete(m.seen, key)
			}
		}
	}
	return true, nil
}
