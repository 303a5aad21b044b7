package e2e

import (
	"context"
	"crypto/sha256"
	"encoding/json"
	"io/fs"
	"maps"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"slices"
	"strconv"
	"strings"
	"testing"

	"github.com/jackc/pgx/v5"

	"trustee.dev/trustee/server/audit"
	"trustee.dev/trustee/server/confdir"
	"trustee.dev/trustee/server/config"
	"trustee.dev/trustee/test/harness"
	"trustee.dev/trustee/test/memberpods"
)

func itoa(i int) string { return strconv.Itoa(i) }

// TestServerAsUsersRunIt walks the documented operations in order: init,
// database, server, organizations, clients, deposits, GnuPG interop and the
// gpg + curl example of docs/API.md.
func TestServerAsUsersRunIt(t *testing.T) {
	root := memberpods.RootDir(t)
	dir := filepath.Join(root, "keytrustee")
	apiPort, dbPort := harness.FreePort(t), harness.FreePort(t)
	url := "https://127.0.0.1:" + itoa(apiPort)

	// kts init: RSA 4096 identity, self-signed certificate, 0700/0600 files.
	r := runTool(t, "", "kts", "init", "--confdir", dir, "--hostname", "localhost",
		"--listen", "127.0.0.1:"+itoa(apiPort), "--db-port", itoa(dbPort))
	if r.err != nil {
		t.Fatalf("kts init: %v\n%s", r.err, r.stderr)
	}
	if !strings.Contains(r.stderr, "self-signed") || !strings.Contains(r.stderr, "CA") {
		t.Errorf("init did not warn about the self-signed certificate: %q", r.stderr)
	}
	m := regexp.MustCompile(`server fingerprint: (4096R/([0-9A-F]{40}))`).FindStringSubmatch(r.stdout)
	if m == nil {
		t.Fatalf("init output lacks a 4096R fingerprint:\n%s", r.stdout)
	}
	serverID, serverFP := m[1], m[2]
	checkModes(t, dir)
	before := hashTree(t, dir)
	if out := kts(t, "init", "--confdir", dir); !strings.Contains(out, "nothing changed") {
		t.Errorf("second init: %q", out)
	}
	if !maps.Equal(before, hashTree(t, dir)) {
		t.Fatal("second init changed files")
	}

	// kts db: the local PostgreSQL.
	kts(t, "db", "init", "--confdir", dir)
	kts(t, "db", "start", "--confdir", dir)
	t.Cleanup(func() { runTool(t, "", "kts", "db", "stop", "--confdir", dir) })
	if out := kts(t, "db", "status", "--confdir", dir); !strings.Contains(out, "running") {
		t.Fatalf("db status: %q", out)
	}
	startServer(t, dir)

	// The fingerprint, as the reference docs check it.
	if out := curl(t, "-k", url+"/?a=fingerprint"); out != serverID {
		t.Fatalf("curl -k /?a=fingerprint = %q, want %q", out, serverID)
	}

	// Organizations through the keytrustee-orgtool link.
	orgtool := func(stdin string, args ...string) result {
		return runTool(t, stdin, "keytrustee-orgtool", append(args, "--confdir", dir)...)
	}
	if r := orgtool("", "add", "-n", "disaster-recov", "-c", "finn@example.com,jake@example.com"); r.err != nil {
		t.Fatalf("orgtool add: %v %s", r.err, r.stderr)
	}
	if r := orgtool("", "add", "-n", "disaster-recov", "-c", "marceline@example.com"); r.err != nil {
		t.Fatalf("orgtool add contact: %v %s", r.err, r.stderr)
	}
	listed := orgList(t, orgtool)
	o := listed["disaster-recov"]
	keys := slices.Sorted(maps.Keys(o))
	if want := []string{"auth_secret", "contacts", "creation", "expiration", "key_info", "name", "state", "uuid"}; !slices.Equal(keys, want) {
		t.Fatalf("list entry keys %v, want %v", keys, want)
	}
	if o["auth_secret"] != "<hidden>" || len(o["contacts"].([]any)) != 3 || o["key_info"] != nil || o["state"] != float64(0) {
		t.Fatalf("list entry: %v", o)
	}
	// Bad input: a clear error, nothing changed.
	for _, bad := range [][]string{
		{"add", "-n", "disaster recov", "-c", "a@example.com"},
		{"add", "-n", "bad!name", "-c", "a@example.com"},
		{"add", "-n", "other", "-c", "a@example.com, b@example.com"},
		{"add", "-n", "other", "-c", "not-an-address"},
		{"set-auth", "-n", "nosuch", "-s", "x"},
		{"enable-client", "--fingerprint", "1234"},
		{"enable-client", "--fingerprint", strings.Repeat("A", 40)},
	} {
		r := orgtool("", bad...)
		if r.err == nil || !strings.Contains(r.stderr, "Error:") {
			t.Errorf("orgtool %v: want an error, got %v %q", bad, r.err, r.stdout)
		}
	}
	if after := orgList(t, orgtool); len(after) != 1 {
		t.Fatalf("refused commands changed the organizations: %v", after)
	}
	const code = "ThisISAs3cr3t!"
	if r := orgtool(code+"\n", "set-auth", "-n", "disaster-recov", "-s", "-"); r.err != nil || strings.Contains(r.stdout+r.stderr, code) {
		t.Fatalf("set-auth: %v %q %q", r.err, r.stdout, r.stderr)
	}
	assertCodeNotStored(t, dir, code)

	// The reference client: active with the code, verified against the CA file.
	ca := filepath.Join(dir, ".ssl", "ssl-cert-keytrustee.pem")
	codeFile := filepath.Join(root, "code")
	os.WriteFile(codeFile, []byte(code+"\n"), 0o600)
	c1 := filepath.Join(root, "client1")
	out := kts(t, "client", "register", "--dir", c1, "--server", url, "--org", "disaster-recov", "--auth-code-file", codeFile, "--ca-file", ca)
	if !strings.Contains(out, "state: active") || !strings.Contains(out, serverID) {
		t.Fatalf("register: %s", out)
	}
	checkModes(t, c1)
	deposit := filepath.Join(root, "deposit")
	os.WriteFile(deposit, []byte("an encrypted data key\x00\xff"), 0o600)
	kts(t, "client", "put", "--dir", c1, "key1", deposit)
	if got := kts(t, "client", "get", "--dir", c1, "key1"); got != "an encrypted data key\x00\xff" {
		t.Fatalf("get = %q", got)
	}
	if got := kts(t, "client", "get", "--dir", c1, "--sign-each", "key1"); got != "an encrypted data key\x00\xff" {
		t.Fatalf("signed get = %q", got)
	}
	if got := kts(t, "client", "list", "--dir", c1); !strings.Contains(got, `"name": "key1"`) {
		t.Fatalf("list = %q", got)
	}
	if r := runTool(t, "", "kts", "client", "put", "--dir", c1, "key1", deposit); r.err == nil || !strings.Contains(r.stderr, "already_exists") {
		t.Fatalf("second put of key1: %v %q", r.err, r.stderr)
	}
	kts(t, "client", "delete", "--dir", c1, "key1")
	if r := runTool(t, "", "kts", "client", "get", "--dir", c1, "key1"); r.err == nil || !strings.Contains(r.stderr, "404") {
		t.Fatalf("get after delete: %v %q", r.err, r.stderr)
	}
	// Without the CA file or --skip-ssl-check the self-signed server is refused.
	if r := runTool(t, "", "kts", "client", "register", "--dir", filepath.Join(root, "c-noca"), "--server", url, "--org", "disaster-recov"); r.err == nil {
		t.Fatal("registration trusted a self-signed certificate without --ca-file or --skip-ssl-check")
	}

	// A client with a wrong code waits for an administrator (ktadmin link).
	c2 := filepath.Join(root, "client2")
	r = runTool(t, "", "kts", "client", "register", "--dir", c2, "--server", url, "--org", "disaster-recov", "--auth-code", "wrong", "--skip-ssl-check")
	if r.err != nil || !strings.Contains(r.stdout, "state: pending") || !strings.Contains(r.stderr, "skip-ssl-check") {
		t.Fatalf("pending register: %v %q %q", r.err, r.stdout, r.stderr)
	}
	fp2 := regexp.MustCompile(`fingerprint: ([0-9A-F]{40})`).FindStringSubmatch(r.stdout)[1]
	if r := runTool(t, "", "kts", "client", "put", "--dir", c2, "k", deposit); r.err == nil || !strings.Contains(r.stderr, "403") {
		t.Fatalf("pending put: %v %q", r.err, r.stderr)
	}
	if r := runTool(t, "", "ktadmin", "org", "enable-client", "--fingerprint", fp2, "--confdir", dir); r.err != nil || !strings.Contains(r.stdout, "active (was pending)") {
		t.Fatalf("enable-client: %v %q %q", r.err, r.stdout, r.stderr)
	}
	kts(t, "client", "put", "--dir", c2, "k", deposit)
	if r := orgtool("", "disable-client", "--fingerprint", fp2); r.err != nil {
		t.Fatalf("disable-client: %v %s", r.err, r.stderr)
	}
	if r := runTool(t, "", "kts", "client", "get", "--dir", c2, "k"); r.err == nil || !strings.Contains(r.stderr, "403") {
		t.Fatalf("disabled get: %v %q", r.err, r.stderr)
	}

	// GnuPG fetches the server's and a client's key over HKP on the same port.
	gpgFetch(t, root, apiPort, serverFP)
	gpgFetch(t, root, apiPort, fp2)
	if out := curl(t, "http://127.0.0.1:"+itoa(apiPort)+"/?a=fingerprint"); out != serverID {
		t.Fatalf("plain-HTTP fingerprint = %q", out)
	}
	if out, err := exec.Command("curl", "-s", "http://127.0.0.1:"+itoa(apiPort)+"/v1/deposits").Output(); err != nil || !strings.Contains(string(out), "https_required") {
		t.Fatalf("plain-HTTP API request: %v %s", err, out)
	}

	// docs/API.md's gpg + curl client, as written.
	script := apiExample(t)
	cmd := exec.Command("bash", "-c", script)
	cmd.Env = append(os.Environ(), "KTS_URL="+url, "KTS_CA="+ca, "KTS_ORG=disaster-recov", "KTS_AUTH_CODE="+code)
	outb, err := cmd.CombinedOutput()
	if err != nil || !strings.Contains(string(outb), "fetched the same bytes") || !strings.Contains(string(outb), `"state": "active"`) {
		t.Fatalf("docs/API.md example failed: %v\n%s", err, outb)
	}
}

