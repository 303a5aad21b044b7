package client

import (
	"context"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/tls"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/json"
	"encoding/pem"
	"errors"
	"fmt"
	"io"
	"log"
	"math/big"
	"net"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"trustee.dev/trustee/server/openpgp"
)

const (
	pinnedID  = "4096R/4EDC46882386C827E20DEEA2D850ACA33BEDB0D1"
	otherID   = "4096R/0000000000000000000000000000000000000000"
	testToken = "session-token"
	clientFPR = "0123456789ABCDEF0123456789ABCDEF01234567"
)

// fake acts like a Trustee server's HTTP API just enough for the client: its
// identity, sessions, deposits and registration. Deposit reads answer
// "<name> from <server name>".
type fake struct {
	*httptest.Server
	name, id string
	status   atomic.Int32 // when set, every request but the fingerprint gets it

	mu    sync.Mutex
	hits  map[string]int // "METHOD /path" of every request but the fingerprint
	idHit int            // fingerprint requests
}

// newFake starts a fake server; cert nil uses httptest's certificate, l nil
// a new listener.
func newFake(t *testing.T, name, id string, cert *tls.Certificate, l net.Listener) *fake {
	t.Helper()
	f := &fake{name: name, id: id, hits: map[string]int{}}
	mux := http.NewServeMux()
	mux.HandleFunc("POST /v1/session", func(w http.ResponseWriter, r *http.Request) {
		w.WriteHeader(http.StatusCreated)
		fmt.Fprintf(w, `{"token":%q,"expires_at":%q}`, testToken, time.Now().Add(5*time.Minute).Format(time.RFC3339))
	})
	mux.HandleFunc("GET /v1/deposits/{name}", func(w http.ResponseWriter, r *http.Request) {
		fmt.Fprintf(w, "%s from %s", r.PathValue("name"), f.name)
	})
	mux.HandleFunc("PUT /v1/deposits/{name}", func(w http.ResponseWriter, r *http.Request) {
		w.WriteHeader(http.StatusCreated)
		fmt.Fprintf(w, `{"name":%q}`, r.PathValue("name"))
	})
	mux.HandleFunc("DELETE /v1/deposits/{name}", func(w http.ResponseWriter, r *http.Request) {
		w.WriteHeader(http.StatusNoContent)
	})
	mux.HandleFunc("GET /v1/deposits", func(w http.ResponseWriter, r *http.Request) {
		fmt.Fprintf(w, `{"deposits":[{"name":%q,"size":1}]}`, f.name)
	})
	mux.HandleFunc("POST /v1/register", func(w http.ResponseWriter, r *http.Request) {
		w.WriteHeader(http.StatusCreated)
		fmt.Fprintf(w, `{"fingerprint":%q,"org":"o","state":"active","server_fingerprint":%q}`, clientFPR, f.id)
	})
	handler := http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		f.mu.Lock()
		if r.URL.Path == "/" && r.URL.Query().Get("a") == "fingerprint" {
			f.idHit++
			f.mu.Unlock()
			io.WriteString(w, f.id)
			return
		}
		f.hits[r.Method+" "+r.URL.Path]++
		f.mu.Unlock()
		if s := int(f.status.Load()); s != 0 {
			http.Error(w, `{"error":"unavailable","message":"try later"}`, s)
			return
		}
		auth := r.Header.Get("Authorization")
		if r.URL.Path != "/v1/session" && r.URL.Path != "/v1/register" &&
			auth != "KTS-Session "+testToken && !strings.HasPrefix(auth, "KTS-PGP ") {
			http.Error(w, `{"error":"bad_token","message":"no"}`, http.StatusUnauthorized)
			return
		}
		mux.ServeHTTP(w, r)
	})
	f.Server = httptest.NewUnstartedServer(handler)
	f.Config.ErrorLog = log.New(io.Discard, "", 0) // handshakes the client refuses on purpose
	if l != nil {
		f.Listener.Close()
		f.Listener = l
	}
	if cert != nil {
		f.TLS = &tls.Config{Certificates: []tls.Certificate{*cert}}
	}
	f.StartTLS()
	t.Cleanup(f.Close)
	return f
}

