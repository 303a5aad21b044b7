package openpgp

import (
	"bytes"
	"crypto"
	"fmt"
	"time"

	"github.com/ProtonMail/go-crypto/openpgp"
	"github.com/ProtonMail/go-crypto/openpgp/armor"
	"github.com/ProtonMail/go-crypto/openpgp/packet"
)

// SignDetachedArmored is SignDetached, ASCII-armored, as PGP/MIME signed
// mail carries it.
func (k *PrivateKey) SignDetachedArmored(msg []byte) ([]byte, error) {
	sig, err := k.SignDetached(msg)
	if err != nil {
		return nil, err
	}
	return armorBlock(openpgp.SignatureType, sig)
}

// EncryptSigned encrypts msg to the public key to, signed by signer, as an
// armored OpenPGP message (what PGP/MIME encrypted mail carries).
func EncryptSigned(msg []byte, to *PublicKey, signer *PrivateKey) ([]byte, error) {
	var buf bytes.Buffer
	cfg := &packet.Config{DefaultHash: crypto.SHA256, DefaultCipher: packet.CipherAES256}
	w, err := openpgp.Encrypt(&buf, openpgp.EntityList{to.entity}, signer.entity, &openpgp.FileHints{IsBinary: true}, cfg)
	if err != nil {
		return nil, fmt.Errorf("openpgp: encrypting to %s: %w", to.ID(), err)
	}
	if _, err := w.Write(msg); err != nil {
		return nil, err
	}
	if err := w.Close(); err != nil {
		return nil, err
	}
	return armorBlock("PGP MESSAGE", buf.Bytes())
}

func armorBlock(blockType string, data []byte) ([]byte, error) {
	var buf bytes.Buffer
	w, err := armor.Encode(&buf, blockType, nil)
	if err != nil {
		return nil, err
	}
	if _, err := w.Write(data); err != nil {
		return nil, err
	}
	if err := w.Close(); err != nil {
		return nil, err
	}
	buf.WriteByte('\n')
	return buf.Bytes(), nil
}

// CanEncryptTo reports whether to has a usable encryption key.
func CanEncryptTo(to *PublicKey) error {
	if _, ok := to.entity.EncryptionKey(time.Now()); !ok {
		return fmt.Errorf("no valid encryption subkey")
	}
	return nil
}
