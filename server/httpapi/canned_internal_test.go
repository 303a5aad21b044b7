package httpapi

import (
	"bufio"
	"bytes"
	"crypto/tls"
	"encoding/json"
	"io"
	"net"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
	"time"
)

// The answers net/http writes itself, as its server.go writes them.
var cannedSeeds = []string{
	"HTTP/1.1 400 Bad Request" + cannedHeaders + "400 Bad Request",
	"HTTP/1.1 400 Bad Request: missing required Host header" + cannedHeaders + "400 Bad Request: missing required Host header",
	"HTTP/1.1 431 Request Header Fields Too Large" + cannedHeaders + "431 Request Header Fields Too Large",
	"HTTP/1.1 501 Not Implemented" + cannedHeaders + "Unsupported transfer encoding",
	"HTTP/1.1 505 HTTP Version Not Supported: unsupported protocol version" + cannedHeaders + "505 HTTP Version Not Supported: unsupported protocol version",
	expectFailedHead + "Mon, 07 Dec 2026 14:45:16 GMT" + expectFailedTail,
}

func TestRewriteCanned(t *testing.T) {
	for _, c := range []struct {
		in     string
		status int
		code   string
	}{
		{cannedSeeds[0], 400, "bad_request"},
		{cannedSeeds[1], 400, "bad_request"},
		{cannedSeeds[2], 431, "header_too_large"},
		{cannedSeeds[3], 411, "length_required"},
		{cannedSeeds[4], 505, "http_version_not_supported"},
		{cannedSeeds[5], 417, "expectation_failed"},
		{"HTTP/1.1 418 I'm a teapot" + cannedHeaders + "418 I'm a teapot", 418, "bad_request"},
	} {
		out, ok := rewriteCanned([]byte(c.in), 1<<16)
		if !ok {
			t.Errorf("%q: not rewritten", c.in)
			continue
		}
		checkJSONAnswer(t, c.in, bytes.NewReader(out), c.status, c.code)
	}
	// What handlers answer, and bodies that merely look alike, pass as they are.
	for _, in := range []string{
		"HTTP/1.1 400 Bad Request\r\nConnection: close\r\nContent-Type: text/plain; charset=utf-8\r\nDate: Mon, 07 Dec 2026 14:00:00 GMT\r\n\r\n400 Bad Request",
		"HTTP/1.1 200 OK" + cannedHeaders + "200 OK",
		// A handler's answer with net/http's own headers only.
		"HTTP/1.1 400 Bad Request\r\nDate: Mon, 07 Dec 2026 14:45:16 GMT\r\nContent-Length: 15\r\nContent-Type: text/plain; charset=utf-8\r\nConnection: close\r\n\r\n400 Bad Request",
		expectFailedHead + "Mon, 07 Dec 2026 14:45:16 GMT" + expectFailedTail + "more",
		expectFailedHead + "Mon\r\nX: 1" + expectFailedTail,
		"HTTP/1.1 400 Bad Request" + cannedHeaders + "400 Bad Request and more",
		"HTTP/1.1 400 Bad Request" + cannedHeaders + "400 Bad Request" + cannedHeaders,
		"HTTP/1.1 4000 Bad Request" + cannedHeaders + "4000 Bad Request",
		"HTTP/1.1 40" + cannedHeaders + "40",
		"HTTP/1.0 400 Bad Request" + cannedHeaders + "400 Bad Request",
		"xHTTP/1.1 400 Bad Request" + cannedHeaders + "400 Bad Request",
		"HTTP/1.1 501 Not Implemented" + cannedHeaders + "something else",
		"",
	} {
		if out, ok := rewriteCanned([]byte(in), 1<<16); ok {
			t.Errorf("%q rewritten to %q", in, out)
		}
	}
}