func curl(t *testing.T, args ...string) string {
	t.Helper()
	out, err := exec.Command("curl", append([]string{"--silent", "--show-error", "--fail"}, args...)...).Output()
	if err != nil {
		t.Fatalf("curl %v: %v", args, err)
	}
	return string(out)
}

func orgList(t *testing.T, orgtool func(string, ...string) result) map[string]map[string]any {
	t.Helper()
	r := orgtool("", "list")
	if r.err != nil {
		t.Fatalf("orgtool list: %v %s", r.err, r.stderr)
	}
	var out map[string]map[string]any
	if err := json.Unmarshal([]byte(r.stdout), &out); err != nil {
		t.Fatalf("list is not JSON: %v\n%s", err, r.stdout)
	}
	return out
}

// assertCodeNotStored reads the organizations table directly.
func assertCodeNotStored(t *testing.T, dir, code string) {
	t.Helper()
	cfg, err := config.Load(dir)
	if err != nil {
		t.Fatal(err)
	}
	pw, err := confdir.ReadDBPassword(dir, cfg)
	if err != nil {
		t.Fatal(err)
	}
	conn, err := pgx.Connect(context.Background(), confdir.DSN(cfg, pw))
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close(context.Background())
	var dump string
	if err := conn.QueryRow(context.Background(), `SELECT string_agg(o::text, ' ') FROM organizations o`).Scan(&dump); err != nil {
		t.Fatal(err)
	}
	if strings.Contains(dump, code) || !strings.Contains(dump, "argon2id$") {
		t.Fatalf("auth code not stored as a hash: %s", dump)
	}
}

