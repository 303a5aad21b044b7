package openpgp

import (
	"bytes"
	"crypto"
	"fmt"
	"hash"
	"io"
	"time"

	"github.com/ProtonMail/go-crypto/openpgp"
	"github.com/ProtonMail/go-crypto/openpgp/armor"
	"github.com/ProtonMail/go-crypto/openpgp/packet"
)

// maxSignatureSize bounds the signature VerifyDetached reads; an RSA 8192
// signature with a few subpackets takes little more than 1 KiB.
const maxSignatureSize = 16 << 10

// VerifyDetached checks sig, a detached OpenPGP signature over msg in binary
// or armored form, as `gpg --detach-sign` (with or without --armor) makes it.
// The signature must have been made by the primary key or by a valid signing
// subkey of p, with SHA-2 (SHA-224 or stronger). Errors wrap ErrBadSignature.
func (p *PublicKey) VerifyDetached(msg, sig []byte) error {
	s, err := readSignature(sig)
	if err != nil {
		return err
	}
	if s.SigType != packet.SigTypeBinary && s.SigType != packet.SigTypeText {
		return fmt.Errorf("%w: signature type 0x%02x is not a document signature; use gpg --detach-sign", ErrBadSignature, uint8(s.SigType))
	}
	if !acceptedHash(s.Hash) {
		return fmt.Errorf("%w: signature uses a weak or unsupported hash; sign with gpg --digest-algo SHA256", ErrBadSignature)
	}
	for _, n := range s.Notations {
		if n.IsCritical {
			return fmt.Errorf("%w: signature carries an unknown critical notation", ErrBadSignature)
		}
	}
	now := time.Now()
	if sigExpired(s, now) {
		return fmt.Errorf("%w: signature expired", ErrBadSignature)
	}
	key := p.issuer(s, now)
	if key == nil {
		return fmt.Errorf("%w: signature was not made by a valid signing key of %s", ErrBadSignature, p.fpr)
	}
	h, err := s.PrepareVerify()
	if err != nil {
		return fmt.Errorf("%w: %v", ErrBadSignature, err)
	}
	var w hash.Hash = h
	if s.SigType == packet.SigTypeText {
		w = openpgp.NewCanonicalTextHash(h)
	}
	w.Write(msg)
	if err := key.VerifySignature(h, s); err != nil {
		return fmt.Errorf("%w: signature does not match the signed data", ErrBadSignature)
	}
	return nil
}

// issuer returns the key of p that issued s and may sign at time now.
func (p *PublicKey) issuer(s *packet.Signature, now time.Time) *packet.PublicKey {
	for _, k := range signers(p.entity, now) {
		switch {
		case s.IssuerFingerprint != nil:
			if bytes.Equal(s.IssuerFingerprint, k.Fingerprint) {
				return k
			}
		case s.IssuerKeyId != nil:
			if *s.IssuerKeyId == k.KeyId {
				return k
			}
		}
	}
	return nil
}

// readSignature parses exactly one signature packet, binary or armored.
func readSignature(sig []byte) (*packet.Signature, error) {
	if len(sig) == 0 {
		return nil, fmt.Errorf("%w: empty signature", ErrBadSignature)
	}
	if len(sig) > maxSignatureSize {
		return nil, fmt.Errorf("%w: signature is larger than %d KiB", ErrBadSignature, maxSignatureSize>>10)
	}
	var r io.Reader = bytes.NewReader(sig)
	if sig[0]&0x80 == 0 { // not binary OpenPGP: try armor
		block, err := armor.Decode(r)
		if err != nil {
			return nil, fmt.Errorf("%w: neither a binary nor an armored OpenPGP signature", ErrBadSignature)
		}
		if block.Type != openpgp.SignatureType {
			return nil, fmt.Errorf("%w: expected a %s, got a %s", ErrBadSignature, openpgp.SignatureType, block.Type)
		}
		r = block.Body
	}
	pkt, err := packet.Read(r)
	if err != nil {
		return nil, fmt.Errorf("%w: cannot parse signature: %v", ErrBadSignature, err)
	}
	s, ok := pkt.(*packet.Signature)
	if !ok {
		return nil, fmt.Errorf("%w: not a signature packet", ErrBadSignature)
	}
	if n, _ := r.Read(make([]byte, 1)); n != 0 {
		return nil, fmt.Errorf("%w: expected exactly one signature packet", ErrBadSignature)
	}
	return s, nil
}

// acceptedHash reports whether signatures made with h are accepted: the SHA-2
// and SHA-3 families, not MD5, SHA-1 or RIPEMD-160.
func acceptedHash(h crypto.Hash) bool {
	switch h {
	case crypto.SHA224, crypto.SHA256, crypto.SHA384, crypto.SHA512, crypto.SHA3_256, crypto.SHA3_512:
		return h.Available()
	}
	return false
}
