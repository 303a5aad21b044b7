package adminclient

import (
	"context"
	"crypto/tls"
	"crypto/x509"
	"errors"
	"fmt"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"trustee.dev/trustee/server/adminapi"
	"trustee.dev/trustee/server/adminapi/admintest"
	"trustee.dev/trustee/server/daemon"
	"trustee.dev/trustee/server/org"
	"trustee.dev/trustee/server/pg/pgtest"
	"trustee.dev/trustee/server/store"
)

func TestMain(m *testing.M) { pgtest.Main(m) }

const (
	fprA = "AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA"
	fprB = "BBBBBBBBBBBBBBBBBBBBBBBBBBBBBBBBBBBBBBBB"
)

// server is an admin API behind mutual TLS, as the daemon serves it.
type server struct {
	url    string
	db     *store.Store
	client *Client
}

func newServer(t *testing.T, o adminapi.Options) *server {
	t.Helper()
	ca := admintest.NewCA(t, "admin CA")
	base, roots := admintest.ServerTLS(t)
	tlsCfg, err := daemon.AdminTLSConfig(base, ca.CertFile(t), nil)
	if err != nil {
		t.Fatal(err)
	}
	if o.Store == nil {
		o.Store = admintest.Store(t)
	}
	o.Log = slog.New(slog.DiscardHandler)
	url := admintest.Serve(t, adminapi.New(o), tlsCfg)
	c, err := New(url, &tls.Config{RootCAs: roots, Certificates: []tls.Certificate{ca.Client(t, "trustee-operator")}})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(c.CloseIdleConnections)
	return &server{url: url, db: o.Store, client: c}
}

func TestRoundTrip(t *testing.T) {
	s := newServer(t, adminapi.Options{})
	c, ctx := s.client, context.Background()

	if _, err := c.Organization(ctx, "acme"); !IsNotFound(err) {
		t.Fatalf("absent organization: %v", err)
	}

	// ApplyOrganization creates, then sets the contacts.
	o, err := c.ApplyOrganization(ctx, "acme", []string{"finn@example.com", "jake@example.com"})
	if err != nil {
		t.Fatal(err)
	}
	if o.Name != "acme" || len(o.UUID) != 43 || fmt.Sprint(o.Contacts) != "[finn@example.com jake@example.com]" || o.Expires != nil {
		t.Errorf("created %+v", o)
	}
	if o, err = c.ApplyOrganization(ctx, "acme", []string{"marceline@example.com"}); err != nil || fmt.Sprint(o.Contacts) != "[marceline@example.com]" {
		t.Errorf("updated %+v, %v", o, err)
	}

	// SetAuthCode: stored as a hash that checks the code; "" for none.
	const code = "Corr3ct-Horse-Battery"
	if err := c.SetAuthCode(ctx, "acme", code); err != nil {
		t.Fatal(err)
	}
	stored, err := s.db.Organization(ctx, "acme")
	if err != nil || !org.CodeMatches(stored.AuthHash, code) || stored.AuthHash == "" {
		t.Errorf("auth code not set: %q, %v", stored.AuthHash, err)
	}
	if err := c.SetAuthCode(ctx, "acme", ""); err != nil {
		t.Fatal(err)
	}
	if stored, _ := s.db.Organization(ctx, "acme"); stored.AuthHash != "" {
		t.Errorf("blank code stored as %q", stored.AuthHash)
	}

	// SetClientState and the counts Organization reports.
	for _, fpr := range []string{fprA, fprB} {
		if err := s.db.RegisterClient(ctx, store.Client{Fingerprint: fpr, OrgName: "acme", KeyID: "255E/" + fpr, PublicKey: []byte("k"), State: store.StatePending}); err != nil {
			t.Fatal(err)
		}
	}
	if err := c.SetClientState(ctx, "acme", fprA, ClientActive); err != nil {
		t.Fatal(err)
	}
	if err := c.SetClientState(ctx, "acme", fprB, ClientDisabled); err != nil {
		t.Fatal(err)
	}
	if o, err = c.Organization(ctx, "acme"); err != nil || o.Clients != (ClientCounts{Active: 1, Disabled: 1}) {
		t.Errorf("after enable and disable: %+v, %v", o, err)
	}

	// Retire, and take back into use.
	if err := c.Retire(ctx, "acme"); err != nil {
		t.Fatal(err)
	}
	if o, err = c.Organization(ctx, "acme"); err != nil || o.Expires == nil || !o.Expired(time.Now()) {
		t.Errorf("retired: %+v, %v", o, err)
	}
	if o, err = c.ApplyOrganization(ctx, "acme", []string{"marceline@example.com"}); err != nil || o.Expires != nil || o.Expired(time.Now()) || o.Clients.Active != 1 {
		t.Errorf("re-created: %+v, %v", o, err)
	}
}

