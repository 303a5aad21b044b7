package security

import (
	"bytes"
	"encoding/base64"
	"encoding/hex"
	"fmt"
	"io"
	"net/http"
	"os"
	"sort"
	"strings"
	"sync"
	"testing"
	"time"

	"trustee.dev/trustee/server/hsm/hsmtest"
)

// secretSet holds every secret the tests handed a server, by kind.
type secretSet struct {
	mu   sync.Mutex
	list []secret
}

type secret struct{ kind, value string }

// used is every secret of this test run.
var used secretSet

func (s *secretSet) add(kind, value string) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.list = append(s.list, secret{kind, value})
}

func (s *secretSet) all() []secret {
	s.mu.Lock()
	defer s.mu.Unlock()
	return append([]secret(nil), s.list...)
}

// findIn reports every secret of the run found in the sources.
func (s *secretSet) findIn(sources map[string][]byte) []string {
	return findSecrets(s.all(), sources)
}

// encodings returns the forms in which a secret could be written out: as
// it is, in hex (PostgreSQL's bytea output, %x) and in base64 (encoding/json
// of []byte), standard and URL-safe. For base64, the three alignments the
// value can have inside a longer encoded text are all covered: each form is
// the part of the encoding that does not depend on the bytes around it.
func encodings(value string) map[string]string {
	v := []byte(value)
	out := map[string]string{
		"as is":                value,
		"hex":                  hex.EncodeToString(v),
		"upper-case hex":       strings.ToUpper(hex.EncodeToString(v)),
		"base64 (aligned 0/3)": "",
	}
	delete(out, "base64 (aligned 0/3)")
	for k := 0; k < 3; k++ {
		enc := base64.StdEncoding.EncodeToString(append(make([]byte, k), v...))
		skip := (k*4 + 2) / 3
		core := strings.TrimRight(enc, "=")
		core = core[skip : len(core)-2]
		out[fmt.Sprintf("base64 (aligned %d/3)", k)] = core
		out[fmt.Sprintf("base64url (aligned %d/3)", k)] = strings.NewReplacer("+", "-", "/", "_").Replace(core)
	}
	return out
}

// findSecrets reports, one line each, the secrets found in the sources in
// any of their encodings.
func findSecrets(secrets []secret, sources map[string][]byte) []string {
	var found []string
	for name, text := range sources {
		for _, sec := range secrets {
			for form, enc := range encodings(sec.value) {
				if len(enc) >= 12 && bytes.Contains(text, []byte(enc)) {
					found = append(found, fmt.Sprintf("%s holds a %s (%s): %q", name, sec.kind, form, excerpt(text, enc)))
				}
			}
		}
	}
	sort.Strings(found)
	return found
}

// excerpt returns the line of text around the first occurrence of s.
func excerpt(text []byte, s string) string {
	i := bytes.Index(text, []byte(s))
	start := bytes.LastIndexByte(text[:i], '\n') + 1
	end := i + len(s) + 200
	if j := bytes.IndexByte(text[i:], '\n'); j >= 0 && i+j < end {
		end = i + j
	}
	if end > len(text) {
		end = len(text)
	}
	if i-start > 200 {
		start = i - 200
	}
	return string(text[start:end])
}

