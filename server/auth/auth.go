// Package auth authenticates requests to the Key Trustee Server.
//
// # Signed requests (KTS-PGP)
//
// A client proves who it is by signing each request with its OpenPGP key,
// the one it registered; its identity is that key's fingerprint. The design
// goal is that a client made of nothing but gpg and curl works. A request
// carries
//
//	Authorization: KTS-PGP fingerprint=<40 upper-case hex>, timestamp=<unix seconds>, nonce=<16-64 of [A-Za-z0-9_-]>, signature=<base64>
//
// Parameters come in any order, separated by commas and optional spaces, each
// exactly once. A request carries one Authorization header: a server refuses
// a request with several (OneHeader), as a proxy in front might check
// another one than the server. The signature is a binary detached OpenPGP signature (as
// `gpg --detach-sign` writes it), base64-encoded with the standard alphabet,
// padded or not. It covers the canonical request: these lines joined by "\n",
// with no newline at the end:
//
//	KTS-PGP-V1
//	<method, upper-case>
//	<path exactly as sent in the request line, still %-escaped; "/" if empty>
//	<query: url.ParseQuery(raw).Encode(): form-encoded (space as "+"), sorted by key; empty if none>
//	<timestamp, decimal, as in the header>
//	<nonce, as in the header>
//	<lower-case hex SHA-256 of the body; of the empty string when there is none>
//
// With a query already sorted by key and form-encoded (a space as "+", every
// byte but A-Z a-z 0-9 - _ . ~ as %XX with upper-case hex), the query line is
// the raw query itself; docs/API.md gives a bash function that makes it. In a
// shell:
//
//	fpr=0123...CDEF                       # gpg --list-keys --with-colons
//	ts=$(date +%s)
//	nonce=$(head -c 24 /dev/urandom | base64 | tr '+/' '-_')
//	hash=$(sha256sum < body.json | cut -d' ' -f1)    # no body: sha256sum < /dev/null
//	printf 'KTS-PGP-V1\n%s\n%s\n%s\n%s\n%s\n%s' PUT /v1/deposits/db '' "$ts" "$nonce" "$hash" |
//	    gpg --local-user "$fpr" --detach-sign > req.sig
//	curl --data-binary @body.json -X PUT https://kts.example:11371/v1/deposits/db \
//	    -H "Authorization: KTS-PGP fingerprint=$fpr, timestamp=$ts, nonce=$nonce, signature=$(base64 -w0 req.sig)"
//
// The server accepts a timestamp within MaxSkew (default 5 minutes) of its
// own clock and remembers each (fingerprint, nonce) pair until the timestamp
// could no longer pass that check, so a captured request cannot be replayed.
// The nonce is recorded only after the signature verifies: unauthenticated
// requests cannot fill the nonce store.
//
// # Sessions (KTS-Session)
//
// Verifying a signature per request costs about 0.1 ms (Ed25519) to 0.5 ms
// (RSA 4096) of CPU and a nonce write. A client sending many
// requests can instead open a session: it sends one signed handshake request
// and the server answers with a token, which later requests carry as
//
//	Authorization: KTS-Session <token>
//
// The token is base64url (no padding) of a version byte, the client's 20-byte
// fingerprint, an 8-byte big-endian expiry in unix seconds, and an
// HMAC-SHA256 over those bytes under a server key. It is verified with one
// HMAC, compared in constant time, and needs no server-side state.
//
// Why this is safe: the token is a bearer credential, so it travels only over
// TLS and must never be logged. It is obtained only through a fresh signed
// request, which itself passes the timestamp and nonce checks, so a replayed
// handshake yields nothing; the server must issue tokens only to requests
// whose Identity.Scheme is SchemeSignature, never to a session, so that a
// stolen token cannot renew itself. It is bound to one
// client fingerprint and cannot be altered without the server key. It expires
// quickly: 5 minutes by default, 1 hour at most, so a leaked token is of
// short use. And it is not an authorization cache: Authenticate returns only
// the fingerprint, and the caller checks the client's state (active, its
// organization, its permissions) in its own database query on every request,
// so disabling a client takes effect at once, also for its open sessions.
// Rotating the server key revokes all tokens at once.
//
// Nonces, signatures and tokens are never placed in error messages; errors
// wrap the exported sentinels and are meant to be shown to the client.
package auth

import (
	"context"
	"errors"
	"fmt"
	"net/url"
	"time"

	"trustee.dev/trustee/server/openpgp"
)

