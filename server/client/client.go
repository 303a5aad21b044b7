// Package client is the Go client of a Trustee server: registration, and
// deposits put, get, delete and list. Its state lives in a directory (the
// client's OpenPGP key pair and client.json), files 0600.
//
// Requests are authenticated with a session token obtained through one
// signed request and renewed before it expires; Signed makes the client sign
// every request instead.
//
// A client may know both servers of an active/passive pair. Writes go to the
// active (the first server) only. Reads go round-robin across the servers
// and, when one cannot be reached or answers 502, 503 or 504, are retried
// once on each other server. The pair shares one OpenPGP identity and one
// session token key, so each server is checked against the same pinned
// identity and a token opened on either is good on both.
package client

import (
	"bytes"
	"context"
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
	"sync/atomic"
	"time"

	"trustee.dev/trustee/server/auth"
	"trustee.dev/trustee/server/openpgp"
	"trustee.dev/trustee/server/wire"
	"trustee.dev/trustee/server/wire/clientv1"
)

// File names inside a client state directory.
const (
	ConfigFile = "client.json"
	KeyFile    = "client-key.asc"
)

// Config is the client's saved state (client.json).
type Config struct {
	// ServerURL is the only server of a client registered before pairs
	// were supported, used when Servers is empty. Register writes the
	// active server here too, for older readers.
	ServerURL string `json:"server_url"`
	// Servers lists every server of the pair, the active first.
	Servers           []string `json:"servers,omitempty"`
	Org               string   `json:"org"`
	Fingerprint       string   `json:"fingerprint"`
	ServerFingerprint string   `json:"server_fingerprint"` // pinned at registration, e.g. 4096R/...; the same for every server
	CAFile            string   `json:"ca_file,omitempty"`  // CA bundle to verify the servers; "" = system roots
	// PinnedSPKISHA256 is set by --skip-ssl-check: the certificate key each
	// server presented at registration. A server without a pin is verified
	// with CAFile or the system roots.
	PinnedSPKISHA256 Pins   `json:"pinned_spki_sha256,omitempty"`
	State            string `json:"state"` // as reported at registration
}

// normalize fills Servers from ServerURL for a single-server state, and
// gives the single pin of that form to its server.
func (cfg *Config) normalize() error {
	servers := make([]string, 0, len(cfg.Servers))
	for _, s := range cfg.Servers {
		if s = strings.TrimRight(s, "/"); s != "" {
			servers = append(servers, s)
		}
	}
	if len(servers) == 0 && cfg.ServerURL != "" {
		servers = []string{strings.TrimRight(cfg.ServerURL, "/")}
	}
	if len(servers) == 0 {
		return fmt.Errorf("%s names no server; register again with `kts client register --server URL`", ConfigFile)
	}
	cfg.Servers = servers
	if cfg.ServerURL == "" {
		cfg.ServerURL = servers[0]
	}
	if pin, ok := cfg.PinnedSPKISHA256[""]; ok {
		pins := Pins{}
		for u, p := range cfg.PinnedSPKISHA256 {
			pins[strings.TrimRight(u, "/")] = p
		}
		delete(pins, "")
		if _, set := pins[servers[0]]; !set {
			pins[servers[0]] = pin
		}
		cfg.PinnedSPKISHA256 = pins
	}
	return nil
}

// APIError is an error answer from a server.
type APIError struct {
	Server  string // the server's URL
	Status  int
	Code    string // the error code of the answer's body (wire.ErrorBody)
	Message string
}

func (e *APIError) Error() string {
	who := e.Server
	if who == "" {
		who = "server"
	}
	return fmt.Sprintf("%s answered %d %s: %s", who, e.Status, e.Code, e.Message)
}

// Client talks to a server, or to both servers of a pair, as one registered
// client. It is safe for concurrent use.
type Client struct {
	// Config is the saved state, with Servers filled in.
	Config Config
	// HTTP is the client used for requests to the active server (the first);
	// its transport carries that server's TLS settings (CA bundle or pinned
	// key). Every other server has its own.
	HTTP *http.Client
	// Signed makes every request carry its own OpenPGP signature instead of
	// a session token.
	Signed bool

	key     *openpgp.PrivateKey
	servers []*server
	next    atomic.Uint64 // round-robin position of reads

	mu      sync.Mutex // guards the session
	token   string
	expires time.Time
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
	return New(cfg, key)
}

