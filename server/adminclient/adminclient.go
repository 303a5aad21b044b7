// Package adminclient is the typed Go client of a Trustee server's admin
// API (docs/API.md#admin-api): HTTPS with an admin client certificate
// (mutual TLS). The Kubernetes operator manages organizations with it.
//
// Auth codes are sent in request bodies only: they never appear in errors,
// in String output or in URLs.
package adminclient

import (
	"bytes"
	"context"
	"crypto/tls"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"strings"
	"time"

	"trustee.dev/trustee/server/wire"
	"trustee.dev/trustee/server/wire/adminv1"
)

// DefaultTimeout bounds a request when its context has no deadline.
const DefaultTimeout = 30 * time.Second

// maxAnswerBytes bounds how much of an answer is read.
const maxAnswerBytes = 1 << 20

// Client talks to one server's admin API.
type Client struct {
	base *url.URL
	hc   *http.Client
	err  error // a bad base URL given to NewWithHTTPClient
}

// parseBase checks the base URL of an admin API.
func parseBase(baseURL string) (*url.URL, error) {
	u, err := url.Parse(baseURL)
	if err != nil || u.Scheme != "https" || u.Host == "" || u.RawQuery != "" || u.Fragment != "" || u.User != nil {
		return nil, fmt.Errorf("adminclient: %q is not the https:// URL of an admin API, e.g. \"https://kts01.example.com:11373\"", baseURL)
	}
	u.Path = strings.TrimRight(u.Path, "/")
	u.RawPath = ""
	return u, nil
}

// noRedirect refuses redirects: one would carry an auth code elsewhere.
func noRedirect(*http.Request, []*http.Request) error { return http.ErrUseLastResponse }

// New returns a client of the admin API at baseURL (e.g.
// "https://kts-active-0.kts-members.ns.svc:11373"). tlsConfig must hold
// the admin client certificate (Certificates or GetClientCertificate) and
// the CA that verifies the server (RootCAs); it is cloned, and TLS 1.2 is
// the least accepted.
func New(baseURL string, tlsConfig *tls.Config) (*Client, error) {
	u, err := parseBase(baseURL)
	if err != nil {
		return nil, err
	}
	if tlsConfig == nil {
		return nil, errors.New("adminclient: a TLS configuration with the admin client certificate is required")
	}
	if len(tlsConfig.Certificates) == 0 && tlsConfig.GetClientCertificate == nil {
		return nil, errors.New("adminclient: the TLS configuration holds no client certificate; the admin API admits only admin certificates")
	}
	cfg := tlsConfig.Clone()
	if cfg.MinVersion < tls.VersionTLS12 {
		cfg.MinVersion = tls.VersionTLS12
	}
	tr := &http.Transport{
		Proxy:                 http.ProxyFromEnvironment,
		TLSClientConfig:       cfg,
		TLSHandshakeTimeout:   10 * time.Second,
		ResponseHeaderTimeout: DefaultTimeout,
		IdleConnTimeout:       90 * time.Second,
		MaxIdleConnsPerHost:   4,
	}
	return &Client{base: u, hc: &http.Client{Transport: tr, CheckRedirect: noRedirect}}, nil
}

// NewWithHTTPClient is New with an HTTP client of the caller's, whose
// transport holds the TLS settings (the admin client certificate, the CA
// that verifies the server). hc is copied; redirects are never followed.
// When baseURL is not an https:// URL, every call fails saying so.
func NewWithHTTPClient(baseURL string, hc *http.Client) *Client {
	if hc == nil {
		hc = http.DefaultClient
	}
	own := *hc
	own.CheckRedirect = noRedirect
	u, err := parseBase(baseURL)
	if err != nil {
		return &Client{base: &url.URL{}, hc: &own, err: err}
	}
	return &Client{base: u, hc: &own}
}

// String names the server the client talks to.
func (c *Client) String() string { return "adminclient.Client(" + c.base.String() + ")" }

// CloseIdleConnections closes connections kept for reuse.
func (c *Client) CloseIdleConnections() { c.hc.CloseIdleConnections() }

// Organization is an organization on the server (adminv1.Organization).
type Organization = adminv1.Organization

// ClientCounts counts an organization's clients by state.
type ClientCounts = adminv1.ClientCounts

// Client states SetClientState sets.
const (
	ClientActive   = adminv1.StateActive   // the client may use deposits
	ClientDisabled = adminv1.StateDisabled // the client is refused (403)
)

// Organization returns the organization name; IsNotFound(err) when there is
// none.
func (c *Client) Organization(ctx context.Context, name string) (*Organization, error) {
	var o Organization
	if err := c.do(ctx, http.MethodGet, orgPath(name), nil, http.StatusOK, &o); err != nil {
		return nil, err
	}
	return &o, nil
}

// ApplyOrganization creates the organization name with contacts, or sets an
// existing one's contacts to exactly contacts, and returns it. A new
// organization gets a random auth code that nobody is shown (set one with
// SetAuthCode); an expired (retired) one is taken back into use. Contacts
// new to the organization are mailed a key registration link.
func (c *Client) ApplyOrganization(ctx context.Context, name string, contacts []string) (*Organization, error) {
	if contacts == nil {
		contacts = []string{}
	}
	var o Organization
	if err := c.do(ctx, http.MethodPut, orgPath(name), adminv1.OrganizationRequest{Contacts: contacts}, http.StatusOK, &o); err != nil {
		return nil, err
	}
	return &o, nil
}

