package auth

import (
	"context"
	"crypto/sha256"
	"encoding/base64"
	"errors"
	"fmt"
	"net/http"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"trustee.dev/trustee/server/openpgp"
)

func sprint(v any) string { return fmt.Sprintf("%v %+v %#v %s", v, v, v, v) }

// memClients is an in-memory client table.
type memClients map[string]ClientKey

func (m memClients) LookupClient(_ context.Context, fpr string) (ClientKey, error) {
	c, ok := m[fpr]
	if !ok {
		return ClientKey{}, ErrUnknownClient
	}
	return c, nil
}

// memNonces is an in-memory nonce table.
type memNonces struct {
	mu      sync.Mutex
	expires map[string]time.Time
	err     error
}

func (m *memNonces) UseNonce(_ context.Context, fpr, nonce string, expires time.Time) (bool, error) {
	m.mu.Lock()
	defer m.mu.Unlock()
	if m.err != nil {
		return false, m.err
	}
	if m.expires == nil {
		m.expires = map[string]time.Time{}
	}
	k := fpr + "/" + nonce
	if _, ok := m.expires[k]; ok {
		return false, nil
	}
	m.expires[k] = expires
	return true, nil
}

func (m *memNonces) len() int {
	m.mu.Lock()
	defer m.mu.Unlock()
	return len(m.expires)
}

var (
	keysOnce sync.Once
	keyA     *openpgp.PrivateKey
	keyB     *openpgp.PrivateKey
	keysErr  error
)

// testKeys returns two Ed25519 keys made once per test binary.
func testKeys(t testing.TB) (a, b *openpgp.PrivateKey) {
	t.Helper()
	keysOnce.Do(func() {
		keyA, keysErr = openpgp.Generate(openpgp.Ed25519, "Client A", "a@example.org")
		if keysErr == nil {
			keyB, keysErr = openpgp.Generate(openpgp.Ed25519, "Client B", "b@example.org")
		}
	})
	if keysErr != nil {
		t.Fatal(keysErr)
	}
	return keyA, keyB
}

var testNow = time.Unix(1_700_000_000, 0)

type fixture struct {
	a       *Authenticator
	clients memClients
	nonces  *memNonces
	now     time.Time
}

func newFixture(t testing.TB) *fixture {
	a, b := testKeys(t)
	tokens, err := NewTokens([]byte(strings.Repeat("k", 32)))
	if err != nil {
		t.Fatal(err)
	}
	f := &fixture{
		clients: memClients{
			a.Public().Fingerprint(): {Key: a.Public(), Active: true},
			b.Public().Fingerprint(): {Key: b.Public(), Active: false},
		},
		nonces: &memNonces{},
		now:    testNow,
	}
	f.a = &Authenticator{Clients: f.clients, Nonces: f.nonces, Tokens: tokens, Now: func() time.Time { return f.now }}
	return f
}

// signed builds a request signed by key at time at, as a client would.
func signed(t testing.TB, key *openpgp.PrivateKey, method, target string, body []byte, at time.Time) Request {
	t.Helper()
	req, err := http.NewRequest(method, "https://kts.example:11371"+target, nil)
	if err != nil {
		t.Fatal(err)
	}
	if err := SignRequest(key, req, body, at); err != nil {
		t.Fatal(err)
	}
	return Request{
		Method:        req.Method,
		EscapedPath:   req.URL.EscapedPath(),
		RawQuery:      req.URL.RawQuery,
		Authorization: req.Header.Get("Authorization"),
		BodySHA256:    sha256.Sum256(body),
	}
}

// checkNoSecrets fails when err shows the nonce or signature of r.
func checkNoSecrets(t *testing.T, err error, r Request) {
	t.Helper()
	if err == nil {
		return
	}
	c, perr := ParseAuthorization(r.Authorization)
	if perr != nil {
		return
	}
	msg := err.Error()
	sig := base64.RawStdEncoding.EncodeToString(c.Signature)
	if strings.Contains(msg, c.Nonce) || strings.Contains(msg, sig[:min(len(sig), 12)]) || (c.Token != "" && strings.Contains(msg, c.Token)) {
		t.Errorf("error shows a secret: %s", msg)
	}
}

