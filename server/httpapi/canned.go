package httpapi

import (
	"bytes"
	"context"
	"crypto/tls"
	"encoding/json"
	"fmt"
	"net"
	"net/http"
	"strconv"

	"trustee.dev/trustee/server/apierror"
)

// Go's net/http answers a request it cannot parse (a malformed request
// line, a bad Content-Length, headers too large, an HTTP version other than
// 1.x, a transfer coding it does not know, an Expect it does not meet)
// itself, before any handler runs, with a plain-text or an empty body. The API promises JSON for every status of 400 or
// more, so the connections the server reads are wrapped: such an answer,
// written in one piece straight to the connection, is recognized by its
// exact form and rewritten to the API's error body.
//
// The form is exact: a status line, then precisely
//
//	Content-Type: text/plain; charset=utf-8
//	Connection: close
//
// and a body repeating the status (or, for 501, "Unsupported transfer
// encoding"). No answer of a handler has it: net/http writes the headers a
// handler set sorted (Connection before Content-Type) and adds a Date.

// cannedHeaders are the headers net/http gives the answers it writes itself.
const cannedHeaders = "\r\nContent-Type: text/plain; charset=utf-8\r\nConnection: close\r\n\r\n"

// net/http answers an Expect header other than 100-continue with an empty
// 417 of its own: these headers, around a Date. No handler answers 417.
const (
	expectFailedHead = "HTTP/1.1 417 Expectation Failed\r\nConnection: close\r\nDate: "
	expectFailedTail = "\r\nContent-Length: 0\r\n\r\n"
)

// JSONErrorListener wraps ln (a plain or a TLS listener: the wrapped
// connections carry the HTTP bytes) so that the answers net/http writes
// itself carry the API's JSON error body. maxHeaderBytes is the server's
// MaxHeaderBytes, named in the answer to headers too large.
func JSONErrorListener(ln net.Listener, maxHeaderBytes int) net.Listener {
	return &jsonErrorListener{Listener: ln, maxHeaderBytes: maxHeaderBytes}
}

type jsonErrorListener struct {
	net.Listener
	maxHeaderBytes int
}

func (l *jsonErrorListener) Accept() (net.Conn, error) {
	c, err := l.Listener.Accept()
	if err != nil {
		return nil, err
	}
	return &jsonErrorConn{Conn: c, maxHeaderBytes: l.maxHeaderBytes}, nil
}

type jsonErrorConn struct {
	net.Conn
	maxHeaderBytes int
}

// Write rewrites a canned answer; anything else passes unchanged.
func (c *jsonErrorConn) Write(p []byte) (int, error) {
	if out, ok := rewriteCanned(p, c.maxHeaderBytes); ok {
		if _, err := c.Conn.Write(out); err != nil {
			return 0, err
		}
		return len(p), nil
	}
	return c.Conn.Write(p)
}

// CloseWrite half-closes the connection when the wrapped one can, as
// net/http does after answering headers too large.
func (c *jsonErrorConn) CloseWrite() error {
	if cw, ok := c.Conn.(interface{ CloseWrite() error }); ok {
		return cw.CloseWrite()
	}
	return nil
}

type connKey struct{}

// ConnContext is the ConnContext of an http.Server that serves a
// JSONErrorListener: net/http sees only the wrapper, not the TLS connection
// in it, so the handlers find the TLS state (r.TLS) through the context.
func ConnContext(ctx context.Context, c net.Conn) context.Context {
	return context.WithValue(ctx, connKey{}, c)
}

// TLSState is a handler that serves a JSONErrorListener's connections: it
// gives h the request's TLS state (r.TLS), which net/http cannot see through
// the wrapper.
func TLSState(h http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		withTLSState(r)
		h.ServeHTTP(w, r)
	})
}