// Sentinel errors, usable with errors.Is. ErrClientNotActive calls for 403
// Forbidden; the others for 401 Unauthorized (or 400 for ErrMalformed). Any
// other error returned by Authenticate comes from a KeyLookup or NonceStore
// and is a server failure.
var (
	ErrNoCredentials   = errors.New("no credentials: sign the request (Authorization: KTS-PGP ...) or send a session token (Authorization: KTS-Session ...)")
	ErrMalformed       = errors.New("malformed Authorization header")
	ErrSkew            = errors.New("request timestamp outside the allowed window")
	ErrReplay          = errors.New("nonce already used: sign every request with a fresh nonce")
	ErrUnknownClient   = errors.New("unknown client")
	ErrBadSignature    = errors.New("bad request signature")
	ErrClientNotActive = errors.New("client is not active (pending approval or disabled); ask an administrator of its organization")
	ErrOrgExpired      = errors.New("the client's organization has expired; its administrators can have it extended (kts org set-expiration)")
	ErrTokenExpired    = errors.New("session token expired: open a new session with a signed request")
	ErrBadToken        = errors.New("invalid session token: open a new session with a signed request")
)

// DefaultMaxSkew is the clock difference Authenticator accepts when its
// MaxSkew is zero.
const DefaultMaxSkew = 5 * time.Minute

// Scheme is an authentication scheme.
type Scheme int

// Authentication schemes.
const (
	// SchemeSignature is a request signed with the client's OpenPGP key
	// (Authorization: KTS-PGP ...).
	SchemeSignature Scheme = iota + 1
	// SchemeSession is a session token (Authorization: KTS-Session ...).
	SchemeSession
)

// String returns the scheme's name as written in the Authorization header.
func (s Scheme) String() string {
	switch s {
	case SchemeSignature:
		return schemeSignature
	case SchemeSession:
		return schemeSession
	}
	return fmt.Sprintf("Scheme(%d)", int(s))
}

// ClientKey is what the server knows of a registered client.
type ClientKey struct {
	Key *openpgp.PublicKey
	// Active is false while the client is pending approval or disabled.
	Active bool
	// OrgExpires is when the client's organization expires; zero: never.
	OrgExpires time.Time
}

// KeyLookup finds registered clients.
type KeyLookup interface {
	// LookupClient returns the client with the given fingerprint (40
	// upper-case hex digits), or an error wrapping ErrUnknownClient.
	LookupClient(ctx context.Context, fingerprint string) (ClientKey, error)
}

// NonceStore remembers the nonces of accepted requests.
type NonceStore interface {
	// UseNonce records the nonce of a client until expires, reporting
	// whether it was fresh (not recorded before). Entries may be forgotten
	// once expired.
	UseNonce(ctx context.Context, fingerprint, nonce string, expires time.Time) (fresh bool, err error)
}

// Request is the part of an HTTP request that authentication covers.
type Request struct {
	Method string
	// EscapedPath is the path as sent in the request line (r.URL.EscapedPath()).
	EscapedPath string
	// RawQuery is the query as sent, without "?" (r.URL.RawQuery).
	RawQuery string
	// Authorization is the Authorization header, or "".
	Authorization string
	// BodySHA256 is the SHA-256 of the request body (of nothing if none).
	BodySHA256 [32]byte
}

// Identity is an authenticated client.
type Identity struct {
	Fingerprint string
	Scheme      Scheme
}

// Authenticator checks requests. Clients and Nonces are required, Tokens
// only to accept sessions.
type Authenticator struct {
	Clients KeyLookup
	Nonces  NonceStore
	Tokens  *Tokens
	// MaxSkew is how far a request's timestamp may be from the server's
	// clock, either way; zero means DefaultMaxSkew.
	MaxSkew time.Duration
	// Now returns the current time; nil means time.Now.
	Now func() time.Time
}

func (a *Authenticator) now() time.Time {
	if a.Now != nil {
		return a.Now()
	}
	return time.Now()
}

func (a *Authenticator) maxSkew() time.Duration {
	if a.MaxSkew > 0 {
		return a.MaxSkew
	}
	return DefaultMaxSkew
}