// count is how many requests "METHOD /path" the server got.
func (f *fake) count(req string) int {
	f.mu.Lock()
	defer f.mu.Unlock()
	return f.hits[req]
}

// contacted is how many requests of any kind the server got.
func (f *fake) contacted() int {
	f.mu.Lock()
	defer f.mu.Unlock()
	n := f.idHit
	for _, c := range f.hits {
		n += c
	}
	return n
}

// otherCert makes a self-signed certificate for 127.0.0.1 with a key of its own.
func otherCert(t *testing.T) *tls.Certificate {
	t.Helper()
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	tmpl := &x509.Certificate{
		SerialNumber: big.NewInt(1),
		Subject:      pkix.Name{CommonName: "other"},
		NotBefore:    time.Now().Add(-time.Hour),
		NotAfter:     time.Now().Add(time.Hour),
		IPAddresses:  []net.IP{net.IPv4(127, 0, 0, 1)},
	}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, tmpl, &key.PublicKey, key)
	if err != nil {
		t.Fatal(err)
	}
	return &tls.Certificate{Certificate: [][]byte{der}, PrivateKey: key}
}

func testKey(t *testing.T) *openpgp.PrivateKey {
	t.Helper()
	key, err := openpgp.Generate(openpgp.Ed25519, "t", "")
	if err != nil {
		t.Fatal(err)
	}
	return key
}

// pairClient makes a client of the servers, the first active, each pinned
// to the certificate key it presents now.
func pairClient(t *testing.T, servers ...*fake) *Client {
	t.Helper()
	cfg := Config{ServerFingerprint: pinnedID, PinnedSPKISHA256: Pins{}}
	for _, s := range servers {
		cfg.Servers = append(cfg.Servers, s.URL)
		cfg.PinnedSPKISHA256[s.URL] = SPKIHash(s.Certificate())
	}
	c, err := New(cfg, testKey(t))
	if err != nil {
		t.Fatal(err)
	}
	return c
}

func get(t *testing.T, c *Client, name string) string {
	t.Helper()
	b, err := c.Get(context.Background(), name)
	if err != nil {
		t.Fatalf("Get %s: %v", name, err)
	}
	return string(b)
}

func TestReadsAlternate(t *testing.T) {
	a, b := newFake(t, "a", pinnedID, nil, nil), newFake(t, "b", pinnedID, nil, nil)
	c := pairClient(t, a, b)
	var got []string
	for range 4 {
		got = append(got, get(t, c, "k"))
	}
	if want := "k from a,k from b,k from a,k from b"; strings.Join(got, ",") != want {
		t.Fatalf("reads went to %q, want %q", got, want)
	}
	ds, err := c.List(context.Background())
	if err != nil || len(ds) != 1 || ds[0].Name != "a" {
		t.Fatalf("List after four reads = %v, %v; want it from a", ds, err)
	}
	// One token, opened on the active, is good on both.
	if n := a.count("POST /v1/session") + b.count("POST /v1/session"); n != 1 || a.count("POST /v1/session") != 1 {
		t.Fatalf("sessions opened: a %d, b %d; want one on a", a.count("POST /v1/session"), b.count("POST /v1/session"))
	}
}

func TestReadRetriesOnTheOtherServer(t *testing.T) {
	for _, tc := range []struct {
		name string
		down func(a, b *fake)
		from string
	}{
		{"passive closed", func(a, b *fake) { b.Close() }, "a"},
		{"active closed", func(a, b *fake) { a.Close() }, "b"},
		{"passive answers 503", func(a, b *fake) { b.status.Store(http.StatusServiceUnavailable) }, "a"},
		{"active answers 502", func(a, b *fake) { a.status.Store(http.StatusBadGateway) }, "b"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			a, b := newFake(t, "a", pinnedID, nil, nil), newFake(t, "b", pinnedID, nil, nil)
			c := pairClient(t, a, b)
			tc.down(a, b)
			for range 3 {
				if got := get(t, c, "k"); got != "k from "+tc.from {
					t.Fatalf("read answered %q, want it from %s", got, tc.from)
				}
			}
			if _, err := c.List(context.Background()); err != nil {
				t.Fatalf("List: %v", err)
			}
		})
	}
}

