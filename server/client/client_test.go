package client

import (
	"context"
	"io"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"

	"trustee.dev/trustee/server/openpgp"
)

// fingerprintServer answers /?a=fingerprint with id and counts the other
// requests it gets.
func fingerprintServer(t *testing.T, id string) (*httptest.Server, *int) {
	others := new(int)
	srv := httptest.NewTLSServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.URL.Query().Get("a") == "fingerprint" {
			io.WriteString(w, id)
			return
		}
		*others++
		http.Error(w, `{"error":"x","message":"y"}`, http.StatusTeapot)
	}))
	t.Cleanup(srv.Close)
	return srv, others
}

func testClient(t *testing.T, srv *httptest.Server, cfg Config, pin string) *Client {
	t.Helper()
	key, err := openpgp.Generate(openpgp.Ed25519, "t", "")
	if err != nil {
		t.Fatal(err)
	}
	tlsCfg, err := tlsConfig("", pin, nil)
	if err != nil {
		t.Fatal(err)
	}
	cfg.ServerURL = srv.URL
	c := New(cfg, key, tlsCfg)
	c.Signed = true
	return c
}

const pinnedID = "4096R/4EDC46882386C827E20DEEA2D850ACA33BEDB0D1"

func TestClientRefusesAnotherServerIdentity(t *testing.T) {
	srv, others := fingerprintServer(t, "4096R/0000000000000000000000000000000000000000")
	c := testClient(t, srv, Config{ServerFingerprint: pinnedID}, SPKIHash(srv.Certificate()))
	_, err := c.Get(context.Background(), "k")
	if err == nil || !strings.Contains(err.Error(), "pinned at registration") {
		t.Fatalf("Get from a server with another identity: %v", err)
	}
	if *others != 0 {
		t.Fatalf("the client sent %d requests to a server it should not trust", *others)
	}
}

func TestClientAcceptsPinnedServer(t *testing.T) {
	srv, others := fingerprintServer(t, pinnedID)
	c := testClient(t, srv, Config{ServerFingerprint: pinnedID}, SPKIHash(srv.Certificate()))
	_, err := c.Get(context.Background(), "k")
	if ae, ok := err.(*APIError); !ok || ae.Status != http.StatusTeapot || *others != 1 {
		t.Fatalf("Get from the pinned server: %v (requests %d)", err, *others)
	}
}

func TestClientRefusesAnotherCertificateKey(t *testing.T) {
	srv, others := fingerprintServer(t, pinnedID)
	c := testClient(t, srv, Config{ServerFingerprint: pinnedID}, strings.Repeat("ab", 32))
	_, err := c.Get(context.Background(), "k")
	if err == nil || !strings.Contains(err.Error(), "does not match the key pinned") || *others != 0 {
		t.Fatalf("Get with a wrong certificate pin: %v", err)
	}
}

func TestClientVerifiesCertificateWithoutPin(t *testing.T) {
	srv, _ := fingerprintServer(t, pinnedID)
	c := testClient(t, srv, Config{ServerFingerprint: pinnedID}, "")
	if _, err := c.Get(context.Background(), "k"); err == nil || !strings.Contains(err.Error(), "certificate") {
		t.Fatalf("Get from an untrusted certificate without a pin: %v", err)
	}
}
