package httpapi_test

import (
	"bufio"
	"bytes"
	"context"
	"crypto/tls"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"strings"
	"sync"
	"testing"
	"time"

	"trustee.dev/trustee/server/auth"
	"trustee.dev/trustee/server/httpapi"
	"trustee.dev/trustee/server/openpgp/openpgptest"
	"trustee.dev/trustee/server/org"
)

// outbox counts the mail queued.
func (e *env) outbox() int {
	e.t.Helper()
	var n int
	if err := e.sql.QueryRow(context.Background(), `SELECT count(*) FROM outbox`).Scan(&n); err != nil {
		e.t.Fatal(err)
	}
	return n
}

// signedRequest is a request signed by key at the env's clock.
func (e *env) signedRequest(i int, method, path string, body []byte) *http.Request {
	e.t.Helper()
	req, err := http.NewRequest(method, e.srv.URL+path, bytes.NewReader(body))
	if err != nil {
		e.t.Fatal(err)
	}
	if err := auth.SignRequest(openpgptest.Key(e.t, i), req, body, e.clock()); err != nil {
		e.t.Fatal(err)
	}
	return req
}

// TestAuthorizationHeaderStrict: a request with two Authorization headers,
// or whose fingerprint is in lower case, is refused with 400
// malformed_authorization, and nothing is changed (no client, deposit or
// nonce recorded).
func TestAuthorizationHeaderStrict(t *testing.T) {
	e := newEnv(t)
	if a := e.register(1, "open", ""); a.status != http.StatusCreated {
		t.Fatalf("register: %d %s", a.status, a.body)
	}
	before := e.counts()
	fpr := openpgptest.Key(t, 1).Public().Fingerprint()
	for _, c := range []struct {
		name string
		req  func() *http.Request
	}{
		{"second header after a valid signature", func() *http.Request {
			req := e.signedRequest(1, "PUT", "/v1/deposits/two", []byte("x"))
			req.Header.Add("Authorization", "KTS-Session whatever")
			return req
		}},
		{"the valid signature twice", func() *http.Request {
			req := e.signedRequest(1, "PUT", "/v1/deposits/twice", []byte("x"))
			req.Header.Add("Authorization", req.Header.Get("Authorization"))
			return req
		}},
		{"a decoy first, the valid signature second", func() *http.Request {
			req := e.signedRequest(1, "GET", "/v1/deposits", nil)
			req.Header["Authorization"] = []string{"KTS-Session decoy", req.Header.Get("Authorization")}
			return req
		}},
		{"lower-case fingerprint", func() *http.Request {
			req := e.signedRequest(1, "PUT", "/v1/deposits/lower", []byte("x"))
			req.Header.Set("Authorization", strings.Replace(req.Header.Get("Authorization"), fpr, strings.ToLower(fpr), 1))
			return req
		}},
		{"registration with two headers", func() *http.Request {
			body := registerBody("open", "", openpgptest.Key(t, 2).Public().Armor())
			req := e.signedRequest(2, "POST", "/v1/register", body)
			req.Header.Add("Authorization", req.Header.Get("Authorization"))
			return req
		}},
		{"registration with a lower-case fingerprint", func() *http.Request {
			body := registerBody("open", "", openpgptest.Key(t, 3).Public().Armor())
			req := e.signedRequest(3, "POST", "/v1/register", body)
			f := openpgptest.Key(t, 3).Public().Fingerprint()
			req.Header.Set("Authorization", strings.Replace(req.Header.Get("Authorization"), f, strings.ToLower(f), 1))
			return req
		}},
	} {
		a := e.send(c.req())
		if a.status != http.StatusBadRequest || a.code != "malformed_authorization" {
			t.Errorf("%s: %d %s, want 400 malformed_authorization", c.name, a.status, a.body)
		}
	}
	if after := e.counts(); after != before {
		t.Errorf("refused requests changed the database: %+v, then %+v", before, after)
	}
}

