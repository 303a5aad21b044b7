// Package client is the Go client of a Trustee server: registration, and
// deposits put, get, delete and list. Its state lives in a directory (the
// client's OpenPGP key pair and client.json), files 0600.
//
// Requests are authenticated with a session token obtained through one
// signed request and renewed before it expires; Signed makes the client sign
// every request instead.
package client

import (
	"bytes"
	"context"
	"crypto/sha256"
	"crypto/tls"
	"crypto/x509"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"time"

	"trustee.dev/trustee/server/auth"
	"trustee.dev/trustee/server/openpgp"
)

// File names inside a client state directory.
const (
	ConfigFile = "client.json"
	KeyFile    = "client-key.asc"
)

// Config is the client's saved state (client.json).
type Config struct {
	ServerURL         string `json:"server_url"`
	Org               string `json:"org"`
	Fingerprint       string `json:"fingerprint"`
	ServerFingerprint string `json:"server_fingerprint"`           // pinned at registration, e.g. 4096R/...
	CAFile            string `json:"ca_file,omitempty"`            // CA bundle to verify the server; "" = system roots
	PinnedSPKISHA256  string `json:"pinned_spki_sha256,omitempty"` // set by --skip-ssl-check: the server key seen at registration
	State             string `json:"state"`                        // as reported at registration
}

// APIError is an error answer from the server.
type APIError struct {
	Status  int
	Code    string `json:"error"`
	Message string `json:"message"`
}

func (e *APIError) Error() string {
	return fmt.Sprintf("server answered %d %s: %s", e.Status, e.Code, e.Message)
}

// Client talks to one server as one registered client.
type Client struct {
	Config Config
	// HTTP is the client used for requests; its transport carries the TLS
	// settings (CA bundle or pinned key).
	HTTP *http.Client
	// Signed makes every request carry its own OpenPGP signature instead of
	// a session token.
	Signed bool

	key *openpgp.PrivateKey

	mu       sync.Mutex
	token    string
	expires  time.Time
	verified bool // the server's OpenPGP identity matched the pinned one
}

// Open loads a client state directory written by Register.
func Open(dir string) (*Client, error) {
	data, err := os.ReadFile(filepath.Join(dir, ConfigFile))
	if err != nil {
		return nil, fmt.Errorf("read client state: %w (register first with `kts client register`)", err)
	}
	var cfg Config
	if err := json.Unmarshal(data, &cfg); err != nil {
		return nil, fmt.Errorf("%s: %w", ConfigFile, err)
	}
	armored, err := os.ReadFile(filepath.Join(dir, KeyFile))
	if err != nil {
		return nil, fmt.Errorf("read client key: %w", err)
	}
	key, err := openpgp.ReadPrivate(armored)
	if err != nil {
		return nil, fmt.Errorf("%s: %w", KeyFile, err)
	}
	tlsCfg, err := tlsConfig(cfg.CAFile, cfg.PinnedSPKISHA256, nil)
	if err != nil {
		return nil, err
	}
	return New(cfg, key, tlsCfg), nil
}

// New makes a client from its parts; tlsCfg nil uses the system roots.
func New(cfg Config, key *openpgp.PrivateKey, tlsCfg *tls.Config) *Client {
	tr := http.DefaultTransport.(*http.Transport).Clone()
	tr.TLSClientConfig = tlsCfg
	tr.ForceAttemptHTTP2 = false
	tr.TLSNextProto = map[string]func(string, *tls.Conn) http.RoundTripper{}
	return &Client{Config: cfg, key: key, HTTP: &http.Client{Transport: tr, Timeout: 30 * time.Second}}
}

// tlsConfig verifies the server with a CA bundle (or the system roots), or,
// when pin is set, accepts only a certificate carrying the pinned public key.
// seen, when not nil, receives the SPKI hash of the certificate presented.
func tlsConfig(caFile, pin string, seen *string) (*tls.Config, error) {
	cfg := &tls.Config{MinVersion: tls.VersionTLS12}
	if caFile != "" {
		pem, err := os.ReadFile(caFile)
		if err != nil {
			return nil, fmt.Errorf("read CA bundle: %w", err)
		}
		pool := x509.NewCertPool()
		if !pool.AppendCertsFromPEM(pem) {
			return nil, fmt.Errorf("CA bundle %s holds no PEM certificate", caFile)
		}
		cfg.RootCAs = pool
	}
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
				return fmt.Errorf("server certificate key %s does not match the key pinned at registration (%s); if the server's TLS key was replaced on purpose, register again", got, pin)
			}
			return nil
		}
	}
	return cfg, nil
}

// SPKIHash is the hex SHA-256 of a certificate's public key.
func SPKIHash(c *x509.Certificate) string {
	sum := sha256.Sum256(c.RawSubjectPublicKeyInfo)
	return hex.EncodeToString(sum[:])
}

