package openpgp

import (
	"bytes"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"strings"
	"time"

	"github.com/ProtonMail/go-crypto/openpgp"
	"github.com/ProtonMail/go-crypto/openpgp/armor"
	pgperrors "github.com/ProtonMail/go-crypto/openpgp/errors"
	"github.com/ProtonMail/go-crypto/openpgp/packet"
)

// MaxPublicKeySize is the largest key block, armored or binary, that
// ParsePublic accepts.
const MaxPublicKeySize = 64 << 10

const (
	minRSABits = 2048
	maxRSABits = 8192
)

// Packet tags (RFC 4880, section 4.3) looked at before full parsing.
const (
	tagSecretKey    = 5
	tagPublicKey    = 6
	tagSecretSubkey = 7
)

const weakHint = "use an Ed25519 key (gpg --quick-gen-key 'NAME <EMAIL>' ed25519 sign) or RSA of 2048 to 8192 bits"

// weak returns ErrWeakKey wrapped with what is wrong and what to do.
func weak(format string, args ...any) error {
	return fmt.Errorf("%w: "+format+"; "+weakHint, append([]any{ErrWeakKey}, args...)...)
}

const exportHint = "export exactly one key with gpg --armor --export FPR"

// PublicKey is a validated OpenPGP public key. It is immutable and safe for
// concurrent use.
type PublicKey struct {
	entity  *openpgp.Entity
	fpr     string
	id      string
	armored []byte
}

// ParsePublic parses an armored or binary public key block holding exactly
// one key and checks that the key is usable to authenticate a client: a valid
// v4 key with a self-signed user ID, not revoked or expired, able to sign
// (with the primary key or a signing subkey), RSA of at least 2048 bits or an
// elliptic-curve key. Errors wrap ErrInvalidKey, ErrPrivateKey or ErrWeakKey.
func ParsePublic(data []byte) (*PublicKey, error) {
	if len(data) > MaxPublicKeySize {
		return nil, fmt.Errorf("%w: key block is larger than %d KiB; export it without third-party signatures (gpg --armor --export-options export-minimal --export FPR)", ErrInvalidKey, MaxPublicKeySize>>10)
	}
	raw, err := dearmor(data)
	if err != nil {
		return nil, err
	}
	return parseEntity(raw, time.Now(), true)
}

// ParseStored parses a key block that ParsePublic accepted once, such as a
// registered client's key, without checking that it is still usable: a key
// that has expired or been revoked since is returned as it is (its Summary
// says so).
func ParseStored(data []byte) (*PublicKey, error) {
	raw, err := dearmor(data)
	if err != nil {
		return nil, err
	}
	return parseEntity(raw, time.Now(), false)
}

// dearmor returns the binary packets of a key block given armored or binary.
func dearmor(data []byte) ([]byte, error) {
	if len(bytes.TrimSpace(data)) == 0 {
		return nil, fmt.Errorf("%w: no key data; %s", ErrInvalidKey, exportHint)
	}
	if data[0]&0x80 != 0 {
		return data, nil // binary OpenPGP: every packet header has the top bit set
	}
	if n := bytes.Count(data, []byte("-----BEGIN PGP ")); n == 0 {
		return nil, fmt.Errorf("%w: neither an armored (-----BEGIN PGP PUBLIC KEY BLOCK-----) nor a binary OpenPGP key; %s", ErrInvalidKey, exportHint)
	} else if n > 1 {
		return nil, fmt.Errorf("%w: more than one armored block; %s", ErrInvalidKey, exportHint)
	}
	block, err := armor.Decode(bytes.NewReader(data))
	if err != nil {
		return nil, fmt.Errorf("%w: cannot decode armor: %v", ErrInvalidKey, err)
	}
	switch block.Type {
	case openpgp.PublicKeyType:
	case openpgp.PrivateKeyType, "PGP SECRET KEY BLOCK":
		return nil, ErrPrivateKey
	default:
		return nil, fmt.Errorf("%w: expected a %s, got a %s; %s", ErrInvalidKey, openpgp.PublicKeyType, block.Type, exportHint)
	}
	if !bytes.Contains(data, []byte("-----END "+openpgp.PublicKeyType+"-----")) {
		return nil, fmt.Errorf("%w: armored key is truncated (no END line); send the whole output of gpg --armor --export FPR", ErrInvalidKey)
	}
	raw, err := io.ReadAll(block.Body)
	if err != nil {
		return nil, fmt.Errorf("%w: armor is corrupt: %v", ErrInvalidKey, err)
	}
	if len(raw) == 0 {
		return nil, fmt.Errorf("%w: armored block is empty; %s", ErrInvalidKey, exportHint)
	}
	return raw, nil
}

// packetTag returns the tag of the packet whose header starts at b[0].
func packetTag(b byte) int {
	if b&0x40 != 0 { // new format
		return int(b & 0x3f)
	}
	return int(b>>2) & 0x0f
}

