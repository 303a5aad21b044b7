// Package admintest gives tests of the admin API what they need around it:
// a database, admin CAs and certificates, and a server certificate.
package admintest

import (
	"context"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/tls"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/pem"
	"math/big"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"trustee.dev/trustee/server/pg/pgtest"
	"trustee.dev/trustee/server/store"
	"trustee.dev/trustee/server/tlsconf"
)

// Store opens a fresh, migrated database for the test (see pgtest.DSN; the
// test binary's TestMain must call pgtest.Main).
func Store(t testing.TB) *store.Store {
	t.Helper()
	db, _ := Open(t)
	return db
}

// Open is Store, with the connection string of its database.
func Open(t testing.TB) (*store.Store, string) {
	t.Helper()
	ctx := context.Background()
	dsn := pgtest.DSN(t)
	db, err := store.Open(ctx, dsn, 4)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(db.Close)
	if err := db.Migrate(ctx); err != nil {
		t.Fatal(err)
	}
	return db, dsn
}

// ReadOnly opens the database of dsn again with every transaction read-only, as
// a passive's standby is: a change fails with SQLSTATE 25006.
func ReadOnly(t testing.TB, dsn string) *store.Store {
	t.Helper()
	sep := "?"
	if strings.Contains(dsn, "?") {
		sep = "&"
	}
	ro, err := store.Open(context.Background(), dsn+sep+"default_transaction_read_only=on", 2)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(ro.Close)
	return ro
}

// CA is an admin CA.
type CA struct {
	*tlsconf.ClientCA
}

// NewCA makes an admin CA.
func NewCA(t testing.TB, commonName string) *CA {
	t.Helper()
	ca, err := tlsconf.NewClientCA(commonName, time.Hour)
	if err != nil {
		t.Fatal(err)
	}
	return &CA{ca}
}

// CertFile writes the CA certificate to a file of the test's, as
// ADMIN_CA_FILE, and returns its path.
func (ca *CA) CertFile(t testing.TB) string {
	t.Helper()
	path := filepath.Join(t.TempDir(), "admin-ca.pem")
	if err := os.WriteFile(path, ca.CertPEM(), 0o600); err != nil {
		t.Fatal(err)
	}
	return path
}

// Client issues an admin client certificate for commonName.
func (ca *CA) Client(t testing.TB, commonName string) tls.Certificate {
	t.Helper()
	certPEM, keyPEM, err := ca.IssueClient(commonName, time.Hour)
	if err != nil {
		t.Fatal(err)
	}
	cert, err := tls.X509KeyPair(certPEM, keyPEM)
	if err != nil {
		t.Fatal(err)
	}
	return cert
}

// Leaf issues a certificate for commonName with the given extended key
// usages (none: the extension is left out).
func (ca *CA) Leaf(t testing.TB, commonName string, usages ...x509.ExtKeyUsage) tls.Certificate {
	t.Helper()
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	tmpl := &x509.Certificate{
		SerialNumber: big.NewInt(time.Now().UnixNano()),
		Subject:      pkix.Name{CommonName: commonName},
		NotBefore:    time.Now().Add(-time.Minute),
		NotAfter:     time.Now().Add(time.Hour),
		KeyUsage:     x509.KeyUsageDigitalSignature,
		ExtKeyUsage:  usages,
		DNSNames:     []string{"localhost"},
		IPAddresses:  []net.IP{net.ParseIP("127.0.0.1")},
	}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, ca.Cert, key.Public(), ca.Key)
	if err != nil {
		t.Fatal(err)
	}
	leaf, err := x509.ParseCertificate(der)
	if err != nil {
		t.Fatal(err)
	}
	return tls.Certificate{Certificate: [][]byte{der}, PrivateKey: key, Leaf: leaf}
}

// ServerTLS returns the client API's TLS settings as the daemon builds them
// (a reloading certificate source, TLS 1.2 or later, HTTP/1.1) with a new
// self-signed certificate for 127.0.0.1 and localhost, and a pool that
// trusts it.
func ServerTLS(t testing.TB) (*tls.Config, *x509.CertPool) {
	t.Helper()
	dir := t.TempDir()
	certFile, keyFile := filepath.Join(dir, "cert.pem"), filepath.Join(dir, "key.pem")
	if err := tlsconf.GenerateSelfSigned([]string{"localhost", "127.0.0.1"}, certFile, keyFile, time.Hour); err != nil {
		t.Fatal(err)
	}
	certs, err := tlsconf.NewCertSource(certFile, "", keyFile, "", nil)
	if err != nil {
		t.Fatal(err)
	}
	cfg, _, err := tlsconf.ServerConfig("tlsv1.2", "", certs)
	if err != nil {
		t.Fatal(err)
	}
	cfg.NextProtos = []string{"http/1.1"}
	pemData, err := os.ReadFile(certFile)
	if err != nil {
		t.Fatal(err)
	}
	roots := x509.NewCertPool()
	if !roots.AppendCertsFromPEM(pemData) {
		t.Fatal("no certificate in the generated file")
	}
	return cfg, roots
}

// ClientTLS is a client's TLS settings: trust roots, and present cert (if
// given) whether or not its issuer is one the server names as acceptable.
func ClientTLS(roots *x509.CertPool, cert ...tls.Certificate) *tls.Config {
	cfg := &tls.Config{RootCAs: roots, MinVersion: tls.VersionTLS12}
	if len(cert) > 0 {
		c := cert[0]
		cfg.GetClientCertificate = func(*tls.CertificateRequestInfo) (*tls.Certificate, error) { return &c, nil }
	}
	return cfg
}

// Serve serves h on a new loopback listener behind tlsCfg until the test
// ends, and returns its https:// URL.
func Serve(t testing.TB, h http.Handler, tlsCfg *tls.Config) string {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	srv := &http.Server{Handler: h, ReadHeaderTimeout: 10 * time.Second}
	go srv.Serve(tls.NewListener(ln, tlsCfg))
	t.Cleanup(func() { srv.Close() })
	return "https://" + ln.Addr().String()
}

// WritePEM writes a certificate chain and its key as PEM files of the
// test's and returns their paths.
func WritePEM(t testing.TB, cert tls.Certificate) (certFile, keyFile string) {
	t.Helper()
	dir := t.TempDir()
	var certPEM []byte
	for _, der := range cert.Certificate {
		certPEM = append(certPEM, pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: der})...)
	}
	keyDER, err := x509.MarshalPKCS8PrivateKey(cert.PrivateKey)
	if err != nil {
		t.Fatal(err)
	}
	certFile, keyFile = filepath.Join(dir, "cert.pem"), filepath.Join(dir, "key.pem")
	if err := os.WriteFile(certFile, certPEM, 0o600); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(keyFile, pem.EncodeToMemory(&pem.Block{Type: "PRIVATE KEY", Bytes: keyDER}), 0o600); err != nil {
		t.Fatal(err)
	}
	return certFile, keyFile
}
