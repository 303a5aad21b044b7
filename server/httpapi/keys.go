package httpapi

import (
	"context"
	"errors"
	"fmt"
	"sync"

	"trustee.dev/trustee/server/auth"
	"trustee.dev/trustee/server/openpgp"
	"trustee.dev/trustee/server/store"
)

// keyCache looks clients up for signature checks. A client's key never
// changes once registered, so parsed keys are cached; the state is read from
// the database on every call so that disabling a client takes effect at once.
type keyCache struct {
	store *store.Store
	mu    sync.Mutex
	keys  map[string]*openpgp.PublicKey
}

// maxCachedKeys bounds the cache; when full it starts over.
const maxCachedKeys = 10000

// LookupClient implements auth.KeyLookup.
func (k *keyCache) LookupClient(ctx context.Context, fingerprint string) (auth.ClientKey, error) {
	c, err := k.store.Client(ctx, fingerprint)
	if errors.Is(err, store.ErrNotFound) {
		return auth.ClientKey{}, auth.ErrUnknownClient
	}
	if err != nil {
		return auth.ClientKey{}, err
	}
	k.mu.Lock()
	key := k.keys[fingerprint]
	k.mu.Unlock()
	if key == nil {
		key, err = openpgp.ParsePublic(c.PublicKey)
		if err != nil {
			return auth.ClientKey{}, fmt.Errorf("stored key of client %s: %w", fingerprint, err)
		}
		k.mu.Lock()
		if len(k.keys) >= maxCachedKeys {
			k.keys = map[string]*openpgp.PublicKey{}
		}
		k.keys[fingerprint] = key
		k.mu.Unlock()
	}
	return auth.ClientKey{Key: key, Active: c.State == store.StateActive, OrgExpires: c.OrgExpires}, nil
}
