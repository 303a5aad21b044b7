//go:build unix

package pg_test

import (
	"bytes"
	"context"
	"crypto/tls"
	"math/big"
	"net/netip"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"

	"trustee.dev/trustee/server/pg"
	"trustee.dev/trustee/server/pg/pgtest"
	"trustee.dev/trustee/test/harness"
)

// tlsFiles are a server's certificate and key and its CA's certificate,
// in a directory the server account can reach.
type tlsFiles struct{ cert, key, ca string }

func newTLSFiles(t *testing.T, inst *pg.Instance) tlsFiles {
	t.Helper()
	dir := filepath.Join(filepath.Dir(inst.DataDir), "tls")
	if err := os.Mkdir(dir, 0o755); err != nil {
		t.Fatal(err)
	}
	return tlsFiles{filepath.Join(dir, "tls.crt"), filepath.Join(dir, "tls.key"), filepath.Join(dir, "ca.crt")}
}

// peerSerial connects to the instance at host over TLS, verifying its
// certificate against ca, and returns the serial of the certificate it
// presented.
func peerSerial(t *testing.T, ctx context.Context, inst *pg.Instance, host, ca, password string) (*big.Int, error) {
	t.Helper()
	remote := *inst
	remote.Host = host
	remote.TLS = &pg.TLS{CAFile: ca}
	conn, err := pgx.Connect(ctx, remote.ConnString(pg.DefaultDatabase, password))
	if err != nil {
		return nil, err
	}
	defer conn.Close(context.Background())
	var ssl bool
	if err := conn.QueryRow(ctx, "SELECT ssl FROM pg_stat_ssl WHERE pid = pg_backend_pid()").Scan(&ssl); err != nil || !ssl {
		t.Fatalf("pg_stat_ssl of a connection over TLS: ssl %v, %v", ssl, err)
	}
	tc, ok := conn.PgConn().Conn().(*tls.Conn)
	if !ok {
		t.Fatalf("the connection to %s is a %T, not TLS", host, conn.PgConn().Conn())
	}
	return tc.ConnectionState().PeerCertificates[0].SerialNumber, nil
}

// TestTLS runs a server with TLS on an address of this host beyond
// loopback: clients there connect over TLS only, verifying its
// certificate; loopback stays as it was; a renewed certificate is served
// without a restart, by Run when the files change and by Reload.
func TestTLS(t *testing.T) {
	ctx := testContext(t)
	addr := hostAddress(t).String()
	inst := pgtest.NewInstance(t)
	inst.NoSync = true
	inst.ListenAddresses = "127.0.0.1," + addr
	inst.ClientsFrom = []string{netip.PrefixFrom(netip.MustParseAddr(addr), 32).String()}
	files := newTLSFiles(t, inst)
	ca := pgtest.NewCA(t, "pg test CA")
	cert, key, serial := pgtest.ServerCert(t, ca, "localhost", "127.0.0.1", addr)
	pgtest.WriteSecretFile(t, files.cert, cert)
	pgtest.WriteSecretFile(t, files.key, key)
	pgtest.WriteSecretFile(t, files.ca, ca.CertPEM())
	inst.TLS = &pg.TLS{CertFile: files.cert, KeyFile: files.key, CAFile: files.ca}
	if err := inst.Init(ctx, superPassword); err != nil {
		t.Fatal(err)
	}

	runCtx, stop := context.WithCancel(ctx)
	var log harness.Buffer
	done := make(chan error, 1)
	go func() { done <- inst.Run(runCtx, pg.RunOptions{Log: &log}) }()
	t.Cleanup(func() { stop(); <-done })
	local := connectEventually(t, ctx, inst)
	var minVersion string
	if err := local.QueryRow(ctx, "SHOW ssl_min_protocol_version").Scan(&minVersion); err != nil || minVersion != "TLSv1.2" {
		t.Errorf("ssl_min_protocol_version = %q, %v", minVersion, err)
	}
	var ssl bool
	if err := local.QueryRow(ctx, "SELECT ssl FROM pg_stat_ssl WHERE pid = pg_backend_pid()").Scan(&ssl); err != nil || ssl {
		t.Errorf("over loopback the connection uses TLS: %v, %v", ssl, err)
	}

	// Beyond loopback: TLS, verified; nothing in clear.
	if got, err := peerSerial(t, ctx, inst, addr, files.ca, superPassword); err != nil || got.Cmp(serial) != 0 {
		t.Fatalf("serial over TLS from %s = %v, %v; want %v", addr, got, err, serial)
	}
	plain := *inst
	plain.Host, plain.TLS = addr, nil
	if c, err := pgx.Connect(ctx, plain.ConnString(pg.DefaultDatabase, superPassword)); !isCode(err, "28000") || !strings.Contains(err.Error(), "no encryption") {
		if c != nil {
			c.Close(ctx)
		}
		t.Fatalf("a connection in clear from %s: %v; want no pg_hba.conf entry (28000) for no encryption", addr, err)
	}
	other := pgtest.NewCA(t, "another CA")
	otherCA := filepath.Join(filepath.Dir(files.ca), "other-ca.crt")
	pgtest.WriteSecretFile(t, otherCA, other.CertPEM())
	if _, err := peerSerial(t, ctx, inst, addr, otherCA, superPassword); err == nil || !strings.Contains(err.Error(), "certificate signed by unknown authority") {
		t.Fatalf("a client trusting another CA: %v", err)
	}

	// pg_dump beyond loopback verifies the server as well.
	remote := *inst
	remote.Host = addr
	var dump bytes.Buffer
	if err := remote.Dump(ctx, superPassword, pg.DefaultDatabase, &dump); err != nil {
		t.Fatalf("Dump over TLS: %v", err)
	}
	remote.TLS = &pg.TLS{CAFile: otherCA}
	if err := remote.Dump(ctx, superPassword, pg.DefaultDatabase, &bytes.Buffer{}); err == nil || !strings.Contains(err.Error(), "certificate verify failed") {
		t.Fatalf("Dump trusting another CA: %v", err)
	}

	// A renewed certificate reaches new connections, without a restart.
	var started time.Time
	if err := local.QueryRow(ctx, "SELECT pg_postmaster_start_time()").Scan(&started); err != nil {
		t.Fatal(err)
	}
	cert2, key2, serial2 := pgtest.ServerCert(t, ca, "localhost", "127.0.0.1", addr)
	pgtest.WriteSecretFile(t, files.key, key2)
	pgtest.WriteSecretFile(t, files.cert, cert2)
	eventually(t, "the renewed certificate is served", func() bool {
		got, err := peerSerial(t, ctx, inst, addr, files.ca, superPassword)
		return err == nil && got.Cmp(serial2) == 0
	})
	var after time.Time
	if err := local.QueryRow(ctx, "SELECT pg_postmaster_start_time()").Scan(&after); err != nil || !after.Equal(started) {
		t.Errorf("PostgreSQL started at %v, and at %v after the renewal (%v)", started, after, err)
	}
	for _, want := range []string{"the TLS certificate files " + files.cert + " and " + files.key + " changed; PostgreSQL reloads them",
		"received SIGHUP, reloading configuration files"} {
		if !strings.Contains(log.String(), want) {
			t.Errorf("the log lacks %q:\n%s", want, log.String())
		}
	}
	local.Close(ctx)
	stop()
	if err := <-done; err != nil {
		t.Fatalf("Run: %v\n%s", err, log.String())
	}
	done <- nil // for the cleanup

	// Started in the background, Reload serves a renewed certificate.
	if err := inst.Start(ctx); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { inst.Stop(context.Background()) })
	cert3, key3, serial3 := pgtest.ServerCert(t, ca, "localhost", "127.0.0.1", addr)
	pgtest.WriteSecretFile(t, files.key, key3)
	pgtest.WriteSecretFile(t, files.cert, cert3)
	if got, err := peerSerial(t, ctx, inst, addr, files.ca, superPassword); err != nil || got.Cmp(serial2) != 0 {
		t.Fatalf("before Reload the server presents %v, %v; want %v", got, err, serial2)
	}
	if err := inst.Reload(ctx); err != nil {
		t.Fatal(err)
	}
	eventually(t, "Reload serves the renewed certificate", func() bool {
		got, err := peerSerial(t, ctx, inst, addr, files.ca, superPassword)
		return err == nil && got.Cmp(serial3) == 0
	})
	if err := inst.Stop(ctx); err != nil {
		t.Fatal(err)
	}
	if err := inst.Reload(ctx); err == nil || !strings.Contains(err.Error(), "is not running") {
		t.Errorf("Reload of a stopped server: %v", err)
	}
}