// Authenticate checks the request's credentials and returns who sent it.
//
// For a signed request it checks, in order: the header's syntax, the
// timestamp against the clock, that the client is registered, the
// signature, that the nonce is fresh (recording it), and that the client is
// active.
//
// For a session token it checks only the token: the returned identity may
// belong to a client that has since been disabled, so the caller must check
// the client's state in its own database query for the request.
func (a *Authenticator) Authenticate(ctx context.Context, r Request) (Identity, error) {
	c, err := ParseAuthorization(r.Authorization)
	if err != nil {
		return Identity{}, err
	}
	if c.Scheme == SchemeSession {
		if a.Tokens == nil {
			return Identity{}, fmt.Errorf("%w: this server does not issue sessions; sign each request (KTS-PGP)", ErrBadToken)
		}
		fpr, err := a.Tokens.Verify(c.Token, a.now())
		if err != nil {
			return Identity{}, err
		}
		return Identity{Fingerprint: fpr, Scheme: SchemeSession}, nil
	}

	if a.Clients == nil || a.Nonces == nil {
		return Identity{}, errors.New("auth: Authenticator needs Clients and Nonces")
	}
	if err := a.checkFresh(r, c); err != nil {
		return Identity{}, err
	}
	client, err := a.Clients.LookupClient(ctx, c.Fingerprint)
	if errors.Is(err, ErrUnknownClient) {
		return Identity{}, fmt.Errorf("%w: no client with fingerprint %s is registered; register it first", ErrUnknownClient, c.Fingerprint)
	}
	if err != nil {
		return Identity{}, fmt.Errorf("auth: looking up client %s: %w", c.Fingerprint, err)
	}
	if client.Key == nil || client.Key.Fingerprint() != c.Fingerprint {
		return Identity{}, fmt.Errorf("auth: lookup of client %s returned another key", c.Fingerprint)
	}
	if err := a.verify(ctx, r, c, client.Key); err != nil {
		return Identity{}, err
	}
	if !client.Active {
		return Identity{}, fmt.Errorf("%w: client %s", ErrClientNotActive, c.Fingerprint)
	}
	if !client.OrgExpires.IsZero() && !a.now().Before(client.OrgExpires) {
		return Identity{}, fmt.Errorf("%w: on %s", ErrOrgExpired, client.OrgExpires.UTC().Format(time.RFC3339))
	}
	return Identity{Fingerprint: c.Fingerprint, Scheme: SchemeSignature}, nil
}

// VerifyWithKey checks a request signed by key, a key not registered yet, as
// when a client registers: the header's syntax, the timestamp, that the
// header names key's fingerprint, the signature, and the nonce (recording
// it). It returns the parsed credentials.
func (a *Authenticator) VerifyWithKey(ctx context.Context, r Request, key *openpgp.PublicKey) (Credentials, error) {
	if key == nil {
		return Credentials{}, errors.New("auth: VerifyWithKey needs a key")
	}
	if a.Nonces == nil {
		return Credentials{}, errors.New("auth: Authenticator needs Nonces")
	}
	c, err := ParseAuthorization(r.Authorization)
	if err != nil {
		return Credentials{}, err
	}
	if c.Scheme != SchemeSignature {
		return Credentials{}, fmt.Errorf("%w: this request must be signed (KTS-PGP), a session token is not accepted", ErrMalformed)
	}
	if err := a.checkFresh(r, c); err != nil {
		return Credentials{}, err
	}
	if c.Fingerprint != key.Fingerprint() {
		return Credentials{}, fmt.Errorf("%w: the header names fingerprint %s but the key sent is %s; sign with the key you send", ErrBadSignature, c.Fingerprint, key.Fingerprint())
	}
	if err := a.verify(ctx, r, c, key); err != nil {
		return Credentials{}, err
	}
	return c, nil
}

// checkFresh checks the query's syntax and the timestamp against the clock.
func (a *Authenticator) checkFresh(r Request, c Credentials) error {
	if _, err := url.ParseQuery(r.RawQuery); err != nil {
		return fmt.Errorf("%w: the query string cannot be parsed (%v); escape it properly", ErrMalformed, err)
	}
	now := a.now()
	skew := int64(a.maxSkew() / time.Second)
	diff := c.Timestamp - now.Unix()
	if diff > skew || diff < -skew {
		dir := "ahead of"
		if diff < 0 {
			dir, diff = "behind", -diff
		}
		return fmt.Errorf("%w: it is %ds %s the server clock (server time is %d, %s; at most %ds allowed); check the client clock (NTP) and sign with the current time",
			ErrSkew, diff, dir, now.Unix(), now.UTC().Format(time.RFC3339), skew)
	}
	return nil
}

// verify checks the signature over the canonical request and then records
// the nonce.
func (a *Authenticator) verify(ctx context.Context, r Request, c Credentials, key *openpgp.PublicKey) error {
	msg := CanonicalRequest(r.Method, r.EscapedPath, r.RawQuery, c.Timestamp, c.Nonce, r.BodySHA256)
	if err := key.VerifyDetached(msg, c.Signature); err != nil {
		return fmt.Errorf("%w: %w (it must cover the canonical request of this method, path, query, timestamp, nonce and body)", ErrBadSignature, err)
	}
	expires := time.Unix(c.Timestamp, 0).Add(a.maxSkew())
	fresh, err := a.Nonces.UseNonce(ctx, c.Fingerprint, c.Nonce, expires)
	if err != nil {
		return fmt.Errorf("auth: recording nonce of client %s: %w", c.Fingerprint, err)
	}
	if !fresh {
		return fmt.Errorf("%w (client %s)", ErrReplay, c.Fingerprint)
	}
	return nil
}
