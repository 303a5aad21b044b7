package tlsconf

import (
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/tls"
	"crypto/x509"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"
)

func TestGenerateSelfSigned(t *testing.T) {
	dir := t.TempDir()
	certFile, keyFile := filepath.Join(dir, "ssl-cert.pem"), filepath.Join(dir, "ssl-cert-pk.pem")
	hosts := []string{"kts01.example.com", "localhost", "127.0.0.1", "::1"}
	if err := GenerateSelfSigned(hosts, certFile, keyFile, 365*24*time.Hour); err != nil {
		t.Fatal(err)
	}
	for _, f := range []string{certFile, keyFile} {
		fi, err := os.Stat(f)
		if err != nil {
			t.Fatal(err)
		}
		if fi.Mode().Perm() != 0o600 {
			t.Errorf("%s has mode %v, want 0600", f, fi.Mode().Perm())
		}
	}
	src, err := NewCertSource(certFile, "", keyFile, "", nil)
	if err != nil {
		t.Fatal(err)
	}
	leaf := src.Certificate().Leaf
	key, ok := leaf.PublicKey.(*ecdsa.PublicKey)
	if !ok || key.Curve != elliptic.P256() {
		t.Errorf("public key %T, want ECDSA P-256", leaf.PublicKey)
	}
	if leaf.SerialNumber.BitLen() != 128 {
		t.Errorf("serial has %d bits, want 128", leaf.SerialNumber.BitLen())
	}
	if leaf.Subject.CommonName != "kts01.example.com" {
		t.Errorf("common name %q", leaf.Subject.CommonName)
	}
	if !slices.Equal(leaf.DNSNames, []string{"kts01.example.com", "localhost"}) {
		t.Errorf("DNS names %v", leaf.DNSNames)
	}
	if len(leaf.IPAddresses) != 2 || !leaf.IPAddresses[0].Equal(net.ParseIP("127.0.0.1")) || !leaf.IPAddresses[1].Equal(net.IPv6loopback) {
		t.Errorf("IP addresses %v", leaf.IPAddresses)
	}
	if d := time.Until(leaf.NotAfter); d < 364*24*time.Hour || d > 366*24*time.Hour {
		t.Errorf("valid until %v", leaf.NotAfter)
	}
	for _, name := range []string{"kts01.example.com", "localhost", "127.0.0.1", "::1"} {
		if err := leaf.VerifyHostname(name); err != nil {
			t.Errorf("VerifyHostname(%q): %v", name, err)
		}
	}

	// A client that trusts the certificate can connect by name and by IP.
	cfg, _, err := ServerConfig("", "", src)
	if err != nil {
		t.Fatal(err)
	}
	addr := serve(t, cfg)
	pool := x509.NewCertPool()
	pool.AddCert(leaf)
	for _, name := range []string{"localhost", "127.0.0.1"} {
		if _, err := handshake(addr, &tls.Config{RootCAs: pool, ServerName: name}); err != nil {
			t.Errorf("handshake as %s: %v", name, err)
		}
	}
	// So can OpenSSL, pinning the certificate as its own trust anchor.
	if _, err := exec.LookPath("openssl"); err == nil {
		out, err := exec.Command("openssl", "verify", "-CAfile", certFile, "-purpose", "sslserver", certFile).CombinedOutput()
		if err != nil {
			t.Errorf("openssl verify: %v\n%s", err, out)
		}
	}
}

func TestGenerateSelfSignedErrors(t *testing.T) {
	dir := t.TempDir()
	existing := filepath.Join(dir, "existing.pem")
	writeFile(t, existing, "keep me\n")
	p := func(name string) string { return filepath.Join(dir, name) }
	tests := []struct {
		name      string
		hosts     []string
		cert, key string
		validFor  time.Duration
		want      string
	}{
		{"existing certificate", []string{"localhost"}, existing, p("k1.pem"), time.Hour, "already exists; refusing to overwrite"},
		{"existing key", []string{"localhost"}, p("c2.pem"), existing, time.Hour, "already exists; refusing to overwrite"},
		{"no hosts", nil, p("c3.pem"), p("k3.pem"), time.Hour, "no host names"},
		{"only empty hosts", []string{""}, p("c4.pem"), p("k4.pem"), time.Hour, "no host names"},
		{"zero validity", []string{"localhost"}, p("c5.pem"), p("k5.pem"), 0, "not positive"},
		{"missing directory", []string{"localhost"}, p("nodir/c6.pem"), p("nodir/k6.pem"), time.Hour, "no such file or directory"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			err := GenerateSelfSigned(tt.hosts, tt.cert, tt.key, tt.validFor)
			if err == nil || !strings.Contains(err.Error(), tt.want) {
				t.Fatalf("GenerateSelfSigned: %v; want an error containing %q", err, tt.want)
			}
			if got := readFile(t, existing); got != "keep me\n" {
				t.Errorf("existing file changed to %q", got)
			}
			for _, f := range []string{tt.cert, tt.key} {
				if f != existing {
					if _, err := os.Stat(f); err == nil {
						t.Errorf("%s was left behind", f)
					}
				}
			}
		})
	}
}