// connectEventually connects over loopback once the server takes
// connections.
func connectEventually(t *testing.T, ctx context.Context, inst *pg.Instance) *pgx.Conn {
	t.Helper()
	var conn *pgx.Conn
	eventually(t, "the server takes connections", func() bool {
		var err error
		conn, err = pgx.Connect(ctx, inst.ConnString(pg.DefaultDatabase, superPassword))
		return err == nil
	})
	t.Cleanup(func() { conn.Close(context.Background()) })
	return conn
}

// TestTLSFilesPostgreSQLCannotUse refuses to start a server whose key
// PostgreSQL would refuse, or whose files its account cannot read, and
// says what to do.
func TestTLSFilesPostgreSQLCannotUse(t *testing.T) {
	ctx := testContext(t)
	inst := pgtest.NewInstance(t)
	inst.NoSync = true
	if err := inst.Init(ctx, superPassword); err != nil {
		t.Fatal(err)
	}
	files := newTLSFiles(t, inst)
	ca := pgtest.NewCA(t, "pg test CA")
	cert, key, _ := pgtest.ServerCert(t, ca, "localhost")
	pgtest.WriteSecretFile(t, files.cert, cert)
	pgtest.WriteSecretFile(t, files.key, key)
	inst.TLS = &pg.TLS{CertFile: files.cert, KeyFile: files.key}

	if err := os.Chmod(files.key, 0o644); err != nil {
		t.Fatal(err)
	}
	err := inst.Start(ctx)
	want := "PostgreSQL takes a private key its own account owns only with mode 0600 or less"
	if os.Geteuid() == 0 {
		want = "PostgreSQL takes a private key root owns only with mode 0640 or less"
	}
	if err == nil || !strings.Contains(err.Error(), want) {
		t.Fatalf("Start with a key of mode 0644: %v; want %q", err, want)
	}
	if os.Geteuid() == 0 {
		// Root's alone: the server account cannot read it.
		if err := os.Chown(files.key, 0, 0); err != nil {
			t.Fatal(err)
		}
		if err := os.Chmod(files.key, 0o440); err != nil {
			t.Fatal(err)
		}
		err := inst.Start(ctx)
		if err == nil || !strings.Contains(err.Error(), `PostgreSQL runs as OS account "postgres", which cannot read `+files.key) ||
			!strings.Contains(err.Error(), "make it readable by a group of that account") {
			t.Fatalf("Start with a key only root reads: %v", err)
		}
	}
	if st, _ := inst.Status(ctx); st.Running {
		t.Fatal("the server runs")
	}
	os.Remove(files.key)
	if err := inst.Start(ctx); err == nil || !strings.Contains(err.Error(), "PostgreSQL's TLS private key: ") ||
		!strings.Contains(err.Error(), "no such file") {
		t.Fatalf("Start without the key file: %v", err)
	}
}
