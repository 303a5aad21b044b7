package security

import (
	"bufio"
	"bytes"
	"crypto/tls"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"runtime"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"
)

// exchange sends raw bytes on a new connection — TLS, or plain TCP when
// plain is set — and reads every answer until the server closes it (at
// most 30 s).
func (s *server) exchange(t testing.TB, raw []byte, plain bool) []answer {
	t.Helper()
	var conn net.Conn
	var err error
	if plain {
		conn, err = net.Dial("tcp", s.addr)
	} else {
		conn, err = tls.Dial("tcp", s.addr, s.tlsConfig)
	}
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close()
	conn.SetDeadline(time.Now().Add(30 * time.Second))
	if _, err := conn.Write(raw); err != nil {
		t.Fatal(err)
	}
	var out []answer
	br := bufio.NewReader(conn)
	for {
		resp, err := http.ReadResponse(br, nil)
		if err != nil {
			var ne net.Error
			if errors.As(err, &ne) && ne.Timeout() {
				t.Errorf("%.60q: the server held the connection for 30 s", raw)
			}
			return out
		}
		body, _ := io.ReadAll(resp.Body)
		resp.Body.Close()
		out = append(out, answer{resp.StatusCode, resp.Header, body})
	}
}

// wantJSONError checks that an answer is the API's JSON error with this
// status and code.
func wantJSONError(t testing.TB, what string, a answer, status int, code string) {
	t.Helper()
	var e struct{ Error, Message string }
	if err := json.Unmarshal(a.body, &e); err != nil || e.Message == "" || a.header.Get("Content-Type") != "application/json" {
		t.Errorf("%s: %s (%s) is not the API's JSON error", what, a, a.header.Get("Content-Type"))
		return
	}
	want(t, what, a, status, code)
}

// TestRequestSmugglingRefused: a request framed both by Content-Length and
// by Transfer-Encoding: chunked — which a proxy in front could read by its
// length and this server by its chunks, taking what follows the empty
// chunk for a second request — is answered 411 length_required alone, the
// connection is closed, and neither request is carried out. A request with
// any Transfer-Encoding is refused the same way, over TLS and plain HTTP.
func TestRequestSmugglingRefused(t *testing.T) {
	s := shared(t)
	org := s.newOrg(t, "")
	id := s.activeClient(t, org, "")
	smuggled := rawRequest(s.addr, "PUT", "/v1/deposits/smuggled", id.authorization(t, "PUT", "/v1/deposits/smuggled", []byte("inner"), time.Now()), []byte("inner"))
	chunks := append([]byte("0\r\n\r\n"), smuggled...)
	for _, te := range []string{"chunked", "Chunked", " chunked"} {
		for _, clFirst := range []bool{true, false} {
			// The outer request is signed over the empty body its chunks
			// carry, so that only its framing can refuse it.
			target := "/v1/deposits/outer-" + randomHex(3)
			head := fmt.Sprintf("PUT %s HTTP/1.1\r\nHost: %s\r\nAuthorization: %s\r\n", target, s.addr, id.authorization(t, "PUT", target, nil, time.Now()))
			cl, tr := fmt.Sprintf("Content-Length: %d\r\n", len(chunks)), "Transfer-Encoding:"+te+"\r\n"
			if clFirst {
				head += cl + tr
			} else {
				head += tr + cl
			}
			what := fmt.Sprintf("Content-Length and Transfer-Encoding:%s (length first: %v)", te, clFirst)
			answers := s.exchange(t, append([]byte(head+"\r\n"), chunks...), false)
			if len(answers) != 1 {
				t.Errorf("%s: %d answers, want one refusal: %v", what, len(answers), answers)
			}
			if len(answers) > 0 {
				wantJSONError(t, what, answers[0], http.StatusLengthRequired, "length_required")
			}
			if a := s.signed(t, id, "GET", target, nil); a.status != http.StatusNotFound {
				t.Errorf("%s: the outer request was carried out: %s", what, a)
			}
		}
	}
	if a := s.signed(t, id, "GET", "/v1/deposits/smuggled", nil); a.status != http.StatusNotFound {
		t.Errorf("the smuggled request was carried out: %s", a)
	}
	plain := fmt.Sprintf("GET /pks/lookup?op=get&search=0x%s HTTP/1.1\r\nHost: %s\r\nContent-Length: 5\r\nTransfer-Encoding: chunked\r\n\r\n0\r\n\r\n", id.fpr, s.addr)
	answers := s.exchange(t, []byte(plain), true)
	if len(answers) != 1 {
		t.Fatalf("plain HTTP with both framings: %d answers, want one refusal", len(answers))
	}
	wantJSONError(t, "plain HTTP with both framings", answers[0], http.StatusLengthRequired, "length_required")
}

