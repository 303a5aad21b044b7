// Package keyring encrypts deposits at rest with envelope encryption.
//
// Every deposit gets a fresh 256-bit data key. The deposit is sealed with
// AES-256-GCM under that data key, and the data key is wrapped by a
// key-encryption key (KEK) held by a Keyring. The deposit's identity is bound
// into both seals as additional authenticated data, so a ciphertext copied to
// another row (another owner or name) fails to open.
//
// This package ships the file keyring; a PKCS#11 keyring implements the same
// interface.
package keyring

import (
	"context"
	"crypto/aes"
	"crypto/cipher"
	"crypto/rand"
	"errors"
	"fmt"
)

// Keyring wraps and unwraps data keys with a key-encryption key.
type Keyring interface {
	// CurrentKeyID names the KEK that Wrap uses.
	CurrentKeyID() string
	// Wrap seals a data key under the current KEK, returning the KEK's ID.
	Wrap(ctx context.Context, dataKey, aad []byte) (keyID string, wrapped []byte, err error)
	// Unwrap opens a data key sealed by Wrap under the named KEK.
	Unwrap(ctx context.Context, keyID string, wrapped, aad []byte) ([]byte, error)
}

// ErrOpen means a sealed value failed authentication: it was altered, moved
// to another deposit, or sealed under another key.
var ErrOpen = errors.New("keyring: ciphertext failed authentication")

// Sealed is an encrypted deposit as stored.
type Sealed struct {
	KeyID      string // the KEK that wrapped DataKey
	WrappedKey []byte // the data key, wrapped by the KEK
	Ciphertext []byte // nonce || AES-256-GCM(data key, plaintext, aad)
}

// Seal encrypts plaintext under a new data key wrapped by kr.
func Seal(ctx context.Context, kr Keyring, plaintext, aad []byte) (Sealed, error) {
	dataKey := make([]byte, 32)
	if _, err := rand.Read(dataKey); err != nil {
		return Sealed{}, err
	}
	defer clear(dataKey)
	ct, err := sealGCM(dataKey, plaintext, aad)
	if err != nil {
		return Sealed{}, err
	}
	keyID, wrapped, err := kr.Wrap(ctx, dataKey, aad)
	if err != nil {
		return Sealed{}, fmt.Errorf("wrap data key: %w", err)
	}
	return Sealed{KeyID: keyID, WrappedKey: wrapped, Ciphertext: ct}, nil
}

// Open decrypts a value made by Seal with the same aad.
func Open(ctx context.Context, kr Keyring, s Sealed, aad []byte) ([]byte, error) {
	dataKey, err := kr.Unwrap(ctx, s.KeyID, s.WrappedKey, aad)
	if err != nil {
		return nil, err
	}
	defer clear(dataKey)
	return openGCM(dataKey, s.Ciphertext, aad)
}

func sealGCM(key, plaintext, aad []byte) ([]byte, error) {
	aead, err := newGCM(key)
	if err != nil {
		return nil, err
	}
	return sealAEAD(aead, plaintext, aad)
}

// sealAEAD returns nonce || seal(plaintext) with a random nonce.
func sealAEAD(aead cipher.AEAD, plaintext, aad []byte) ([]byte, error) {
	out := make([]byte, aead.NonceSize(), aead.NonceSize()+len(plaintext)+aead.Overhead())
	if _, err := rand.Read(out); err != nil {
		return nil, err
	}
	return aead.Seal(out, out, plaintext, aad), nil
}

func openGCM(key, sealed, aad []byte) ([]byte, error) {
	aead, err := newGCM(key)
	if err != nil {
		return nil, err
	}
	return openAEAD(aead, sealed, aad)
}

func openAEAD(aead cipher.AEAD, sealed, aad []byte) ([]byte, error) {
	if len(sealed) < aead.NonceSize()+aead.Overhead() {
		return nil, ErrOpen
	}
	nonce, ct := sealed[:aead.NonceSize()], sealed[aead.NonceSize():]
	pt, err := aead.Open(nil, nonce, ct, aad)
	if err != nil {
		return nil, ErrOpen
	}
	return pt, nil
}

func newGCM(key []byte) (cipher.AEAD, error) {
	block, err := aes.NewCipher(key)
	if err != nil {
		return nil, err
	}
	return cipher.NewGCM(block)
}