// parseEntity parses one public key; with check, it also refuses a key that
// cannot authenticate a client at now.
func parseEntity(raw []byte, now time.Time, check bool) (*PublicKey, error) {
	switch packetTag(raw[0]) {
	case tagSecretKey, tagSecretSubkey:
		return nil, ErrPrivateKey
	case tagPublicKey:
	default:
		return nil, fmt.Errorf("%w: data does not start with a public key packet; %s", ErrInvalidKey, exportHint)
	}

	packets := packet.NewReader(bytes.NewReader(raw))
	p, err := packets.NextWithUnsupported()
	if err != nil {
		return nil, fmt.Errorf("%w: cannot parse the primary key: %v", ErrInvalidKey, err)
	}
	if u, ok := p.(*packet.UnsupportedPacket); ok {
		return nil, weak("unsupported primary key (%v)", u.Error)
	}
	primary, ok := p.(*packet.PublicKey)
	if !ok || primary.IsSubkey {
		return nil, fmt.Errorf("%w: data does not start with a primary public key; %s", ErrInvalidKey, exportHint)
	}
	if primary.Version != 4 {
		return nil, fmt.Errorf("%w: OpenPGP v%d keys are not supported; use a v4 key as GnuPG makes by default", ErrInvalidKey, primary.Version)
	}
	if err := checkAlgorithm(primary, "primary key"); err != nil {
		return nil, err
	}
	packets.Unread(p)

	e, err := openpgp.ReadEntity(packets)
	if err != nil {
		var se pgperrors.StructuralError
		if errors.As(err, &se) && strings.Contains(string(se), "without any identities") {
			return nil, fmt.Errorf("%w: key has no user ID with a valid self-signature; add one (gpg --quick-add-uid FPR 'NAME <EMAIL>') and export again", ErrInvalidKey)
		}
		return nil, fmt.Errorf("%w: cannot parse the key: %v", ErrInvalidKey, err)
	}
	switch next, err := packets.Next(); {
	case err == io.EOF:
	case err != nil:
		return nil, fmt.Errorf("%w: unreadable data after the key: %v", ErrInvalidKey, err)
	default:
		if k, ok := next.(*packet.PublicKey); ok && !k.IsSubkey {
			return nil, fmt.Errorf("%w: the block holds more than one key; %s", ErrInvalidKey, exportHint)
		}
		return nil, fmt.Errorf("%w: unexpected data after the key; %s", ErrInvalidKey, exportHint)
	}
	if e.PrivateKey != nil {
		return nil, ErrPrivateKey
	}
	if check {
		if err := checkUsable(e, now); err != nil {
			return nil, err
		}
	}
	return newPublicKey(e)
}

// checkAlgorithm refuses algorithms and sizes that are not accepted for a key
// that signs.
func checkAlgorithm(k *packet.PublicKey, what string) error {
	switch k.PubKeyAlgo {
	case packet.PubKeyAlgoRSA, packet.PubKeyAlgoRSASignOnly:
		bits, err := k.BitLength()
		if err != nil {
			return fmt.Errorf("%w: %s: %v", ErrInvalidKey, what, err)
		}
		if bits < minRSABits {
			return weak("%s is RSA %d bits", what, bits)
		}
		if bits > maxRSABits {
			return weak("%s is RSA %d bits, more than the supported %d", what, bits, maxRSABits)
		}
		return nil
	case packet.PubKeyAlgoEdDSA, packet.PubKeyAlgoECDSA, packet.PubKeyAlgoEd25519, packet.PubKeyAlgoEd448:
		return nil
	case packet.PubKeyAlgoDSA:
		return weak("%s is DSA", what)
	case packet.PubKeyAlgoElGamal:
		return weak("%s is ElGamal", what)
	}
	return weak("%s uses unsupported public-key algorithm %d", what, k.PubKeyAlgo)
}

// checkUsable reports why e cannot authenticate a client at time now, or nil.
func checkUsable(e *openpgp.Entity, now time.Time) error {
	self, ident := e.PrimarySelfSignature()
	if self == nil {
		return fmt.Errorf("%w: key has no valid self-signature", ErrInvalidKey)
	}
	if e.Revoked(now) {
		return fmt.Errorf("%w: key is revoked; create a new key", ErrInvalidKey)
	}
	if ident != nil && ident.Revoked(now) {
		return fmt.Errorf("%w: the key's user IDs are revoked; add a user ID (gpg --quick-add-uid) and export again", ErrInvalidKey)
	}
	if keyExpired(e.PrimaryKey, self, now) || sigExpired(self, now) {
		return fmt.Errorf("%w: key expired; extend it (gpg --quick-set-expire FPR 1y) and export again", ErrInvalidKey)
	}
	for _, sk := range e.Subkeys {
		if sk.Sig.FlagsValid && sk.Sig.FlagSign && !sk.Revoked(now) {
			if err := checkAlgorithm(sk.PublicKey, fmt.Sprintf("signing subkey %X", sk.PublicKey.KeyId)); err != nil {
				return err
			}
		}
	}
	if len(signers(e, now)) == 0 {
		return fmt.Errorf("%w: key cannot sign: neither the primary key nor a valid subkey has the sign capability; add one (gpg --quick-add-key FPR ed25519 sign) and export again", ErrInvalidKey)
	}
	return nil
}

