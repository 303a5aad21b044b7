package e2e

import (
	"context"
	"crypto/tls"
	"encoding/json"
	"errors"
	"io/fs"
	"math/big"
	"net"
	"net/netip"
	"net/url"
	"os"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"

	"trustee.dev/trustee/server/config"
	"trustee.dev/trustee/server/pg/pgtest"
	"trustee.dev/trustee/test/memberpods"
)

// TestMemberPairOverTLS runs the pair as its pods do with DB_TLS, as the
// operator renders it, and a certificate its CA signs for localhost (and
// this host's addresses) in the tls mount, root's and readable by the
// PostgreSQL account's group as a Secret with an fsGroup is: the passive
// replicates from the active's host name over TLS, verifying it; a backup
// Job reads a member over TLS from beyond loopback, and nothing there
// connects in clear; a passive whose ACTIVE_CA is another CA refuses to
// copy the active; a renewed certificate reaches the running PostgreSQL.
func TestMemberPairOverTLS(t *testing.T) {
	addr := hostIPv4(t)
	root := memberpods.RootDir(t)
	mounts := layOutMounts(t, root)
	ca := pgtest.NewCA(t, "e2e members CA")
	cert, key, serial := pgtest.ServerCert(t, ca, "localhost", "127.0.0.1", addr)
	pgtest.WriteSecretFile(t, filepath.Join(mounts.tls, "tls.crt"), cert)
	pgtest.WriteSecretFile(t, filepath.Join(mounts.tls, "tls.key"), key)
	pgtest.WriteSecretFile(t, mounts.ca, ca.CertPEM())

	active, passive := &memberPod{name: "active"}, &memberPod{name: "passive"}
	renderMemberConfigs(t, root, mounts, active, passive, func(c *config.Config) {
		c.DBTLS = true
		c.DBListenAddresses = "127.0.0.1," + addr
		if c.Role == config.RolePassive {
			c.ActiveDB = "localhost:" + itoa(active.dbPort) // verified against the certificate's names
		}
	})
	passiveSetup := startKts(t, "passive setup", "member", "setup", "--member", "passive", "--config", passive.conf, "--confdir", passive.state)
	active.setupOut = kts(t, "member", "setup", "--member", "active", "--config", active.conf, "--confdir", active.state)
	active.dbRun = startDBRun(t, active)
	if err := passiveSetup.Wait(90 * time.Second); err != nil {
		t.Fatalf("passive setup: %v\n%s", err, passiveSetup.Output())
	}
	passive.setupOut = passiveSetup.Output()
	if !strings.Contains(passive.setupOut, "copied the active's PostgreSQL at localhost:"+itoa(active.dbPort)) {
		t.Fatalf("passive setup:\n%s", passive.setupOut)
	}
	passive.dbRun = startDBRun(t, passive)
	active.server, passive.server = startServer(t, active.state), startServer(t, passive.state)
	checkPair(t, mounts, active, passive)

	// The passive's WAL stream is encrypted, and it verifies the active.
	activeDB := dbConn(t, active.state)
	var ssl bool
	var version string
	err := activeDB.QueryRow(context.Background(), `SELECT s.ssl, COALESCE(s.version, '') FROM pg_stat_replication r
		JOIN pg_stat_ssl s ON s.pid = r.pid WHERE r.application_name = 'kts_passive'`).Scan(&ssl, &version)
	if err != nil || !ssl || !strings.HasPrefix(version, "TLSv1.") {
		t.Fatalf("the walsender of the passive: ssl %v, version %q, %v", ssl, version, err)
	}
	t.Logf("the passive replicates over %s", version)
	conf := string(must(os.ReadFile(filepath.Join(passive.dataDir, "trustee.conf"))))
	for _, want := range []string{"host=''localhost'' port=" + itoa(active.dbPort), "sslmode=verify-full sslrootcert=''" + mounts.ca + "''",
		"ssl = on\n", "ssl_key_file = '" + filepath.Join(mounts.tls, "tls.key") + "'\n", "ssl_min_protocol_version = 'TLSv1.2'\n"} {
		if !strings.Contains(conf, want) {
			t.Errorf("the passive's trustee.conf lacks %q:\n%s", want, conf)
		}
	}
	hba := string(must(os.ReadFile(filepath.Join(active.dataDir, "pg_hba.conf"))))
	for _, want := range []string{"host    all          all   127.0.0.1/32   scram-sha-256\n",
		"hostssl replication  \"kts_replication\"  127.0.0.1/32  scram-sha-256\n", "hostssl all          \"keytrustee\"  0.0.0.0/0  scram-sha-256\n"} {
		if !strings.Contains(hba, want) {
			t.Errorf("the active's pg_hba.conf lacks %q:\n%s", want, hba)
		}
	}

	// Beyond loopback, the database user gets in over TLS only.
	password := strings.TrimSpace(string(must(os.ReadFile(filepath.Join(mounts.identity, "db.password")))))
	dsn := func(m *memberPod, query string) string {
		return "postgres://keytrustee:" + url.QueryEscape(password) + "@" + net.JoinHostPort(addr, itoa(m.dbPort)) + "/keytrustee?" + query
	}
	if c, err := pgx.Connect(context.Background(), dsn(active, "sslmode=disable")); err == nil || !strings.Contains(err.Error(), "no encryption") {
		if c != nil {
			c.Close(context.Background())
		}
		t.Fatalf("a connection in clear from %s: %v; want refused (no pg_hba.conf entry, no encryption)", addr, err)
	}
	if got := peerSerial(t, dsn(active, "sslmode=verify-full&sslrootcert="+url.QueryEscape(mounts.ca))); got.Cmp(serial) != 0 {
		t.Fatalf("serial %v over TLS, want %v", got, serial)
	}

	// A backup Job reads the passive over the network, over TLS against
	// DB_CA_FILE as the operator renders it.
	otherCA := pgtest.NewCA(t, "another CA")
	otherCAFile := filepath.Join(root, "etc", "other-ca", "ca.crt")
	writeMount(t, filepath.Dir(otherCAFile), nil)
	pgtest.WriteSecretFile(t, otherCAFile, otherCA.CertPEM())
	jobState := filepath.Join(root, "job", "state")
	archives := filepath.Join(root, "backup-volume", "kts")
	if err := os.MkdirAll(archives, 0o755); err != nil {
		t.Fatal(err)
	}
	backup := func(caFile string) result {
		t.Helper()
		var c config.Config
		if err := json.Unmarshal(must(os.ReadFile(passive.conf)), &c); err != nil {
			t.Fatal(err)
		}
		c.DBHost, c.DBPort, c.DBSocketDir, c.DBCAFile = addr, passive.dbPort, "", caFile
		jobConfig := filepath.Join(root, "etc", "backup-config-"+filepath.Base(filepath.Dir(caFile)))
		writeMount(t, jobConfig, map[string][]byte{"backup.conf": must(json.MarshalIndent(c, "", "  "))})
		kts(t, "member", "setup", "--member", "passive", "--config-only", "--config", filepath.Join(jobConfig, "backup.conf"), "--confdir", jobState)
		return runTool(t, "", "kts", "backup", "--confdir", jobState, "--cleartext", "--output", archives, "--quiet")
	}
	r := backup(mounts.ca)
	if r.err != nil {
		t.Fatalf("kts backup over TLS as the Job runs it: %v\n%s", r.err, r.stderr)
	}
	if archive := strings.TrimSpace(r.stdout); !jobArchiveName.MatchString(filepath.Base(archive)) {
		t.Fatalf("kts backup printed %q", r.stdout)
	}
	if r := backup(otherCAFile); r.err == nil || !strings.Contains(r.stderr, "certificate verify failed") {
		t.Fatalf("kts backup trusting another CA: %v\n%s", r.err, r.stderr)
	}

	// A passive whose ACTIVE_CA is another CA does not copy the active,
	// and says why each time it tries.
	var c config.Config
	if err := json.Unmarshal(must(os.ReadFile(passive.conf)), &c); err != nil {
		t.Fatal(err)
	}
	c.ActiveCA = otherCAFile
	wrongConf := filepath.Join(root, "etc", "wrong-ca-config")
	writeMount(t, wrongConf, map[string][]byte{"passive.conf": must(json.MarshalIndent(c, "", "  "))})
	wrongState := filepath.Join(root, "var-lib-kts-wrong-ca", "state")
	if err := os.MkdirAll(filepath.Dir(wrongState), 0o755); err != nil {
		t.Fatal(err)
	}
	wrong := startKts(t, "passive setup trusting another CA", "member", "setup", "--member", "passive",
		"--config", filepath.Join(wrongConf, "passive.conf"), "--confdir", wrongState)
	bounded(t, 60*time.Second, "the passive trusting another CA says why it does not copy the active", func() bool {
		out := wrong.Output()
		return strings.Contains(out, "waiting for the active's PostgreSQL at localhost:"+itoa(active.dbPort)+" to copy it (attempt 2)") &&
			strings.Contains(out, "certificate verify failed") &&
			strings.Contains(out, "the active's certificate does not verify against the CA certificates in "+otherCAFile)
	})
	t.Logf("a passive trusting another CA:\n%s", wrong.Output())
	wrong.Signal(syscall.SIGTERM)
	if err := wrong.Wait(30 * time.Second); err == nil || !strings.Contains(wrong.Output(), "stopped waiting for the active's PostgreSQL") {
		t.Fatalf("the passive trusting another CA after SIGTERM: %v\n%s", err, wrong.Output())
	}
	if _, err := os.Stat(filepath.Join(wrongState, "db", "PG_VERSION")); !errors.Is(err, fs.ErrNotExist) {
		t.Fatalf("the passive trusting another CA copied the active: %v", err)
	}

	// A renewed certificate, as the kubelet writes it, reaches the running
	// PostgreSQL: new connections see its serial, PostgreSQL did not
	// restart, and the pair goes on.
	var started time.Time
	if err := activeDB.QueryRow(context.Background(), "SELECT pg_postmaster_start_time()").Scan(&started); err != nil {
		t.Fatal(err)
	}
	cert2, key2, serial2 := pgtest.ServerCert(t, ca, "localhost", "127.0.0.1", addr)
	pgtest.WriteSecretFile(t, filepath.Join(mounts.tls, "tls.key"), key2)
	pgtest.WriteSecretFile(t, filepath.Join(mounts.tls, "tls.crt"), cert2)
	bounded(t, 30*time.Second, "the active's PostgreSQL serves the renewed certificate", func() bool {
		return peerSerial(t, dsn(active, "sslmode=verify-full&sslrootcert="+url.QueryEscape(mounts.ca))).Cmp(serial2) == 0
	})
	var after time.Time
	if err := activeDB.QueryRow(context.Background(), "SELECT pg_postmaster_start_time()").Scan(&after); err != nil || !after.Equal(started) {
		t.Fatalf("the active's PostgreSQL started at %v, and at %v after the renewal (%v)", started, after, err)
	}
	if out := active.dbRun.Output(); !strings.Contains(out, "changed; PostgreSQL reloads them") {
		t.Errorf("kts db run does not say it reloads the certificate:\n%s", out)
	}
	checkPair(t, mounts, active, passive)

	// Set up again, the passive asks the active over TLS whether its copy
	// can still follow it, and keeps it.
	stopPods(t, passive)
	passive.setupOut = kts(t, "member", "setup", "--member", "passive", "--config", passive.conf, "--confdir", passive.state)
	if !strings.Contains(passive.setupOut, "exists and can follow the active") {
		t.Fatalf("second passive setup:\n%s", passive.setupOut)
	}
	passive.dbRun = startDBRun(t, passive)
	if err := passive.server.start(); err != nil {
		t.Fatal(err)
	}
	checkPair(t, mounts, active, passive)
	stopPods(t, active, passive)
}

