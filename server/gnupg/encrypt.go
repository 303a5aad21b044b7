package gnupg

import (
	"bytes"
	"errors"
	"fmt"
	"io"
	"time"

	"github.com/ProtonMail/go-crypto/openpgp"
	"github.com/ProtonMail/go-crypto/openpgp/packet"
)

// encryptConfig is what Encrypt asks of go-crypto. AES-256 is the first
// cipher GnuPG keys prefer (go-crypto picks the configured cipher when the
// recipient's preferences allow it, else the preferred one of AES-256 and
// AES-128, else AES-128). No compression: backups are compressed tar files
// already. AEADConfig is nil, so go-crypto never writes a SEIPD v2 (AEAD)
// packet, which GnuPG 2.2 cannot read, whatever the key advertises: the data
// is a SEIPD v1 packet protected by a modification detection code (SHA-1
// MDC), the format `gpg --encrypt` writes and `gpg --decrypt` checks.
var encryptConfig = packet.Config{
	DefaultCipher:          packet.CipherAES256,
	DefaultCompressionAlgo: packet.CompressionNone,
}

// Encrypt returns a writer whose bytes are encrypted to `to` as a binary
// OpenPGP message written to w; Close finishes the message and does not close
// w. The message has no signature and no compression; fileName goes in its
// literal data packet (truncated to 255 bytes). It decrypts with plain
// `gpg --decrypt`.
func Encrypt(w io.Writer, to *openpgp.Entity, fileName string) (io.WriteCloser, error) {
	if to == nil || to.PrimaryKey == nil {
		return nil, errors.New("gnupg: no recipient key to encrypt to")
	}
	cfg := encryptConfig
	if why := unusable(to, cfg.Now()); why != "" {
		return nil, fmt.Errorf("gnupg: cannot encrypt to key %s: %s", Describe(to), why)
	}
	hints := &openpgp.FileHints{IsBinary: true, FileName: fileName, ModTime: time.Now()}
	plaintext, err := openpgp.Encrypt(w, []*openpgp.Entity{to}, nil, hints, &cfg)
	if err != nil {
		return nil, fmt.Errorf("gnupg: encrypting to key %s: %w", Describe(to), err)
	}
	return &onceCloser{WriteCloser: plaintext}, nil
}

// onceCloser finishes the message on the first Close only, and refuses
// writes after it, so that a second Close cannot append a second MDC.
type onceCloser struct {
	io.WriteCloser
	closed bool
}

func (c *onceCloser) Write(p []byte) (int, error) {
	if c.closed {
		return 0, errors.New("gnupg: write to a finished message")
	}
	return c.WriteCloser.Write(p)
}

func (c *onceCloser) Close() error {
	if c.closed {
		return nil
	}
	c.closed = true
	return c.WriteCloser.Close()
}

// Packet tags (RFC 9580, section 5) that may start an OpenPGP message.
const (
	tagPKESK      = 1  // public-key encrypted session key
	tagSKESK      = 3  // symmetric-key encrypted session key
	tagCompressed = 8  // compressed data
	tagSED        = 9  // symmetrically encrypted data, without integrity protection
	tagMarker     = 10 // marker ("PGP"), to be ignored
	tagLiteral    = 11 // literal data
	tagSEIPD      = 18 // symmetrically encrypted and integrity protected data
	tagAEAD       = 20 // AEAD encrypted data (GnuPG 2.3+ OCB)
)

