package auth

import (
	"crypto/rand"
	"crypto/sha256"
	"encoding/base64"
	"errors"
	"fmt"
	"net/http"
	"time"

	"trustee.dev/trustee/server/openpgp"
)

// nonceBytes random bytes make a 32-character base64url nonce.
const nonceBytes = 24

// SignRequest signs req with key and sets its Authorization header (KTS-PGP)
// with timestamp now and a fresh random nonce. body must be exactly the bytes
// req sends (nil for none); SignRequest does not read or set req.Body.
func SignRequest(key *openpgp.PrivateKey, req *http.Request, body []byte, now time.Time) error {
	if key == nil || req == nil || req.URL == nil {
		return errors.New("auth: SignRequest needs a key and a request with a URL")
	}
	var raw [nonceBytes]byte
	if _, err := rand.Read(raw[:]); err != nil {
		return fmt.Errorf("auth: making a nonce: %w", err)
	}
	c := Credentials{
		Scheme:      SchemeSignature,
		Fingerprint: key.Public().Fingerprint(),
		Timestamp:   now.Unix(),
		Nonce:       base64.RawURLEncoding.EncodeToString(raw[:]),
	}
	method := req.Method
	if method == "" {
		method = http.MethodGet
	}
	msg := CanonicalRequest(method, req.URL.EscapedPath(), req.URL.RawQuery, c.Timestamp, c.Nonce, sha256.Sum256(body))
	sig, err := key.SignDetached(msg)
	if err != nil {
		return err
	}
	c.Signature = sig
	if req.Header == nil {
		req.Header = make(http.Header)
	}
	req.Header.Set("Authorization", c.header())
	return nil
}