// checkModes asserts a state directory is 0700 and its files 0600. Once
// it holds a database, and the tests run as root, the PostgreSQL account
// may pass through the state directory itself: 0710.
func checkModes(t *testing.T, dir string) {
	t.Helper()
	err := filepath.WalkDir(dir, func(p string, d fs.DirEntry, err error) error {
		if err != nil {
			return err
		}
		if p != dir && d.IsDir() && d.Name() == "db" {
			return fs.SkipDir // PostgreSQL's own data directory
		}
		fi, err := d.Info()
		if err != nil {
			return err
		}
		want := fs.FileMode(0o600)
		if d.IsDir() {
			want = 0o700
		}
		if _, err := os.Stat(filepath.Join(dir, "db")); p == dir && err == nil && os.Geteuid() == 0 {
			want = 0o710
		}
		if fi.Mode().Perm() != want {
			t.Errorf("%s has mode %v, want %v", p, fi.Mode().Perm(), want)
		}
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
}

// hashTree hashes the files under dir, except a running server's audit
// journal (audit/), which the server itself keeps appending to.
func hashTree(t *testing.T, dir string) map[string][32]byte {
	t.Helper()
	out := map[string][32]byte{}
	filepath.WalkDir(dir, func(p string, d fs.DirEntry, err error) error {
		if err == nil && d.IsDir() && p == filepath.Join(dir, audit.JournalDir) {
			return filepath.SkipDir
		}
		if err == nil && !d.IsDir() {
			b, _ := os.ReadFile(p)
			out[p] = sha256.Sum256(b)
		}
		return nil
	})
	return out
}

// gpgFetch fetches a key with gpg --recv-keys from the server's port.
func gpgFetch(t *testing.T, root string, port int, fp string) {
	t.Helper()
	home := filepath.Join(root, "gnupg-hkp")
	os.Mkdir(home, 0o700)
	env := append(os.Environ(), "GNUPGHOME="+home)
	defer exec.Command("gpgconf", "--homedir", home, "--kill", "all").Run()
	cmd := exec.Command("gpg", "--batch", "--keyserver", "hkp://127.0.0.1:"+itoa(port), "--recv-keys", fp)
	cmd.Env = env
	if out, err := cmd.CombinedOutput(); err != nil {
		t.Fatalf("gpg --recv-keys over hkps: %v\n%s", err, out)
	}
	cmd = exec.Command("gpg", "--batch", "--with-colons", "--list-keys", fp)
	cmd.Env = env
	if out, err := cmd.Output(); err != nil || !strings.Contains(string(out), fp) {
		t.Fatalf("fetched key not in the keyring: %v\n%s", err, out)
	}
}

// apiExample returns the shell example of docs/API.md.
func apiExample(t *testing.T) string {
	t.Helper()
	doc, err := os.ReadFile("../../docs/API.md")
	if err != nil {
		t.Fatal(err)
	}
	m := regexp.MustCompile("(?s)<!-- api-example:begin -->\n```sh\n(.*?)```\n<!-- api-example:end -->").FindSubmatch(doc)
	if m == nil {
		t.Fatal("docs/API.md has no api-example block")
	}
	return string(m[1])
}