// New makes a client from its saved state and key. Each server gets its own
// connections, verified with cfg.CAFile (or the system roots) or its pinned
// certificate key.
func New(cfg Config, key *openpgp.PrivateKey) (*Client, error) {
	if err := cfg.normalize(); err != nil {
		return nil, err
	}
	roots, err := rootCAs(cfg.CAFile)
	if err != nil {
		return nil, err
	}
	c := &Client{Config: cfg, key: key}
	for _, u := range cfg.Servers {
		hc := newHTTPClient(tlsConfig(roots, cfg.PinnedSPKISHA256[u], nil))
		c.servers = append(c.servers, &server{url: u, http: hc})
	}
	c.HTTP = c.servers[0].http
	return c, nil
}

// httpClient is the HTTP client for server i.
func (c *Client) httpClient(i int) *http.Client {
	if i == 0 && c.HTTP != nil {
		return c.HTTP
	}
	return c.servers[i].http
}

// Fingerprint returns the client's OpenPGP fingerprint.
func (c *Client) Fingerprint() string { return c.Config.Fingerprint }

// Put stores a new deposit on the active server.
func (c *Client) Put(ctx context.Context, name string, data []byte) error {
	_, err := c.do(ctx, http.MethodPut, "/v1/deposits/"+url.PathEscape(name), data, http.StatusCreated)
	return err
}

// Get fetches a deposit from the next server in turn.
func (c *Client) Get(ctx context.Context, name string) ([]byte, error) {
	return c.do(ctx, http.MethodGet, "/v1/deposits/"+url.PathEscape(name), nil, http.StatusOK)
}

// Delete removes a deposit on the active server.
func (c *Client) Delete(ctx context.Context, name string) error {
	_, err := c.do(ctx, http.MethodDelete, "/v1/deposits/"+url.PathEscape(name), nil, http.StatusNoContent)
	return err
}

// Deposit describes one of the client's deposits.
type Deposit = clientv1.Deposit

// List returns the client's deposits, from the next server in turn.
func (c *Client) List(ctx context.Context) ([]Deposit, error) {
	body, err := c.do(ctx, http.MethodGet, "/v1/deposits", nil, http.StatusOK)
	if err != nil {
		return nil, err
	}
	var out clientv1.DepositList
	if err := json.Unmarshal(body, &out); err != nil {
		return nil, fmt.Errorf("decode deposit list: %w", err)
	}
	return out.Deposits, nil
}

// do sends a request: a write to the active server only, a read to the next
// server in turn and then, while none could answer, to each other one.
func (c *Client) do(ctx context.Context, method, path string, body []byte, want int) ([]byte, error) {
	op := method + " " + path
	if method != http.MethodGet {
		out, err := c.doOn(ctx, 0, []int{0}, method, path, body, want)
		var ue *unavailableError
		if unreachable(ctx, err) || errors.As(err, &ue) {
			return nil, fmt.Errorf("%s: the active server %s could not take it: %w (writes go only to the active server, the first of \"servers\" in %s: retry when it is back, or after a failover put the new active first)",
				op, c.servers[0].url, err, ConfigFile)
		}
		return out, err
	}
	n := len(c.servers)
	start := int((c.next.Add(1) - 1) % uint64(n))
	failed := make([]bool, n)
	var errs []error
	for k := range n {
		i := (start + k) % n
		// A session is opened on the active by preference, skipping
		// servers that already failed this request.
		var sessionOn []int
		for j := range n {
			if !failed[j] {
				sessionOn = append(sessionOn, j)
			}
		}
		out, err := c.doOn(ctx, i, sessionOn, method, path, body, want)
		var ue *unavailableError
		if errors.As(err, &ue) { // no server could open a session
			return nil, &unavailableError{op: op, errs: append(errs, ue.errs...)}
		}
		if !unreachable(ctx, err) {
			return out, err
		}
		failed[i] = true
		errs = append(errs, err)
	}
	return nil, &unavailableError{op: op, errs: errs}
}

