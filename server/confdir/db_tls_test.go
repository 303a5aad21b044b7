package confdir_test

import (
	"path/filepath"
	"slices"
	"testing"

	"trustee.dev/trustee/server/confdir"
	"trustee.dev/trustee/server/config"
	"trustee.dev/trustee/server/pg"
	"trustee.dev/trustee/server/restore"
)

// TestPGInstanceTLS turns DB_TLS into PostgreSQL's TLS: the server's
// certificate, the CA of the active on the passive, the CA of DB_HOST for
// its clients, every path absolute.
func TestPGInstanceTLS(t *testing.T) {
	dir := t.TempDir()
	c := config.Default("h")
	if inst := confdir.Instance(dir, c, ""); inst.TLS != nil {
		t.Fatalf("without DB_TLS: %+v", inst.TLS)
	}

	c.DBTLS, c.TLSMinVersion = true, "tlsv1.3"
	inst := confdir.Instance(dir, c, "")
	want := pg.TLS{CertFile: filepath.Join(dir, config.DefaultSSLCertificate), KeyFile: filepath.Join(dir, config.DefaultSSLPrivateKey), MinVersion: "TLSv1.3"}
	if inst.TLS == nil || *inst.TLS != want {
		t.Fatalf("active with DB_TLS: %+v, want %+v", inst.TLS, want)
	}

	c.Role, c.ActiveURL, c.ActiveCA, c.ActiveDB, c.StandbyName = config.RolePassive, "https://a:11371", "active-ca.pem", "a:11381", "kts_passive"
	c.SSLCertificate, c.SSLPrivateKey, c.TLSMinVersion = "/etc/kts/tls/tls.crt", "/etc/kts/tls/tls.key", "tlsv1.2"
	inst = confdir.Instance(dir, c, "")
	ca := filepath.Join(dir, "active-ca.pem")
	want = pg.TLS{CertFile: "/etc/kts/tls/tls.crt", KeyFile: "/etc/kts/tls/tls.key", MinVersion: "TLSv1.2", ActiveCAFile: ca, CAFile: ca}
	if *inst.TLS != want {
		t.Fatalf("passive with DB_TLS: %+v, want %+v", inst.TLS, want)
	}

	// A backup Job's configuration: DB_HOST beyond loopback, DB_CA_FILE.
	c.DBHost, c.DBCAFile = "kts-passive-0.kts-members.ns.svc", "/etc/kts/tls/ca.crt"
	if inst := confdir.Instance(dir, c, ""); inst.TLS.CAFile != "/etc/kts/tls/ca.crt" || inst.TLS.ActiveCAFile != ca {
		t.Fatalf("backup Job: %+v", inst.TLS)
	}
	// Its archive holds the CA file once, however many keys name it.
	c.ActiveCA = c.DBCAFile
	if got := restore.OutsideFiles(dir, c); !slices.Equal(got, []string{"/etc/kts/tls/tls.crt", "/etc/kts/tls/tls.key", "/etc/kts/tls/ca.crt"}) {
		t.Fatalf("restore.OutsideFiles = %v", got)
	}
}
