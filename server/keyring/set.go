package keyring

import (
	"context"
	"errors"
	"fmt"
	"strings"
	"sync/atomic"
)

// ErrUnavailable means the keys needed are held somewhere that cannot be
// reached right now (an HSM): the operation may succeed later.
var ErrUnavailable = errors.New("keyring: key store unavailable")

// Set is the keyring a server uses: its file keyring and, when an HSM is
// configured, the HSM's keys. Each key ID names where its key lives (HSM
// key IDs begin with HSMPrefix), so every deposit unwraps with the key it
// was wrapped with; Wrap uses the current key, which a key rotation moves
// with SetCurrent while the server runs.
type Set struct {
	file    Keyring
	hsm     Keyring
	current atomic.Pointer[string]
}

// HSMPrefix begins the IDs of keys held in an HSM.
const HSMPrefix = "hsm:"

// NewSet combines the file keyring with the HSM's keys (hsm may be nil).
// The file keyring's current key wraps until SetCurrent names another.
func NewSet(file, hsm Keyring) *Set {
	s := &Set{file: file, hsm: hsm}
	id := file.CurrentKeyID()
	s.current.Store(&id)
	return s
}

// SetCurrent makes the key id wrap new data keys; "" goes back to the file
// keyring's current key.
func (s *Set) SetCurrent(id string) error {
	if id == "" {
		id = s.file.CurrentKeyID()
	}
	if strings.HasPrefix(id, HSMPrefix) && s.hsm == nil {
		return fmt.Errorf("key %s is in an HSM, and this server has none configured (keytrustee.conf HSM_MODULE)", id)
	}
	s.current.Store(&id)
	return nil
}

// CurrentKeyID implements Keyring.
func (s *Set) CurrentKeyID() string { return *s.current.Load() }

func (s *Set) of(id string) (Keyring, error) {
	if !strings.HasPrefix(id, HSMPrefix) {
		return s.file, nil
	}
	if s.hsm == nil {
		return nil, fmt.Errorf("deposit was wrapped by HSM key %s, and this server has no HSM configured (keytrustee.conf HSM_MODULE)", id)
	}
	return s.hsm, nil
}

// Wrap implements Keyring.
func (s *Set) Wrap(ctx context.Context, dataKey, aad []byte) (string, []byte, error) {
	id := s.CurrentKeyID()
	kr, err := s.of(id)
	if err != nil {
		return "", nil, err
	}
	if kr == s.file {
		return kr.Wrap(ctx, dataKey, aad)
	}
	return wrapWith(ctx, kr, id, dataKey, aad)
}

// Unwrap implements Keyring.
func (s *Set) Unwrap(ctx context.Context, keyID string, wrapped, aad []byte) ([]byte, error) {
	kr, err := s.of(keyID)
	if err != nil {
		return nil, err
	}
	return kr.Unwrap(ctx, keyID, wrapped, aad)
}

// Preparer is a keyring that can get a key ready before it is first used
// (an HSM's key found in the token), so that a missing key shows at once.
type Preparer interface {
	Prepare(keyID string) error
}

// Prepare gets the key id ready where it lives, if that keyring needs it.
func (s *Set) Prepare(id string) error {
	kr, err := s.of(id)
	if err != nil {
		return err
	}
	if p, ok := kr.(Preparer); ok {
		return p.Prepare(id)
	}
	return nil
}

// KeyWrapper is a keyring that can wrap with any of its keys, not only its
// current one (an HSM's keys, named by ID).
type KeyWrapper interface {
	WrapWith(ctx context.Context, keyID string, dataKey, aad []byte) ([]byte, error)
}

func wrapWith(ctx context.Context, kr Keyring, id string, dataKey, aad []byte) (string, []byte, error) {
	kw, ok := kr.(KeyWrapper)
	if !ok {
		return "", nil, fmt.Errorf("keyring cannot wrap with key %s", id)
	}
	w, err := kw.WrapWith(ctx, id, dataKey, aad)
	return id, w, err
}

// Rewrap opens a data key wrapped under oldID and wraps it under the
// current key, for key rotation and migration.
func (s *Set) Rewrap(ctx context.Context, oldID string, wrapped, aad []byte) (string, []byte, error) {
	dataKey, err := s.Unwrap(ctx, oldID, wrapped, aad)
	if err != nil {
		return "", nil, err
	}
	defer clear(dataKey)
	return s.Wrap(ctx, dataKey, aad)
}
