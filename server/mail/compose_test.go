package mail_test

import (
	"bytes"
	"io"
	"mime"
	"mime/multipart"
	"net/mail"
	"strings"
	"testing"
	"time"

	gopenpgp "github.com/ProtonMail/go-crypto/openpgp"

	kmail "trustee.dev/trustee/server/mail"
	"trustee.dev/trustee/server/openpgp"
)

func keys(t *testing.T) (server, contact *openpgp.PrivateKey) {
	t.Helper()
	var err error
	if server, err = openpgp.Generate(openpgp.Ed25519, "kts01.example.com", "keytrustee@kts01.example.com"); err != nil {
		t.Fatal(err)
	}
	if contact, err = openpgp.Generate(openpgp.Ed25519, "Finn", "finn@example.com"); err != nil {
		t.Fatal(err)
	}
	return server, contact
}

func message() kmail.Message {
	return kmail.Message{From: "keytrustee@kts01.example.com", To: "finn@example.com", Subject: kmail.ContactRegistrationSubject,
		Text: "line one\nhttps://kts01.example.com:11371/?q=abc=def\n", Date: time.Unix(1_700_000_000, 0), Host: "kts01.example.com"}
}

// parts splits a multipart message into its parts' raw bytes, as the
// signature covers them.
func parts(t *testing.T, raw []byte) (mediaType string, params map[string]string, rawParts [][]byte) {
	t.Helper()
	msg, err := mail.ReadMessage(bytes.NewReader(raw))
	if err != nil {
		t.Fatal(err)
	}
	mediaType, params, err = mime.ParseMediaType(msg.Header.Get("Content-Type"))
	if err != nil {
		t.Fatal(err)
	}
	body, _ := io.ReadAll(msg.Body)
	sep := []byte("\r\n--" + params["boundary"])
	chunks := bytes.Split(body, sep)
	for _, c := range chunks[1 : len(chunks)-1] {
		rawParts = append(rawParts, bytes.TrimPrefix(c, []byte("\r\n")))
	}
	return mediaType, params, rawParts
}

func TestSignedMailVerifiesWithTheServerKey(t *testing.T) {
	server, _ := keys(t)
	raw, err := kmail.Compose(message(), server, nil)
	if err != nil {
		t.Fatal(err)
	}
	mediaType, params, ps := parts(t, raw)
	if mediaType != "multipart/signed" || params["protocol"] != "application/pgp-signature" || params["micalg"] != "pgp-sha256" || len(ps) != 2 {
		t.Fatalf("Content-Type %s %v with %d parts", mediaType, params, len(ps))
	}
	sigPart := ps[1][bytes.Index(ps[1], []byte("-----BEGIN PGP SIGNATURE")):]
	ring, err := gopenpgp.ReadArmoredKeyRing(bytes.NewReader(server.Public().Armor()))
	if err != nil {
		t.Fatal(err)
	}
	if _, err := gopenpgp.CheckArmoredDetachedSignature(ring, bytes.NewReader(ps[0]), bytes.NewReader(sigPart), nil); err != nil {
		t.Fatalf("the signature does not verify over the signed part: %v", err)
	}
	// The text survives quoted-printable.
	mr := multipart.NewReader(bytes.NewReader(raw[bytes.Index(raw, []byte("\r\n\r\n"))+4:]), params["boundary"])
	p, err := mr.NextPart()
	if err != nil {
		t.Fatal(err)
	}
	text, _ := io.ReadAll(p)
	if string(text) != strings.ReplaceAll(message().Text, "\n", "\r\n") {
		t.Fatalf("text part = %q", text)
	}
}

func TestEncryptedMailOpensOnlyWithTheContactsKeyAndIsSigned(t *testing.T) {
	server, contact := keys(t)
	raw, err := kmail.Compose(message(), server, contact.Public())
	if err != nil {
		t.Fatal(err)
	}
	if bytes.Contains(raw, []byte("q=abc")) || bytes.Contains(raw, []byte("line one")) {
		t.Fatal("the encrypted mail carries its text in the clear")
	}
	mediaType, params, ps := parts(t, raw)
	if mediaType != "multipart/encrypted" || params["protocol"] != "application/pgp-encrypted" || len(ps) != 2 {
		t.Fatalf("Content-Type %s %v with %d parts", mediaType, params, len(ps))
	}
	armored, _ := contact.Armor()
	ring, err := gopenpgp.ReadArmoredKeyRing(bytes.NewReader(armored))
	if err != nil {
		t.Fatal(err)
	}
	serverRing, _ := gopenpgp.ReadArmoredKeyRing(bytes.NewReader(server.Public().Armor()))
	ring = append(ring, serverRing...)
	block := ps[1][bytes.Index(ps[1], []byte("-----BEGIN PGP MESSAGE")):]
	md, err := gopenpgp.ReadMessage(armorDecode(t, block), ring, nil, nil)
	if err != nil {
		t.Fatal(err)
	}
	inner, err := io.ReadAll(md.UnverifiedBody)
	if err != nil || md.SignatureError != nil || !md.IsSigned || md.SignedBy == nil {
		t.Fatalf("decrypting: %v; signed %v by %v: %v", err, md.IsSigned, md.SignedBy, md.SignatureError)
	}
	if !bytes.Contains(inner, []byte("Content-Type: text/plain")) || !bytes.Contains(inner, []byte("line one")) {
		t.Fatalf("inner entity = %q", inner)
	}
}

func TestComposeRefusesHeaderInjection(t *testing.T) {
	server, _ := keys(t)
	m := message()
	m.Subject = "hi\r\nBcc: someone@example.com"
	if _, err := kmail.Compose(m, server, nil); err == nil {
		t.Fatal("a subject with a line break was accepted")
	}
	m = message()
	m.To = "finn@example.com\r\nBcc: x@example.com"
	if _, err := kmail.Compose(m, server, nil); err == nil {
		t.Fatal("a recipient with a line break was accepted")
	}
}