// TestAmbiguousAuthorizationRefused: a request with two Authorization
// headers (a proxy in front may check another than the server) or a
// fingerprint in lower case (docs/API.md: upper case) is refused with 400
// malformed_authorization, and nothing is stored.
func TestAmbiguousAuthorizationRefused(t *testing.T) {
	s := shared(t)
	org := s.newOrg(t, "")
	id := s.activeClient(t, org, "")
	for i, c := range []struct {
		what    string
		headers func(valid string) []string
	}{
		{"a decoy, then the valid signature", func(v string) []string { return []string{"KTS-Session decoy", v} }},
		{"the valid signature, then a decoy", func(v string) []string { return []string{v, "KTS-Session decoy"} }},
		{"the valid signature twice", func(v string) []string { return []string{v, v} }},
		{"a lower-case fingerprint", func(v string) []string { return []string{strings.Replace(v, id.fpr, strings.ToLower(id.fpr), 1)} }},
	} {
		target := fmt.Sprintf("/v1/deposits/ambiguous-%d", i)
		body := []byte("data")
		raw := fmt.Sprintf("PUT %s HTTP/1.1\r\nHost: %s\r\nContent-Length: %d\r\n", target, s.addr, len(body))
		for _, h := range c.headers(id.authorization(t, "PUT", target, body, time.Now())) {
			raw += "Authorization: " + h + "\r\n"
		}
		answers := s.exchange(t, append([]byte(raw+"Connection: close\r\n\r\n"), body...), false)
		if len(answers) != 1 {
			t.Fatalf("%s: %d answers", c.what, len(answers))
		}
		wantJSONError(t, c.what, answers[0], http.StatusBadRequest, "malformed_authorization")
		if a := s.signed(t, id, "GET", target, nil); a.status != http.StatusNotFound {
			t.Errorf("%s: the deposit was stored: %s", c.what, a)
		}
	}
}

// TestErrorsBelowHandlersAreJSON: what net/http refuses before any handler
// runs (a bad Content-Length, a NUL or garbage in the request line, headers
// too large, an HTTP version other than 1.x, an Expect other than
// 100-continue, an unknown action on /) is
// answered with the API's JSON error, over TLS and over plain HTTP.
func TestErrorsBelowHandlersAreJSON(t *testing.T) {
	s := shared(t)
	host := "Host: " + s.addr + "\r\n"
	for _, plain := range []bool{false, true} {
		for _, c := range []struct {
			what, raw string
			status    int
			code      string
		}{
			{"a bad Content-Length", "PUT /v1/deposits/x HTTP/1.1\r\n" + host + "Content-Length: 12abc\r\n\r\n", 400, "bad_request"},
			{"a negative Content-Length", "PUT /v1/deposits/x HTTP/1.1\r\n" + host + "Content-Length: -1\r\n\r\n", 400, "bad_request"},
			{"a NUL in the request line", "GET /?a=fingerprint\x00 HTTP/1.1\r\n" + host + "\r\n", 400, "bad_request"},
			{"garbage", "\x01\x02garbage\r\n\r\n", 400, "bad_request"},
			{"no Host", "GET / HTTP/1.1\r\n\r\n", 400, "bad_request"},
			{"headers too large", "GET / HTTP/1.1\r\n" + host + "X-Big: " + strings.Repeat("b", 100<<10) + "\r\n\r\n", 431, "header_too_large"},
			{"HTTP/3.0", "GET / HTTP/3.0\r\n" + host + "\r\n", 505, "http_version_not_supported"},
			{"an Expect it does not meet", "PUT /v1/deposits/x HTTP/1.1\r\n" + host + "Expect: 200-ok\r\nContent-Length: 1\r\n\r\nx", 417, "expectation_failed"},
			{"an unknown transfer coding", "GET / HTTP/1.1\r\n" + host + "Transfer-Encoding: gzip\r\n\r\n", 411, "length_required"},
			{"an unknown action", "GET /?a=anything HTTP/1.1\r\n" + host + "Connection: close\r\n\r\n", 400, "unknown_action"},
		} {
			what := fmt.Sprintf("%s (plain HTTP: %v)", c.what, plain)
			answers := s.exchange(t, []byte(c.raw), plain)
			if len(answers) != 1 {
				t.Errorf("%s: %d answers, want 1", what, len(answers))
				continue
			}
			wantJSONError(t, what, answers[0], c.status, c.code)
		}
	}
	if a := s.send(t, "GET", "/?a=fingerprint", "", nil); a.status != http.StatusOK || !bytes.Contains(a.body, []byte("/")) {
		t.Errorf("/?a=fingerprint: %s", a)
	}
}