func TestAuthenticateSignature(t *testing.T) {
	a, b := testKeys(t)
	body := []byte(`{"name":"db","secret":"czNjcjN0"}`)
	ctx := context.Background()

	t.Run("success", func(t *testing.T) {
		f := newFixture(t)
		r := signed(t, a, http.MethodPut, "/v1/deposits/my%20db?version=2&a=1", body, f.now)
		id, err := f.a.Authenticate(ctx, r)
		if err != nil {
			t.Fatal(err)
		}
		if id != (Identity{Fingerprint: a.Public().Fingerprint(), Scheme: SchemeSignature}) {
			t.Fatalf("identity %+v", id)
		}
		// The nonce is kept until the timestamp leaves the window.
		c, _ := ParseAuthorization(r.Authorization)
		if exp := f.nonces.expires[c.Fingerprint+"/"+c.Nonce]; !exp.Equal(f.now.Add(DefaultMaxSkew)) {
			t.Errorf("nonce kept until %v, want %v", exp, f.now.Add(DefaultMaxSkew))
		}
	})

	t.Run("skew", func(t *testing.T) {
		f := newFixture(t)
		for _, d := range []time.Duration{-DefaultMaxSkew, DefaultMaxSkew, 0} {
			if _, err := f.a.Authenticate(ctx, signed(t, a, "GET", "/v1/deposits", nil, f.now.Add(d))); err != nil {
				t.Errorf("timestamp %v off: %v", d, err)
			}
		}
		for _, tc := range []struct {
			d   time.Duration
			dir string
		}{{DefaultMaxSkew + time.Second, "ahead of"}, {-DefaultMaxSkew - time.Second, "behind"}, {-24 * time.Hour, "behind"}} {
			r := signed(t, a, "GET", "/v1/deposits", nil, f.now.Add(tc.d))
			_, err := f.a.Authenticate(ctx, r)
			if !errors.Is(err, ErrSkew) {
				t.Fatalf("timestamp %v off: got %v, want ErrSkew", tc.d, err)
			}
			for _, want := range []string{tc.dir, "check the client clock", strconv.FormatInt(f.now.Unix(), 10)} {
				if !strings.Contains(err.Error(), want) {
					t.Errorf("skew error %q does not mention %q", err, want)
				}
			}
		}
		if f.nonces.len() != 3 {
			t.Errorf("%d nonces recorded, want 3 (skewed requests record none)", f.nonces.len())
		}
		f.a.MaxSkew = time.Minute
		if _, err := f.a.Authenticate(ctx, signed(t, a, "GET", "/", nil, f.now.Add(2*time.Minute))); !errors.Is(err, ErrSkew) {
			t.Errorf("MaxSkew 1m, request 2m ahead: %v", err)
		}
	})

	t.Run("replay", func(t *testing.T) {
		f := newFixture(t)
		r := signed(t, a, "DELETE", "/v1/deposits/x", nil, f.now)
		if _, err := f.a.Authenticate(ctx, r); err != nil {
			t.Fatal(err)
		}
		f.now = f.now.Add(time.Minute)
		_, err := f.a.Authenticate(ctx, r)
		if !errors.Is(err, ErrReplay) {
			t.Fatalf("replay: got %v, want ErrReplay", err)
		}
		checkNoSecrets(t, err, r)
	})

	t.Run("bad signature", func(t *testing.T) {
		f := newFixture(t)
		good := signed(t, a, "PUT", "/v1/deposits/x?v=1", body, f.now)
		c, _ := ParseAuthorization(good.Authorization)
		other := signed(t, a, "GET", "/v1/deposits", nil, f.now)
		oc, _ := ParseAuthorization(other.Authorization)
		byB := signed(t, b, "PUT", "/v1/deposits/x?v=1", body, f.now)
		bc, _ := ParseAuthorization(byB.Authorization)

		swap := func(sig []byte) Request {
			r := good
			c2 := c
			c2.Signature = sig
			r.Authorization = c2.header()
			return r
		}
		flipped := append([]byte(nil), c.Signature...)
		flipped[len(flipped)-1] ^= 1
		for name, r := range map[string]Request{
			"signature of another request": swap(oc.Signature),
			"signature by another key":     swap(bc.Signature),
			"flipped bit":                  swap(flipped),
			"not a signature":              swap([]byte("garbage")),
			"other path":                   with(good, func(r *Request) { r.EscapedPath = "/v1/deposits/y" }),
			"unescaped path":               with(good, func(r *Request) { r.EscapedPath = "/v1/deposits/x " }),
			"other query":                  with(good, func(r *Request) { r.RawQuery = "v=2" }),
			"extra query":                  with(good, func(r *Request) { r.RawQuery = "v=1&admin=1" }),
			"other method":                 with(good, func(r *Request) { r.Method = "POST" }),
			"other body":                   with(good, func(r *Request) { r.BodySHA256 = sha256.Sum256([]byte("{}")) }),
			"no body":                      with(good, func(r *Request) { r.BodySHA256 = sha256.Sum256(nil) }),
		} {
			t.Run(name, func(t *testing.T) {
				_, err := f.a.Authenticate(ctx, r)
				if !errors.Is(err, ErrBadSignature) {
					t.Fatalf("got %v, want ErrBadSignature", err)
				}
				if !errors.Is(err, openpgp.ErrBadSignature) {
					t.Errorf("%v does not wrap openpgp.ErrBadSignature", err)
				}
				checkNoSecrets(t, err, r)
			})
		}
		if n := f.nonces.len(); n != 0 {
			t.Fatalf("%d nonces recorded for requests that failed verification", n)
		}
		// The nonce of a forged request was not burnt: the genuine one passes.
		if _, err := f.a.Authenticate(ctx, good); err != nil {
			t.Fatalf("genuine request after forgeries with its nonce: %v", err)
		}
		// Query order does not matter once canonical.
		r := signed(t, a, "GET", "/v1/deposits?b=2&a=1", nil, f.now)
		r.RawQuery = "a=1&b=2"
		if _, err := f.a.Authenticate(ctx, r); err != nil {
			t.Fatalf("reordered query: %v", err)
		}
	})

	t.Run("unknown client", func(t *testing.T) {
		f := newFixture(t)
		delete(f.clients, a.Public().Fingerprint())
		r := signed(t, a, "GET", "/", nil, f.now)
		_, err := f.a.Authenticate(ctx, r)
		if !errors.Is(err, ErrUnknownClient) || !strings.Contains(err.Error(), a.Public().Fingerprint()) {
			t.Fatalf("got %v, want ErrUnknownClient naming the fingerprint", err)
		}
		if f.nonces.len() != 0 {
			t.Error("nonce recorded for an unknown client")
		}
	})

	t.Run("inactive client", func(t *testing.T) {
		f := newFixture(t)
		r := signed(t, b, "GET", "/", nil, f.now)
		_, err := f.a.Authenticate(ctx, r)
		if !errors.Is(err, ErrClientNotActive) {
			t.Fatalf("got %v, want ErrClientNotActive", err)
		}
		// Activation does not make the already-seen request replayable.
		f.clients[b.Public().Fingerprint()] = ClientKey{Key: b.Public(), Active: true}
		if _, err := f.a.Authenticate(ctx, r); !errors.Is(err, ErrReplay) {
			t.Fatalf("got %v, want ErrReplay", err)
		}
		if _, err := f.a.Authenticate(ctx, signed(t, b, "GET", "/", nil, f.now)); err != nil {
			t.Fatalf("activated client: %v", err)
		}
	})

	t.Run("malformed", func(t *testing.T) {
		f := newFixture(t)
		if _, err := f.a.Authenticate(ctx, Request{Method: "GET", EscapedPath: "/"}); !errors.Is(err, ErrNoCredentials) {
			t.Errorf("no header: %v", err)
		}
		r := signed(t, a, "GET", "/", nil, f.now)
		r.RawQuery = "a=%zz"
		if _, err := f.a.Authenticate(ctx, r); !errors.Is(err, ErrMalformed) || !strings.Contains(err.Error(), "query") {
			t.Errorf("bad query: %v", err)
		}
		r.Authorization = "KTS-PGP nonce=x"
		if _, err := f.a.Authenticate(ctx, r); !errors.Is(err, ErrMalformed) {
			t.Errorf("bad header: %v", err)
		}
	})

	t.Run("store failures", func(t *testing.T) {
		f := newFixture(t)
		boom := errors.New("database is down")
		f.nonces.err = boom
		_, err := f.a.Authenticate(ctx, signed(t, a, "GET", "/", nil, f.now))
		if !errors.Is(err, boom) || isSentinel(err) {
			t.Errorf("nonce store failure: %v", err)
		}
		f.nonces.err = nil
		f.a.Clients = failingLookup{boom}
		_, err = f.a.Authenticate(ctx, signed(t, a, "GET", "/", nil, f.now))
		if !errors.Is(err, boom) || isSentinel(err) {
			t.Errorf("lookup failure: %v", err)
		}
		f.a.Clients = nil
		if _, err := f.a.Authenticate(ctx, signed(t, a, "GET", "/", nil, f.now)); err == nil || isSentinel(err) {
			t.Errorf("no KeyLookup: %v", err)
		}
	})
}