// TestRootActions: /?a=fingerprint is the one action; any other is 400.
func TestRootActions(t *testing.T) {
	e := newEnv(t)
	if a := e.do("GET", "/", nil, nil, ""); a.status != http.StatusOK || !bytes.Contains(a.body, []byte("a=fingerprint")) {
		t.Errorf("/: %d %q", a.status, a.body)
	}
	if a := e.do("GET", "/?a=fingerprint", nil, nil, ""); a.status != http.StatusOK || string(a.body) != e.key.Public().ID() {
		t.Errorf("/?a=fingerprint: %d %q", a.status, a.body)
	}
	for _, q := range []string{"a=nope", "a=", "a", "a=FINGERPRINT", "a=fingerprint&a=fingerprint", "a=fingerprint&a=other", "a=" + strings.Repeat("x", 1000)} {
		a := e.do("GET", "/?"+q, nil, nil, "")
		if a.status != http.StatusBadRequest || a.code != "unknown_action" || bytes.Contains(a.body, []byte("xxxx")) {
			t.Errorf("/?%.40s: %d %s, want 400 unknown_action", q, a.status, a.body)
		}
	}
}

// TestTooLargeNamesTheRequest: a 413 says which body was too large.
func TestTooLargeNamesTheRequest(t *testing.T) {
	e := newEnv(t)
	for _, c := range []struct {
		path, method string
		size         int
		says         string
	}{
		{"/v1/register", "POST", 200 << 10, "registration body is too large"},
		{"/v1/session", "POST", 5 << 10, "session request body is too large"},
		{"/v1/deposits/big", "PUT", 2 << 10, "deposit too large"},
	} {
		a := e.do(c.method, c.path, bytes.Repeat([]byte("x"), c.size), nil, "KTS-Session x")
		var eb struct{ Message string }
		json.Unmarshal(a.body, &eb)
		if a.status != http.StatusRequestEntityTooLarge || a.code != "too_large" || !strings.Contains(eb.Message, c.says) {
			t.Errorf("%s %s of %d bytes: %d %s, want 413 too_large saying %q", c.method, c.path, c.size, a.status, a.body, c.says)
		}
		if c.method == "POST" && strings.Contains(eb.Message, "deposit") {
			t.Errorf("%s: %q speaks of a deposit", c.path, eb.Message)
		}
	}
}

// TestRegistrationFieldsBounded: a registration's fields are bounded and
// checked before anything is stored or mailed.
func TestRegistrationFieldsBounded(t *testing.T) {
	e := newEnv(t)
	body := func(i int, fields map[string]string) []byte {
		m := map[string]string{"org": "acme", "auth_code": acmeCode, "public_key": string(openpgptest.Key(t, i).Public().Armor())}
		for k, v := range fields {
			m[k] = v
		}
		b, _ := json.Marshal(m)
		return b
	}
	beforeMail, before := e.outbox(), e.counts()
	for _, c := range []struct {
		name   string
		fields map[string]string
	}{
		{"10 KB host name", map[string]string{"hostname": strings.Repeat("h", 10<<10)}},
		{"254-byte host name", map[string]string{"hostname": strings.Repeat("h", 254)}},
		{"host name with a newline", map[string]string{"hostname": "db1\nSubject: hi"}},
		{"host name with a space", map[string]string{"hostname": "db 1"}},
		{"host name with a NUL", map[string]string{"hostname": "db\x001"}},
		{"host name not ASCII", map[string]string{"hostname": "dbé1"}},
		{"auth code of 10 KB", map[string]string{"auth_code": strings.Repeat("c", 10<<10)}},
		{"organization name of 1 KB", map[string]string{"org": strings.Repeat("o", 1<<10)}},
	} {
		b := body(1, c.fields)
		a := e.do("POST", "/v1/register", b, openpgptest.Key(t, 1), "")
		if a.status != http.StatusBadRequest || a.code != "invalid_input" {
			t.Errorf("%s: %d %s, want 400 invalid_input", c.name, a.status, a.body)
		}
		if bytes.Contains(a.body, []byte("hhhhhhhh")) || bytes.Contains(a.body, []byte("cccccccc")) {
			t.Errorf("%s: the answer repeats the field: %.200s", c.name, a.body)
		}
	}
	if after, mail := e.counts(), e.outbox(); after.clients != before.clients || mail != beforeMail {
		t.Errorf("refused registrations changed something: clients %d then %d, mail %d then %d", before.clients, after.clients, beforeMail, mail)
	}
	longest := strings.Repeat("a", 63) + "." + strings.Repeat("b", 63) + "." + strings.Repeat("c", 63) + "." + strings.Repeat("d", 61) // 253
	if a := e.do("POST", "/v1/register", body(2, map[string]string{"hostname": longest}), openpgptest.Key(t, 2), ""); a.status != http.StatusCreated {
		t.Fatalf("a 253-byte host name: %d %s", a.status, a.body)
	}
	if a := e.do("POST", "/v1/register", body(3, map[string]string{"hostname": "db-01.example_corp.com"}), openpgptest.Key(t, 3), ""); a.status != http.StatusCreated {
		t.Fatalf("a plain host name: %d %s", a.status, a.body)
	}
}