func TestErrors(t *testing.T) {
	s := newServer(t, adminapi.Options{})
	c, ctx := s.client, context.Background()
	if _, err := c.ApplyOrganization(ctx, "acme", []string{"finn@example.com"}); err != nil {
		t.Fatal(err)
	}
	const secret = "Tr0ub4dor-and-3"
	for _, tt := range []struct {
		name     string
		err      error
		notFound bool
		code     string
	}{
		{"absent organization", func() error { _, err := c.Organization(ctx, "nobody"); return err }(), true, "not_found"},
		{"auth code of an absent organization", c.SetAuthCode(ctx, "nobody", secret), true, "not_found"},
		{"refused auth code", c.SetAuthCode(ctx, "acme", secret+"\x07"), false, "invalid_input"},
		{"unknown client", c.SetClientState(ctx, "acme", fprA, ClientActive), true, "not_found"},
		{"bad state", c.SetClientState(ctx, "acme", fprA, "pending"), false, "invalid_state"},
		{"bad fingerprint", c.SetClientState(ctx, "acme", "ABC", ClientActive), false, "invalid_fingerprint"},
		{"bad name", c.Retire(ctx, "a/b"), false, "invalid_name"},
		{"no contacts", func() error { _, err := c.ApplyOrganization(ctx, "acme", nil); return err }(), false, "invalid_input"},
		{"retire absent", c.Retire(ctx, "nobody"), true, "not_found"},
	} {
		var e *Error
		if !errors.As(tt.err, &e) || e.Code != tt.code || IsNotFound(tt.err) != tt.notFound || IsInvalid(tt.err) == tt.notFound || IsUnavailable(tt.err) {
			t.Errorf("%s: %#v", tt.name, tt.err)
		}
		if msg := fmt.Sprintf("%v %+v %#v", tt.err, tt.err, tt.err); strings.Contains(msg, secret) {
			t.Errorf("%s: the error shows the auth code: %s", tt.name, msg)
		}
	}

	// A passive refuses changes; reads work.
	p := newServer(t, adminapi.Options{Store: s.db, ReadOnly: true})
	err := p.client.SetAuthCode(ctx, "acme", secret)
	if !IsReadOnly(err) || !IsUnavailable(err) || strings.Contains(err.Error(), secret) {
		t.Errorf("change on a passive: %v", err)
	}
	if _, err := p.client.Organization(ctx, "acme"); err != nil {
		t.Errorf("read on a passive: %v", err)
	}

	// No answer at all.
	gone, err := New("https://127.0.0.1:1", &tls.Config{Certificates: []tls.Certificate{{}}})
	if err != nil {
		t.Fatal(err)
	}
	err = gone.SetAuthCode(ctx, "acme", secret)
	if !IsUnavailable(err) || IsNotFound(err) || strings.Contains(err.Error(), secret) {
		t.Errorf("no server: %v", err)
	}
}

// TestWithHTTPClient runs requests through an HTTP client of the caller's.
func TestWithHTTPClient(t *testing.T) {
	s := newServer(t, adminapi.Options{})
	hc := &http.Client{Transport: s.client.hc.Transport, Timeout: 10 * time.Second}
	c := NewWithHTTPClient(s.url+"/", hc)
	if o, err := c.ApplyOrganization(context.Background(), "acme", []string{"finn@example.com"}); err != nil || o.Name != "acme" {
		t.Errorf("ApplyOrganization: %+v, %v", o, err)
	}
	if hc.CheckRedirect != nil {
		t.Error("NewWithHTTPClient changed the caller's client")
	}
	bad := NewWithHTTPClient("http://kts01.example.com:11373", hc)
	if err := bad.Retire(context.Background(), "acme"); err == nil || !strings.Contains(err.Error(), "https://") {
		t.Errorf("a plain-HTTP base URL: %v", err)
	}
}

func TestNoRedirect(t *testing.T) {
	var hits atomic.Int32
	elsewhere := httptest.NewTLSServer(http.HandlerFunc(func(http.ResponseWriter, *http.Request) { hits.Add(1) }))
	defer elsewhere.Close()
	redirect := httptest.NewTLSServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		http.Redirect(w, r, elsewhere.URL+r.URL.Path, http.StatusTemporaryRedirect)
	}))
	defer redirect.Close()
	roots := x509.NewCertPool()
	roots.AddCert(redirect.Certificate())
	c, err := New(redirect.URL, &tls.Config{RootCAs: roots, Certificates: []tls.Certificate{{}}})
	if err != nil {
		t.Fatal(err)
	}
	if err := c.SetAuthCode(context.Background(), "acme", "secret"); err == nil || hits.Load() != 0 {
		t.Errorf("redirect: %v, %d requests elsewhere", err, hits.Load())
	}
	withHTTP := NewWithHTTPClient(redirect.URL, &http.Client{Transport: &http.Transport{TLSClientConfig: &tls.Config{RootCAs: roots}}})
	if err := withHTTP.SetAuthCode(context.Background(), "acme", "secret"); err == nil || hits.Load() != 0 {
		t.Errorf("redirect with the caller's client: %v, %d requests elsewhere", err, hits.Load())
	}
}

func TestNew(t *testing.T) {
	cert := &tls.Config{Certificates: []tls.Certificate{{}}}
	for _, tt := range []struct {
		url string
		cfg *tls.Config
		ok  bool
	}{
		{"https://kts01.example.com:11373", cert, true},
		{"https://kts01.example.com:11373/", cert, true},
		{"http://kts01.example.com:11373", cert, false},
		{"kts01.example.com:11373", cert, false},
		{"https://user:pw@kts01.example.com:11373", cert, false},
		{"https://kts01.example.com:11373", nil, false},
		{"https://kts01.example.com:11373", &tls.Config{}, false},
	} {
		c, err := New(tt.url, tt.cfg)
		if (err == nil) != tt.ok {
			t.Errorf("New(%q, %v): %v", tt.url, tt.cfg, err)
		}
		if err == nil && c.String() != "adminclient.Client("+strings.TrimSuffix(tt.url, "/")+")" {
			t.Errorf("String() = %q", c.String())
		}
	}
}
