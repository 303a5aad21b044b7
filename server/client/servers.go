package client

import (
	"context"
	"crypto/sha256"
	"crypto/tls"
	"crypto/x509"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/url"
	"os"
	"strings"
	"sync"
	"syscall"
	"time"
)

// Timeouts of every request to a server.
const (
	dialTimeout    = 5 * time.Second
	requestTimeout = 30 * time.Second
)

// Pins maps each server URL to the hex SHA-256 of the certificate key it
// presented at registration with --skip-ssl-check (see SPKIHash).
type Pins map[string]string

// UnmarshalJSON reads the object form, or the single string written by
// clients registered with one server; that pin is kept under the key "" until
// New assigns it to the only server.
func (p *Pins) UnmarshalJSON(b []byte) error {
	var one string
	if err := json.Unmarshal(b, &one); err == nil {
		*p = nil
		if one != "" {
			*p = Pins{"": one}
		}
		return nil
	}
	var m map[string]string
	if err := json.Unmarshal(b, &m); err != nil {
		return fmt.Errorf("pinned_spki_sha256 must map each server URL to a key hash: %w", err)
	}
	*p = m
	return nil
}

// server is one server of the pair, with its own connections.
type server struct {
	url  string
	http *http.Client

	mu       sync.Mutex // serializes the identity check
	verified bool       // the server presented the pinned OpenPGP identity
}

// newHTTPClient makes an HTTP/1.1 client with its own transport.
func newHTTPClient(tlsCfg *tls.Config) *http.Client {
	tr := http.DefaultTransport.(*http.Transport).Clone()
	tr.DialContext = (&net.Dialer{Timeout: dialTimeout, KeepAlive: 30 * time.Second}).DialContext
	tr.TLSClientConfig = tlsCfg
	tr.ForceAttemptHTTP2 = false
	tr.TLSNextProto = map[string]func(string, *tls.Conn) http.RoundTripper{}
	return &http.Client{Transport: tr, Timeout: requestTimeout}
}

// parseServers splits a comma-separated list of server URLs, the active
// first, and checks each.
func parseServers(list string) ([]string, error) {
	var out []string
	seen := map[string]bool{}
	for _, s := range strings.Split(list, ",") {
		s = strings.TrimRight(strings.TrimSpace(s), "/")
		if s == "" {
			continue
		}
		u, err := url.Parse(s)
		if err != nil || u.Scheme != "https" || u.Host == "" {
			return nil, fmt.Errorf("server URL %q must look like https://host:11371", s)
		}
		if seen[s] {
			return nil, fmt.Errorf("server URL %s is listed twice", s)
		}
		seen[s] = true
		out = append(out, s)
	}
	if len(out) == 0 {
		return nil, errors.New("no server URL given: use --server https://host:11371, or both servers of a pair comma-separated, the active first")
	}
	return out, nil
}

// rootCAs reads a CA bundle; "" means the system roots (nil).
func rootCAs(caFile string) (*x509.CertPool, error) {
	if caFile == "" {
		return nil, nil
	}
	pem, err := os.ReadFile(caFile)
	if err != nil {
		return nil, fmt.Errorf("read CA bundle: %w", err)
	}
	pool := x509.NewCertPool()
	if !pool.AppendCertsFromPEM(pem) {
		return nil, fmt.Errorf("CA bundle %s holds no PEM certificate", caFile)
	}
	return pool, nil
}

// tlsConfig verifies a server with roots (nil: the system roots), or, when
// pin is set, accepts only a certificate carrying the pinned public key.
// seen, when not nil, receives the SPKI hash of the certificate presented.
func tlsConfig(roots *x509.CertPool, pin string, seen *string) *tls.Config {
	cfg := &tls.Config{MinVersion: tls.VersionTLS12, RootCAs: roots}
	if pin != "" || seen != nil {
		cfg.InsecureSkipVerify = true // replaced by the pin check below
		cfg.VerifyConnection = func(cs tls.ConnectionState) error {
			if len(cs.PeerCertificates) == 0 {
				return errors.New("server presented no certificate")
			}
			got := SPKIHash(cs.PeerCertificates[0])
			if seen != nil {
				*seen = got
			}
			if pin != "" && got != pin {
				return &pinError{got: got, want: pin}
			}
			return nil
		}
	}
	return cfg
}