// TestRegistrationCodeChecksBounded: while the server hashes as many auth
// codes as it admits, a further registration is answered 503 busy with
// Retry-After at once, and changes nothing; the admitted one completes.
// The hashes are held by a hook, so nothing depends on timing.
func TestRegistrationCodeChecksBounded(t *testing.T) {
	checker := org.NewChecker(1, 1)
	entered, release := make(chan struct{}), make(chan struct{})
	var once sync.Once
	checker.Hash = func(stored, presented string) bool {
		once.Do(func() { close(entered) })
		<-release
		return org.CodeMatches(stored, presented)
	}
	e := newEnvOpts(t, true, func(o *httpapi.Options) { o.CodeChecker = checker })
	first := make(chan answer, 1)
	go func() { first <- e.register(1, "acme", "wrong-code") }()
	<-entered
	before := e.counts()
	a := e.register(2, "acme", "another-wrong-code")
	if a.status != http.StatusServiceUnavailable || a.code != "busy" || a.header.Get("Retry-After") == "" {
		t.Errorf("registration while the checker is full: %d %s (Retry-After %q), want 503 busy with Retry-After", a.status, a.body, a.header.Get("Retry-After"))
	}
	if after := e.counts(); after.clients != before.clients {
		t.Errorf("the refused registration changed the clients: %d, then %d", before.clients, after.clients)
	}
	close(release)
	if a := <-first; a.status != http.StatusCreated || !bytes.Contains(a.body, []byte(`"pending"`)) {
		t.Errorf("the admitted registration: %d %s", a.status, a.body)
	}
	if a := e.register(2, "acme", acmeCode); a.status != http.StatusCreated || !bytes.Contains(a.body, []byte(`"active"`)) {
		t.Errorf("a registration after: %d %s", a.status, a.body)
	}
}

// TestShortBodyAnswered408: a body shorter than its Content-Length is
// waited for BodyGrace plus its length at BodyMinRate, then answered 408
// body_timeout, and the connection is closed; nothing is stored.
func TestShortBodyAnswered408(t *testing.T) {
	e := newEnvOpts(t, true, func(o *httpapi.Options) {
		o.BodyGrace, o.BodyMinRate = 300*time.Millisecond, 1<<20
	})
	if a := e.register(1, "open", ""); a.status != http.StatusCreated {
		t.Fatalf("register: %d %s", a.status, a.body)
	}
	before := e.counts()
	tlsCfg := e.srv.Client().Transport.(*http.Transport).TLSClientConfig
	for _, target := range []string{"PUT /v1/deposits/short", "POST /v1/register", "POST /v1/session"} {
		conn, err := tls.Dial("tcp", e.srv.Listener.Addr().String(), tlsCfg)
		if err != nil {
			t.Fatal(err)
		}
		// Far longer than the server should wait: without the bound, the
		// read would last until this deadline.
		conn.SetDeadline(time.Now().Add(30 * time.Second))
		start := time.Now()
		fmt.Fprintf(conn, "%s HTTP/1.1\r\nHost: x\r\nAuthorization: KTS-Session x\r\nContent-Length: 100\r\n\r\n0123456789", target)
		resp, err := http.ReadResponse(bufio.NewReader(conn), nil)
		if err != nil {
			t.Fatalf("%s: no answer after %v: %v", target, time.Since(start), err)
		}
		b, _ := io.ReadAll(resp.Body)
		conn.Close()
		if resp.StatusCode != http.StatusRequestTimeout || !bytes.Contains(b, []byte(`"body_timeout"`)) || !bytes.Contains(b, []byte("10 of the 100 bytes")) || !resp.Close {
			t.Errorf("%s: %d %s (close %v), want 408 body_timeout saying 10 of 100 bytes came, connection closed", target, resp.StatusCode, b, resp.Close)
		}
	}
	if after := e.counts(); after != before {
		t.Errorf("timed-out bodies changed the database: %+v, then %+v", before, after)
	}
	// A body that arrives whole is served.
	if a := e.do("PUT", "/v1/deposits/whole", []byte("0123456789"), openpgptest.Key(t, 1), ""); a.status != http.StatusCreated {
		t.Errorf("a whole body: %d %s", a.status, a.body)
	}
}
