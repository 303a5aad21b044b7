package httpapi_test

import (
	"bytes"
	"crypto/sha256"
	"encoding/base64"
	"encoding/json"
	"fmt"
	"net/http"
	"regexp"
	"strings"
	"testing"
	"time"

	"trustee.dev/trustee/server/auth"
	"trustee.dev/trustee/server/openpgp"
	"trustee.dev/trustee/server/openpgp/openpgptest"
)

func TestFingerprintAndHKP(t *testing.T) {
	e := newEnv(t)
	a := e.do("GET", "/?a=fingerprint", nil, nil, "")
	if a.status != 200 || string(a.body) != e.key.Public().ID() {
		t.Fatalf("fingerprint: %d %q, want %q", a.status, a.body, e.key.Public().ID())
	}
	if !regexp.MustCompile(`^255E/[0-9A-F]{40}$`).Match(a.body) {
		t.Fatalf("fingerprint %q is not <bits><algo>/<40 hex>", a.body)
	}
	fp := e.key.Public().Fingerprint()
	for _, search := range []string{"0x" + fp, fp, "0x" + strings.ToLower(fp)} {
		a = e.do("GET", "/pks/lookup?op=get&options=mr&search="+search, nil, nil, "")
		if a.status != 200 || a.header.Get("Content-Type") != "application/pgp-keys" {
			t.Fatalf("lookup %s: %d %s", search, a.status, a.body)
		}
		k, err := openpgp.ParsePublic(a.body)
		if err != nil || k.Fingerprint() != fp {
			t.Fatalf("lookup returned key %v, %v", k, err)
		}
	}
	if r := e.register(1, "open", ""); r.status != 201 {
		t.Fatalf("register: %d %s", r.status, r.body)
	}
	a = e.do("GET", "/pks/lookup?op=get&options=mr&search=0x"+openpgptest.Key(t, 1).Public().Fingerprint(), nil, nil, "")
	if k, err := openpgp.ParsePublic(a.body); a.status != 200 || err != nil || k.Fingerprint() != openpgptest.Key(t, 1).Public().Fingerprint() {
		t.Fatalf("client key lookup: %d %v", a.status, err)
	}
}

func TestRegistrationStates(t *testing.T) {
	e := newEnv(t)
	cases := []struct {
		key       int
		org, code string
		want      string
	}{
		{1, "acme", acmeCode, "active"},
		{2, "acme", "wrong", "pending"},
		{3, "acme", "", "pending"},
		{4, "open", "", "active"},
		{5, "open", "anything", "active"},
	}
	for _, c := range cases {
		a := e.register(c.key, c.org, c.code)
		var res struct {
			Fingerprint, State, KeyID string
			ServerFingerprint         string `json:"server_fingerprint"`
		}
		if err := json.Unmarshal(a.body, &res); err != nil || a.status != http.StatusCreated {
			t.Fatalf("register %d with %s/%q: %d %s", c.key, c.org, c.code, a.status, a.body)
		}
		if res.State != c.want || res.Fingerprint != openpgptest.Key(t, c.key).Public().Fingerprint() || res.ServerFingerprint != e.key.Public().ID() {
			t.Errorf("register %d with %s/%q: %+v, want state %s", c.key, c.org, c.code, res, c.want)
		}
	}
	// A pending client can't use deposits until enabled.
	if a := e.do("GET", "/v1/deposits", nil, openpgptest.Key(t, 2), ""); a.status != http.StatusForbidden || a.code != "client_not_active" {
		t.Fatalf("pending client list: %d %s", a.status, a.body)
	}
	if _, err := e.store.SetClientState(t.Context(), openpgptest.Key(t, 2).Public().Fingerprint(), "active"); err != nil {
		t.Fatal(err)
	}
	if a := e.do("GET", "/v1/deposits", nil, openpgptest.Key(t, 2), ""); a.status != http.StatusOK {
		t.Fatalf("enabled client list: %d %s", a.status, a.body)
	}
}