// pinError is a certificate whose key is not the pinned one.
type pinError struct{ got, want string }

func (e *pinError) Error() string {
	return fmt.Sprintf("server certificate key %s does not match the key pinned at registration (%s); if the server's TLS key was replaced on purpose, register again", e.got, e.want)
}

// SPKIHash is the hex SHA-256 of a certificate's public key.
func SPKIHash(c *x509.Certificate) string {
	sum := sha256.Sum256(c.RawSubjectPublicKeyInfo)
	return hex.EncodeToString(sum[:])
}

// fetchFingerprint asks the server at base for its OpenPGP identity.
func fetchFingerprint(ctx context.Context, hc *http.Client, base string) (string, error) {
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, base+"/?a=fingerprint", nil)
	if err != nil {
		return "", err
	}
	resp, err := hc.Do(req)
	if err != nil {
		err = transportError(base, err)
		var unknownCA x509.UnknownAuthorityError
		if errors.As(err, &unknownCA) {
			return "", fmt.Errorf("%w (give the CA that signed its certificate with --ca-file, or use --skip-ssl-check for a self-signed server)", err)
		}
		return "", err
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(io.LimitReader(resp.Body, 256))
	if err != nil {
		return "", transportError(base, err)
	}
	id := strings.TrimSpace(string(b))
	if resp.StatusCode != http.StatusOK || !validServerID(id) {
		return "", &APIError{Server: base, Status: resp.StatusCode, Code: http.StatusText(resp.StatusCode),
			Message: "did not answer like a Key Trustee server; check the server URL"}
	}
	return id, nil
}

// validServerID checks the "<bits><letter>/<40 hex>" shape.
func validServerID(id string) bool {
	bits, fp, ok := strings.Cut(id, "/")
	if !ok || len(bits) < 2 || len(fp) != 40 {
		return false
	}
	for _, r := range bits[:len(bits)-1] {
		if r < '0' || r > '9' {
			return false
		}
	}
	for _, r := range fp {
		if !('0' <= r && r <= '9' || 'A' <= r && r <= 'F') {
			return false
		}
	}
	return true
}

// transportError names the server a request to it failed on, dropping the
// request URL an *url.Error repeats.
func transportError(base string, err error) error {
	if ue, ok := err.(*url.Error); ok {
		err = ue.Err
	}
	return fmt.Errorf("%s: %w", base, err)
}

// unreachable reports whether err means the server could not be reached or
// is temporarily unable to answer (a connection refused, reset or timed out,
// or a 502, 503 or 504 answer), so that another server may take the request.
// A certificate or identity that does not match is never one: the client
// stops there rather than quietly using another server.
func unreachable(ctx context.Context, err error) bool {
	if err == nil || ctx.Err() != nil {
		return false
	}
	var ue *unavailableError
	var pe *pinError
	var ve *tls.CertificateVerificationError
	if errors.As(err, &ue) || errors.As(err, &pe) || errors.As(err, &ve) {
		return false
	}
	var ae *APIError
	if errors.As(err, &ae) {
		switch ae.Status {
		case http.StatusBadGateway, http.StatusServiceUnavailable, http.StatusGatewayTimeout:
			return true
		}
		return false
	}
	var ne net.Error
	var oe *net.OpError
	return errors.As(err, &ne) && ne.Timeout() || errors.As(err, &oe) ||
		errors.Is(err, io.EOF) || errors.Is(err, io.ErrUnexpectedEOF) ||
		errors.Is(err, syscall.ECONNREFUSED) || errors.Is(err, syscall.ECONNRESET)
}

// unavailableError is a request that no server could take; each error names
// its server.
type unavailableError struct {
	op   string
	errs []error
}

func (e *unavailableError) Error() string {
	msgs := make([]string, len(e.errs))
	for i, err := range e.errs {
		msgs[i] = err.Error()
	}
	if len(msgs) == 1 {
		return e.op + ": " + msgs[0]
	}
	return e.op + ": no server could answer: " + strings.Join(msgs, "; ")
}

func (e *unavailableError) Unwrap() []error { return e.errs }
