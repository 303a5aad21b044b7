// Package deposit stores clients' opaque deposits: it checks names and
// sizes, seals each deposit under a fresh data key bound to its owner and
// name, and keeps it in the store.
package deposit

import (
	"context"
	"errors"
	"fmt"
	"time"

	"trustee.dev/trustee/server/keyring"
	"trustee.dev/trustee/server/store"
)

// DefaultMaxBytes is the default deposit size limit.
const DefaultMaxBytes = 1 << 20

// MaxNameLen is the longest deposit name.
const MaxNameLen = 255

// Errors for input the caller must change.
var (
	ErrInvalidName = errors.New("invalid deposit name")
	ErrTooLarge    = errors.New("deposit too large")
)

// Store keeps sealed deposits: *store.Store, or a *store.Batcher that
// coalesces concurrent requests.
type Store interface {
	PutDeposit(ctx context.Context, owner, name string, d keyring.Sealed, size int) (time.Time, error)
	GetDeposit(ctx context.Context, owner, name string) (keyring.Sealed, error)
	DeleteDeposit(ctx context.Context, owner, name string) error
	ListDeposits(ctx context.Context, owner string) ([]store.DepositInfo, error)
}

// Service is the deposit domain: store + keyring + limits.
type Service struct {
	Store    Store
	Keyring  keyring.Keyring
	MaxBytes int64
}

// ValidateName checks a deposit name: 1 to 255 characters from letters,
// digits and . _ - @ : = +, not starting with a dot.
func ValidateName(name string) error {
	if name == "" || len(name) > MaxNameLen {
		return fmt.Errorf("%w: it must be 1 to %d characters long", ErrInvalidName, MaxNameLen)
	}
	if name[0] == '.' {
		return fmt.Errorf("%w %q: it must not start with a dot", ErrInvalidName, name)
	}
	for i := 0; i < len(name); i++ {
		c := name[i]
		if !('a' <= c && c <= 'z' || 'A' <= c && c <= 'Z' || '0' <= c && c <= '9' || c == '.' || c == '_' || c == '-' || c == '@' || c == ':' || c == '=' || c == '+') {
			return fmt.Errorf("%w %q: use letters, digits and . _ - @ : = + only", ErrInvalidName, name)
		}
	}
	return nil
}

// AAD binds a sealed deposit to its owner and name.
func AAD(owner, name string) []byte {
	return []byte("kts-deposit-v1\x00" + owner + "\x00" + name)
}

// Put seals and stores a new deposit and returns its creation time as
// stored.
func (s *Service) Put(ctx context.Context, owner, name string, data []byte) (time.Time, error) {
	if err := ValidateName(name); err != nil {
		return time.Time{}, err
	}
	if int64(len(data)) > s.MaxBytes {
		return time.Time{}, fmt.Errorf("%w: %d bytes, the limit is %d", ErrTooLarge, len(data), s.MaxBytes)
	}
	sealed, err := keyring.Seal(ctx, s.Keyring, data, AAD(owner, name))
	if err != nil {
		return time.Time{}, err
	}
	return s.Store.PutDeposit(ctx, owner, name, sealed, len(data))
}

// Get returns a deposit's contents.
func (s *Service) Get(ctx context.Context, owner, name string) ([]byte, error) {
	if err := ValidateName(name); err != nil {
		return nil, err
	}
	sealed, err := s.Store.GetDeposit(ctx, owner, name)
	if err != nil {
		return nil, err
	}
	return keyring.Open(ctx, s.Keyring, sealed, AAD(owner, name))
}

// Delete removes a deposit.
func (s *Service) Delete(ctx context.Context, owner, name string) error {
	if err := ValidateName(name); err != nil {
		return err
	}
	return s.Store.DeleteDeposit(ctx, owner, name)
}

// List returns the owner's deposits.
func (s *Service) List(ctx context.Context, owner string) ([]store.DepositInfo, error) {
	return s.Store.ListDeposits(ctx, owner)
}