// TestShortBodyReleased: a body shorter than its Content-Length holds the
// connection for the body deadline (10 s, then 16 KiB a second of the
// length), not for a minute: it is answered 408 body_timeout, and nothing
// is stored.
func TestShortBodyReleased(t *testing.T) {
	s := shared(t)
	org := s.newOrg(t, "")
	id := s.activeClient(t, org, "")
	body := bytes.Repeat([]byte("s"), 1000)
	target := "/v1/deposits/short-body"
	raw := fmt.Sprintf("PUT %s HTTP/1.1\r\nHost: %s\r\nAuthorization: %s\r\nContent-Length: %d\r\n\r\n%s",
		target, s.addr, id.authorization(t, "PUT", target, body, time.Now()), len(body), body[:100])
	start := time.Now()
	answers := s.exchange(t, []byte(raw), false)
	took := time.Since(start)
	t.Logf("a body 900 bytes short was answered after %v", took.Round(time.Millisecond))
	if len(answers) != 1 {
		t.Fatalf("%d answers after %v, want one", len(answers), took)
	}
	wantJSONError(t, "a short body", answers[0], http.StatusRequestTimeout, "body_timeout")
	if a := s.signed(t, id, "GET", target, nil); a.status != http.StatusNotFound {
		t.Errorf("the short body was stored: %s", a)
	}
}

// TestRegistrationFieldsBounded: a registration with a 10 KB host name, or
// one a mail could be forged with, is refused with 400 invalid_input before
// anything is stored or mailed.
func TestRegistrationFieldsBounded(t *testing.T) {
	s := shared(t)
	org := s.newOrg(t, "")
	outbox := func() int {
		var n int
		if err := s.db(t).QueryRow(t.Context(), `SELECT count(*) FROM outbox`).Scan(&n); err != nil {
			t.Fatal(err)
		}
		return n
	}
	before := outbox()
	for _, host := range []string{strings.Repeat("h", 10<<10), "db1\r\nBcc: attacker@example.com", "db 1"} {
		id := newIdentity(t)
		b, _ := json.Marshal(map[string]string{"org": org, "auth_code": "", "public_key": string(id.public), "hostname": host})
		a := s.signed(t, id, "POST", "/v1/register", b)
		wantJSONError(t, fmt.Sprintf("host name %.20q", host), a, http.StatusBadRequest, "invalid_input")
		if l := s.send(t, "GET", "/pks/lookup?op=get&search=0x"+id.fpr, "", nil); l.status != http.StatusNotFound {
			t.Errorf("host name %.20q: the client was stored: %s", host, l)
		}
	}
	if after := outbox(); after != before {
		t.Errorf("refused registrations queued %d mails", after-before)
	}
}