func with(r Request, change func(*Request)) Request {
	change(&r)
	return r
}

type failingLookup struct{ err error }

func (l failingLookup) LookupClient(context.Context, string) (ClientKey, error) {
	return ClientKey{}, l.err
}

func isSentinel(err error) bool {
	for _, s := range []error{ErrNoCredentials, ErrMalformed, ErrSkew, ErrReplay, ErrUnknownClient, ErrBadSignature, ErrClientNotActive, ErrTokenExpired, ErrBadToken} {
		if errors.Is(err, s) {
			return true
		}
	}
	return false
}

func TestAuthenticateSession(t *testing.T) {
	a, _ := testKeys(t)
	ctx := context.Background()
	f := newFixture(t)
	fpr := a.Public().Fingerprint()
	tok, exp, err := f.a.Tokens.Issue(fpr, 0, f.now)
	if err != nil {
		t.Fatal(err)
	}
	if !exp.Equal(f.now.Add(DefaultTokenTTL)) {
		t.Errorf("expires %v, want %v", exp, f.now.Add(DefaultTokenTTL))
	}
	r := Request{Method: "GET", EscapedPath: "/v1/deposits", Authorization: "KTS-Session " + tok}
	id, err := f.a.Authenticate(ctx, r)
	if err != nil || id != (Identity{Fingerprint: fpr, Scheme: SchemeSession}) {
		t.Fatalf("Authenticate = %+v, %v", id, err)
	}
	// A token may be used many times until it expires; the nonce store is
	// not involved.
	if _, err := f.a.Authenticate(ctx, r); err != nil {
		t.Fatal(err)
	}
	if f.nonces.len() != 0 {
		t.Error("session requests recorded nonces")
	}
	f.now = exp
	if _, err := f.a.Authenticate(ctx, r); !errors.Is(err, ErrTokenExpired) {
		t.Fatalf("at expiry: %v, want ErrTokenExpired", err)
	}
	f.now = testNow

	other, _ := NewTokens([]byte(strings.Repeat("o", 32)))
	otherTok, _, _ := other.Issue(fpr, 0, f.now)
	if _, err := f.a.Authenticate(ctx, Request{Authorization: "KTS-Session " + otherTok}); !errors.Is(err, ErrBadToken) {
		t.Fatalf("token of another server: %v, want ErrBadToken", err)
	}
	f.a.Tokens = nil
	if _, err := f.a.Authenticate(ctx, r); !errors.Is(err, ErrBadToken) {
		t.Fatalf("sessions disabled: %v, want ErrBadToken", err)
	}
}

