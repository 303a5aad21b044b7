package pg

import (
	"net/url"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"
)

// memberTLS is TLS as a member in Kubernetes has it.
func memberTLS() *TLS {
	return &TLS{CertFile: "/etc/kts/tls/tls.crt", KeyFile: "/etc/kts/tls/tls.key", ActiveCAFile: "/etc/kts/tls/ca.crt", CAFile: "/etc/kts/tls/ca.crt"}
}

func TestTLSSettings(t *testing.T) {
	// Without TLS nothing about it is written: PostgreSQL's default (off).
	for name := range settingsMap(&Instance{}, nil) {
		if strings.HasPrefix(name, "ssl") {
			t.Errorf("without TLS, %s is set", name)
		}
	}
	active := settingsMap(&Instance{Standby: "kts_passive", TLS: memberTLS()}, nil)
	for k, want := range map[string]string{
		"ssl":                      "on",
		"ssl_cert_file":            "'/etc/kts/tls/tls.crt'",
		"ssl_key_file":             "'/etc/kts/tls/tls.key'",
		"ssl_min_protocol_version": "'TLSv1.2'",
	} {
		if active[k] != want {
			t.Errorf("active with TLS: %s = %s, want %s", k, active[k], want)
		}
	}
	if _, ok := active["ssl_ca_file"]; ok {
		t.Error("ssl_ca_file is set: PostgreSQL asks no client certificate")
	}
	tls13 := memberTLS()
	tls13.MinVersion = "TLSv1.3"
	if got := settingsMap(&Instance{TLS: tls13}, nil)["ssl_min_protocol_version"]; got != "'TLSv1.3'" {
		t.Errorf("MinVersion TLSv1.3: ssl_min_protocol_version = %s", got)
	}
	// Relative paths become absolute: PostgreSQL would take them from the
	// data directory.
	wd, _ := os.Getwd()
	rel := settingsMap(&Instance{TLS: &TLS{CertFile: "c.pem", KeyFile: "k.pem"}}, nil)
	if rel["ssl_cert_file"] != quote(filepath.Join(wd, "c.pem")) || rel["ssl_key_file"] != quote(filepath.Join(wd, "k.pem")) {
		t.Errorf("relative files: %s, %s", rel["ssl_cert_file"], rel["ssl_key_file"])
	}

	// The passive reaches the active's host name over TLS, verifying it.
	up := &upstream{host: "kts-active-0.kts-members.ns.svc", port: 5432, user: "kts_replication"}
	passive := settingsMap(&Instance{Role: RolePassive, TLS: memberTLS()}, up)
	want := `'host=''kts-active-0.kts-members.ns.svc'' port=5432 user=''kts_replication'' passfile=''/data/replication.pgpass'' ` +
		`application_name=''kts_passive'' connect_timeout=10 sslmode=verify-full sslrootcert=''/etc/kts/tls/ca.crt'''`
	if passive["primary_conninfo"] != want {
		t.Errorf("passive with TLS: primary_conninfo =\n%s\nwant\n%s", passive["primary_conninfo"], want)
	}
	if passive["ssl"] != "on" {
		t.Errorf("passive with TLS: ssl = %q", passive["ssl"])
	}
	if got := settingsMap(&Instance{Role: RolePassive}, up)["primary_conninfo"]; strings.Contains(got, "ssl") {
		t.Errorf("passive without TLS: primary_conninfo = %s", got)
	}

	// Every TLS setting is Trustee's own: no parameter may set it.
	managed := (&Instance{}).managedSettings()
	for _, name := range []string{"ssl", "ssl_cert_file", "ssl_key_file", "ssl_min_protocol_version"} {
		if !managed[name] {
			t.Errorf("%s is not among the managed settings", name)
		}
	}
	if err := (&Instance{Parameters: map[string]string{"ssl_min_protocol_version": "TLSv1.3"}}).checkSettings(); err == nil {
		t.Error("ssl_min_protocol_version accepted as a parameter")
	}
}

func TestTLSHBA(t *testing.T) {
	i := &Instance{User: "keytrustee", ReplicationFrom: []string{"0.0.0.0/0", "::/0"},
		ClientsFrom: []string{"0.0.0.0/0", "::/0", "127.0.0.1/32"}, TLS: memberTLS()}
	want := `# Managed by Trustee: rewritten on every start. Local changes are lost.
# TYPE  DATABASE     USER  ADDRESS        METHOD
local   all          all                  scram-sha-256
host    all          all   127.0.0.1/32   scram-sha-256
host    all          all   ::1/128        scram-sha-256
hostssl replication  "kts_replication"  0.0.0.0/0  scram-sha-256
hostssl replication  "kts_replication"  ::/0  scram-sha-256
hostssl all          "keytrustee"  0.0.0.0/0  scram-sha-256
hostssl all          "keytrustee"  ::/0  scram-sha-256
`
	if got := i.hbaConf(); got != want {
		t.Errorf("hba with TLS:\n%s\nwant\n%s", got, want)
	}
	// Without TLS the file is as it was.
	i.TLS = nil
	if got := i.hbaConf(); strings.Contains(got, "hostssl") || !strings.Contains(got, "host    replication  \"kts_replication\"  0.0.0.0/0  scram-sha-256\n") {
		t.Errorf("hba without TLS:\n%s", got)
	}
	// A client of the cluster (a backup Job) has no server files: its
	// TLS is for connecting only.
	if got := (&Instance{ClientsFrom: []string{"10.0.0.0/8"}, TLS: &TLS{CAFile: "/ca.crt"}}).hbaConf(); strings.Contains(got, "hostssl") {
		t.Errorf("hba of an Instance without server files:\n%s", got)
	}
}

