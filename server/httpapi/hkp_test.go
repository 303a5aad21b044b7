package httpapi_test

import (
	"bytes"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"os"
	"os/exec"
	"strings"
	"testing"

	"trustee.dev/trustee/server/httpapi"
	"trustee.dev/trustee/server/openpgp/openpgptest"
	"trustee.dev/trustee/test/harness"
)

// publicServer serves e's public handler (HKP and the fingerprint) over
// plain HTTP, as port 11371 does, with a log of its own.
func publicServer(t *testing.T, e *env) (*httptest.Server, *harness.Buffer) {
	t.Helper()
	logs := &harness.Buffer{}
	api := httpapi.New(httpapi.Options{Store: e.store, ServerKey: e.key.Public(),
		Log: slog.New(slog.NewJSONHandler(logs, &slog.HandlerOptions{Level: slog.LevelDebug}))})
	srv := httptest.NewServer(api.PublicHandler())
	t.Cleanup(srv.Close)
	return srv, logs
}

func httpGet(t *testing.T, url string) (int, string, string) {
	t.Helper()
	resp, err := http.Get(url)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	var b bytes.Buffer
	b.ReadFrom(resp.Body)
	return resp.StatusCode, resp.Header.Get("Content-Type"), b.String()
}

// op=index answers the machine-readable index: the server's key by
// fingerprint, key ID or user ID text; a client's key only by its full
// fingerprint (clients cannot be enumerated); 404 when nothing matches. An
// operation that is not offered is the client's error: 501, not logged as
// an error.
func TestHKPIndex(t *testing.T) {
	e := newEnv(t)
	if a := e.register(1, "open", ""); a.status != http.StatusCreated {
		t.Fatalf("register: %d %s", a.status, a.body)
	}
	srv, logs := publicServer(t, e)
	server, client := e.key.Public(), openpgptest.Key(t, 1).Public()
	serverIndex := "info:1:1\npub:" + server.Fingerprint() + ":22:255:"
	for _, c := range []struct {
		search string
		status int
		prefix string
	}{
		{"0x" + server.Fingerprint(), 200, serverIndex},
		{"0x" + server.Fingerprint()[24:], 200, serverIndex},
		{"0x" + strings.ToLower(server.Fingerprint()[32:]), 200, serverIndex},
		{"TEST", 200, serverIndex},
		{"0x" + client.Fingerprint(), 200, "info:1:1\npub:" + client.Fingerprint() + ":22:255:"},
		{"0x" + client.Fingerprint()[24:], 404, ""}, // a client's key ID
		{"nobody", 404, ""},
		{"0x12", 400, ""},
		{"", 400, ""},
	} {
		status, ctype, body := httpGet(t, srv.URL+"/pks/lookup?op=index&options=mr&search="+c.search)
		if status != c.status || !strings.HasPrefix(body, c.prefix) {
			t.Errorf("index %q: %d %q, want %d %q…", c.search, status, body, c.status, c.prefix)
		}
		if status == 200 && (ctype != "text/plain; charset=utf-8" || !strings.Contains(body, "\nuid:test:")) {
			t.Errorf("index %q: %s %q", c.search, ctype, body)
		}
	}
	for _, op := range []string{"stats", "vindex", ""} {
		if status, _, body := httpGet(t, srv.URL+"/pks/lookup?op="+op+"&search=test"); status != http.StatusNotImplemented || !strings.Contains(body, `"unsupported_op"`) {
			t.Errorf("op=%s: %d %s", op, status, body)
		}
	}
	if strings.Contains(logs.String(), `"level":"ERROR"`) {
		t.Fatalf("a client's lookup was logged as a server error:\n%s", logs.String())
	}
}

// gpg --search-keys finds the server's key and a registered client's key
// on the server's HKP port, and imports what it finds.
func TestGPGSearchKeys(t *testing.T) {
	e := newEnv(t)
	if a := e.register(1, "open", ""); a.status != http.StatusCreated {
		t.Fatalf("register: %d %s", a.status, a.body)
	}
	srv, _ := publicServer(t, e)
	home := t.TempDir()
	if err := os.Chmod(home, 0o700); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { exec.Command("gpgconf", "--homedir", home, "--kill", "all").Run() })
	gpg := func(args ...string) string {
		t.Helper()
		cmd := exec.Command("gpg", append([]string{"--homedir", home, "--batch", "--no-tty", "--keyserver", "hkp://" + srv.Listener.Addr().String()}, args...)...)
		cmd.Env = append(os.Environ(), "GNUPGHOME="+home)
		out, err := cmd.CombinedOutput()
		if err != nil {
			t.Fatalf("gpg %v: %v\n%s", args, err, out)
		}
		return string(out)
	}
	server, client := e.key.Public(), openpgptest.Key(t, 1).Public()
	for _, c := range []struct{ search, want string }{
		{"test", server.Fingerprint()},
		{"0x" + server.Fingerprint(), server.Fingerprint()},
		{"0x" + client.Fingerprint(), client.Fingerprint()},
	} {
		out := gpg("--with-colons", "--search-keys", c.search)
		if !strings.Contains(out, "info:1:1") || !strings.Contains(out, "pub:"+c.want+":") {
			t.Errorf("gpg --search-keys %s:\n%s", c.search, out)
		}
	}
	gpg("--recv-keys", server.Fingerprint())
	if out := gpg("--with-colons", "--list-keys", server.Fingerprint()); !strings.Contains(out, "fpr:::::::::"+server.Fingerprint()+":") {
		t.Fatalf("the server's key was not imported:\n%s", out)
	}
}
