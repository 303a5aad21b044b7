package tlsconf

import (
	"crypto/tls"
	"log/slog"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"trustee.dev/trustee/test/harness"
)

// testPassword is the key password used by the tests; it must never show up
// in errors or logs.
const testPassword = "secret"

func newTestLogger(t *testing.T) (*slog.Logger, *harness.Buffer) {
	t.Helper()
	buf := &harness.Buffer{}
	t.Cleanup(func() {
		if strings.Contains(buf.String(), testPassword) {
			t.Errorf("the log contains the key password:\n%s", buf)
		}
	})
	return slog.New(slog.NewTextHandler(buf, &slog.HandlerOptions{Level: slog.LevelDebug})), buf
}

func requireOpenSSL(t *testing.T) {
	t.Helper()
	if _, err := exec.LookPath("openssl"); err != nil {
		t.Fatal("openssl is not installed (`make test` installs it)")
	}
}

// openssl runs the openssl command in dir.
func openssl(t *testing.T, dir string, args ...string) {
	t.Helper()
	cmd := exec.Command("openssl", args...)
	cmd.Dir = dir
	if out, err := cmd.CombinedOutput(); err != nil {
		t.Fatalf("openssl %s: %v\n%s", strings.Join(args, " "), err, out)
	}
}

// selfSign writes a self-signed certificate for localhost to certFile,
// for the key in keyFile; extra are further openssl req arguments.
func selfSign(t *testing.T, dir, keyFile, certFile string, extra ...string) {
	t.Helper()
	args := []string{"req", "-x509", "-new", "-key", keyFile, "-subj", "/CN=localhost",
		"-addext", "subjectAltName=DNS:localhost,IP:127.0.0.1", "-days", "2", "-out", certFile}
	openssl(t, dir, append(args, extra...)...)
}

func writeFile(t *testing.T, path, data string) {
	t.Helper()
	if err := os.WriteFile(path, []byte(data), 0o600); err != nil {
		t.Fatal(err)
	}
}

func readFile(t *testing.T, path string) string {
	t.Helper()
	data, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	return string(data)
}

// replaceFile atomically replaces path with data, as an operator would with
// mv.
func replaceFile(t *testing.T, path string, data string) {
	t.Helper()
	tmp := path + ".new"
	writeFile(t, tmp, data)
	if err := os.Rename(tmp, path); err != nil {
		t.Fatal(err)
	}
}

// serve runs a TLS server with cfg on 127.0.0.1 that completes handshakes
// and closes the connections; it returns the address.
func serve(t *testing.T, cfg *tls.Config) string {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { ln.Close() })
	go func() {
		for {
			c, err := ln.Accept()
			if err != nil {
				return
			}
			go func() {
				defer c.Close()
				c.SetDeadline(time.Now().Add(10 * time.Second))
				tc := tls.Server(c, cfg)
				if tc.Handshake() == nil {
					tc.Write([]byte("ok"))
				}
			}()
		}
	}()
	return ln.Addr().String()
}

// handshake connects to addr with cfg and returns the connection state once
// the server has spoken.
func handshake(addr string, cfg *tls.Config) (tls.ConnectionState, error) {
	d := &net.Dialer{Timeout: 10 * time.Second}
	c, err := tls.DialWithDialer(d, "tcp", addr, cfg)
	if err != nil {
		return tls.ConnectionState{}, err
	}
	defer c.Close()
	c.SetDeadline(time.Now().Add(10 * time.Second))
	buf := make([]byte, 2)
	if _, err := c.Read(buf); err != nil {
		return tls.ConnectionState{}, err
	}
	return c.ConnectionState(), nil
}

// insecureClient accepts any server certificate: the tests look at which
// certificate is served, not at whether it is trusted.
func insecureClient() *tls.Config {
	return &tls.Config{InsecureSkipVerify: true}
}

func tempPath(t *testing.T, name string) string {
	return filepath.Join(t.TempDir(), name)
}
