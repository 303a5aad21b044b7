// Package mail composes the server's notification mail — signed by the
// server's OpenPGP key, and encrypted to the recipient when it registered
// a key (PGP/MIME, RFC 3156) — and sends it over SMTP.
package mail

import (
	"bytes"
	"crypto/rand"
	"encoding/hex"
	"fmt"
	"mime"
	"mime/quotedprintable"
	"net/mail"
	"strings"
	"time"

	"trustee.dev/trustee/server/openpgp"
)

// Message is a notification mail before it is composed.
type Message struct {
	From, To string // addresses
	Subject  string
	Text     string // plain text body
	Date     time.Time
	Host     string // the server's host name, for the Message-ID
}

// Compose renders m as an RFC 5322 message signed by signer. With
// encryptTo it is encrypted to that key as well (signed inside), so that
// nothing but the headers travels in the clear.
func Compose(m Message, signer *openpgp.PrivateKey, encryptTo *openpgp.PublicKey) ([]byte, error) {
	for _, a := range []string{m.From, m.To} {
		if _, err := mail.ParseAddress(a); err != nil {
			return nil, fmt.Errorf("mail address %q: %w", a, err)
		}
	}
	if strings.ContainsAny(m.Subject, "\r\n") {
		return nil, fmt.Errorf("mail subject holds a line break")
	}
	inner := textEntity(m.Text)
	var body []byte
	var contentType string
	if encryptTo != nil {
		enc, err := openpgp.EncryptSigned(inner, encryptTo, signer)
		if err != nil {
			return nil, err
		}
		b := boundary()
		contentType = `multipart/encrypted; protocol="application/pgp-encrypted"; boundary="` + b + `"`
		body = []byte("This is an OpenPGP/MIME encrypted message (RFC 3156).\r\n" +
			"--" + b + "\r\nContent-Type: application/pgp-encrypted\r\nContent-Description: PGP/MIME version identification\r\n\r\nVersion: 1\r\n\r\n" +
			"--" + b + "\r\nContent-Type: application/octet-stream; name=\"encrypted.asc\"\r\nContent-Description: OpenPGP encrypted message\r\nContent-Disposition: inline; filename=\"encrypted.asc\"\r\n\r\n" +
			crlf(string(enc)) + "\r\n--" + b + "--\r\n")
	} else {
		sig, err := signer.SignDetachedArmored(inner)
		if err != nil {
			return nil, err
		}
		b := boundary()
		contentType = `multipart/signed; micalg=pgp-sha256; protocol="application/pgp-signature"; boundary="` + b + `"`
		body = []byte("This is an OpenPGP/MIME signed message (RFC 3156).\r\n" +
			"--" + b + "\r\n" + string(inner) + "\r\n" +
			"--" + b + "\r\nContent-Type: application/pgp-signature; name=\"signature.asc\"\r\nContent-Description: OpenPGP digital signature\r\nContent-Disposition: attachment; filename=\"signature.asc\"\r\n\r\n" +
			crlf(string(sig)) + "\r\n--" + b + "--\r\n")
	}
	var h bytes.Buffer
	header := func(k, v string) { fmt.Fprintf(&h, "%s: %s\r\n", k, v) }
	header("From", m.From)
	header("To", m.To)
	header("Subject", mime.QEncoding.Encode("utf-8", m.Subject))
	header("Date", m.Date.UTC().Format(time.RFC1123Z))
	header("Message-ID", "<"+hex.EncodeToString(randomBytes(12))+"@"+m.Host+">")
	header("MIME-Version", "1.0")
	header("Content-Type", contentType)
	h.WriteString("\r\n")
	h.Write(body)
	return h.Bytes(), nil
}

// textEntity is the MIME entity of a plain text body, in canonical form
// (CRLF line ends): what is signed and what is encrypted.
func textEntity(text string) []byte {
	var qp bytes.Buffer
	w := quotedprintable.NewWriter(&qp)
	w.Write([]byte(crlf(text)))
	w.Close()
	return []byte("Content-Type: text/plain; charset=utf-8\r\nContent-Transfer-Encoding: quoted-printable\r\n\r\n" +
		strings.TrimRight(crlf(qp.String()), "\r\n") + "\r\n")
}

// crlf makes every line end CRLF.
func crlf(s string) string {
	return strings.ReplaceAll(strings.ReplaceAll(s, "\r\n", "\n"), "\n", "\r\n")
}

func boundary() string { return "kts-" + hex.EncodeToString(randomBytes(12)) }

func randomBytes(n int) []byte {
	b := make([]byte, n)
	rand.Read(b)
	return b
}