// TestRegistrationFloodKeepsMemoryBounded sends 2,000 registrations with a
// wrong auth code, 200 at a time, to 20 organizations (so that 200 pass the
// rate limit and have their code hashed, each hash taking 19 MiB), and
// samples the server's resident memory: the hashes run a few at a time
// (half the CPUs, 1 to 4), so it grows by what those take — with the
// server's GOGC of 400, up to five times the live heap — and not by what
// 200 hashes at once take (2.5 GiB were measured without the bound). Every
// answer is a registration (201, or 409 for a key already registered), 429
// rate_limited or 503 busy with Retry-After.
func TestRegistrationFloodKeepsMemoryBounded(t *testing.T) {
	s := shared(t)
	code := secretText("auth code", "flood-code-")
	const orgs, total, workers = 20, 2000, 200
	type target struct {
		body []byte
		id   *identity
	}
	targets := make([]target, orgs)
	for i := range targets {
		org := s.newOrg(t, code)
		id := newIdentity(t)
		targets[i] = target{registerBody(org, secretText("auth code", "wrong-"), id.public), id}
	}
	pid := s.pid()
	base := rssKiB(t, pid)
	peak := base
	var mu sync.Mutex
	stop, sampled := make(chan struct{}), make(chan struct{})
	go func() {
		defer close(sampled)
		for {
			select {
			case <-stop:
				return
			case <-time.After(20 * time.Millisecond):
			}
			b, err := os.ReadFile(fmt.Sprintf("/proc/%d/status", pid))
			if err != nil {
				continue
			}
			for _, line := range strings.Split(string(b), "\n") {
				if f := strings.Fields(line); len(f) >= 2 && f[0] == "VmRSS:" {
					n, _ := strconv.Atoi(f[1])
					mu.Lock()
					peak = max(peak, n)
					mu.Unlock()
				}
			}
		}
	}()
	var next atomic.Int64
	var counts sync.Map // answer kind → *atomic.Int64
	count := func(kind string) {
		c, _ := counts.LoadOrStore(kind, new(atomic.Int64))
		c.(*atomic.Int64).Add(1)
	}
	var wg sync.WaitGroup
	start := time.Now()
	for range workers {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for {
				i := next.Add(1) - 1
				if i >= total {
					return
				}
				tg := targets[i%orgs]
				a := s.signed(t, tg.id, "POST", "/v1/register", tg.body)
				switch {
				case a.status == http.StatusCreated || a.status == http.StatusConflict:
					count("hashed")
				case a.status == http.StatusTooManyRequests && a.code() == "rate_limited":
					count("rate_limited")
				case a.status == http.StatusServiceUnavailable && a.code() == "busy" && a.header.Get("Retry-After") != "":
					count("busy")
				default:
					count(a.String())
				}
			}
		}()
	}
	wg.Wait()
	close(stop)
	<-sampled
	growth := peak - base
	summary := []string{}
	counts.Range(func(k, v any) bool {
		summary = append(summary, fmt.Sprintf("%s: %d", k, v.(*atomic.Int64).Load()))
		switch k {
		case "hashed", "rate_limited", "busy":
		default:
			t.Errorf("unexpected answer %s", k)
		}
		return true
	})
	t.Logf("%d registrations in %v (%s); resident memory %d MiB before, peak %d MiB (+%d MiB)",
		total, time.Since(start).Round(time.Millisecond), strings.Join(summary, ", "), base>>10, peak>>10, growth>>10)
	if c, ok := counts.Load("hashed"); !ok || c.(*atomic.Int64).Load() == 0 {
		t.Error("no registration had its code checked: the flood proves nothing")
	}
	// Five times the live heap: the hashes running at once and 48 MiB of
	// the rest (connections, requests, the flood's garbage).
	hashes := min(max(runtime.NumCPU()/2, 1), 4)
	if limit := 5 * (hashes*19 + 48) << 10; growth > limit {
		t.Errorf("the server's resident memory grew by %d MiB under the flood; want less than %d MiB", growth>>10, limit>>10)
	}
	if a := s.send(t, "GET", "/healthz", "", nil); a.status != http.StatusOK {
		t.Errorf("after the flood: %s", a)
	}
}
