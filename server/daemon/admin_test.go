package daemon

import (
	"bufio"
	"crypto/tls"
	"crypto/x509"
	"encoding/json"
	"io"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"regexp"
	"strings"
	"testing"
	"time"

	"trustee.dev/trustee/server/adminapi"
	"trustee.dev/trustee/server/adminapi/admintest"
	"trustee.dev/trustee/server/httpapi"
	"trustee.dev/trustee/server/pg/pgtest"
	"trustee.dev/trustee/test/harness"
)

func TestMain(m *testing.M) { pgtest.Main(m) }

// adminListener serves the admin API as Run does: its own listener, the
// client API's TLS settings with admin client certificates required.
func adminListener(t *testing.T, caFile string, logs io.Writer) (url string, roots *x509.CertPool, base *tls.Config) {
	t.Helper()
	log := slog.New(slog.NewJSONHandler(logs, nil))
	base, roots = admintest.ServerTLS(t)
	tlsCfg, err := AdminTLSConfig(base, caFile, log)
	if err != nil {
		t.Fatal(err)
	}
	h := adminapi.New(adminapi.Options{Store: admintest.Store(t), LinkBase: "https://localhost:11371", Log: log})
	srv := newAdminServer(h, tlsCfg, log)
	ln, err := listenAdmin("127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	go serveAdmin(srv, ln)
	t.Cleanup(func() { srv.Close() })
	return "https://" + ln.Addr().String(), roots, base
}

// get asks for an organization with TLS settings cfg.
func get(url string, cfg *tls.Config) (*http.Response, []byte, error) {
	c := &http.Client{Timeout: 10 * time.Second, Transport: &http.Transport{TLSClientConfig: cfg, DisableKeepAlives: true}}
	resp, err := c.Get(url + "/admin/v1/organizations/acme")
	if err != nil {
		return nil, nil, err
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(resp.Body)
	return resp, b, err
}

func TestAdminListenerMutualTLS(t *testing.T) {
	ca, other := admintest.NewCA(t, "admin CA"), admintest.NewCA(t, "another CA")
	var logs harness.Buffer
	url, roots, _ := adminListener(t, ca.CertFile(t), &logs)

	refused := []struct {
		name  string
		certs []tls.Certificate
		alert string // the server's alert, as the client reports it
	}{
		{"no client certificate", nil, "(handshake failure|certificate required)"},
		{"a certificate of another CA", []tls.Certificate{other.Client(t, "intruder")}, "unknown certificate authority"},
		{"a server-auth-only certificate", []tls.Certificate{ca.Leaf(t, "server", x509.ExtKeyUsageServerAuth)}, "bad certificate"},
		{"a certificate without extended key usage", []tls.Certificate{ca.Leaf(t, "no-usage")}, "bad certificate"},
		{"a self-signed certificate", []tls.Certificate{admintest.NewCA(t, "self").Leaf(t, "self", x509.ExtKeyUsageClientAuth)}, "unknown certificate authority"},
	}
	for _, tt := range refused {
		for _, version := range []uint16{tls.VersionTLS12, tls.VersionTLS13} {
			cfg := admintest.ClientTLS(roots, tt.certs...)
			cfg.MaxVersion = version
			resp, body, err := get(url, cfg)
			if err == nil {
				t.Errorf("%s (TLS %x): answered %d %s, want the handshake refused", tt.name, version, resp.StatusCode, body)
			} else if !regexp.MustCompile(`remote error: tls: ` + tt.alert).MatchString(err.Error()) {
				t.Errorf("%s (TLS %x): %v, want the server's alert %q", tt.name, version, err, tt.alert)
			}
		}
	}
	if strings.Contains(logs.String(), `"admin request"`) {
		t.Errorf("a refused connection reached the handler:\n%s", logs.String())
	}

	resp, body, err := get(url, admintest.ClientTLS(roots, ca.Client(t, "trustee-operator")))
	if err != nil {
		t.Fatalf("the admin certificate was refused: %v", err)
	}
	var eb struct{ Error string }
	if resp.StatusCode != http.StatusNotFound || json.Unmarshal(body, &eb) != nil || eb.Error != "not_found" {
		t.Errorf("GET of an absent organization: %d %s", resp.StatusCode, body)
	}
	if resp.TLS == nil || resp.TLS.NegotiatedProtocol != "http/1.1" && resp.TLS.NegotiatedProtocol != "" {
		t.Errorf("negotiated %+v", resp.TLS)
	}
	if !strings.Contains(logs.String(), `"admin":"trustee-operator"`) {
		t.Errorf("the request log does not name the admin:\n%s", logs.String())
	}
}

func TestAdminTLSConfigFollowsTheAPI(t *testing.T) {
	ca := admintest.NewCA(t, "admin CA")
	base, _ := admintest.ServerTLS(t)
	base.MinVersion, base.CipherSuites = tls.VersionTLS13, []uint16{tls.TLS_ECDHE_ECDSA_WITH_AES_256_GCM_SHA384}
	cfg, err := AdminTLSConfig(base, ca.CertFile(t), nil)
	if err != nil {
		t.Fatal(err)
	}
	inner, err := cfg.GetConfigForClient(&tls.ClientHelloInfo{})
	if err != nil {
		t.Fatal(err)
	}
	for _, c := range []*tls.Config{cfg, inner} {
		if c.ClientAuth != tls.RequireAndVerifyClientCert || c.ClientCAs == nil || c.VerifyConnection == nil {
			t.Errorf("client certificates not required: %+v", c)
		}
		if c.MinVersion != tls.VersionTLS13 || len(c.CipherSuites) != 1 || c.GetCertificate == nil {
			t.Errorf("the API's version, suites or certificate are not kept: %+v", c)
		}
	}
	if base.ClientAuth != tls.NoClientCert || base.GetConfigForClient != nil {
		t.Error("AdminTLSConfig changed the client API's settings")
	}
}

func TestAdminCAReload(t *testing.T) {
	oldCA, newCA := admintest.NewCA(t, "old admin CA"), admintest.NewCA(t, "new admin CA")
	caFile := filepath.Join(t.TempDir(), "ca.crt")
	if err := os.WriteFile(caFile, oldCA.CertPEM(), 0o600); err != nil {
		t.Fatal(err)
	}
	var logs harness.Buffer
	url, roots, _ := adminListener(t, caFile, &logs)
	oldCert, newCert := oldCA.Client(t, "operator"), newCA.Client(t, "operator")
	if _, _, err := get(url, admintest.ClientTLS(roots, oldCert)); err != nil {
		t.Fatalf("old CA before the change: %v", err)
	}

	// Replaced as the kubelet replaces a Secret volume's file: a new file
	// renamed into place.
	tmp := caFile + ".new"
	if err := os.WriteFile(tmp, newCA.CertPEM(), 0o600); err != nil {
		t.Fatal(err)
	}
	if err := os.Rename(tmp, caFile); err != nil {
		t.Fatal(err)
	}
	deadline := time.Now().Add(5 * time.Second)
	for {
		_, _, err := get(url, admintest.ClientTLS(roots, newCert))
		if err == nil {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("the new CA is not accepted: %v", err)
		}
		time.Sleep(200 * time.Millisecond)
	}
	if _, _, err := get(url, admintest.ClientTLS(roots, oldCert)); err == nil {
		t.Error("the replaced CA is still accepted")
	}

	// A broken replacement keeps the CA in service.
	if err := os.WriteFile(caFile, []byte("not a certificate"), 0o600); err != nil {
		t.Fatal(err)
	}
	time.Sleep(1100 * time.Millisecond)
	if _, _, err := get(url, admintest.ClientTLS(roots, newCert)); err != nil {
		t.Errorf("a broken CA file stopped the current CA: %v", err)
	}
	if !strings.Contains(logs.String(), "ADMIN_CA_FILE changed but could not be loaded") {
		t.Errorf("the broken file is not logged:\n%s", logs.String())
	}
}

func TestAdminCAFileErrors(t *testing.T) {
	base, _ := admintest.ServerTLS(t)
	dir := t.TempDir()
	empty := filepath.Join(dir, "empty.pem")
	os.WriteFile(empty, []byte("-----BEGIN PRIVATE KEY-----\nAAAA\n-----END PRIVATE KEY-----\n"), 0o600)
	broken := filepath.Join(dir, "broken.pem")
	os.WriteFile(broken, []byte("-----BEGIN CERTIFICATE-----\nAAAA\n-----END CERTIFICATE-----\n"), 0o600)
	for file, want := range map[string]string{
		filepath.Join(dir, "missing.pem"): "no such file",
		empty:                             "holds no PEM certificate",
		broken:                            "certificate 1",
	} {
		_, err := AdminTLSConfig(base, file, nil)
		if err == nil || !strings.Contains(err.Error(), "ADMIN_CA_FILE") || !strings.Contains(err.Error(), want) {
			t.Errorf("%s: %v, want an ADMIN_CA_FILE error with %q", filepath.Base(file), err, want)
		}
	}
}

// TestClientPortHasNoAdminAPI checks that the client API's handler does not
// serve the admin routes.
func TestClientPortHasNoAdminAPI(t *testing.T) {
	h := httpapi.New(httpapi.Options{Log: slog.New(slog.DiscardHandler)}).Handler()
	for _, m := range []string{"GET", "PUT", "POST"} {
		rec := httptest.NewRecorder()
		h.ServeHTTP(rec, httptest.NewRequest(m, "/admin/v1/organizations/acme", strings.NewReader(`{"contacts": ["a@example.com"]}`)))
		if rec.Code != http.StatusNotFound {
			t.Errorf("%s on the client API: %d %s", m, rec.Code, rec.Body)
		}
	}
}

// TestAdminErrorsBelowTheRoutesAreJSON: a request that net/http cannot
// parse, sent by an admin over mutual TLS, is answered with the API's JSON
// error body, as on the client API's port.
func TestAdminErrorsBelowTheRoutesAreJSON(t *testing.T) {
	ca := admintest.NewCA(t, "admin CA")
	url, roots, _ := adminListener(t, ca.CertFile(t), io.Discard)
	conn, err := tls.Dial("tcp", strings.TrimPrefix(url, "https://"), admintest.ClientTLS(roots, ca.Client(t, "trustee-operator")))
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close()
	conn.SetDeadline(time.Now().Add(10 * time.Second))
	if _, err := io.WriteString(conn, "GET /admin/v1/organizations/\x00acme HTTP/1.1\r\nHost: localhost\r\n\r\n"); err != nil {
		t.Fatal(err)
	}
	resp, err := http.ReadResponse(bufio.NewReader(conn), nil)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	body, _ := io.ReadAll(resp.Body)
	var eb struct{ Error, Message string }
	if resp.StatusCode != http.StatusBadRequest || resp.Header.Get("Content-Type") != "application/json" ||
		json.Unmarshal(body, &eb) != nil || eb.Error != "bad_request" || eb.Message == "" {
		t.Errorf("a request line with a NUL: %d %s %q, want 400 with the JSON error bad_request", resp.StatusCode, resp.Header.Get("Content-Type"), body)
	}
}
