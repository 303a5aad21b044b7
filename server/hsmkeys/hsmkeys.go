// Package hsmkeys keeps Trustee's keys in an HSM: the deposit keyring whose
// key-encryption keys are AES-256 keys inside a PKCS#11 token, and the
// sealing of the state directory's secrets (the server's OpenPGP key, the
// session key, the file keyring) under a token key, so that a copy of the
// state directory and the database opens nothing without the token.
package hsmkeys

import (
	"context"
	"errors"
	"fmt"
	"strings"
	"sync"
	"time"

	"trustee.dev/trustee/server/hsm"
	"trustee.dev/trustee/server/keyring"
)

// Keyring wraps deposit data keys with keys of a token. Its key IDs are
// keyring.HSMPrefix followed by the key's label.
type Keyring struct {
	tok   *hsm.Token
	desc  string // module and token, for messages
	mu    sync.Mutex
	keys  map[string]*hsm.Key
	cache *dataKeyCache
	now   func() time.Time
}

// NewKeyring returns the keyring of tok; desc names the module and token in
// errors. Every wrap and unwrap is done by the token.
func NewKeyring(tok *hsm.Token, desc string) *Keyring {
	return &Keyring{tok: tok, desc: desc, keys: map[string]*hsm.Key{}, now: time.Now}
}

// CacheDataKeys keeps data keys that went through the token in memory for
// ttl (at most max of them), so that a deposit read again within ttl costs
// no HSM call. It trades some exposure for speed: a dump of the server's
// memory holds the data keys of deposits used in the last ttl (never a
// key-encryption key, and nothing reaches disk). ttl 0 turns it off.
func (k *Keyring) CacheDataKeys(ttl time.Duration, max int) {
	k.cache = newDataKeyCache(ttl, max)
}

// ID returns the key ID of the token key label.
func ID(label string) string { return keyring.HSMPrefix + label }

// Label returns the token key label of a key ID.
func Label(id string) (string, bool) { return strings.CutPrefix(id, keyring.HSMPrefix) }

func (k *Keyring) key(id string) (*hsm.Key, error) {
	label, ok := Label(id)
	if !ok {
		return nil, fmt.Errorf("key %s is not an HSM key", id)
	}
	k.mu.Lock()
	defer k.mu.Unlock()
	if key := k.keys[label]; key != nil {
		return key, nil
	}
	key, err := k.tok.Key(label)
	if err != nil {
		return nil, k.explain(err, label)
	}
	k.keys[label] = key
	return key, nil
}

// explain turns token errors into keyring errors that name the token.
func (k *Keyring) explain(err error, label string) error {
	switch {
	case errors.Is(err, hsm.ErrUnavailable):
		return fmt.Errorf("%w: HSM %s: %v", keyring.ErrUnavailable, k.desc, err)
	case errors.Is(err, hsm.ErrNoKey):
		return fmt.Errorf("HSM %s has no key %q: deposits wrapped with it need that key (the same token, or one holding a copy of it)", k.desc, label)
	case errors.Is(err, hsm.ErrAuth):
		return keyring.ErrOpen
	}
	return fmt.Errorf("HSM %s: %w", k.desc, err)
}

// Prepare finds the key id in the token ahead of its first use.
func (k *Keyring) Prepare(id string) error {
	_, err := k.key(id)
	return err
}

// CurrentKeyID implements keyring.Keyring: the HSM keyring has no current
// key of its own; the keyring.Set decides which key wraps.
func (k *Keyring) CurrentKeyID() string { return "" }

// Wrap implements keyring.Keyring; use WrapWith.
func (k *Keyring) Wrap(context.Context, []byte, []byte) (string, []byte, error) {
	return "", nil, errors.New("the HSM keyring wraps only with a named key (WrapWith)")
}

// WrapWith seals a data key inside the token under the key id.
func (k *Keyring) WrapWith(_ context.Context, id string, dataKey, aad []byte) ([]byte, error) {
	key, err := k.key(id)
	if err != nil {
		return nil, err
	}
	w, err := key.Seal(dataKey, keyring.WrapAAD(id, aad))
	if err != nil {
		return nil, k.explain(err, key.Label())
	}
	k.cache.put(cacheKey(id, w, aad), dataKey, k.now())
	return w, nil
}

// Unwrap opens a data key inside the token.
func (k *Keyring) Unwrap(_ context.Context, id string, wrapped, aad []byte) ([]byte, error) {
	ck := cacheKey(id, wrapped, aad)
	if dk := k.cache.get(ck, k.now()); dk != nil {
		return dk, nil
	}
	key, err := k.key(id)
	if err != nil {
		return nil, err
	}
	dk, err := key.Open(wrapped, keyring.WrapAAD(id, aad))
	if err != nil {
		return nil, k.explain(err, key.Label())
	}
	k.cache.put(ck, dk, k.now())
	return dk, nil
}

// Check wraps and unwraps a test value with the key id: the token answers
// and the key works.
func (k *Keyring) Check(ctx context.Context, id string) error {
	probe := []byte("kts-hsm-self-test")
	w, err := k.WrapWith(ctx, id, probe, nil)
	if err != nil {
		return err
	}
	back, err := k.Unwrap(ctx, id, w, nil)
	if err != nil {
		return err
	}
	if string(back) != string(probe) {
		return fmt.Errorf("HSM %s: key %s returned another value than it sealed", k.desc, id)
	}
	return nil
}