// Fingerprint returns the client's OpenPGP fingerprint.
func (c *Client) Fingerprint() string { return c.Config.Fingerprint }

// Put stores a new deposit.
func (c *Client) Put(ctx context.Context, name string, data []byte) error {
	_, err := c.do(ctx, http.MethodPut, "/v1/deposits/"+url.PathEscape(name), data, http.StatusCreated)
	return err
}

// Get fetches a deposit.
func (c *Client) Get(ctx context.Context, name string) ([]byte, error) {
	return c.do(ctx, http.MethodGet, "/v1/deposits/"+url.PathEscape(name), nil, http.StatusOK)
}

// Delete removes a deposit.
func (c *Client) Delete(ctx context.Context, name string) error {
	_, err := c.do(ctx, http.MethodDelete, "/v1/deposits/"+url.PathEscape(name), nil, http.StatusNoContent)
	return err
}

// Deposit describes one of the client's deposits.
type Deposit struct {
	Name    string    `json:"name"`
	Size    int       `json:"size"`
	Created time.Time `json:"created"`
}

// List returns the client's deposits.
func (c *Client) List(ctx context.Context) ([]Deposit, error) {
	body, err := c.do(ctx, http.MethodGet, "/v1/deposits", nil, http.StatusOK)
	if err != nil {
		return nil, err
	}
	var out struct {
		Deposits []Deposit `json:"deposits"`
	}
	if err := json.Unmarshal(body, &out); err != nil {
		return nil, fmt.Errorf("decode deposit list: %w", err)
	}
	return out.Deposits, nil
}

// do sends an authenticated request, renewing the session once if the
// server says the token is no longer good.
func (c *Client) do(ctx context.Context, method, path string, body []byte, want int) ([]byte, error) {
	for attempt := 0; ; attempt++ {
		req, err := http.NewRequestWithContext(ctx, method, c.Config.ServerURL+path, bytes.NewReader(body))
		if err != nil {
			return nil, err
		}
		if err := c.authorize(ctx, req, body); err != nil {
			return nil, err
		}
		out, err := c.send(req, want)
		var ae *APIError
		if attempt == 0 && !c.Signed && errors.As(err, &ae) && (ae.Code == "token_expired" || ae.Code == "bad_token") {
			c.mu.Lock()
			c.token = ""
			c.mu.Unlock()
			continue
		}
		return out, err
	}
}

func (c *Client) authorize(ctx context.Context, req *http.Request, body []byte) error {
	if err := c.verifyServer(ctx); err != nil {
		return err
	}
	if c.Signed {
		return auth.SignRequest(c.key, req, body, time.Now())
	}
	token, err := c.session(ctx)
	if err != nil {
		return err
	}
	req.Header.Set("Authorization", "KTS-Session "+token)
	return nil
}

// verifyServer checks, once per Client, that the server still presents the
// OpenPGP identity pinned at registration.
func (c *Client) verifyServer(ctx context.Context) error {
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.verified || c.Config.ServerFingerprint == "" {
		return nil
	}
	id, err := fetchFingerprint(ctx, c)
	if err != nil {
		return err
	}
	if id != c.Config.ServerFingerprint {
		return fmt.Errorf("server %s presents OpenPGP identity %s, not %s pinned at registration; refusing to send anything to it",
			c.Config.ServerURL, id, c.Config.ServerFingerprint)
	}
	c.verified = true
	return nil
}

// session returns a valid token, opening a session when needed.
func (c *Client) session(ctx context.Context) (string, error) {
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.token != "" && time.Until(c.expires) > 30*time.Second {
		return c.token, nil
	}
	req, err := http.NewRequestWithContext(ctx, http.MethodPost, c.Config.ServerURL+"/v1/session", nil)
	if err != nil {
		return "", err
	}
	if err := auth.SignRequest(c.key, req, nil, time.Now()); err != nil {
		return "", err
	}
	body, err := c.send(req, http.StatusCreated)
	if err != nil {
		return "", err
	}
	var s struct {
		Token     string    `json:"token"`
		ExpiresAt time.Time `json:"expires_at"`
	}
	if err := json.Unmarshal(body, &s); err != nil || s.Token == "" {
		return "", fmt.Errorf("server returned no session token")
	}
	c.token, c.expires = s.Token, s.ExpiresAt
	return c.token, nil
}

func (c *Client) send(req *http.Request, want int) ([]byte, error) {
	resp, err := c.HTTP.Do(req)
	if err != nil {
		return nil, err
	}
	defer resp.Body.Close()
	body, err := io.ReadAll(io.LimitReader(resp.Body, 64<<20))
	if err != nil {
		return nil, err
	}
	if resp.StatusCode != want {
		ae := &APIError{Status: resp.StatusCode}
		if json.Unmarshal(body, ae) != nil || ae.Code == "" {
			ae.Code, ae.Message = http.StatusText(resp.StatusCode), strings.TrimSpace(string(body))
		}
		return nil, ae
	}
	return body, nil
}
