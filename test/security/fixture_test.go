package security

import (
	"bytes"
	"context"
	"crypto/tls"
	"crypto/x509"
	"errors"
	"fmt"
	"io"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"

	"trustee.dev/trustee/server/confdir"
	"trustee.dev/trustee/server/config"
	"trustee.dev/trustee/test/harness"
)

// sharedCipherList is the SSL_CIPHER_LIST of the shared server: two of Go's
// TLS 1.2 suites for its ECDSA certificate, so that a suite Go would
// otherwise offer (ECDHE-ECDSA-AES128-GCM-SHA256) must be refused.
const sharedCipherList = "ECDHE-ECDSA-AES256-GCM-SHA384:ECDHE-ECDSA-CHACHA20-POLY1305"

// serverOptions configure a server made by startServer.
type serverOptions struct {
	cipherList string
	// env is added to the environment of every kts command of the server
	// (an HSM's SOFTHSM2_CONF and PIN variable).
	env []string
	// prepare runs after the database is created and started, before the
	// server starts (kts keyhsm init).
	prepare func(s *server) error
}

// server is a `kts server` with its state directory and PostgreSQL, on
// free ports of 127.0.0.1.
type server struct {
	root, dir string // the temporary directory, and the state directory in it
	addr      string // host:port of the API
	url       string // https://addr
	env       []string

	proc harness.Restartable // `kts server`; its Logs hold everything it wrote, all its runs

	tlsConfig *tls.Config // trusts the server's self-signed certificate
	client    *http.Client
}

// startServer initializes a state directory (Ed25519 server key, self-signed
// certificate), creates and starts its PostgreSQL and starts the server. On
// error, whatever was started is stopped again.
func startServer(kts string, o serverOptions) (_ *server, err error) {
	root, err := os.MkdirTemp("", "kts-security-")
	if err != nil {
		return nil, err
	}
	// The PostgreSQL account must traverse it when the tests run as root.
	if err := os.Chmod(root, 0o755); err != nil {
		return nil, err
	}
	s := &server{root: root, dir: filepath.Join(root, "state"), env: o.env}
	dbStarted := false
	defer func() {
		if err != nil {
			s.stop()
			if dbStarted {
				s.kts("", "db", "stop", "--confdir", s.dir)
			}
			os.RemoveAll(root)
		}
	}()
	ports, err := harness.FreePorts(2)
	if err != nil {
		return nil, err
	}
	apiPort, dbPort := ports[0], ports[1]
	s.addr = "127.0.0.1:" + strconv.Itoa(apiPort)
	s.url = "https://" + s.addr
	if r := s.kts("", "init", "--confdir", s.dir, "--hostname", "localhost", "--key-type", "ed25519",
		"--listen", s.addr, "--db-port", strconv.Itoa(dbPort)); r.err != nil {
		return nil, fmt.Errorf("kts init: %s", r)
	}
	if o.cipherList != "" {
		cfg, err := config.Load(s.dir)
		if err != nil {
			return nil, err
		}
		cfg.SSLCipherList = o.cipherList
		if err := cfg.Save(s.dir); err != nil {
			return nil, err
		}
	}
	if r := s.kts("", "db", "init", "--confdir", s.dir); r.err != nil {
		return nil, fmt.Errorf("kts db init: %s", r)
	}
	if r := s.kts("", "db", "start", "--confdir", s.dir); r.err != nil {
		return nil, fmt.Errorf("kts db start: %s", r)
	}
	dbStarted = true
	if o.prepare != nil {
		if err := o.prepare(s); err != nil {
			return nil, err
		}
	}
	pem, err := os.ReadFile(filepath.Join(s.dir, ".ssl", "ssl-cert-keytrustee.pem"))
	if err != nil {
		return nil, err
	}
	roots := x509.NewCertPool()
	if !roots.AppendCertsFromPEM(pem) {
		return nil, errors.New("the server certificate does not parse")
	}
	s.tlsConfig = &tls.Config{RootCAs: roots, ServerName: "localhost"}
	s.client = &http.Client{
		Timeout:   30 * time.Second,
		Transport: &http.Transport{TLSClientConfig: s.tlsConfig, MaxIdleConnsPerHost: 64},
		// A redirect is an answer to look at, not to follow.
		CheckRedirect: func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse },
	}
	if err := s.start(); err != nil {
		return nil, err
	}
	return s, nil
}

// kts runs a kts command with the server's environment.
func (s *server) kts(stdin string, args ...string) result {
	return runCommand(s.env, stdin, filepath.Join(binDir, "kts"), args...)
}

// mustKTS runs a kts command on the server's state directory and fails the
// test if it fails.
func (s *server) mustKTS(t testing.TB, stdin string, args ...string) string {
	t.Helper()
	r := s.kts(stdin, append(args, "--confdir", s.dir)...)
	if r.err != nil {
		t.Fatalf("kts %s: %s", strings.Join(args, " "), r)
	}
	return r.stdout
}

