package daemon

import (
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/pem"
	"log/slog"
	"math/big"
	"os"
	"path/filepath"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/testutil"

	"trustee.dev/trustee/server/member/contract"
	"trustee.dev/trustee/server/tlsconf"
)

// gauges reads the named gauges from collectors; a name that is not
// exported is missing from the map.
func gauges(t *testing.T, collectors []prometheus.Collector) map[string]float64 {
	t.Helper()
	reg := prometheus.NewRegistry()
	reg.MustRegister(collectors...)
	families, err := reg.Gather()
	if err != nil {
		t.Fatal(err)
	}
	out := map[string]float64{}
	for _, f := range families {
		for _, m := range f.GetMetric() {
			out[f.GetName()] = m.GetGauge().GetValue()
		}
	}
	return out
}

// What the active's replication monitor exports for each state of the
// pair: kts_replication_in_sync is 1 only while the passive streams as the
// synchronous standby, and a single server exports none.
func TestReplicationMetrics(t *testing.T) {
	now := time.Now()
	for _, c := range []struct {
		name     string
		standby  string
		state    contract.Replication
		writable float64
		inSync   float64 // -1: not exported
		lag      float64
	}{
		{"in sync", "kts_passive", contract.Replication{Paired: true, Attached: true, SyncState: contract.SyncStateSync, CheckedAt: now}, 1, 1, 0},
		{"catching up", "kts_passive", contract.Replication{Paired: true, Attached: true, SyncState: "potential", LagBytes: 4096, CheckedAt: now}, 0, 0, 4096},
		{"the passive is away", "kts_passive", contract.Replication{Paired: true, CheckedAt: now}, 0, 0, 0},
		{"the database does not answer", "kts_passive", contract.Replication{Err: "connection refused", CheckedAt: now}, 0, 0, 0},
		{"a single server", "", contract.Replication{CheckedAt: now}, 1, -1, 0},
	} {
		t.Run(c.name, func(t *testing.T) {
			m := newReplicationMonitor(nil, c.standby, slog.New(slog.DiscardHandler))
			m.observe(c.state)
			got := gauges(t, m.collectors())
			if got["kts_writable"] != c.writable || got["kts_replication_lag_bytes"] != c.lag {
				t.Errorf("kts_writable %v, kts_replication_lag_bytes %v; want %v, %v", got["kts_writable"], got["kts_replication_lag_bytes"], c.writable, c.lag)
			}
			v, ok := got["kts_replication_in_sync"]
			switch {
			case c.inSync < 0 && ok:
				t.Errorf("kts_replication_in_sync = %v exported by a single server", v)
			case c.inSync >= 0 && (!ok || v != c.inSync):
				t.Errorf("kts_replication_in_sync = %v (exported %v), want %v", v, ok, c.inSync)
			}
		})
	}
}

// writeCertificate writes a self-signed certificate valid until notAfter
// and its key to dir, and returns their paths.
func writeCertificate(t *testing.T, dir string, notAfter time.Time) (cert, key string) {
	t.Helper()
	k, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	tmpl := &x509.Certificate{SerialNumber: big.NewInt(notAfter.Unix()), Subject: pkix.Name{CommonName: "localhost"},
		DNSNames: []string{"localhost"}, NotBefore: time.Now().Add(-time.Hour), NotAfter: notAfter,
		KeyUsage: x509.KeyUsageDigitalSignature, ExtKeyUsage: []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth}}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, tmpl, &k.PublicKey, k)
	if err != nil {
		t.Fatal(err)
	}
	kder, err := x509.MarshalPKCS8PrivateKey(k)
	if err != nil {
		t.Fatal(err)
	}
	cert, key = filepath.Join(dir, "cert.pem"), filepath.Join(dir, "key.pem")
	// Written under other names and renamed into place, as a replacement is.
	for _, f := range []struct {
		path, typ string
		der       []byte
	}{{cert, "CERTIFICATE", der}, {key, "PRIVATE KEY", kder}} {
		tmp := f.path + ".new"
		if err := os.WriteFile(tmp, pem.EncodeToMemory(&pem.Block{Type: f.typ, Bytes: f.der}), 0o600); err != nil {
			t.Fatal(err)
		}
		if err := os.Rename(tmp, f.path); err != nil {
			t.Fatal(err)
		}
	}
	return cert, key
}

// kts_tls_certificate_expiry_timestamp_seconds is the NotAfter of the
// certificate served, and follows a certificate replaced on disk.
func TestCertificateExpiryMetric(t *testing.T) {
	dir := t.TempDir()
	first := time.Now().Add(90 * 24 * time.Hour).Truncate(time.Second)
	cert, key := writeCertificate(t, dir, first)
	certs, err := tlsconf.NewCertSource(cert, "", key, "", nil)
	if err != nil {
		t.Fatal(err)
	}
	cfg, _, err := tlsconf.ServerConfig("", "", certs)
	if err != nil {
		t.Fatal(err)
	}
	expiry := certificateExpiry(cfg)
	if got := testutil.ToFloat64(expiry); got != float64(first.Unix()) {
		t.Fatalf("expiry %v, want %v", got, first.Unix())
	}
	second := time.Now().Add(2 * time.Hour).Truncate(time.Second)
	writeCertificate(t, dir, second)
	deadline := time.Now().Add(10 * time.Second)
	for testutil.ToFloat64(expiry) != float64(second.Unix()) {
		if time.Now().After(deadline) {
			t.Fatalf("expiry %v after the certificate was replaced, want %v", testutil.ToFloat64(expiry), second.Unix())
		}
		time.Sleep(100 * time.Millisecond)
	}
}