func FuzzRewriteCanned(f *testing.F) {
	for _, s := range cannedSeeds {
		f.Add([]byte(s))
	}
	f.Add([]byte("HTTP/1.1 200 OK\r\nContent-Length: 0\r\n\r\n"))
	f.Fuzz(func(t *testing.T, in []byte) {
		out, ok := rewriteCanned(in, 1<<16)
		if !ok {
			if out != nil {
				t.Fatalf("not rewritten, but %q returned", out)
			}
			return
		}
		if !bytes.HasPrefix(in, []byte("HTTP/1.1 4")) && !bytes.HasPrefix(in, []byte("HTTP/1.1 5")) {
			t.Fatalf("%q rewritten: it is no error answer", in)
		}
		resp, err := http.ReadResponse(bufio.NewReader(bytes.NewReader(out)), nil)
		if err != nil {
			t.Fatalf("%q rewritten to an unreadable answer %q: %v", in, out, err)
		}
		defer resp.Body.Close()
		var eb errorBody
		b, _ := io.ReadAll(resp.Body)
		if resp.StatusCode < 400 || json.Unmarshal(b, &eb) != nil || eb.Error == "" || eb.Message == "" || !resp.Close {
			t.Fatalf("%q rewritten to %q", in, out)
		}
	})
}