func TestReadFailsNamingEveryServer(t *testing.T) {
	a, b := newFake(t, "a", pinnedID, nil, nil), newFake(t, "b", pinnedID, nil, nil)
	c := pairClient(t, a, b)
	get(t, c, "k") // opens the session
	a.Close()
	b.status.Store(http.StatusServiceUnavailable)
	_, err := c.Get(context.Background(), "k")
	if err == nil || !strings.Contains(err.Error(), a.URL) || !strings.Contains(err.Error(), b.URL) || !strings.Contains(err.Error(), "503") {
		t.Fatalf("read with no server up: %v; want an error naming both", err)
	}
	// Without a session yet, the session attempts name both too.
	c = pairClient(t, a, b)
	if _, err := c.Get(context.Background(), "k"); err == nil || !strings.Contains(err.Error(), a.URL) || !strings.Contains(err.Error(), b.URL) {
		t.Fatalf("read with no server up and no session: %v; want an error naming both", err)
	}
}

func TestWritesGoToTheActiveOnly(t *testing.T) {
	a, b := newFake(t, "a", pinnedID, nil, nil), newFake(t, "b", pinnedID, nil, nil)
	c := pairClient(t, a, b)
	ctx := context.Background()
	for i := range 3 {
		name := fmt.Sprint("k", i)
		if err := c.Put(ctx, name, []byte("x")); err != nil {
			t.Fatalf("Put: %v", err)
		}
		if err := c.Delete(ctx, name); err != nil {
			t.Fatalf("Delete: %v", err)
		}
	}
	if a.count("PUT /v1/deposits/k2") != 1 || a.count("DELETE /v1/deposits/k2") != 1 || b.contacted() != 0 {
		t.Fatalf("writes reached a %v and b %d times; want all on a", a.hits, b.contacted())
	}
}

func TestWriteFailsWhenTheActiveIsDown(t *testing.T) {
	a, b := newFake(t, "a", pinnedID, nil, nil), newFake(t, "b", pinnedID, nil, nil)
	c := pairClient(t, a, b)
	ctx := context.Background()

	a.status.Store(http.StatusServiceUnavailable)
	err := c.Put(ctx, "k", []byte("x"))
	var ae *APIError
	if !errors.As(err, &ae) || ae.Status != http.StatusServiceUnavailable || ae.Server != a.URL || !strings.Contains(err.Error(), "active server "+a.URL) {
		t.Fatalf("Put on an active answering 503: %v", err)
	}

	a.Close()
	for _, write := range []func() error{
		func() error { return c.Put(ctx, "k", []byte("x")) },
		func() error { return c.Delete(ctx, "k") },
	} {
		err := write()
		if err == nil || !strings.Contains(err.Error(), "active server "+a.URL) {
			t.Fatalf("write with the active down: %v; want an error naming it", err)
		}
	}
	if b.contacted() != 0 {
		t.Fatalf("a write reached the passive (%d requests)", b.contacted())
	}
}

func TestClientRefusesAnotherServerIdentity(t *testing.T) {
	a, b := newFake(t, "a", pinnedID, nil, nil), newFake(t, "b", otherID, nil, nil)
	c := pairClient(t, a, b)
	get(t, c, "k") // from a
	_, err := c.Get(context.Background(), "k")
	if err == nil || !strings.Contains(err.Error(), "pinned at registration") || !strings.Contains(err.Error(), b.URL) {
		t.Fatalf("Get from a server with another identity: %v", err)
	}
	if b.contacted() != 1 || a.count("GET /v1/deposits/k") != 1 {
		t.Fatalf("b got %v besides its fingerprint; a served %d reads; want nothing sent to b, no quiet retry on a", b.hits, a.count("GET /v1/deposits/k"))
	}

	// Alone, too.
	c = pairClient(t, b)
	c.Signed = true
	if _, err := c.Get(context.Background(), "k"); err == nil || !strings.Contains(err.Error(), "pinned at registration") || b.contacted() != 2 {
		t.Fatalf("Get from a single server with another identity: %v (requests %d)", err, b.contacted())
	}
}

