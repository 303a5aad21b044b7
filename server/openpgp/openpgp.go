// Package openpgp is Trustee's only gateway to OpenPGP. It wraps
// github.com/ProtonMail/go-crypto/openpgp behind a small API: generating and
// reading keys, parsing and validating the public keys clients register with,
// and making and checking detached signatures.
//
// Public keys are validated once, when parsed: a key must be a single v4
// OpenPGP key with a valid self-signature, not revoked, not expired, able to
// sign, and of an accepted algorithm (RSA of at least 2048 bits, or an
// elliptic-curve key such as Ed25519). The parsed key is kept, so verifying a
// signature costs one signature check and no re-parsing.
//
// Everything here interoperates with GnuPG 2.2: keys exported with
// `gpg --armor --export FPR` parse, signatures made with `gpg --detach-sign`
// verify, and keys and signatures made here are accepted by `gpg --import`
// and `gpg --verify`.
package openpgp

import (
	"errors"
	"fmt"
	"strings"
)

// Sentinel errors, usable with errors.Is. Returned errors wrap them with a
// precise reason that is safe to show to the client.
var (
	// ErrPrivateKey means a private (secret) key was sent where a public key
	// was expected.
	ErrPrivateKey = errors.New("this is a private key; send only the public key (gpg --armor --export FPR)")
	// ErrInvalidKey means the data is not a usable OpenPGP public key.
	ErrInvalidKey = errors.New("invalid OpenPGP key")
	// ErrWeakKey means the key's algorithm or size is not accepted.
	ErrWeakKey = errors.New("key algorithm or size not accepted")
	// ErrBadSignature means a signature does not verify.
	ErrBadSignature = errors.New("bad signature")
)

// KeyType names a kind of key Generate can make.
type KeyType string

// Key types Generate supports.
const (
	// RSA4096 is an RSA 4096-bit signing primary key with an RSA 4096-bit
	// encryption subkey.
	RSA4096 KeyType = "rsa4096"
	// Ed25519 is an EdDSA (Ed25519) signing primary key with a Curve25519
	// (cv25519) encryption subkey, as `gpg --quick-gen-key X future-default`
	// makes.
	Ed25519 KeyType = "ed25519"
)

// ParseKeyType parses a key type name, case-insensitively.
func ParseKeyType(s string) (KeyType, error) {
	switch kt := KeyType(strings.ToLower(strings.TrimSpace(s))); kt {
	case RSA4096, Ed25519:
		return kt, nil
	}
	return "", fmt.Errorf("openpgp: unknown key type %q; use %q or %q", s, Ed25519, RSA4096)
}

// String returns the key type's name.
func (kt KeyType) String() string { return string(kt) }
