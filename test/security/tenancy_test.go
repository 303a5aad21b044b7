package security

import (
	"bytes"
	"encoding/base64"
	"encoding/hex"
	"net/http"
	"net/url"
	"testing"
	"time"
)

// TestCrossTenantAccessRefused: a client of organization A tries every
// route on the deposits of a client of organization B, and on those of
// another client of its own organization — by name, with its signature and
// with its session token, claiming the victim's fingerprint, with a forged
// token, through escaped paths, by registering the victim's key or moving
// to the victim's organization. Every attempt is refused or stays inside
// the attacker's own deposits; the victim's clients and deposits in the
// database are exactly as before, no answer holds the victim's deposits,
// and the attacker's listings do not name them.
func TestCrossTenantAccessRefused(t *testing.T) {
	s := shared(t)
	codeA, codeB := secretText("auth code", "code-a-"), secretText("auth code", "code-b-")
	orgA, orgB := s.newOrg(t, codeA), s.newOrg(t, codeB)
	attacker := s.activeClient(t, orgA, codeA)
	victims := []struct {
		name string
		org  string
		code string
		id   *identity
	}{
		{"a client of another organization", orgB, codeB, s.activeClient(t, orgB, codeB)},
		{"another client of the same organization", orgA, codeA, s.activeClient(t, orgA, codeA)},
	}
	token := s.session(t, attacker)
	for _, v := range victims {
		t.Run(v.name, func(t *testing.T) {
			attack(t, s, attacker, token, v.id, v.org, v.code)
		})
	}
}

