package openpgp

import (
	"bytes"
	"crypto"
	"fmt"
	"io"
	"time"

	"github.com/ProtonMail/go-crypto/openpgp"
	"github.com/ProtonMail/go-crypto/openpgp/armor"
	"github.com/ProtonMail/go-crypto/openpgp/packet"
)

// maxPrivateKeySize bounds the armored private key ReadPrivate accepts.
const maxPrivateKeySize = 256 << 10

// PrivateKey is an OpenPGP private key able to sign. It is safe for
// concurrent use. Its key material is never printed.
type PrivateKey struct {
	entity *openpgp.Entity
	public *PublicKey
}

// Generate makes a new v4 key with one user ID built from name and email
// (either may be empty, neither may contain any of "()<>" or NUL): a primary
// key that signs and certifies, and an encryption subkey, so that GnuPG can
// use the key as any other. RSA 4096 generation takes seconds.
func Generate(kt KeyType, name, email string) (*PrivateKey, error) {
	cfg := &packet.Config{DefaultHash: crypto.SHA256, DefaultCipher: packet.CipherAES256}
	switch kt {
	case RSA4096:
		cfg.Algorithm = packet.PubKeyAlgoRSA
		cfg.RSABits = 4096
	case Ed25519:
		cfg.Algorithm = packet.PubKeyAlgoEdDSA
		cfg.Curve = packet.Curve25519
	default:
		return nil, fmt.Errorf("openpgp: unknown key type %q; use %q or %q", kt, Ed25519, RSA4096)
	}
	e, err := openpgp.NewEntity(name, "", email, cfg)
	if err != nil {
		return nil, fmt.Errorf("openpgp: generating %s key: %w", kt, err)
	}
	return newPrivateKey(e)
}

// ReadPrivate reads an armored, unencrypted private key holding exactly one
// key, as `gpg --armor --export-secret-keys FPR` writes it for a key without a
// passphrase.
func ReadPrivate(armored []byte) (*PrivateKey, error) {
	if len(armored) > maxPrivateKeySize {
		return nil, fmt.Errorf("%w: private key block is larger than %d KiB", ErrInvalidKey, maxPrivateKeySize>>10)
	}
	block, err := armor.Decode(bytes.NewReader(armored))
	if err != nil {
		return nil, fmt.Errorf("%w: expected an armored %s: %v", ErrInvalidKey, openpgp.PrivateKeyType, err)
	}
	if block.Type != openpgp.PrivateKeyType {
		return nil, fmt.Errorf("%w: expected a %s, got a %s", ErrInvalidKey, openpgp.PrivateKeyType, block.Type)
	}
	packets := packet.NewReader(block.Body)
	e, err := openpgp.ReadEntity(packets)
	if err != nil {
		return nil, fmt.Errorf("%w: %v", ErrInvalidKey, err)
	}
	if _, err := packets.Next(); err != io.EOF {
		return nil, fmt.Errorf("%w: the block must hold exactly one private key", ErrInvalidKey)
	}
	if e.PrivateKey == nil {
		return nil, fmt.Errorf("%w: the block holds no private key material", ErrInvalidKey)
	}
	k, err := newPrivateKey(e)
	if err != nil {
		return nil, err
	}
	signing, ok := e.SigningKey(time.Now())
	switch {
	case !ok:
		return nil, fmt.Errorf("%w: the key has no usable signing key", ErrInvalidKey)
	case signing.PrivateKey == nil || signing.PrivateKey.Dummy():
		return nil, fmt.Errorf("%w: the private part of the signing key is missing", ErrInvalidKey)
	case signing.PrivateKey.Encrypted:
		return nil, fmt.Errorf("%w: the private key is protected by a passphrase; remove it (gpg --passwd FPR) or export it unprotected", ErrInvalidKey)
	}
	return k, nil
}

// newPrivateKey derives and validates the public half of e.
func newPrivateKey(e *openpgp.Entity) (*PrivateKey, error) {
	var buf bytes.Buffer
	if err := e.Serialize(&buf); err != nil {
		return nil, fmt.Errorf("openpgp: serializing public key: %w", err)
	}
	pub, err := parseEntity(buf.Bytes(), time.Now(), true)
	if err != nil {
		return nil, err
	}
	return &PrivateKey{entity: e, public: pub}, nil
}

// Public returns the public half of the key.
func (k *PrivateKey) Public() *PublicKey { return k.public }

// Armor returns the armored, unencrypted private key. Treat it as a secret.
func (k *PrivateKey) Armor() ([]byte, error) {
	var buf bytes.Buffer
	w, err := armor.Encode(&buf, openpgp.PrivateKeyType, nil)
	if err != nil {
		return nil, err
	}
	if err := k.entity.SerializePrivateWithoutSigning(w, nil); err != nil {
		return nil, fmt.Errorf("openpgp: serializing private key: %w", err)
	}
	if err := w.Close(); err != nil {
		return nil, err
	}
	buf.WriteByte('\n')
	return buf.Bytes(), nil
}

// SignDetached returns a binary detached signature over msg made with SHA-256
// by the key's signing key, as `gpg --detach-sign` makes it.
func (k *PrivateKey) SignDetached(msg []byte) ([]byte, error) {
	var buf bytes.Buffer
	cfg := &packet.Config{DefaultHash: crypto.SHA256}
	if err := openpgp.DetachSign(&buf, k.entity, bytes.NewReader(msg), cfg); err != nil {
		return nil, fmt.Errorf("openpgp: signing: %w", err)
	}
	return buf.Bytes(), nil
}

// String returns the key's ID; it never shows key material.
func (k *PrivateKey) String() string { return "private key " + k.public.ID() }

// GoString is like String, so that %#v does not print key material either.
func (k *PrivateKey) GoString() string { return k.String() }