// doOn sends a request to server i, opening a session on the first of
// sessionOn that answers when one is needed, and renewing it once if the
// server says the token is no longer good.
func (c *Client) doOn(ctx context.Context, i int, sessionOn []int, method, path string, body []byte, want int) ([]byte, error) {
	if err := c.verifyServer(ctx, i); err != nil {
		return nil, err
	}
	for attempt := 0; ; attempt++ {
		req, err := http.NewRequestWithContext(ctx, method, c.servers[i].url+path, bytes.NewReader(body))
		if err != nil {
			return nil, err
		}
		if err := c.authorize(ctx, req, body, sessionOn); err != nil {
			return nil, err
		}
		out, err := c.send(i, req, want)
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

func (c *Client) authorize(ctx context.Context, req *http.Request, body []byte, sessionOn []int) error {
	if c.Signed {
		return auth.SignRequest(c.key, req, body, time.Now())
	}
	token, err := c.session(ctx, sessionOn)
	if err != nil {
		return err
	}
	req.Header.Set("Authorization", "KTS-Session "+token)
	return nil
}

// verifyServer checks, the first time the client talks to server i, that it
// presents the OpenPGP identity pinned at registration.
func (c *Client) verifyServer(ctx context.Context, i int) error {
	s := c.servers[i]
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.verified || c.Config.ServerFingerprint == "" {
		return nil
	}
	id, err := fetchFingerprint(ctx, c.httpClient(i), s.url)
	if err != nil {
		return err
	}
	if id != c.Config.ServerFingerprint {
		return fmt.Errorf("server %s presents OpenPGP identity %s, not %s pinned at registration; refusing to send anything to it (if the server's key was replaced on purpose, register again)",
			s.url, id, c.Config.ServerFingerprint)
	}
	s.verified = true
	return nil
}

// session returns a valid token, opening a session when needed on the first
// server of order that answers. The pair shares the token key, so the token
// is good on every server.
func (c *Client) session(ctx context.Context, order []int) (string, error) {
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.token != "" && time.Until(c.expires) > 30*time.Second {
		return c.token, nil
	}
	var errs []error
	for _, i := range order {
		err := c.openSession(ctx, i)
		if err == nil {
			return c.token, nil
		}
		if !unreachable(ctx, err) {
			return "", err
		}
		errs = append(errs, err)
	}
	return "", &unavailableError{op: "open a session", errs: errs}
}

// openSession opens a session on server i; c.mu is held.
func (c *Client) openSession(ctx context.Context, i int) error {
	if err := c.verifyServer(ctx, i); err != nil {
		return err
	}
	req, err := http.NewRequestWithContext(ctx, http.MethodPost, c.servers[i].url+"/v1/session", nil)
	if err != nil {
		return err
	}
	if err := auth.SignRequest(c.key, req, nil, time.Now()); err != nil {
		return err
	}
	body, err := c.send(i, req, http.StatusCreated)
	if err != nil {
		return err
	}
	var s clientv1.Session
	if err := json.Unmarshal(body, &s); err != nil || s.Token == "" {
		return fmt.Errorf("server %s returned no session token", c.servers[i].url)
	}
	c.token, c.expires = s.Token, s.ExpiresAt
	return nil
}

// send sends req to server i and reads the answer; any status but want is
// an *APIError.
func (c *Client) send(i int, req *http.Request, want int) ([]byte, error) {
	base := c.servers[i].url
	resp, err := c.httpClient(i).Do(req)
	if err != nil {
		return nil, transportError(base, err)
	}
	defer resp.Body.Close()
	body, err := io.ReadAll(io.LimitReader(resp.Body, 64<<20))
	if err != nil {
		return nil, transportError(base, err)
	}
	if resp.StatusCode != want {
		ae := &APIError{Server: base, Status: resp.StatusCode}
		var eb wire.ErrorBody
		if json.Unmarshal(body, &eb) != nil || eb.Error == "" {
			ae.Code, ae.Message = http.StatusText(resp.StatusCode), strings.TrimSpace(string(body))
		} else {
			ae.Code, ae.Message = eb.Error, eb.Message
		}
		return nil, ae
	}
	return body, nil
}