// start runs `kts server` (log level debug: every request is logged) and
// waits until it serves.
func (s *server) start() error {
	s.proc.What = "kts server"
	s.proc.Command = func() *exec.Cmd {
		cmd := exec.Command(filepath.Join(binDir, "kts"), "server", "--confdir", s.dir, "--announce", "--log-level", "debug")
		cmd.Env = append(os.Environ(), s.env...)
		return cmd
	}
	s.proc.Announces = func(line string) bool { return strings.HasPrefix(line, "listening ") }
	s.proc.KeepStdout = true
	if err := s.proc.Start(30 * time.Second); err != nil {
		return fmt.Errorf("%v:\n%s", err, s.proc.Logs.Bytes())
	}
	return nil
}

// stop ends the server with SIGTERM (SIGKILL after 20 s).
func (s *server) stop() error { return s.proc.Stop(20 * time.Second) }

// restart stops the server and starts it again on the same state.
func (s *server) restart(t testing.TB) {
	t.Helper()
	if err := s.stop(); err != nil {
		t.Fatal(err)
	}
	if err := s.start(); err != nil {
		t.Fatal(err)
	}
}

// halt stops the server and its PostgreSQL, keeping the state.
func (s *server) halt() error {
	err := s.stop()
	if r := s.kts("", "db", "stop", "--confdir", s.dir); r.err != nil && err == nil {
		err = fmt.Errorf("kts db stop: %s", r)
	}
	return err
}

// close stops the server and its PostgreSQL and removes the state.
func (s *server) close() error {
	err := s.halt()
	os.RemoveAll(s.root)
	return err
}

// pid is the server process's id.
func (s *server) pid() int { return s.proc.Process().Cmd.Process.Pid }

// pgLog returns what PostgreSQL logged.
func (s *server) pgLog() []byte {
	b, _ := os.ReadFile(filepath.Join(s.dir, "db", "log", "postgresql.log"))
	return b
}

// db connects to the server's database as the server does (its superuser).
func (s *server) db(t testing.TB) *pgx.Conn {
	t.Helper()
	cfg, err := config.Load(s.dir)
	if err != nil {
		t.Fatal(err)
	}
	pw, err := confdir.ReadDBPassword(s.dir, cfg)
	if err != nil {
		t.Fatal(err)
	}
	conn, err := pgx.Connect(context.Background(), confdir.DSN(cfg, pw))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { conn.Close(context.Background()) })
	return conn
}

// snapshot describes, from the database, the given clients and their
// deposits: fingerprint, organization and state of each client; owner,
// name, size and digests of the sealed contents of each deposit.
func (s *server) snapshot(t testing.TB, fingerprints ...string) string {
	t.Helper()
	conn := s.db(t)
	var clients, deposits string
	err := conn.QueryRow(context.Background(), `SELECT
		coalesce((SELECT string_agg(format('%s %s %s', fingerprint, org_uuid, state), E'\n' ORDER BY fingerprint)
			FROM clients WHERE fingerprint = ANY($1)), ''),
		coalesce((SELECT string_agg(format('%s %s %s %s %s %s', owner, name, size, kek_id, md5(wrapped_key), md5(ciphertext)), E'\n' ORDER BY owner, name)
			FROM deposits WHERE owner = ANY($1)), '')`, fingerprints).Scan(&clients, &deposits)
	if err != nil {
		t.Fatal(err)
	}
	return "clients:\n" + clients + "\ndeposits:\n" + deposits
}

// The shared server, started by the first test that needs it and stopped
// by TestMain.
var (
	sharedOnce   sync.Once
	sharedServer *server
	sharedErr    error
)

// shared returns the server most tests use: default settings but for
// SSL_CIPHER_LIST (sharedCipherList).
func shared(t testing.TB) *server {
	t.Helper()
	kts := ktsBinary(t)
	sharedOnce.Do(func() {
		sharedServer, sharedErr = startServer(kts, serverOptions{cipherList: sharedCipherList})
	})
	if sharedErr != nil {
		t.Fatalf("starting the shared server: %v", sharedErr)
	}
	if sharedServer.proc.Process() == nil {
		t.Fatal("the shared server is not running (a test stopped it)")
	}
	return sharedServer
}

// sweepShared searches what the shared server logged and exposed — its log,
// its PostgreSQL's log and its metrics — for every secret a test used, then
// stops it.
func sweepShared() error {
	s := sharedServer
	if s == nil {
		return nil
	}
	var metrics []byte
	if s.proc.Process() != nil {
		if resp, err := s.client.Get(s.url + "/metrics"); err == nil {
			metrics, _ = io.ReadAll(resp.Body)
			resp.Body.Close()
		}
	}
	closeErr := s.halt()
	sources := map[string][]byte{
		"the shared server's log":            s.proc.Logs.Bytes(),
		"the shared server's PostgreSQL log": s.pgLog(),
		"the shared server's /metrics":       metrics,
	}
	os.RemoveAll(s.root)
	if len(metrics) == 0 || !bytes.Contains(sources["the shared server's log"], []byte(`"route":`)) {
		return errors.New("sweep: the shared server's log or /metrics could not be read")
	}
	if found := used.findIn(sources); len(found) > 0 {
		return fmt.Errorf("secrets used by the tests appear where they must not:\n%s", strings.Join(found, "\n"))
	}
	if closeErr != nil {
		return fmt.Errorf("stopping the shared server: %w", closeErr)
	}
	return nil
}
