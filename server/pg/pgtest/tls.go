package pgtest

import (
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/pem"
	"math/big"
	"net"
	"os"
	"os/user"
	"strconv"
	"testing"
	"time"

	"trustee.dev/trustee/server/pg"
	"trustee.dev/trustee/server/tlsconf"
)

// NewCA returns a new CA for the test, valid for a day.
func NewCA(t testing.TB, name string) *tlsconf.ClientCA {
	t.Helper()
	ca, err := tlsconf.NewClientCA(name, 24*time.Hour)
	if err != nil {
		t.Fatal(err)
	}
	return ca
}

// ServerCert issues a TLS server certificate signed by ca for hosts (DNS
// names and IP addresses), with a new ECDSA P-256 key, both in PEM, and
// returns them with the certificate's serial number.
func ServerCert(t testing.TB, ca *tlsconf.ClientCA, hosts ...string) (certPEM, keyPEM []byte, serial *big.Int) {
	t.Helper()
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	serial, err = rand.Int(rand.Reader, new(big.Int).Lsh(big.NewInt(1), 120))
	if err != nil {
		t.Fatal(err)
	}
	now := time.Now()
	tmpl := &x509.Certificate{
		SerialNumber: serial.Add(serial, big.NewInt(1)),
		Subject:      pkix.Name{CommonName: hosts[0]},
		NotBefore:    now.Add(-time.Hour),
		NotAfter:     now.Add(23 * time.Hour),
		KeyUsage:     x509.KeyUsageDigitalSignature,
		ExtKeyUsage:  []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth},
	}
	for _, h := range hosts {
		if ip := net.ParseIP(h); ip != nil {
			tmpl.IPAddresses = append(tmpl.IPAddresses, ip)
		} else {
			tmpl.DNSNames = append(tmpl.DNSNames, h)
		}
	}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, ca.Cert, key.Public(), ca.Key)
	if err != nil {
		t.Fatal(err)
	}
	keyDER, err := x509.MarshalPKCS8PrivateKey(key)
	if err != nil {
		t.Fatal(err)
	}
	return pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: der}),
		pem.EncodeToMemory(&pem.Block{Type: "PRIVATE KEY", Bytes: keyDER}), tmpl.SerialNumber
}

// WriteSecretFile writes data to path as a Kubernetes Secret volume holds
// it for PostgreSQL: replaced whole (a new file renamed into place), mode
// 0440, owned by root and the group of the account that runs PostgreSQL
// (the pod's fsGroup) when the test runs as root; mode 0600 and owned by
// the test's account otherwise.
func WriteSecretFile(t testing.TB, path string, data []byte) {
	t.Helper()
	tmp := path + ".new"
	mode := os.FileMode(0o600)
	if os.Geteuid() == 0 {
		mode = 0o440
	}
	if err := os.WriteFile(tmp, data, mode); err != nil {
		t.Fatal(err)
	}
	if err := os.Chmod(tmp, mode); err != nil {
		t.Fatal(err)
	}
	if os.Geteuid() == 0 {
		u, err := user.Lookup(pg.DefaultRunAs)
		if err != nil {
			t.Fatal(err)
		}
		gid, _ := strconv.Atoi(u.Gid)
		if err := os.Chown(tmp, 0, gid); err != nil {
			t.Fatal(err)
		}
	}
	if err := os.Rename(tmp, path); err != nil {
		t.Fatal(err)
	}
}
