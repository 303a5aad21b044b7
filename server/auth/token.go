package auth

import (
	"crypto/hmac"
	"crypto/sha256"
	"encoding/base64"
	"encoding/binary"
	"encoding/hex"
	"errors"
	"fmt"
	"strings"
	"time"
)

// Session token lifetimes.
const (
	DefaultTokenTTL = 5 * time.Minute
	MaxTokenTTL     = time.Hour
)

// MinTokenKeyLen is the shortest key NewTokens accepts.
const MinTokenKeyLen = 32

const (
	tokenVersion = 1
	fprLen       = 20
	// version | fingerprint | expiry | HMAC-SHA256
	tokenLen    = 1 + fprLen + 8 + sha256.Size
	tokenMACAt  = 1 + fprLen + 8
	tokenB64Len = (tokenLen*8 + 5) / 6
)

// Tokens issues and verifies session tokens; see the package documentation.
// It is safe for concurrent use.
type Tokens struct {
	key []byte
}

// NewTokens returns Tokens keyed with key, which must hold at least 32 random
// bytes and stay secret. Every server that verifies a token needs the key of
// the server that issued it.
func NewTokens(key []byte) (*Tokens, error) {
	if len(key) < MinTokenKeyLen {
		return nil, fmt.Errorf("auth: session token key has %d bytes; it needs at least %d random bytes", len(key), MinTokenKeyLen)
	}
	return &Tokens{key: append([]byte(nil), key...)}, nil
}

// String hides the key.
func (t *Tokens) String() string { return "auth.Tokens{key: <hidden>}" }

// GoString hides the key.
func (t *Tokens) GoString() string { return t.String() }

// Issue returns a token for the client with the given fingerprint, valid for
// ttl from now (DefaultTokenTTL when ttl is zero, at most MaxTokenTTL), and
// its expiry, in whole seconds.
func (t *Tokens) Issue(fingerprint string, ttl time.Duration, now time.Time) (token string, expires time.Time, err error) {
	if len(fingerprint) != 2*fprLen || !isHex(fingerprint) {
		return "", time.Time{}, errors.New("auth: a session token needs a fingerprint of 40 hex digits")
	}
	switch {
	case ttl == 0:
		ttl = DefaultTokenTTL
	case ttl < 0 || ttl > MaxTokenTTL:
		return "", time.Time{}, fmt.Errorf("auth: session lifetime %v is not between 0 and %v", ttl, MaxTokenTTL)
	}
	exp := now.Add(ttl).Unix()
	b := make([]byte, tokenLen)
	b[0] = tokenVersion
	hex.Decode(b[1:1+fprLen], []byte(fingerprint))
	binary.BigEndian.PutUint64(b[1+fprLen:tokenMACAt], uint64(exp))
	t.mac(b[tokenMACAt:tokenMACAt], b[:tokenMACAt])
	return base64.RawURLEncoding.EncodeToString(b), time.Unix(exp, 0), nil
}

// Verify checks a token and returns the fingerprint it was issued for, in
// upper-case hex. Errors wrap ErrMalformed (not a token), ErrBadToken (not
// issued with this key) or ErrTokenExpired.
func (t *Tokens) Verify(token string, now time.Time) (fingerprint string, err error) {
	if t == nil {
		return "", ErrBadToken
	}
	if len(token) != tokenB64Len {
		return "", malformed("the session token has the wrong length; send it exactly as received")
	}
	b, err := base64.RawURLEncoding.Strict().DecodeString(token)
	if err != nil || len(b) != tokenLen {
		return "", malformed("the session token is not base64url; send it exactly as received")
	}
	if b[0] != tokenVersion {
		return "", fmt.Errorf("%w: unknown token version", ErrBadToken)
	}
	want := t.mac(make([]byte, 0, sha256.Size), b[:tokenMACAt])
	if !hmac.Equal(want, b[tokenMACAt:]) {
		return "", ErrBadToken
	}
	if exp := int64(binary.BigEndian.Uint64(b[1+fprLen : tokenMACAt])); now.Unix() >= exp {
		return "", fmt.Errorf("%w (it expired at %s)", ErrTokenExpired, time.Unix(exp, 0).UTC().Format(time.RFC3339))
	}
	return strings.ToUpper(hex.EncodeToString(b[1 : 1+fprLen])), nil
}

// mac appends HMAC-SHA256(key, msg) to dst.
func (t *Tokens) mac(dst, msg []byte) []byte {
	m := hmac.New(sha256.New, t.key)
	m.Write(msg)
	return m.Sum(dst)
}