// checkJSONAnswer reads one answer and checks it is the API's JSON error
// with this status and code, and that the connection is closed after it.
func checkJSONAnswer(t *testing.T, what string, r io.Reader, status int, code string) {
	t.Helper()
	resp, err := http.ReadResponse(bufio.NewReader(r), nil)
	if err != nil {
		t.Errorf("%q: no answer: %v", what, err)
		return
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	var eb errorBody
	if err := json.Unmarshal(b, &eb); err != nil || eb.Message == "" || resp.Header.Get("Content-Type") != "application/json" {
		t.Errorf("%q: answer %d %q (%s) is not the API's JSON error", what, resp.StatusCode, b, resp.Header.Get("Content-Type"))
		return
	}
	if resp.StatusCode != status || eb.Error != code {
		t.Errorf("%q: %d %s (%s), want %d %s", what, resp.StatusCode, eb.Error, eb.Message, status, code)
	}
	if !resp.Close {
		t.Errorf("%q: the connection is kept open after %d", what, resp.StatusCode)
	}
}

// serveWrapped serves h as the daemon does, on a JSONErrorListener over
// TLS (with tlsCfg) or plain TCP (nil), and returns a dialer.
func serveWrapped(t *testing.T, h http.Handler, tlsCfg *tls.Config) func() net.Conn {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	inner := ln
	if tlsCfg != nil {
		inner = tls.NewListener(ln, tlsCfg)
	}
	srv := &http.Server{Handler: h, MaxHeaderBytes: 16 << 10, ReadHeaderTimeout: 10 * time.Second, ConnContext: ConnContext}
	go srv.Serve(JSONErrorListener(inner, srv.MaxHeaderBytes))
	t.Cleanup(func() { srv.Close() })
	return func() net.Conn {
		var c net.Conn
		var err error
		if tlsCfg != nil {
			c, err = tls.Dial("tcp", ln.Addr().String(), &tls.Config{InsecureSkipVerify: true})
		} else {
			c, err = net.Dial("tcp", ln.Addr().String())
		}
		if err != nil {
			t.Fatal(err)
		}
		c.SetDeadline(time.Now().Add(20 * time.Second))
		t.Cleanup(func() { c.Close() })
		return c
	}
}

// TestMalformedRequestsAnsweredInJSON sends what net/http refuses before
// any handler runs, and a request framed both by Content-Length and
// chunked, over plain TCP and over TLS: every answer is the API's JSON
// error, and the connection is closed.
func TestMalformedRequestsAnsweredInJSON(t *testing.T) {
	s := New(Options{})
	ts := httptest.NewTLSServer(http.NotFoundHandler()) // for its certificate
	tlsCfg := ts.TLS.Clone()
	ts.Close()
	big := strings.Repeat("a", 100<<10)
	cases := []struct {
		name, raw string
		status    int
		code      string
	}{
		{"bad Content-Length", "PUT /v1/deposits/x HTTP/1.1\r\nHost: x\r\nContent-Length: abc\r\n\r\n", 400, "bad_request"},
		{"two Content-Lengths", "PUT /v1/deposits/x HTTP/1.1\r\nHost: x\r\nContent-Length: 1\r\nContent-Length: 2\r\n\r\nab", 400, "bad_request"},
		{"NUL in the request line", "GET /\x00 HTTP/1.1\r\nHost: x\r\n\r\n", 400, "bad_request"},
		{"garbage request line", "hello there\r\n\r\n", 400, "bad_request"},
		{"no Host", "GET / HTTP/1.1\r\n\r\n", 400, "bad_request"},
		{"headers too large", "GET / HTTP/1.1\r\nHost: x\r\nX-Big: " + big + "\r\n\r\n", 431, "header_too_large"},
		{"HTTP/3.0", "GET / HTTP/3.0\r\nHost: x\r\n\r\n", 505, "http_version_not_supported"},
		{"unknown transfer coding", "PUT /v1/deposits/x HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: gzip\r\n\r\n", 411, "length_required"},
		{"Content-Length and chunked", "PUT /v1/deposits/x HTTP/1.1\r\nHost: x\r\nContent-Length: 5\r\nTransfer-Encoding: chunked\r\n\r\n5\r\nhello\r\n0\r\n\r\n", 411, "length_required"},
		{"chunked", "POST /v1/session HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\n\r\n0\r\n\r\n", 411, "length_required"},
		{"an Expect other than 100-continue", "PUT /v1/deposits/x HTTP/1.1\r\nHost: x\r\nExpect: 200-ok\r\nContent-Length: 1\r\n\r\nx", 417, "expectation_failed"},
	}
	for _, side := range []struct {
		name string
		tls  *tls.Config
	}{{"plain", nil}, {"tls", tlsCfg}} {
		dial := serveWrapped(t, s.Handler(), side.tls)
		for _, c := range cases {
			conn := dial()
			if _, err := io.WriteString(conn, c.raw); err != nil {
				t.Fatalf("%s %s: %v", side.name, c.name, err)
			}
			checkJSONAnswer(t, side.name+" "+c.name, conn, c.status, c.code)
		}
	}
}

// TestWrappedTLSStateSeen: behind a JSONErrorListener, handlers still see
// the request's TLS state.
func TestWrappedTLSStateSeen(t *testing.T) {
	ts := httptest.NewTLSServer(http.NotFoundHandler())
	tlsCfg := ts.TLS.Clone()
	ts.Close()
	dial := serveWrapped(t, http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		withTLSState(r)
		if r.TLS == nil || !r.TLS.HandshakeComplete {
			http.Error(w, "no TLS state", http.StatusInternalServerError)
			return
		}
		io.WriteString(w, "ok")
	}), tlsCfg)
	conn := dial()
	io.WriteString(conn, "GET / HTTP/1.1\r\nHost: x\r\n\r\n")
	resp, err := http.ReadResponse(bufio.NewReader(conn), nil)
	if err != nil {
		t.Fatal(err)
	}
	b, _ := io.ReadAll(resp.Body)
	if resp.StatusCode != 200 || string(b) != "ok" {
		t.Fatalf("%d %q", resp.StatusCode, b)
	}
}

func TestBodyTimeout(t *testing.T) {
	for _, c := range []struct {
		n     int64
		grace time.Duration
		rate  int64
		want  time.Duration
	}{
		{0, 10 * time.Second, 16 << 10, 10 * time.Second},
		{-1, 10 * time.Second, 16 << 10, 10 * time.Second},
		{16 << 10, 10 * time.Second, 16 << 10, 11 * time.Second},
		{1 << 20, 10 * time.Second, 16 << 10, 74 * time.Second},
		{100, 2 * time.Second, 0, 2 * time.Second},
	} {
		if got := bodyTimeout(c.n, c.grace, c.rate); got != c.want {
			t.Errorf("bodyTimeout(%d, %v, %d) = %v, want %v", c.n, c.grace, c.rate, got, c.want)
		}
	}
}