func TestVerifyWithKey(t *testing.T) {
	a, b := testKeys(t)
	ctx := context.Background()
	f := newFixture(t)
	f.a.Clients = nil // registration does not look clients up
	body := b.Public().Armor()
	r := signed(t, b, "POST", "/v1/register", body, f.now)

	c, err := f.a.VerifyWithKey(ctx, r, b.Public())
	if err != nil {
		t.Fatal(err)
	}
	if c.Fingerprint != b.Public().Fingerprint() || c.Timestamp != f.now.Unix() {
		t.Fatalf("credentials %v", c)
	}
	if _, err := f.a.VerifyWithKey(ctx, r, b.Public()); !errors.Is(err, ErrReplay) {
		t.Fatalf("replayed registration: %v, want ErrReplay", err)
	}
	r = signed(t, b, "POST", "/v1/register", body, f.now)
	if _, err := f.a.VerifyWithKey(ctx, r, a.Public()); !errors.Is(err, ErrBadSignature) || !strings.Contains(err.Error(), "sign with the key you send") {
		t.Fatalf("key mismatch: %v, want ErrBadSignature", err)
	}
	r = signed(t, b, "POST", "/v1/register", body, f.now.Add(-time.Hour))
	if _, err := f.a.VerifyWithKey(ctx, r, b.Public()); !errors.Is(err, ErrSkew) {
		t.Fatalf("old registration: %v, want ErrSkew", err)
	}
	r = signed(t, b, "POST", "/v1/register", body, f.now)
	r.BodySHA256 = sha256.Sum256(a.Public().Armor())
	if _, err := f.a.VerifyWithKey(ctx, r, b.Public()); !errors.Is(err, ErrBadSignature) {
		t.Fatalf("other body: %v, want ErrBadSignature", err)
	}
	tok, _, _ := newFixture(t).a.Tokens.Issue(b.Public().Fingerprint(), 0, f.now)
	if _, err := f.a.VerifyWithKey(ctx, Request{Authorization: "KTS-Session " + tok}, b.Public()); !errors.Is(err, ErrMalformed) {
		t.Fatalf("session token for registration: %v, want ErrMalformed", err)
	}
}