func TestDepositLifecycle(t *testing.T) {
	for _, mode := range []string{"signed", "session"} {
		t.Run(mode, func(t *testing.T) {
			e := newEnv(t)
			k := openpgptest.Key(t, 1)
			e.register(1, "acme", acmeCode)
			authz := ""
			signer := k
			if mode == "session" {
				authz, signer = "KTS-Session "+e.session(k), nil
			}
			data := []byte("\x00binary deposit\xff")
			if a := e.do("PUT", "/v1/deposits/key1", data, signer, authz); a.status != http.StatusCreated {
				t.Fatalf("put: %d %s", a.status, a.body)
			}
			if a := e.do("GET", "/v1/deposits/key1", nil, signer, authz); a.status != 200 || !bytes.Equal(a.body, data) {
				t.Fatalf("get: %d %q", a.status, a.body)
			}
			a := e.do("GET", "/v1/deposits", nil, signer, authz)
			var list struct {
				Deposits []struct {
					Name string
					Size int
				}
			}
			if err := json.Unmarshal(a.body, &list); err != nil || len(list.Deposits) != 1 || list.Deposits[0].Name != "key1" || list.Deposits[0].Size != len(data) {
				t.Fatalf("list: %d %s", a.status, a.body)
			}
			// Stored encrypted: the plaintext is nowhere in the row.
			var ct []byte
			if err := e.sql.QueryRow(t.Context(), `SELECT ciphertext FROM deposits`).Scan(&ct); err != nil || bytes.Contains(ct, data[1:10]) {
				t.Fatalf("deposit not encrypted at rest (err %v)", err)
			}
			if a := e.do("DELETE", "/v1/deposits/key1", nil, signer, authz); a.status != http.StatusNoContent {
				t.Fatalf("delete: %d %s", a.status, a.body)
			}
			if a := e.do("GET", "/v1/deposits/key1", nil, signer, authz); a.status != http.StatusNotFound {
				t.Fatalf("get after delete: %d %s", a.status, a.body)
			}
		})
	}
}

func TestClientsAreIsolated(t *testing.T) {
	// Without the read cache, so that the tampered row below is read back.
	e := newEnvWith(t, false)
	alice, bob := openpgptest.Key(t, 1), openpgptest.Key(t, 2)
	e.register(1, "acme", acmeCode)
	e.register(2, "acme", acmeCode)
	if a := e.do("PUT", "/v1/deposits/shared-name", []byte("alice's"), alice, ""); a.status != 201 {
		t.Fatalf("alice put: %d", a.status)
	}
	if a := e.do("GET", "/v1/deposits/shared-name", nil, bob, ""); a.status != http.StatusNotFound {
		t.Fatalf("bob read alice's deposit: %d %q", a.status, a.body)
	}
	if a := e.do("DELETE", "/v1/deposits/shared-name", nil, bob, ""); a.status != http.StatusNotFound {
		t.Fatalf("bob deleted alice's deposit: %d", a.status)
	}
	if a := e.do("GET", "/v1/deposits", nil, bob, ""); a.status != 200 || strings.Contains(string(a.body), "shared-name") {
		t.Fatalf("bob's list shows alice's deposit: %s", a.body)
	}
	// Bob may use the same name for his own deposit.
	if a := e.do("PUT", "/v1/deposits/shared-name", []byte("bob's"), bob, ""); a.status != 201 {
		t.Fatalf("bob put: %d %s", a.status, a.body)
	}
	if a := e.do("GET", "/v1/deposits/shared-name", nil, alice, ""); string(a.body) != "alice's" {
		t.Fatalf("alice reads %q", a.body)
	}
	// A ciphertext moved to another owner's row does not open.
	if _, err := e.sql.Exec(t.Context(), `UPDATE deposits SET ciphertext = (SELECT ciphertext FROM deposits WHERE owner = $1),
		wrapped_key = (SELECT wrapped_key FROM deposits WHERE owner = $1) WHERE owner = $2`,
		alice.Public().Fingerprint(), bob.Public().Fingerprint()); err != nil {
		t.Fatal(err)
	}
	if a := e.do("GET", "/v1/deposits/shared-name", nil, bob, ""); a.status != http.StatusInternalServerError || strings.Contains(string(a.body), "alice") {
		t.Fatalf("moved ciphertext: %d %q, want 500 without its contents", a.status, a.body)
	}
}

