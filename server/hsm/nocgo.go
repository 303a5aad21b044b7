//go:build !cgo

package hsm

// This build has no cgo, so no PKCS#11: Open fails with ErrNoPKCS11 and the
// types exist only so that the rest of the server compiles.

// A Token is an open connection to a PKCS#11 token (none without cgo).
type Token struct{}

// A Key is an AES-256 key in a token (none without cgo).
type Key struct{ label string }

// Open returns ErrNoPKCS11: this build has no PKCS#11 support.
func Open(c Config) (*Token, error) { return nil, ErrNoPKCS11 }

// Close does nothing.
func (t *Token) Close() error { return nil }

// Key returns ErrNoPKCS11.
func (t *Token) Key(label string) (*Key, error) { return nil, ErrNoPKCS11 }

// GenerateKey returns ErrNoPKCS11.
func (t *Token) GenerateKey(label string) (*Key, error) { return nil, ErrNoPKCS11 }

// DestroyKey returns ErrNoPKCS11.
func (t *Token) DestroyKey(label string) error { return ErrNoPKCS11 }

// Info returns ErrNoPKCS11.
func (t *Token) Info() (TokenInfo, error) { return TokenInfo{}, ErrNoPKCS11 }

// Label returns the key's label.
func (k *Key) Label() string { return k.label }

// Attributes returns ErrNoPKCS11.
func (k *Key) Attributes() (KeyAttributes, error) { return KeyAttributes{}, ErrNoPKCS11 }

// Seal returns ErrNoPKCS11.
func (k *Key) Seal(plaintext, aad []byte) ([]byte, error) { return nil, ErrNoPKCS11 }

// Open returns ErrNoPKCS11.
func (k *Key) Open(sealed, aad []byte) ([]byte, error) { return nil, ErrNoPKCS11 }