// attack runs every attempt of the attacker on the victim's deposits.
func attack(t *testing.T, s *server, attacker *identity, token string, victim *identity, victimOrg, victimCode string) {
	deposits := map[string][]byte{}
	for i := 0; i < 2; i++ {
		name := secretText("deposit name", "name-")
		deposits[name] = []byte(secretText("deposit", "plaintext-"))
		s.put(t, victim, name, deposits[name])
	}
	before := s.snapshot(t, victim.fpr)
	// Every answer the attacker gets is kept, to be searched for the
	// victim's deposits and names at the end.
	var answers []answer
	check := func(what string, a answer, status int, code string) {
		t.Helper()
		answers = append(answers, a)
		want(t, what, a, status, code)
	}
	impostor := &identity{fpr: victim.fpr, public: victim.public, sign: attacker.sign}
	forged := forgeToken(t, token, victim.fpr)
	used.add("session token", forged)

	for name := range deposits {
		path := "/v1/deposits/" + name
		// By name: the name is looked up among the attacker's own deposits.
		check("GET of the victim's deposit, signed", s.signed(t, attacker, "GET", path, nil), http.StatusNotFound, "not_found")
		check("GET of the victim's deposit, session", s.withToken(t, token, "GET", path, nil), http.StatusNotFound, "not_found")
		check("DELETE of the victim's deposit, signed", s.signed(t, attacker, "DELETE", path, nil), http.StatusNotFound, "not_found")
		check("DELETE of the victim's deposit, session", s.withToken(t, token, "DELETE", path, nil), http.StatusNotFound, "not_found")
		// Claiming the victim's fingerprint: the signature does not verify
		// with the victim's key.
		for _, m := range []string{"GET", "DELETE"} {
			check(m+" naming the victim's fingerprint", s.signed(t, impostor, m, path, nil), http.StatusUnauthorized, "bad_signature")
			check(m+" with a token forged for the victim", s.withToken(t, forged, m, path, nil), http.StatusUnauthorized, "bad_token")
		}
		check("PUT naming the victim's fingerprint", s.signed(t, impostor, "PUT", path, []byte("overwritten")), http.StatusUnauthorized, "bad_signature")
		check("PUT with a token forged for the victim", s.withToken(t, forged, "PUT", path, []byte("overwritten")), http.StatusUnauthorized, "bad_token")
		// Escaped paths that try to name the owner or leave the name segment.
		for _, p := range []string{
			"/v1/deposits/" + victim.fpr + "%2F" + name,
			"/v1/deposits/" + url.PathEscape("../"+victim.fpr+"/"+name),
			"/v1/deposits/%2E%2E%2F" + name,
		} {
			a := s.signed(t, attacker, "GET", p, nil)
			answers = append(answers, a)
			if a.status != http.StatusBadRequest && a.status != http.StatusNotFound {
				t.Errorf("GET %s: %s; want 400 or 404", p, a)
			}
		}
		// The same name in the attacker's own namespace: a deposit of the
		// attacker's, which the victim never sees.
		mine := []byte(secretText("deposit", "attackers-"))
		check("PUT of the victim's name", s.signed(t, attacker, "PUT", path, mine), http.StatusCreated, "")
		s.get(t, attacker, name, mine)
		s.get(t, victim, name, deposits[name])
		check("DELETE of the attacker's own deposit", s.signed(t, attacker, "DELETE", path, nil), http.StatusNoContent, "")
	}
	// Listing shows the attacker's own deposits only.
	lists := []answer{s.signed(t, attacker, "GET", "/v1/deposits", nil), s.withToken(t, token, "GET", "/v1/deposits", nil)}
	for _, a := range lists {
		check("list", a, http.StatusOK, "")
	}
	check("list naming the victim's fingerprint", s.signed(t, impostor, "GET", "/v1/deposits", nil), http.StatusUnauthorized, "bad_signature")
	check("list with a token forged for the victim", s.withToken(t, forged, "GET", "/v1/deposits", nil), http.StatusUnauthorized, "bad_token")
	// A session for the victim.
	check("a session naming the victim's fingerprint", s.signed(t, impostor, "POST", "/v1/session", nil), http.StatusUnauthorized, "bad_signature")
	check("a session opened with a forged token", s.withToken(t, forged, "POST", "/v1/session", nil), http.StatusUnauthorized, "bad_token")
	// Registration: the victim's key sent by the attacker, signed by the
	// attacker under either fingerprint; the attacker's key moved to the
	// victim's organization with its code.
	body := registerBody(victimOrg, victimCode, victim.public)
	check("registering the victim's key, signed by the attacker",
		s.send(t, "POST", "/v1/register", attacker.authorization(t, "POST", "/v1/register", body, time.Now()), body), http.StatusUnauthorized, "bad_signature")
	check("registering the victim's key under the victim's fingerprint",
		s.send(t, "POST", "/v1/register", impostor.authorization(t, "POST", "/v1/register", body, time.Now()), body), http.StatusUnauthorized, "bad_signature")
	check("registering the attacker again with the victim's organization", s.register(t, attacker, victimOrg, victimCode), http.StatusConflict, "already_exists")
	// The public routes: the victim's public key (public by design) and
	// nothing else about it.
	a := s.send(t, "GET", "/pks/lookup?op=get&options=mr&search=0x"+victim.fpr, "", nil)
	check("HKP lookup of the victim", a, http.StatusOK, "")
	if bytes.Contains(a.body, []byte("PRIVATE")) {
		t.Errorf("the HKP lookup answered a private key:\n%s", a.body)
	}
	for _, p := range []string{"/", "/?a=fingerprint", "/healthz", "/readyz", "/metrics"} {
		answers = append(answers, s.send(t, "GET", p, "", nil))
	}
	// The contact key registration form, with a link secret nobody was sent.
	if a := s.send(t, "POST", "/", "", []byte("q="+randomHex(32)+"&key=x")); a.status < 400 || a.status > 499 {
		t.Errorf("the key registration form without a valid link: %s; want a 4xx", a)
	}

	if after := s.snapshot(t, victim.fpr); after != before {
		t.Errorf("the victim's clients and deposits changed:\nbefore:\n%s\nafter:\n%s", before, after)
	}
	for name, data := range deposits {
		s.get(t, victim, name, data)
		for i, a := range answers {
			if bytes.Contains(a.body, data) {
				t.Errorf("answer %d to the attacker holds the victim's deposit: %s", i, a)
			}
		}
		for _, a := range lists {
			if bytes.Contains(a.body, []byte(name)) {
				t.Errorf("the attacker's listing names the victim's deposit: %s", a)
			}
		}
	}
}

// forgeToken returns the session token with its client fingerprint
// replaced: version (1 byte) | fingerprint (20) | expiry (8) | HMAC (32),
// base64url without padding (server/auth/token.go).
func forgeToken(t testing.TB, token, fingerprint string) string {
	t.Helper()
	b, err := base64.RawURLEncoding.DecodeString(token)
	fpr, err2 := hex.DecodeString(fingerprint)
	if err != nil || err2 != nil || len(b) != 61 || len(fpr) != 20 {
		t.Fatalf("unexpected token or fingerprint: %v %v", err, err2)
	}
	copy(b[1:21], fpr)
	return base64.RawURLEncoding.EncodeToString(b)
}
