package security

import (
	"bufio"
	"bytes"
	"crypto/tls"
	"fmt"
	"io"
	"net/http"
	"testing"
	"time"
)

// rawRequest is an HTTP/1.1 request exactly as it travels inside TLS.
func rawRequest(host, method, target, authorization string, body []byte) []byte {
	var b bytes.Buffer
	fmt.Fprintf(&b, "%s %s HTTP/1.1\r\nHost: %s\r\nAuthorization: %s\r\nContent-Length: %d\r\nConnection: close\r\n\r\n",
		method, target, host, authorization, len(body))
	b.Write(body)
	return b.Bytes()
}

// sendRaw sends bytes on a new TLS connection and reads the answer.
func (s *server) sendRaw(t testing.TB, raw []byte) answer {
	t.Helper()
	conn, err := tls.Dial("tcp", s.addr, s.tlsConfig)
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close()
	conn.SetDeadline(time.Now().Add(30 * time.Second))
	if _, err := conn.Write(raw); err != nil {
		t.Fatal(err)
	}
	resp, err := http.ReadResponse(bufio.NewReader(conn), nil)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	body, _ := io.ReadAll(resp.Body)
	return answer{resp.StatusCode, resp.Header, body}
}

// TestReplayedRequestRefused captures signed requests as the bytes that
// travel inside TLS — a registration, a session, a deposit's put, get,
// listing and delete — and sends each again, byte for byte: every replay is
// refused with 401 replayed_request and changes nothing, also after the
// server restarted (nonces are kept in PostgreSQL). A signature moved to
// another body, and requests signed with a timestamp more than 5 minutes
// from the server's clock, are refused too.
func TestReplayedRequestRefused(t *testing.T) {
	s := shared(t)
	code := secretText("auth code", "code-")
	org := s.newOrg(t, code)
	capture := func(id *identity, method, target string, body []byte) []byte {
		return rawRequest(s.addr, method, target, id.authorization(t, method, target, body, time.Now()), body)
	}
	type exchange struct {
		what string
		raw  []byte
	}
	replayAll := func(exchanges []exchange, fingerprints ...string) {
		t.Helper()
		before := s.snapshot(t, fingerprints...)
		for _, e := range exchanges {
			want(t, "the replayed "+e.what, s.sendRaw(t, e.raw), http.StatusUnauthorized, "replayed_request")
		}
		if after := s.snapshot(t, fingerprints...); after != before {
			t.Errorf("replays changed the database:\nbefore:\n%s\nafter:\n%s", before, after)
		}
	}

	// Each request once, as its client sent it.
	id := newIdentity(t)
	register := capture(id, "POST", "/v1/register", registerBody(org, code, id.public))
	want(t, "registration", s.sendRaw(t, register), http.StatusCreated, "")
	name := secretText("deposit name", "name-")
	data := []byte(secretText("deposit", "plaintext-"))
	put := capture(id, "PUT", "/v1/deposits/"+name, data)
	want(t, "put", s.sendRaw(t, put), http.StatusCreated, "")
	get := capture(id, "GET", "/v1/deposits/"+name, nil)
	if a := s.sendRaw(t, get); a.status != http.StatusOK || !bytes.Equal(a.body, data) {
		t.Fatalf("get: %s", a)
	}
	list := capture(id, "GET", "/v1/deposits", nil)
	want(t, "list", s.sendRaw(t, list), http.StatusOK, "")
	session := capture(id, "POST", "/v1/session", nil)
	want(t, "session", s.sendRaw(t, session), http.StatusCreated, "")
	exchanges := []exchange{{"registration", register}, {"put", put}, {"get", get}, {"list", list}, {"session", session}}
	replayAll(exchanges, id.fpr)

	// A delete, replayed after the deposit was put again, deletes nothing.
	del := capture(id, "DELETE", "/v1/deposits/"+name, nil)
	want(t, "delete", s.sendRaw(t, del), http.StatusNoContent, "")
	s.put(t, id, name, data)
	exchanges = append(exchanges, exchange{"delete", del})
	replayAll(exchanges, id.fpr)

	// The nonces outlive the process.
	s.restart(t)
	replayAll(exchanges, id.fpr)
	s.get(t, id, name, data)

	// A captured signature over another body, and a fresh signature with a
	// timestamp outside the 5-minute window.
	other := []byte(secretText("deposit", "plaintext-"))
	authz := id.authorization(t, "PUT", "/v1/deposits/moved", data, time.Now())
	want(t, "a signature moved to another body", s.send(t, "PUT", "/v1/deposits/moved", authz, other), http.StatusUnauthorized, "bad_signature")
	for _, skew := range []time.Duration{-301 * time.Second, 301 * time.Second} {
		target := "/v1/deposits/" + name
		want(t, fmt.Sprintf("a request signed %v from now", skew),
			s.send(t, "GET", target, id.authorization(t, "GET", target, nil, time.Now().Add(skew)), nil), http.StatusUnauthorized, "clock_skew")
	}
}