func TestSignRequest(t *testing.T) {
	a, _ := testKeys(t)
	req, _ := http.NewRequest("", "https://kts.example/v1/x%2Fy?q=1", nil)
	if err := SignRequest(a, req, nil, testNow); err != nil {
		t.Fatal(err)
	}
	c, err := ParseAuthorization(req.Header.Get("Authorization"))
	if err != nil {
		t.Fatal(err)
	}
	if len(c.Nonce) != 32 || c.Fingerprint != a.Public().Fingerprint() || c.Timestamp != testNow.Unix() {
		t.Fatalf("credentials %v, nonce length %d", c, len(c.Nonce))
	}
	msg := CanonicalRequest("GET", "/v1/x%2Fy", "q=1", c.Timestamp, c.Nonce, sha256.Sum256(nil))
	if err := a.Public().VerifyDetached(msg, c.Signature); err != nil {
		t.Fatal(err)
	}
	req2, _ := http.NewRequest("GET", "https://kts.example/", nil)
	SignRequest(a, req2, nil, testNow)
	c2, _ := ParseAuthorization(req2.Header.Get("Authorization"))
	if c2.Nonce == c.Nonce {
		t.Fatal("two requests got the same nonce")
	}
	if err := SignRequest(nil, req, nil, testNow); err == nil {
		t.Fatal("SignRequest without a key succeeded")
	}
}

func TestMemoryNonces(t *testing.T) {
	m := NewMemoryNonces()
	ctx := context.Background()
	exp := time.Now().Add(time.Minute)
	if fresh, _ := m.UseNonce(ctx, "A", "n1", exp); !fresh {
		t.Fatal("first use refused")
	}
	if fresh, _ := m.UseNonce(ctx, "A", "n1", exp); fresh {
		t.Fatal("replay accepted")
	}
	if fresh, _ := m.UseNonce(ctx, "B", "n1", exp); !fresh {
		t.Fatal("another client's nonce refused")
	}
	if fresh, _ := m.UseNonce(ctx, "C", "n1", time.Now().Add(-time.Second)); !fresh {
		t.Fatal("first use refused")
	}
	if fresh, _ := m.UseNonce(ctx, "C", "n1", exp); !fresh {
		t.Fatal("an expired nonce is still remembered")
	}
}