// lifetimeOver reports whether a lifetime of secs seconds from start has
// passed at now. Unlike go-crypto's own checks, a start in the future is not
// an error: a client whose clock runs a little ahead makes keys and
// signatures dated slightly in the server's future, and request freshness is
// checked elsewhere.
func lifetimeOver(start time.Time, secs *uint32, now time.Time) bool {
	return secs != nil && *secs != 0 && now.Unix() > start.Unix()+int64(*secs)
}

func keyExpired(k *packet.PublicKey, selfSig *packet.Signature, now time.Time) bool {
	return lifetimeOver(k.CreationTime, selfSig.KeyLifetimeSecs, now)
}

func sigExpired(sig *packet.Signature, now time.Time) bool {
	return lifetimeOver(sig.CreationTime, sig.SigLifetimeSecs, now)
}

// signers returns the keys of e that may make signatures at time now: the
// primary key when its self-signature allows signing, and every valid signing
// subkey (cross-signed, not revoked, not expired). It returns none when the
// primary key is revoked or expired.
func signers(e *openpgp.Entity, now time.Time) []*packet.PublicKey {
	self, ident := e.PrimarySelfSignature()
	if self == nil || e.Revoked(now) || (ident != nil && ident.Revoked(now)) ||
		keyExpired(e.PrimaryKey, self, now) || sigExpired(self, now) {
		return nil
	}
	var keys []*packet.PublicKey
	if self.FlagsValid && self.FlagSign && e.PrimaryKey.CanSign() {
		keys = append(keys, e.PrimaryKey)
	}
	for i := range e.Subkeys {
		sk := &e.Subkeys[i]
		if sk.Sig.FlagsValid && sk.Sig.FlagSign && sk.PublicKey.CanSign() &&
			!sk.Revoked(now) && !keyExpired(sk.PublicKey, sk.Sig, now) && !sigExpired(sk.Sig, now) &&
			(sk.Sig.EmbeddedSignature == nil || !sigExpired(sk.Sig.EmbeddedSignature, now)) {
			keys = append(keys, sk.PublicKey)
		}
	}
	return keys
}

func newPublicKey(e *openpgp.Entity) (*PublicKey, error) {
	var buf bytes.Buffer
	w, err := armor.Encode(&buf, openpgp.PublicKeyType, nil)
	if err != nil {
		return nil, err
	}
	if err := e.Serialize(w); err != nil {
		return nil, fmt.Errorf("openpgp: serializing public key: %w", err)
	}
	if err := w.Close(); err != nil {
		return nil, err
	}
	buf.WriteByte('\n')
	fpr := strings.ToUpper(hex.EncodeToString(e.PrimaryKey.Fingerprint))
	return &PublicKey{
		entity:  e,
		fpr:     fpr,
		id:      fmt.Sprintf("%d%c/%s", bitLength(e.PrimaryKey), algoLetter(e.PrimaryKey.PubKeyAlgo), fpr),
		armored: buf.Bytes(),
	}, nil
}

// Fingerprint returns the 40 upper-case hex digits of the primary key's v4
// fingerprint.
func (p *PublicKey) Fingerprint() string { return p.fpr }

// ID returns the key's size, algorithm letter and fingerprint in GnuPG's
// style, such as "4096R/4EDC..." or "255E/...".
func (p *PublicKey) ID() string { return p.id }

// Armor returns the armored public key (primary key, user IDs, subkeys and
// their signatures), ready for `gpg --import`.
func (p *PublicKey) Armor() []byte { return bytes.Clone(p.armored) }

// bitLength returns the key size as GnuPG shows it: the modulus size for RSA,
// the curve size for elliptic-curve keys.
func bitLength(k *packet.PublicKey) int {
	if curve, err := k.Curve(); err == nil {
		switch curve {
		case packet.Curve25519:
			return 255
		case packet.Curve448:
			return 448
		case packet.CurveNistP256, packet.CurveSecP256k1, packet.CurveBrainpoolP256:
			return 256
		case packet.CurveNistP384, packet.CurveBrainpoolP384:
			return 384
		case packet.CurveNistP521:
			return 521
		case packet.CurveBrainpoolP512:
			return 512
		}
	}
	bits, _ := k.BitLength()
	return int(bits)
}

// algoLetter returns GnuPG's letter for a public-key algorithm.
func algoLetter(a packet.PublicKeyAlgorithm) byte {
	switch a {
	case packet.PubKeyAlgoRSA, packet.PubKeyAlgoRSAEncryptOnly, packet.PubKeyAlgoRSASignOnly:
		return 'R'
	case packet.PubKeyAlgoDSA:
		return 'D'
	case packet.PubKeyAlgoElGamal:
		return 'g'
	case packet.PubKeyAlgoEdDSA, packet.PubKeyAlgoECDSA, packet.PubKeyAlgoEd25519, packet.PubKeyAlgoEd448:
		return 'E'
	case packet.PubKeyAlgoECDH, packet.PubKeyAlgoX25519, packet.PubKeyAlgoX448:
		return 'e'
	}
	return '?'
}

// String returns the key's ID.
func (p *PublicKey) String() string { return p.id }