// withTLSState sets r.TLS from the TLS connection a JSONErrorListener
// wrapped, when net/http could not.
func withTLSState(r *http.Request) {
	if r.TLS != nil {
		return
	}
	if c, ok := r.Context().Value(connKey{}).(*jsonErrorConn); ok {
		if tc, ok := c.Conn.(*tls.Conn); ok {
			st := tc.ConnectionState()
			r.TLS = &st
		}
	}
}

// rewriteCanned returns the JSON answer for one of the answers net/http
// writes itself, and false for anything else.
func rewriteCanned(p []byte, maxHeaderBytes int) ([]byte, bool) {
	if date, ok := bytes.CutPrefix(p, []byte(expectFailedHead)); ok {
		date, ok = bytes.CutSuffix(date, []byte(expectFailedTail))
		if !ok || len(date) > 64 || bytes.ContainsAny(date, "\r\n") {
			return nil, false
		}
		return jsonAnswer(apierror.New(http.StatusExpectationFailed, "expectation_failed",
			"the server takes no Expect header but Expect: 100-continue; nothing was done; send the request without it")), true
	}
	rest, ok := bytes.CutPrefix(p, []byte("HTTP/1.1 "))
	if !ok || len(rest) < 3 || rest[0] != '4' && rest[0] != '5' {
		return nil, false // every successful answer: no scan of its bytes
	}
	statusLine, body, ok := bytes.Cut(rest, []byte(cannedHeaders))
	if !ok || len(statusLine) < 3 || bytes.ContainsAny(statusLine, "\r\n") {
		return nil, false
	}
	status, err := strconv.Atoi(string(statusLine[:3]))
	if err != nil || status < 400 || status > 599 || len(statusLine) > 3 && statusLine[3] != ' ' {
		return nil, false
	}
	if !bytes.Equal(body, statusLine) && !(status == http.StatusNotImplemented && string(body) == "Unsupported transfer encoding") {
		return nil, false
	}
	// What net/http says after the reason phrase ("400 Bad Request: missing
	// required Host header"): fixed texts, never the client's bytes.
	_, detail, _ := bytes.Cut(statusLine, []byte(": "))
	return jsonAnswer(cannedError(status, string(detail), maxHeaderBytes)), true
}

// jsonAnswer is a whole answer with the API's error body, closing the
// connection.
func jsonAnswer(ae *apierror.Error) []byte {
	b, _ := json.Marshal(errorBody{Error: ae.Code, Message: ae.Message}) // two strings: cannot fail
	b = append(b, '\n')
	head := fmt.Sprintf("HTTP/1.1 %d %s\r\nContent-Type: application/json\r\nX-Content-Type-Options: nosniff\r\nConnection: close\r\nContent-Length: %d\r\n\r\n",
		ae.Status, http.StatusText(ae.Status), len(b))
	return append([]byte(head), b...)
}

// cannedError is what the client is told instead of net/http's own answer.
func cannedError(status int, detail string, maxHeaderBytes int) *apierror.Error {
	const nothing = "; nothing was done"
	switch status {
	case http.StatusRequestHeaderFieldsTooLarge:
		return apierror.New(status, "header_too_large", fmt.Sprintf("the request's header is larger than the %d bytes the server reads%s; send a shorter one", maxHeaderBytes, nothing))
	case http.StatusNotImplemented:
		return errTransferEncoding
	case http.StatusHTTPVersionNotSupported:
		return apierror.New(status, "http_version_not_supported", "the server speaks HTTP/1.1 (and 1.0) only"+nothing+"; send HTTP/1.1")
	case http.StatusBadRequest:
		if detail == "" {
			detail = "a malformed request line (method, path and HTTP version separated by single spaces, no control characters), a bad Content-Length, or a header line that does not parse"
		}
		return apierror.New(status, "bad_request", "the request is not well-formed HTTP/1.1: "+detail+nothing+"; see docs/API.md")
	}
	if detail == "" {
		detail = http.StatusText(status)
	}
	return apierror.New(status, "bad_request", "the request could not be read: "+detail+nothing)
}
