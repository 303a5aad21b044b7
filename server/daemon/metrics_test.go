package daemon

import (
	"crypto/x509"
	"encoding/pem"
	"log/slog"
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

// writeCertificate writes a new self-signed certificate valid for validFor
// and its key to dir as cert.pem and key.pem, renamed into place over
// earlier ones as a replacement is, and returns their paths and the
// certificate's NotAfter.
func writeCertificate(t *testing.T, dir string, validFor time.Duration) (cert, key string, notAfter time.Time) {
	t.Helper()
	tmp := t.TempDir()
	if err := tlsconf.GenerateSelfSigned([]string{"localhost"}, filepath.Join(tmp, "cert.pem"), filepath.Join(tmp, "key.pem"), validFor); err != nil {
		t.Fatal(err)
	}
	cert, key = filepath.Join(dir, "cert.pem"), filepath.Join(dir, "key.pem")
	for _, f := range []string{"cert.pem", "key.pem"} {
		if err := os.Rename(filepath.Join(tmp, f), filepath.Join(dir, f)); err != nil {
			t.Fatal(err)
		}
	}
	b, err := os.ReadFile(cert)
	if err != nil {
		t.Fatal(err)
	}
	block, _ := pem.Decode(b)
	if block == nil {
		t.Fatal("cert.pem holds no PEM block")
	}
	c, err := x509.ParseCertificate(block.Bytes)
	if err != nil {
		t.Fatal(err)
	}
	return cert, key, c.NotAfter
}

// kts_tls_certificate_expiry_timestamp_seconds is the NotAfter of the
// certificate served, and follows a certificate replaced on disk.
func TestCertificateExpiryMetric(t *testing.T) {
	dir := t.TempDir()
	cert, key, first := writeCertificate(t, dir, 90*24*time.Hour)
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
	_, _, second := writeCertificate(t, dir, 2*time.Hour)
	deadline := time.Now().Add(10 * time.Second)
	for testutil.ToFloat64(expiry) != float64(second.Unix()) {
		if time.Now().After(deadline) {
			t.Fatalf("expiry %v after the certificate was replaced, want %v", testutil.ToFloat64(expiry), second.Unix())
		}
		time.Sleep(100 * time.Millisecond)
	}
}