func TestClientRefusesAnotherCertificateKey(t *testing.T) {
	a := newFake(t, "a", pinnedID, nil, nil)
	c := pairClient(t, a)
	c.Config.PinnedSPKISHA256[a.URL] = strings.Repeat("ab", 32)
	c, err := New(c.Config, c.key)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := c.Get(context.Background(), "k"); err == nil || !strings.Contains(err.Error(), "does not match the key pinned") || a.contacted() != 0 {
		t.Fatalf("Get with a wrong certificate pin: %v", err)
	}
}

func TestClientVerifiesCertificateWithoutPin(t *testing.T) {
	a := newFake(t, "a", pinnedID, nil, nil)
	c, err := New(Config{ServerURL: a.URL, ServerFingerprint: pinnedID}, testKey(t))
	if err != nil {
		t.Fatal(err)
	}
	if _, err := c.Get(context.Background(), "k"); err == nil || !strings.Contains(err.Error(), "certificate") {
		t.Fatalf("Get from an untrusted certificate without a pin: %v", err)
	}
}

func register(t *testing.T, dir string, skipSSLCheck bool, caFile string, servers ...*fake) (*Client, error) {
	t.Helper()
	var urls []string
	for _, s := range servers {
		urls = append(urls, s.URL)
	}
	c, _, err := Register(context.Background(), dir, RegisterOptions{
		ServerURL: strings.Join(urls, ","), Org: "o", SkipSSLCheck: skipSSLCheck, CAFile: caFile,
	})
	return c, err
}

func readConfig(t *testing.T, dir string) Config {
	t.Helper()
	data, err := os.ReadFile(filepath.Join(dir, ConfigFile))
	if err != nil {
		t.Fatal(err)
	}
	var cfg Config
	if err := json.Unmarshal(data, &cfg); err != nil {
		t.Fatal(err)
	}
	return cfg
}

func TestRegisterPairPinsEachServer(t *testing.T) {
	a, b := newFake(t, "a", pinnedID, nil, nil), newFake(t, "b", pinnedID, otherCert(t), nil)
	dir := filepath.Join(t.TempDir(), "c")
	if _, err := register(t, dir, true, "", a, b); err != nil {
		t.Fatalf("Register: %v", err)
	}
	cfg := readConfig(t, dir)
	wantPins := Pins{a.URL: SPKIHash(a.Certificate()), b.URL: SPKIHash(b.Certificate())}
	if strings.Join(cfg.Servers, ",") != a.URL+","+b.URL || cfg.ServerURL != a.URL || fmt.Sprint(cfg.PinnedSPKISHA256) != fmt.Sprint(wantPins) {
		t.Fatalf("saved %+v; want both servers, the active first, each with its own pin", cfg)
	}
	if a.count("POST /v1/register") != 1 || b.idHit != 1 || len(b.hits) != 0 {
		t.Fatalf("register reached a %v, b %v (fingerprint %d); want it on a, b asked its identity once", a.hits, b.hits, b.idHit)
	}

	c, err := Open(dir)
	if err != nil {
		t.Fatal(err)
	}
	if got := get(t, c, "k") + "," + get(t, c, "k"); got != "k from a,k from b" {
		t.Fatalf("reads answered %q", got)
	}

	// b is swapped for a server with another certificate key at its address.
	addr := b.Listener.Addr().String()
	b.Close()
	l, err := net.Listen("tcp", addr)
	if err != nil {
		t.Skipf("cannot listen on %s again: %v", addr, err)
	}
	b2 := newFake(t, "b2", pinnedID, otherCert(t), l)
	c, err = Open(dir)
	if err != nil {
		t.Fatal(err)
	}
	get(t, c, "k") // from a
	_, err = c.Get(context.Background(), "k")
	if err == nil || !strings.Contains(err.Error(), "does not match the key pinned") || !strings.Contains(err.Error(), b.URL) {
		t.Fatalf("Get from a swapped server: %v", err)
	}
	if b2.contacted() != 0 || a.count("GET /v1/deposits/k") != 2 {
		t.Fatalf("the swapped server got %d requests, a served %d reads; want nothing sent, no quiet retry", b2.contacted(), a.count("GET /v1/deposits/k"))
	}
}