// IsEncrypted reports whether the first bytes of a file look like an OpenPGP
// message rather than anything else, such as a tar archive: binary packets
// starting with a public-key or symmetric-key encrypted session key, an
// encrypted data packet, or a compressed or literal data packet (old or new
// packet format, with plausible lengths and version numbers), or an armored
// "-----BEGIN PGP MESSAGE-----". It looks at no more than the first 512 bytes
// of prefix.
func IsEncrypted(prefix []byte) bool {
	if len(prefix) > 512 {
		prefix = prefix[:512]
	}
	if bytes.HasPrefix(bytes.TrimLeft(prefix, " \t\r\n"), []byte("-----BEGIN PGP MESSAGE-----")) {
		return true
	}
	first, sawESK := true, false
	for len(prefix) > 0 {
		tag, body, length, ok := packetHeader(prefix)
		if !ok {
			return false
		}
		if len(body) == 0 { // the prefix ends right after the header
			return !first
		}
		determinate := length >= 0
		if length == 0 {
			return false // no OpenPGP message starts with an empty packet
		}
		switch {
		case tag == tagMarker && first:
			if !determinate || length != 3 || !bytes.HasPrefix([]byte("PGP"), body[:min(len(body), 3)]) {
				return false
			}
		case tag == tagPKESK || tag == tagSKESK:
			if !determinate || !eskVersionOK(tag, body[0]) {
				return false
			}
			sawESK = true
		case tag == tagSEIPD:
			return body[0] == 1 || body[0] == 2
		case tag == tagAEAD:
			return body[0] == 1
		case tag == tagSED:
			return sawESK
		case tag == tagCompressed && !sawESK:
			return body[0] <= 3 // uncompressed, ZIP, ZLIB, BZip2
		case tag == tagLiteral && !sawESK:
			return bytes.IndexByte([]byte("btuml1"), body[0]) >= 0
		default:
			return false
		}
		first = false
		if length > len(body) {
			return true // the packet runs past the prefix; all seen so far fits
		}
		prefix = body[length:]
	}
	return !first
}

// eskVersionOK reports whether v is a known version of a session key packet.
func eskVersionOK(tag int, v byte) bool {
	if tag == tagPKESK {
		return v == 3 || v == 6
	}
	return v == 4 || v == 5 || v == 6
}

// packetHeader parses the OpenPGP packet header at the start of b. It returns
// the packet tag, the bytes after the header, and the body length: -1 when
// the length is not known from the header (a partial body length, or an
// old-format indeterminate length), allowed only for data packets. ok is
// false when b does not start with a complete packet header.
func packetHeader(b []byte) (tag int, body []byte, length int, ok bool) {
	if len(b) < 2 || b[0]&0x80 == 0 {
		return 0, nil, 0, false
	}
	if b[0]&0x40 == 0 { // old format: tag in bits 5-2, length type in bits 1-0
		tag = int(b[0]>>2) & 0x0f
		switch lt := b[0] & 3; lt {
		case 0:
			return tag, b[2:], int(b[1]), true
		case 1:
			if len(b) < 3 {
				return 0, nil, 0, false
			}
			return tag, b[3:], int(b[1])<<8 | int(b[2]), true
		case 2:
			if len(b) < 5 {
				return 0, nil, 0, false
			}
			return tag, b[5:], fourOctets(b[1:5]), true
		default:
			return tag, b[1:], -1, isDataTag(tag)
		}
	}
	tag = int(b[0] & 0x3f)
	switch l := b[1]; {
	case l < 192:
		return tag, b[2:], int(l), true
	case l < 224:
		if len(b) < 3 {
			return 0, nil, 0, false
		}
		return tag, b[3:], (int(l)-192)<<8 + int(b[2]) + 192, true
	case l == 255:
		if len(b) < 6 {
			return 0, nil, 0, false
		}
		return tag, b[6:], fourOctets(b[2:6]), true
	default: // partial body length
		return tag, b[2:], -1, isDataTag(tag)
	}
}

// fourOctets decodes a four-octet big-endian length, capped so that it fits
// an int on every platform.
func fourOctets(b []byte) int {
	n := uint32(b[0])<<24 | uint32(b[1])<<16 | uint32(b[2])<<8 | uint32(b[3])
	return int(min(n, 1<<30))
}

// isDataTag reports whether packets with the tag may have a length not known
// from their header.
func isDataTag(tag int) bool {
	switch tag {
	case tagCompressed, tagSED, tagLiteral, tagSEIPD, tagAEAD:
		return true
	}
	return false
}