// SetAuthCode sets the code clients of organization name register with;
// "" means none is needed (every client that registers is active at once).
// The server keeps only a hash of it.
func (c *Client) SetAuthCode(ctx context.Context, name, code string) error {
	return c.do(ctx, http.MethodPut, orgPath(name)+"/auth-code", adminv1.AuthCodeRequest{AuthCode: &code}, http.StatusNoContent, nil)
}

// SetClientState enables (ClientActive) or disables (ClientDisabled) the
// client with the given OpenPGP fingerprint (40 hex digits) of
// organization org; IsNotFound(err) when the organization has no such
// client.
func (c *Client) SetClientState(ctx context.Context, org, fingerprint, state string) error {
	return c.do(ctx, http.MethodPut, orgPath(org)+"/clients/"+url.PathEscape(fingerprint), adminv1.ClientStateRequest{State: &state}, http.StatusNoContent, nil)
}

// Retire makes organization name expire now, unless it already has: its
// clients are refused from then on (organization_expired) and can no
// longer register. Its clients and deposits are kept; ApplyOrganization
// takes it back into use.
func (c *Client) Retire(ctx context.Context, name string) error {
	return c.do(ctx, http.MethodPost, orgPath(name)+"/retire", nil, http.StatusNoContent, nil)
}

func orgPath(name string) string { return "/admin/v1/organizations/" + url.PathEscape(name) }

// do sends a request with body (JSON; nil for none) and decodes an answer
// of status want into out (nil: none expected).
func (c *Client) do(ctx context.Context, method, path string, body any, want int, out any) error {
	if c.err != nil {
		return c.err
	}
	if _, ok := ctx.Deadline(); !ok {
		var cancel context.CancelFunc
		ctx, cancel = context.WithTimeout(ctx, DefaultTimeout)
		defer cancel()
	}
	target := c.base.String() + path // path is escaped already
	var payload []byte
	if body != nil {
		var err error
		if payload, err = json.Marshal(body); err != nil {
			return fmt.Errorf("adminclient: %s %s: encode the request: %w", method, path, err)
		}
		defer clear(payload)
	}
	req, err := http.NewRequestWithContext(ctx, method, target, bytes.NewReader(payload))
	if err != nil {
		return fmt.Errorf("adminclient: %s %s: %w", method, path, err)
	}
	req.Header.Set("Accept", "application/json")
	if body != nil {
		req.Header.Set("Content-Type", "application/json")
	}
	resp, err := c.hc.Do(req)
	if err != nil {
		// The error names the method and URL only; the body is not in it.
		return &Error{Method: method, Path: path, Err: err}
	}
	defer resp.Body.Close()
	data, err := io.ReadAll(io.LimitReader(resp.Body, maxAnswerBytes))
	if err != nil {
		return &Error{Method: method, Path: path, Status: resp.StatusCode, Err: err}
	}
	if resp.StatusCode != want {
		e := &Error{Method: method, Path: path, Status: resp.StatusCode}
		var eb wire.ErrorBody
		if json.Unmarshal(data, &eb) == nil && eb.Error != "" {
			e.Code, e.Message = eb.Error, eb.Message
		} else {
			e.Message = fmt.Sprintf("unexpected answer (%s)", resp.Header.Get("Content-Type"))
		}
		return e
	}
	if out != nil {
		if err := json.Unmarshal(data, out); err != nil {
			return &Error{Method: method, Path: path, Status: resp.StatusCode, Err: fmt.Errorf("decode the answer: %w", err)}
		}
	}
	return nil
}

// Error is a request that failed: the server's answer (Status, and the
// stable Code and Message of its error body), or Err when no answer came.
type Error struct {
	Method, Path string
	Status       int    // 0 when no answer came
	Code         string // e.g. "not_found", "invalid_input", "read_only"
	Message      string
	Err          error
}

func (e *Error) Error() string {
	where := "adminclient: " + e.Method + " " + e.Path
	switch {
	case e.Err != nil && e.Status != 0:
		return fmt.Sprintf("%s: %d: %v", where, e.Status, e.Err)
	case e.Err != nil:
		return where + ": " + e.Err.Error()
	case e.Code != "":
		return fmt.Sprintf("%s: %d %s: %s", where, e.Status, e.Code, e.Message)
	}
	return fmt.Sprintf("%s: %d: %s", where, e.Status, e.Message)
}

func (e *Error) Unwrap() error { return e.Err }

func asError(err error) (*Error, bool) {
	var e *Error
	ok := errors.As(err, &e)
	return e, ok
}

// IsNotFound reports an organization, or a client of it, that does not
// exist.
func IsNotFound(err error) bool {
	e, ok := asError(err)
	return ok && e.Status == http.StatusNotFound && e.Code == "not_found"
}

// IsInvalid reports a request the server refused as bad input (400): a bad
// name, contact, auth code, fingerprint or state. Sending it again fails
// again.
func IsInvalid(err error) bool {
	e, ok := asError(err)
	return ok && e.Status == http.StatusBadRequest
}

// IsReadOnly reports a change sent to the passive of a pair: send it to the
// active.
func IsReadOnly(err error) bool {
	e, ok := asError(err)
	return ok && e.Code == "read_only"
}

// IsUnavailable reports a failure that may pass: no answer came, or the
// server could not make the change now (503: passive away, database
// unavailable, a timeout, a passive) or failed (5xx). For a change, the
// outcome may be unknown: read it back before retrying.
func IsUnavailable(err error) bool {
	e, ok := asError(err)
	return ok && (e.Status == 0 || e.Status >= 500)
}
