package security

import (
	"bytes"
	"crypto/rand"
	"crypto/sha256"
	"encoding/base64"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"strings"
	"testing"
	"time"

	"trustee.dev/trustee/server/auth"
	"trustee.dev/trustee/server/openpgp"
)

// randomHex returns n random bytes in hex.
func randomHex(n int) string {
	b := make([]byte, n)
	rand.Read(b)
	return hex.EncodeToString(b)
}

// secretText returns a fresh random secret with a recognizable prefix, and
// remembers it under kind.
func secretText(kind, prefix string) string {
	s := prefix + randomHex(16)
	used.add(kind, s)
	return s
}

// identity is a client's OpenPGP key as an attacker or a victim holds it:
// fpr is the fingerprint its requests name, sign the key that signs them.
type identity struct {
	fpr    string
	public []byte // armored
	sign   func(msg []byte) ([]byte, error)
}

// newIdentity makes an Ed25519 client key.
func newIdentity(t testing.TB) *identity {
	t.Helper()
	k, err := openpgp.Generate(openpgp.Ed25519, "security test client", "")
	if err != nil {
		t.Fatal(err)
	}
	return &identity{fpr: k.Public().Fingerprint(), public: k.Public().Armor(), sign: k.SignDetached}
}

// authorization returns the KTS-PGP Authorization header of a request
// (target is the path as sent, with its query), signed at ts with a fresh
// nonce, as docs/API.md describes it. The nonce and the signature are
// remembered as secrets.
func (id *identity) authorization(t testing.TB, method, target string, body []byte, ts time.Time) string {
	t.Helper()
	path, query, _ := strings.Cut(target, "?")
	nonce := base64.RawURLEncoding.EncodeToString([]byte(randomHex(12)))
	msg := auth.CanonicalRequest(method, path, query, ts.Unix(), nonce, sha256.Sum256(body))
	sig, err := id.sign(msg)
	if err != nil {
		t.Fatal(err)
	}
	sig64 := base64.StdEncoding.EncodeToString(sig)
	used.add("nonce", nonce)
	used.add("signature", sig64)
	return fmt.Sprintf("KTS-PGP fingerprint=%s, timestamp=%d, nonce=%s, signature=%s", id.fpr, ts.Unix(), nonce, sig64)
}

// answer is a server's answer.
type answer struct {
	status int
	header http.Header
	body   []byte
}

// code is the "error" of a JSON error body.
func (a answer) code() string {
	var e struct {
		Error string `json:"error"`
	}
	json.Unmarshal(a.body, &e)
	return e.Error
}

func (a answer) String() string {
	body := a.body
	if len(body) > 300 {
		body = append(body[:300:300], "..."...)
	}
	return fmt.Sprintf("%d %s", a.status, bytes.TrimSpace(body))
}

// send sends a request with the given Authorization header ("" for none).
func (s *server) send(t testing.TB, method, target, authorization string, body []byte) answer {
	t.Helper()
	req, err := http.NewRequest(method, s.url+target, bytes.NewReader(body))
	if err != nil {
		t.Fatal(err)
	}
	if body == nil {
		req.Body, req.ContentLength = http.NoBody, 0
	}
	if authorization != "" {
		req.Header.Set("Authorization", authorization)
	}
	resp, err := s.client.Do(req)
	if err != nil {
		t.Fatalf("%s %s: %v", method, target, err)
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(resp.Body)
	if err != nil {
		t.Fatalf("%s %s: reading the answer: %v", method, target, err)
	}
	return answer{resp.StatusCode, resp.Header, b}
}

// signed sends a request signed now by id.
func (s *server) signed(t testing.TB, id *identity, method, target string, body []byte) answer {
	t.Helper()
	return s.send(t, method, target, id.authorization(t, method, target, body, time.Now()), body)
}

// withToken sends a request carrying a session token.
func (s *server) withToken(t testing.TB, token, method, target string, body []byte) answer {
	t.Helper()
	return s.send(t, method, target, "KTS-Session "+token, body)
}

// registerBody is the body of POST /v1/register.
func registerBody(org, code string, public []byte) []byte {
	b, _ := json.Marshal(map[string]string{"org": org, "auth_code": code, "public_key": string(public)})
	return b
}

// register registers id with an organization.
func (s *server) register(t testing.TB, id *identity, org, code string) answer {
	t.Helper()
	return s.signed(t, id, "POST", "/v1/register", registerBody(org, code, id.public))
}

// newOrg creates an organization with one contact and the given auth code
// ("" for none), through the organization tool, and returns its name.
func (s *server) newOrg(t testing.TB, code string) string {
	t.Helper()
	name := "org-" + randomHex(6)
	s.mustKTS(t, "", "org", "add", "-n", name, "-c", "contact-"+randomHex(4)+"@example.com")
	if code == "" {
		s.mustKTS(t, "", "org", "set-auth", "-n", name, "-s", "")
	} else {
		used.add("auth code", code)
		s.mustKTS(t, code+"\n", "org", "set-auth", "-n", name, "-s", "-")
	}
	return name
}

// activeClient registers a new client with the organization's auth code and
// checks that it is active.
func (s *server) activeClient(t testing.TB, org, code string) *identity {
	t.Helper()
	id := newIdentity(t)
	if a := s.register(t, id, org, code); a.status != http.StatusCreated || !strings.Contains(string(a.body), `"state": "active"`) {
		t.Fatalf("registering a client with %s: %s", org, a)
	}
	return id
}

// session opens a session for id and returns its token.
func (s *server) session(t testing.TB, id *identity) string {
	t.Helper()
	a := s.signed(t, id, "POST", "/v1/session", nil)
	var out struct {
		Token string `json:"token"`
	}
	if a.status != http.StatusCreated || json.Unmarshal(a.body, &out) != nil || out.Token == "" {
		t.Fatalf("opening a session: %s", a)
	}
	used.add("session token", out.Token)
	return out.Token
}

// put stores a deposit and fails the test unless it was created.
func (s *server) put(t testing.TB, id *identity, name string, data []byte) {
	t.Helper()
	if a := s.signed(t, id, "PUT", "/v1/deposits/"+name, data); a.status != http.StatusCreated {
		t.Fatalf("PUT %s: %s", name, a)
	}
}

// get reads a deposit and fails the test unless it holds want.
func (s *server) get(t testing.TB, id *identity, name string, want []byte) {
	t.Helper()
	if a := s.signed(t, id, "GET", "/v1/deposits/"+name, nil); a.status != http.StatusOK || !bytes.Equal(a.body, want) {
		t.Fatalf("GET %s by its owner: %s", name, a)
	}
}

// want checks an answer's status and error code ("" for any).
func want(t testing.TB, what string, a answer, status int, code string) {
	t.Helper()
	if a.status != status || code != "" && a.code() != code {
		t.Errorf("%s: answered %s; want %d %s", what, a, status, code)
	}
}