// sigHeader builds a KTS-PGP header by hand, so tests can break each part.
func sigHeader(k *openpgp.PrivateKey, fp, method, path, query string, ts int64, nonce string, body []byte) string {
	sig, err := k.SignDetached(auth.CanonicalRequest(method, path, query, ts, nonce, sha256.Sum256(body)))
	if err != nil {
		panic(err)
	}
	return fmt.Sprintf("KTS-PGP fingerprint=%s, timestamp=%d, nonce=%s, signature=%s", fp, ts, nonce, base64.StdEncoding.EncodeToString(sig))
}

// TestBadInput lists every kind of refused request: each gets a 4xx with a
// JSON error and changes no organization, client or deposit.
func TestBadInput(t *testing.T) {
	e := newEnv(t)
	k, other, pending := openpgptest.Key(t, 1), openpgptest.Key(t, 2), openpgptest.Key(t, 3)
	e.register(1, "acme", acmeCode)
	e.register(3, "acme", "wrong")
	if a := e.do("PUT", "/v1/deposits/existing", []byte("x"), k, ""); a.status != 201 {
		t.Fatalf("setup put: %d", a.status)
	}
	fp := k.Public().Fingerprint()
	now := e.clock().Unix()
	privArmor, err := k.Armor()
	if err != nil {
		t.Fatal(err)
	}
	replayed := sigHeader(k, fp, "GET", "/v1/deposits", "", now, "nonce-used-once-0001", nil)
	if a := e.do("GET", "/v1/deposits", nil, nil, replayed); a.status != 200 {
		t.Fatalf("first use of nonce: %d %s", a.status, a.body)
	}
	token := e.session(k)
	oversized := bytes.Repeat([]byte("x"), 1025)

	cases := []struct {
		name         string
		method, path string
		body         []byte
		sign         *openpgp.PrivateKey
		authz        string
		status       int
		code         string
	}{
		{"register: not JSON", "POST", "/v1/register", []byte("{nope"), other, "", 400, "invalid_json"},
		{"register: two JSON objects", "POST", "/v1/register", append(registerBody("acme", acmeCode, other.Public().Armor()), []byte(`{"org":"acme"}`)...), other, "", 400, "invalid_json"},
		{"register: unknown field", "POST", "/v1/register", []byte(`{"org":"acme","extra":1}`), other, "", 400, "invalid_json"},
		{"register: org name with space", "POST", "/v1/register", registerBody("bad name", "", other.Public().Armor()), other, "", 400, "invalid_input"},
		{"register: org name with special char", "POST", "/v1/register", registerBody("bad$", "", other.Public().Armor()), other, "", 400, "invalid_input"},
		{"register: unknown org", "POST", "/v1/register", registerBody("nosuch", "", other.Public().Armor()), other, "", 404, "unknown_org"},
		{"register: private key", "POST", "/v1/register", registerBody("acme", acmeCode, privArmor), other, "", 400, "private_key"},
		{"register: garbage key", "POST", "/v1/register", registerBody("acme", acmeCode, []byte("-----BEGIN PGP PUBLIC KEY BLOCK-----\n\nAAAA\n-----END PGP PUBLIC KEY BLOCK-----\n")), other, "", 400, "invalid_key"},
		{"register: empty key", "POST", "/v1/register", registerBody("acme", acmeCode, nil), other, "", 400, "invalid_key"},
		{"register: unsigned", "POST", "/v1/register", registerBody("acme", acmeCode, other.Public().Armor()), nil, "", 401, "unauthenticated"},
		{"register: signed by another key", "POST", "/v1/register", registerBody("acme", acmeCode, other.Public().Armor()), k, "", 401, "bad_signature"},
		{"register: already registered", "POST", "/v1/register", registerBody("acme", acmeCode, k.Public().Armor()), k, "", 409, "already_exists"},
		{"register: oversized body", "POST", "/v1/register", bytes.Repeat([]byte("x"), 200<<10), other, "", 413, "too_large"},
		{"no credentials", "GET", "/v1/deposits", nil, nil, "", 401, "unauthenticated"},
		{"unknown scheme", "GET", "/v1/deposits", nil, nil, "Bearer abc", 400, "malformed_authorization"},
		{"malformed header", "GET", "/v1/deposits", nil, nil, "KTS-PGP fingerprint=XYZ", 400, "malformed_authorization"},
		{"duplicate parameter", "GET", "/v1/deposits", nil, nil, "KTS-PGP fingerprint=" + fp + ", fingerprint=" + fp + ", timestamp=1, nonce=abcdefghijklmnop, signature=AAAA", 400, "malformed_authorization"},
		{"timestamp too old", "GET", "/v1/deposits", nil, nil, sigHeader(k, fp, "GET", "/v1/deposits", "", now-600, "nonce-old-000000001", nil), 401, "clock_skew"},
		{"timestamp in the future", "GET", "/v1/deposits", nil, nil, sigHeader(k, fp, "GET", "/v1/deposits", "", now+600, "nonce-future-00001", nil), 401, "clock_skew"},
		{"replayed nonce", "GET", "/v1/deposits", nil, nil, replayed, 401, "replayed_request"},
		{"unknown client", "GET", "/v1/deposits", nil, other, "", 401, "unknown_client"},
		{"signature over another path", "GET", "/v1/deposits/existing", nil, nil, sigHeader(k, fp, "GET", "/v1/deposits/other", "", now, "nonce-path-0000001", nil), 401, "bad_signature"},
		{"signature over another body", "PUT", "/v1/deposits/new1", []byte("real"), nil, sigHeader(k, fp, "PUT", "/v1/deposits/new1", "", now, "nonce-body-0000001", []byte("signed")), 401, "bad_signature"},
		{"signature over another method", "DELETE", "/v1/deposits/existing", nil, nil, sigHeader(k, fp, "GET", "/v1/deposits/existing", "", now, "nonce-meth-0000001", nil), 401, "bad_signature"},
		{"signature by another key", "GET", "/v1/deposits", nil, nil, sigHeader(other, fp, "GET", "/v1/deposits", "", now, "nonce-other-000001", nil), 401, "bad_signature"},
		{"pending client", "PUT", "/v1/deposits/new2", []byte("x"), pending, "", 403, "client_not_active"},
		{"session token of wrong length", "GET", "/v1/deposits", nil, nil, "KTS-Session " + strings.Repeat("A", 80), 400, "malformed_authorization"},
		{"forged session token", "GET", "/v1/deposits", nil, nil, "KTS-Session " + strings.Repeat("A", len(token)), 401, "bad_token"},
		{"tampered session token", "GET", "/v1/deposits", nil, nil, "KTS-Session " + tamper(token), 401, "bad_token"},
		{"session opened with a token", "POST", "/v1/session", nil, nil, "KTS-Session " + token, 401, "signature_required"},
		{"deposit too large", "PUT", "/v1/deposits/big", oversized, k, "", 413, "too_large"},
		{"deposit name starting with dot", "PUT", "/v1/deposits/.hidden", []byte("x"), k, "", 400, "invalid_name"},
		{"deposit name with bad char", "PUT", "/v1/deposits/a%20b", []byte("x"), k, "", 400, "invalid_name"},
		{"deposit name too long", "PUT", "/v1/deposits/" + strings.Repeat("n", 256), []byte("x"), k, "", 400, "invalid_name"},
		{"deposit exists", "PUT", "/v1/deposits/existing", []byte("y"), k, "", 409, "already_exists"},
		{"get missing deposit", "GET", "/v1/deposits/missing", nil, k, "", 404, "not_found"},
		{"delete missing deposit", "DELETE", "/v1/deposits/missing", nil, k, "", 404, "not_found"},
		{"GET with a body", "GET", "/v1/deposits/existing", []byte("x"), k, "", 400, "unexpected_body"},
		{"HKP bad search", "GET", "/pks/lookup?op=get&search=0x1234", nil, nil, "", 400, "invalid_search"},
		{"HKP unknown key", "GET", "/pks/lookup?op=get&search=0x" + other.Public().Fingerprint(), nil, nil, "", 404, "not_found"},
		{"HKP other op", "GET", "/pks/lookup?op=stats", nil, nil, "", 501, "unsupported_op"},
		{"unknown route", "GET", "/v2/whatever", nil, nil, "", 404, "no_route"},
		{"wrong method", "PATCH", "/v1/deposits/existing", nil, k, "", 405, "method_not_allowed"},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			before := e.counts()
			a := e.do(c.method, c.path, c.body, c.sign, c.authz)
			if a.status != c.status || (c.code != "" && a.code != c.code) {
				t.Fatalf("%s %s: got %d %q, want %d %q (%s)", c.method, c.path, a.status, a.code, c.status, c.code, a.body)
			}
			after := e.counts()
			after.nonces, before.nonces = 0, 0
			if after != before {
				t.Fatalf("refused request changed state: %+v → %+v", before, after)
			}
		})
	}
	if a := e.do("GET", "/v1/deposits/existing", nil, k, ""); string(a.body) != "x" {
		t.Fatalf("existing deposit changed: %q", a.body)
	}
}