func TestRegisterPairWithCAFile(t *testing.T) {
	a, b := newFake(t, "a", pinnedID, nil, nil), newFake(t, "b", pinnedID, nil, nil)
	caFile := filepath.Join(t.TempDir(), "ca.pem")
	pemCert := pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: a.Certificate().Raw})
	if err := os.WriteFile(caFile, pemCert, 0o600); err != nil {
		t.Fatal(err)
	}
	dir := filepath.Join(t.TempDir(), "c")
	c, err := register(t, dir, false, caFile, a, b)
	if err != nil {
		t.Fatalf("Register: %v", err)
	}
	if cfg := readConfig(t, dir); len(cfg.PinnedSPKISHA256) != 0 || len(cfg.Servers) != 2 {
		t.Fatalf("saved %+v; want two servers and no pins", cfg)
	}
	if got := get(t, c, "k") + "," + get(t, c, "k"); got != "k from a,k from b" {
		t.Fatalf("reads answered %q", got)
	}
}

func TestRegisterRefusesServersWithDifferentIdentities(t *testing.T) {
	a, b := newFake(t, "a", pinnedID, nil, nil), newFake(t, "b", otherID, nil, nil)
	dir := filepath.Join(t.TempDir(), "c")
	_, err := register(t, dir, true, "", a, b)
	if err == nil || !strings.Contains(err.Error(), b.URL) || !strings.Contains(err.Error(), "share one identity") {
		t.Fatalf("Register with servers of different identities: %v", err)
	}
	if len(a.hits) != 0 {
		t.Fatalf("the active got %v; want no registration", a.hits)
	}
	if _, err := os.Stat(filepath.Join(dir, ConfigFile)); !os.IsNotExist(err) {
		t.Fatalf("%s written after a refused registration", ConfigFile)
	}

	b.Close()
	if _, err := register(t, dir, true, "", a, b); err == nil || !strings.Contains(err.Error(), b.URL) || !strings.Contains(err.Error(), "every listed server") {
		t.Fatalf("Register with the passive down: %v", err)
	}
}

func TestRegisterRefusesBadServerLists(t *testing.T) {
	for _, list := range []string{"", " , ", "http://127.0.0.1:1", "https://a:1,https://a:1/"} {
		if _, _, err := Register(context.Background(), t.TempDir(), RegisterOptions{ServerURL: list}); err == nil {
			t.Errorf("Register with --server %q succeeded", list)
		}
	}
}

func TestOpenSingleServerState(t *testing.T) {
	a := newFake(t, "a", pinnedID, nil, nil)
	dir := t.TempDir()
	key := testKey(t)
	armored, err := key.Armor()
	if err != nil {
		t.Fatal(err)
	}
	old := fmt.Sprintf(`{
  "server_url": %q,
  "org": "o",
  "fingerprint": %q,
  "server_fingerprint": %q,
  "pinned_spki_sha256": %q,
  "state": "active"
}
`, a.URL+"/", clientFPR, pinnedID, SPKIHash(a.Certificate()))
	if err := os.WriteFile(filepath.Join(dir, ConfigFile), []byte(old), 0o600); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(dir, KeyFile), armored, 0o600); err != nil {
		t.Fatal(err)
	}
	c, err := Open(dir)
	if err != nil {
		t.Fatalf("Open a single-server state: %v", err)
	}
	if len(c.Config.Servers) != 1 || c.Config.Servers[0] != a.URL || c.Config.PinnedSPKISHA256[a.URL] != SPKIHash(a.Certificate()) {
		t.Fatalf("opened as %+v", c.Config)
	}
	if err := c.Put(context.Background(), "k", []byte("x")); err != nil {
		t.Fatalf("Put: %v", err)
	}
	if got := get(t, c, "k") + "," + get(t, c, "k"); got != "k from a,k from a" {
		t.Fatalf("reads answered %q", got)
	}
}