func TestTLSConnString(t *testing.T) {
	tls := memberTLS()
	for host, want := range map[string]url.Values{
		"127.0.0.1":                        {"sslmode": {"disable"}},
		"::1":                              {"sslmode": {"disable"}},
		"localhost":                        {"sslmode": {"disable"}},
		"*":                                {"sslmode": {"disable"}},
		"10.0.0.7":                         {"sslmode": {"verify-full"}, "sslrootcert": {"/etc/kts/tls/ca.crt"}},
		"kts-passive-0.kts-members.ns.svc": {"sslmode": {"verify-full"}, "sslrootcert": {"/etc/kts/tls/ca.crt"}},
	} {
		u, err := url.Parse((&Instance{Host: host, TLS: tls}).ConnString("db", "pw"))
		if err != nil {
			t.Fatal(err)
		}
		if got := u.Query(); got.Encode() != want.Encode() {
			t.Errorf("Host %q with TLS: query %s, want %s", host, got.Encode(), want.Encode())
		}
	}
	if s := (&Instance{Host: "10.0.0.7"}).ConnString("db", "pw"); !strings.HasSuffix(s, "?sslmode=disable") {
		t.Errorf("Host beyond loopback without TLS: %s", s)
	}
	for _, h := range []string{"127.0.0.1", "127.0.0.53", "::1", "localhost", "LOCALHOST", "/var/run/postgresql"} {
		if !isLoopback(h) {
			t.Errorf("isLoopback(%q) = false", h)
		}
	}
	for _, h := range []string{"10.0.0.7", "::", "fd00::1", "localhost.example.com", "db"} {
		if isLoopback(h) {
			t.Errorf("isLoopback(%q) = true", h)
		}
	}
}

func TestTLSPassiveNeedsTheActivesCA(t *testing.T) {
	i := &Instance{Role: RolePassive, TLS: &TLS{CertFile: "/c", KeyFile: "/k"}}
	if err := i.checkReplication(); err == nil || !strings.Contains(err.Error(), "no CA certificate file verifies the active's certificate") {
		t.Errorf("passive with TLS and no CA file: %v", err)
	}
	i.TLS.ActiveCAFile = "/ca.crt"
	if err := i.checkReplication(); err != nil {
		t.Errorf("passive with TLS and a CA file: %v", err)
	}
}

func TestTLSHint(t *testing.T) {
	i := &Instance{Role: RolePassive, TLS: memberTLS()}
	for out, want := range map[string]string{
		`pg_basebackup: error: connection to server at "localhost" (127.0.0.1), port 5432 failed: SSL error: certificate verify failed`: "does not verify against the CA certificates in /etc/kts/tls/ca.crt",
		`failed to connect to ...: tls: failed to verify certificate: x509: certificate signed by unknown authority`:                    "does not verify against the CA certificates in /etc/kts/tls/ca.crt",
		`server certificate for "kts-active-0" does not match host name "10.0.0.7"`:                                                     "not issued for the host name the passive reaches it by",
		`pg_basebackup: error: server does not support SSL, but SSL was required`:                                                       "does not offer TLS: turn TLS on for the active too",
		`tls: failed to verify certificate: x509: certificate is valid for localhost, not db.example`:                                   "not issued for the host name the passive reaches it by",
	} {
		if got := basebackupHint(out, i); !strings.Contains(got, want) {
			t.Errorf("hint for %q = %q, want %q", out, got, want)
		}
	}
	// The active demands TLS of a passive that does not offer it.
	plain := &Instance{Role: RolePassive}
	out := `FATAL:  no pg_hba.conf entry for replication connection from host "10.0.0.8", user "kts_replication", no encryption`
	if got := basebackupHint(out, plain); !strings.Contains(got, "over TLS only: turn TLS on for this passive too") {
		t.Errorf("hint for %q = %q", out, got)
	}
	if got := basebackupHint("pg_basebackup: error: certificate verify failed", plain); strings.Contains(got, "CA") {
		t.Errorf("hint without TLS = %q", got)
	}
}

func TestCertStamp(t *testing.T) {
	dir := t.TempDir()
	cert, key := filepath.Join(dir, "tls.crt"), filepath.Join(dir, "tls.key")
	for _, f := range []string{cert, key} {
		if err := os.WriteFile(f, []byte("one"), 0o600); err != nil {
			t.Fatal(err)
		}
	}
	i := &Instance{TLS: &TLS{CertFile: cert, KeyFile: key}}
	a := i.certStamp()
	if a.changed(i.certStamp()) {
		t.Error("unchanged files count as changed")
	}
	// A new file of the same size and time renamed into place.
	tmp := filepath.Join(dir, "new")
	if err := os.WriteFile(tmp, []byte("two"), 0o600); err != nil {
		t.Fatal(err)
	}
	fi, _ := os.Stat(key)
	if err := os.Chtimes(tmp, time.Time{}, fi.ModTime()); err != nil {
		t.Fatal(err)
	}
	if err := os.Rename(tmp, key); err != nil {
		t.Fatal(err)
	}
	b := i.certStamp()
	if !b.changed(a) {
		t.Error("a key renamed into place does not count as a change")
	}
	if err := os.Remove(cert); err != nil {
		t.Fatal(err)
	}
	if c := i.certStamp(); !c.changed(b) || c[0] != nil || c.changed(i.certStamp()) {
		t.Error("a missing certificate file is not told apart")
	}
}