func TestRegistrationRateLimit(t *testing.T) {
	e := newEnv(t)
	body := registerBody("nosuch-org", "", openpgptest.Key(t, 1).Public().Armor())
	var last answer
	for i := 0; i < 11; i++ {
		last = e.do("POST", "/v1/register", body, openpgptest.Key(t, 1), "")
	}
	if last.status != http.StatusTooManyRequests || last.header.Get("Retry-After") == "" {
		t.Fatalf("11th attempt: %d %s, want 429 with Retry-After", last.status, last.body)
	}
	// Another organization name is limited separately.
	if a := e.register(1, "acme", acmeCode); a.status != http.StatusCreated {
		t.Fatalf("other org: %d %s", a.status, a.body)
	}
	// Tokens come back with time.
	e.advance(time.Minute)
	if a := e.do("POST", "/v1/register", body, openpgptest.Key(t, 1), ""); a.status != http.StatusNotFound {
		t.Fatalf("after a minute: %d %s", a.status, a.body)
	}
}

func TestDisablingTakesEffect(t *testing.T) {
	e := newEnv(t)
	k := openpgptest.Key(t, 1)
	e.register(1, "acme", acmeCode)
	token := "KTS-Session " + e.session(k)
	if a := e.do("PUT", "/v1/deposits/d", []byte("x"), nil, token); a.status != 201 {
		t.Fatalf("put: %d", a.status)
	}
	// The warm read cache serves d until the change is announced.
	if a := e.do("GET", "/v1/deposits/d", nil, nil, token); a.status != 200 {
		t.Fatalf("get: %d", a.status)
	}
	if _, err := e.store.SetClientState(t.Context(), k.Public().Fingerprint(), "disabled"); err != nil {
		t.Fatal(err)
	}
	// The server learns of it from PostgreSQL's notification of the commit:
	// at most moments later.
	deadline := time.Now().Add(5 * time.Second)
	for e.do("GET", "/v1/deposits/d", nil, nil, token).status != http.StatusForbidden {
		if time.Now().After(deadline) {
			t.Fatal("disabled client still served 5 s after the change")
		}
		time.Sleep(5 * time.Millisecond)
	}
	for _, r := range []struct{ method, path string }{{"GET", "/v1/deposits/d"}, {"GET", "/v1/deposits"}, {"DELETE", "/v1/deposits/d"}, {"PUT", "/v1/deposits/e"}} {
		var body []byte
		if r.method == "PUT" {
			body = []byte("y")
		}
		if a := e.do(r.method, r.path, body, nil, token); a.status != http.StatusForbidden {
			t.Errorf("disabled client with a live token: %s %s → %d", r.method, r.path, a.status)
		}
		if a := e.do(r.method, r.path, body, k, ""); a.status != http.StatusForbidden {
			t.Errorf("disabled client signed: %s %s → %d", r.method, r.path, a.status)
		}
	}
	if a := e.do("POST", "/v1/session", nil, k, ""); a.status != http.StatusForbidden {
		t.Errorf("disabled client opened a session: %d", a.status)
	}
}