// peerSerial connects with dsn and returns the serial of the certificate
// the server presented.
func peerSerial(t *testing.T, dsn string) *big.Int {
	t.Helper()
	conn, err := pgx.Connect(context.Background(), dsn)
	if err != nil {
		t.Fatalf("connect over TLS: %v", err)
	}
	defer conn.Close(context.Background())
	tc, ok := conn.PgConn().Conn().(*tls.Conn)
	if !ok {
		t.Fatalf("the connection is a %T, not TLS", conn.PgConn().Conn())
	}
	return tc.ConnectionState().PeerCertificates[0].SerialNumber
}

// hostIPv4 returns an IPv4 address of this host beyond loopback, or skips
// the test when there is none.
func hostIPv4(t *testing.T) string {
	t.Helper()
	addrs, err := net.InterfaceAddrs()
	if err != nil {
		t.Fatal(err)
	}
	for _, a := range addrs {
		if n, ok := a.(*net.IPNet); ok {
			if ip, ok := netip.AddrFromSlice(n.IP); ok {
				if ip = ip.Unmap(); ip.Is4() && !ip.IsLoopback() && !ip.IsLinkLocalUnicast() {
					return ip.String()
				}
			}
		}
	}
	t.Skip("this host has no IPv4 address besides loopback")
	return ""
}