// TestSecretsNeverLogged runs a server whose keys are in an HSM (SoftHSM2,
// when installed; the PIN in an environment variable) at log level debug, uses it the way
// clients and attackers do — registrations with right and wrong auth codes,
// sessions, deposits, replays, bad signatures and tokens, oversized bodies,
// rate-limited attempts — and then searches the server's log, its
// PostgreSQL's log, its /metrics and the output of the HSM commands for
// every secret involved, in every encoding of encodings. The shared server
// gets the same search, for the secrets of every test, when the tests end.
func TestSecretsNeverLogged(t *testing.T) {
	kts := ktsBinary(t)
	var secrets []secret
	var hsmOutput bytes.Buffer
	o := serverOptions{}
	withHSM := fileExists(hsmtest.SoftHSMModule) || os.Getenv(hsmtest.RequireEnv) != ""
	if withHSM {
		token := hsmtest.NewToken(t)
		pinVar := "KTS_SECURITY_TEST_PIN"
		o.env = append(hsmtest.Env(token), pinVar+"="+token.PIN)
		used.add("PIN", token.PIN)
		secrets = append(secrets, secret{"PIN", token.PIN})
		o.prepare = func(s *server) error {
			r := s.kts("", "keyhsm", "init", "--confdir", s.dir, "--module", token.Module, "--token-label", token.TokenLabel, "--pin-env", pinVar)
			hsmOutput.WriteString(r.stdout + r.stderr)
			if r.err != nil {
				return fmt.Errorf("kts keyhsm init: %s", r)
			}
			return nil
		}
	} else {
		t.Logf("SoftHSM2 is not installed (%s): the server runs without an HSM, and no PIN is searched for (set %s to require it)", hsmtest.SoftHSMModule, hsmtest.RequireEnv)
	}
	s, err := startServer(kts, o)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		if t.Failed() {
			t.Logf("log of the HSM server:\n%s", s.proc.Logs.Bytes())
		}
		if err := s.close(); err != nil {
			t.Error(err)
		}
	})
	remember := func(kind, value string) string {
		used.add(kind, value)
		secrets = append(secrets, secret{kind, value})
		return value
	}

	code := remember("auth code", "code-"+randomHex(16))
	org := s.newOrg(t, code)
	wrongCode := remember("auth code", "wrong-"+randomHex(16))
	// What a signing client sends: nonces and signatures are remembered
	// from here on.
	start := len(used.all())

	alice := s.activeClient(t, org, code)
	pending := newIdentity(t)
	want(t, "registration with a wrong code", s.register(t, pending, org, wrongCode), http.StatusCreated, "")
	want(t, "registration with an unknown organization", s.register(t, newIdentity(t), "no-such-org-"+randomHex(4), code), http.StatusNotFound, "unknown_org")
	tok := remember("session token", s.session(t, alice))
	names := map[string][]byte{}
	for i := 0; i < 4; i++ {
		name := remember("deposit name", "name-"+randomHex(12))
		data := []byte(remember("deposit", "plaintext-"+randomHex(24)))
		names[name] = data
		s.put(t, alice, name, data)
	}
	for name, data := range names {
		if a := s.withToken(t, tok, "GET", "/v1/deposits/"+name, nil); a.status != http.StatusOK || !bytes.Equal(a.body, data) {
			t.Fatalf("GET with the session token: %s", a)
		}
		s.get(t, alice, name, data)
		want(t, "a pending client's GET", s.signed(t, pending, "GET", "/v1/deposits/"+name, nil), http.StatusForbidden, "client_not_active")
	}
	want(t, "list", s.withToken(t, tok, "GET", "/v1/deposits", nil), http.StatusOK, "")
	for name := range names {
		want(t, "delete", s.withToken(t, tok, "DELETE", "/v1/deposits/"+name, nil), http.StatusNoContent, "")
		break
	}
	// Refused requests: a replay, a signature over another body, another
	// client's fingerprint, a forged token, too large a body.
	target := "/v1/deposits/" + remember("deposit name", "name-"+randomHex(12))
	body := []byte(remember("deposit", "plaintext-"+randomHex(24)))
	authz := alice.authorization(t, "PUT", target, body, time.Now())
	want(t, "the first PUT", s.send(t, "PUT", target, authz, body), http.StatusCreated, "")
	want(t, "a replay", s.send(t, "PUT", target, authz, body), http.StatusUnauthorized, "replayed_request")
	want(t, "a signature over another body", s.send(t, "PUT", target, alice.authorization(t, "PUT", target, body, time.Now()), []byte(remember("deposit", "plaintext-"+randomHex(24)))), http.StatusUnauthorized, "bad_signature")
	impostor := &identity{fpr: pending.fpr, sign: alice.sign}
	want(t, "another client's fingerprint", s.signed(t, impostor, "GET", target, nil), http.StatusUnauthorized, "bad_signature")
	want(t, "a forged token", s.withToken(t, remember("session token", forgeToken(t, tok, pending.fpr)), "GET", target, nil), http.StatusUnauthorized, "bad_token")
	want(t, "too large a deposit", s.signed(t, alice, "PUT", "/v1/deposits/big", bytes.Repeat([]byte(remember("deposit", "plaintext-"+randomHex(24))), 40000)), http.StatusRequestEntityTooLarge, "too_large")
	// Guessing the auth code until the rate limit answers.
	limited := false
	for i := 0; i < 12 && !limited; i++ {
		a := s.register(t, newIdentity(t), org, remember("auth code", "guess-"+randomHex(16)))
		limited = a.status == http.StatusTooManyRequests
	}
	if !limited {
		t.Error("twelve registration attempts with wrong codes were never rate-limited")
	}
	for _, sec := range used.all()[start:] {
		if sec.kind == "nonce" || sec.kind == "signature" {
			secrets = append(secrets, sec)
		}
	}

	if withHSM {
		r := s.kts("", "keyhsm", "check", "--confdir", s.dir)
		hsmOutput.WriteString(r.stdout + r.stderr)
		if r.err != nil {
			t.Errorf("kts keyhsm check: %s", r)
		}
	}
	resp, err := s.client.Get(s.url + "/metrics")
	if err != nil {
		t.Fatal(err)
	}
	metrics, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	// The audit log, both chains, as a SIEM would receive it. It is there
	// to say which deposit was touched, so it names them: every other
	// secret is searched for in it.
	auditLog := []byte(s.mustKTS(t, "", "audit", "export"))
	for _, want := range []string{`"action":"deposit.read"`, `"action":"auth.failure"`, `"outcome":"refused"`, alice.fpr} {
		if !bytes.Contains(auditLog, []byte(want)) {
			t.Fatalf("the audit log lacks %s:\n%s", want, auditLog)
		}
	}
	var notNames []secret
	for _, sec := range secrets {
		if sec.kind != "deposit name" {
			notNames = append(notNames, sec)
		}
	}
	for _, f := range findSecrets(notNames, map[string][]byte{"the audit log": auditLog}) {
		t.Error(f)
	}
	if err := s.halt(); err != nil {
		t.Error(err)
	}
	logs := s.proc.Logs.Bytes()
	// The log is there to search: it holds the request lines and the
	// registrations, naming the clients by fingerprint.
	if !bytes.Contains(logs, []byte(`"route":"PUT /v1/deposits/{name}"`)) || !bytes.Contains(logs, []byte(alice.fpr)) ||
		!bytes.Contains(metrics, []byte("kts_http_requests_total")) {
		t.Fatalf("the log or the metrics lack what they should show:\n%s\n%s", logs, metrics)
	}
	pgLog := s.pgLog()
	if len(pgLog) == 0 {
		t.Fatal("PostgreSQL's log is empty")
	}
	sources := map[string][]byte{
		"the server's log":             logs,
		"PostgreSQL's log":             pgLog,
		"/metrics":                     metrics,
		"the output of kts keyhsm":     hsmOutput.Bytes(),
		"the state directory's config": mustRead(t, s.dir+"/keytrustee.conf"),
	}
	for _, f := range findSecrets(secrets, sources) {
		t.Error(f)
	}
	t.Logf("searched %d KiB of logs, audit records, metrics and output for %d secrets", (len(logs)+len(pgLog)+len(auditLog)+len(metrics)+hsmOutput.Len())>>10, len(secrets))
}

func mustRead(t testing.TB, path string) []byte {
	t.Helper()
	b, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	return b
}