func TestSessionTokenExpires(t *testing.T) {
	e := newEnv(t)
	k := openpgptest.Key(t, 1)
	e.register(1, "acme", acmeCode)
	token := "KTS-Session " + e.session(k)
	e.advance(6 * time.Minute)
	if a := e.do("GET", "/v1/deposits", nil, nil, token); a.status != 401 || a.code != "token_expired" {
		t.Fatalf("expired token: %d %s", a.status, a.body)
	}
}

func TestMetricsAndLogsHoldNoSecrets(t *testing.T) {
	e := newEnv(t)
	k := openpgptest.Key(t, 1)
	e.register(1, "acme", acmeCode)
	token := e.session(k)
	e.do("PUT", "/v1/deposits/secret-name", []byte("x"), nil, "KTS-Session "+token)
	a := e.do("GET", "/metrics", nil, nil, "")
	m := string(a.body)
	if a.status != 200 || !strings.Contains(m, `kts_http_requests_total{method="PUT",route="PUT /v1/deposits/{name}",status="201"} 1`) {
		t.Fatalf("metrics lack the PUT count:\n%s", m)
	}
	for _, secret := range []string{token, acmeCode, "secret-name", k.Public().Fingerprint()} {
		if strings.Contains(m, secret) {
			t.Fatalf("metrics contain %q", secret)
		}
	}
	// A signed request with a bad signature is logged without its nonce or signature.
	bad := sigHeader(openpgptest.Key(t, 2), k.Public().Fingerprint(), "GET", "/v1/deposits", "", e.clock().Unix(), "nonce-must-not-be-logged", nil)
	e.do("GET", "/v1/deposits", nil, nil, bad)
	logs := e.logs.String()
	if !strings.Contains(logs, `"status":401`) {
		t.Fatalf("the refused request is not in the log:\n%s", logs)
	}
	sig := bad[strings.Index(bad, "signature=")+len("signature="):]
	for _, secret := range []string{token, acmeCode, "nonce-must-not-be-logged", sig[:20], "secret-name"} {
		if strings.Contains(logs, secret) {
			t.Fatalf("log contains %q:\n%s", secret, logs)
		}
	}
	if a := e.do("GET", "/healthz", nil, nil, ""); a.status != 200 {
		t.Fatalf("healthz %d", a.status)
	}
	if a := e.do("GET", "/readyz", nil, nil, ""); a.status != 200 {
		t.Fatalf("readyz %d", a.status)
	}
}

// tamper changes one character inside a token's MAC (not in its last
// characters, whose low bits base64 pads), so that it can never be the token
// itself.
func tamper(token string) string {
	b := []byte(token)
	i := len(b) - 10
	if b[i] == 'A' {
		b[i] = 'B'
	} else {
		b[i] = 'A'
	}
	return string(b)
}
