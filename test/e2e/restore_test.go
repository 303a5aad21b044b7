package e2e

import (
	"context"
	"encoding/json"
	"fmt"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"trustee.dev/trustee/server/client"
	"trustee.dev/trustee/server/hsm/hsmtest"
	"trustee.dev/trustee/test/harness"
	"trustee.dev/trustee/test/memberpods"
)

// setConf changes settings of a state directory's keytrustee.conf, as an
// operator edits it.
func setConf(t *testing.T, dir string, set map[string]any) {
	t.Helper()
	p := filepath.Join(dir, "keytrustee.conf")
	var conf map[string]any
	if err := json.Unmarshal(must(os.ReadFile(p)), &conf); err != nil {
		t.Fatal(err)
	}
	for k, v := range set {
		conf[k] = v
	}
	if err := os.WriteFile(p, must(json.MarshalIndent(conf, "", "  ")), 0o600); err != nil {
		t.Fatal(err)
	}
}

// TestFreshHostRestoreAsOperationsDescribes loses the active of a pair —
// its state directory, its database and the admin CA file its
// configuration names beside the state directory — and brings it back on
// a fresh host from ktbackup.sh's archive with the commands of
// docs/OPERATIONS.md ("Restoring", on a fresh host): kts restore, kts db
// start, kts server. The restored server is a standalone server that
// serves the backup's deposits and fingerprint and takes writes at once.
// A restore that fails half-way (its database port taken) leaves nothing
// behind and says so.
func TestFreshHostRestoreAsOperationsDescribes(t *testing.T) {
	root := memberpods.RootDir(t)
	home := gnupgHome(t)
	active, passive := filepath.Join(root, "active"), filepath.Join(root, "passive")
	urls := initPair(t, [2]string{active, passive})
	// The admin API's CA outside the state directory, as kts dev keeps it.
	adminCA := filepath.Join(root, "admin-ca.pem")
	if out, err := exec.Command("openssl", "req", "-x509", "-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:P-256", "-nodes",
		"-subj", "/CN=Trustee admin CA", "-days", "2", "-keyout", filepath.Join(root, "admin-ca.key"), "-out", adminCA).CombinedOutput(); err != nil {
		t.Fatalf("openssl: %v\n%s", err, out)
	}
	os.Chmod(adminCA, 0o644)
	setConf(t, active, map[string]any{"ADMIN_LISTEN_ADDRESS": "127.0.0.1:" + itoa(harness.FreePort(t)), "ADMIN_CA_FILE": adminCA})
	activeSrv := startServer(t, active)
	passiveSrv := startServer(t, passive)
	runTool(t, "", "keytrustee-orgtool", "add", "-n", "acme", "-c", "a@example.com", "--confdir", active)
	runTool(t, "", "keytrustee-orgtool", "set-auth", "-n", "acme", "-s", "", "--confdir", active)
	cdir := filepath.Join(root, "client")
	kts(t, "client", "register", "--dir", cdir, "--server", urls[0]+","+urls[1], "--org", "acme", "--skip-ssl-check")
	cl, err := client.Open(cdir)
	if err != nil {
		t.Fatal(err)
	}
	deposits := map[string]map[string][]byte{cdir: {}}
	for i := range 50 {
		name, data := fmt.Sprintf("deposit-%02d", i), []byte(fmt.Sprintf("secret %d", i))
		if err := cl.Put(context.Background(), name, data); err != nil {
			t.Fatal(err)
		}
		deposits[cdir][name] = data
	}
	fingerprint := curl(t, "-k", urls[0]+"/?a=fingerprint")

	// ktbackup.sh as the docs run it, on the active.
	out := filepath.Join(root, "backups")
	os.Mkdir(out, 0o700)
	r := withGnuPG(t, home, "ktbackup.sh", "--confdir", active, "--gpg-recipient", "John Doe", "--quiet", "--output", out)
	if r.err != nil {
		t.Fatalf("ktbackup.sh: %v\n%s", r.err, r.stderr)
	}
	archive := strings.TrimSpace(r.stdout)

	// The host is lost: its servers, its state directory, its database,
	// and the file beside the state directory.
	activeSrv.stop()
	passiveSrv.stop()
	kts(t, "db", "stop", "--confdir", active)
	kts(t, "db", "stop", "--confdir", passive)
	os.RemoveAll(active)
	os.Remove(adminCA)

	// A restore that fails after it began to write (the database port is
	// taken) removes what it made and says so.
	dbPort := jsonConfPort(t, archive, home)
	ln, err := net.Listen("tcp", "127.0.0.1:"+itoa(dbPort))
	if err != nil {
		t.Fatal(err)
	}
	r = withGnuPG(t, home, "kts", "restore", "--confdir", active, archive)
	ln.Close()
	if r.err == nil || !strings.Contains(r.stderr, "nothing was changed") {
		t.Fatalf("restore with its database port taken: %v\n%s%s", r.err, r.stdout, r.stderr)
	}
	if _, err := os.Lstat(active); !os.IsNotExist(err) {
		t.Fatalf("a failed restore left the state directory %s behind (%v)", active, err)
	}
	if _, err := os.Lstat(adminCA); !os.IsNotExist(err) {
		t.Fatalf("a failed restore left %s behind (%v)", adminCA, err)
	}

	// docs/OPERATIONS.md, "On a fresh host", word for word.
	r = withGnuPG(t, home, "kts", "restore", "--confdir", active, archive)
	if r.err != nil {
		t.Fatalf("kts restore on a fresh host: %v\n%s%s", r.err, r.stdout, r.stderr)
	}
	for _, want := range []string{"1 organizations, 1 clients, 50 deposits", "restored " + adminCA, "standalone",
		"kts db start --confdir " + active} {
		if !strings.Contains(r.stdout, want) {
			t.Errorf("kts restore said, without %q:\n%s", want, r.stdout)
		}
	}
	if fi, err := os.Stat(adminCA); err != nil || fi.Mode().Perm() != 0o640 {
		t.Fatalf("the admin CA file after the restore: %v %v", fi, err)
	}
	kts(t, "db", "start", "--confdir", active)
	restored := newKtsServer(active)
	done := make(chan error, 1)
	go func() { done <- restored.start() }()
	select {
	case err := <-done:
		if err != nil {
			t.Fatal(err)
		}
	case <-time.After(45 * time.Second):
		t.Fatalf("the restored server neither served nor exited:\n%s", restored.Logs.String())
	}
	t.Cleanup(func() {
		if t.Failed() {
			t.Logf("log of the restored server:\n%s", restored.Logs.String())
		}
		restored.stop()
	})
	if got := curl(t, "-k", urls[0]+"/?a=fingerprint"); got != fingerprint {
		t.Fatalf("fingerprint after the restore %s, want %s", got, fingerprint)
	}
	checkDeposits(t, deposits)
	if err := cl.Put(context.Background(), "after-restore", []byte("written")); err != nil {
		t.Fatalf("a write to the restored server: %v", err)
	}
	if got, err := cl.Get(context.Background(), "after-restore"); err != nil || string(got) != "written" {
		t.Fatalf("read back: %q %v", got, err)
	}

	// The pair is rebuilt from the restored server as the docs say: its
	// server stopped, kts db init --role active on it and the server started
	// again; kts init --from-active and kts db init --role passive on the
	// other host (here set up anew).
	if err := restored.stop(); err != nil {
		t.Fatal(err)
	}
	kts(t, "db", "init", "--role", "active", "--confdir", active)
	if err := restored.start(); err != nil {
		t.Fatal(err)
	}
	os.RemoveAll(passive)
	kts(t, "init", "--confdir", passive, "--from-active", active, "--hostname", "localhost",
		"--listen", strings.TrimPrefix(urls[1], "https://"), "--db-port", itoa(harness.FreePort(t)),
		"--active-url", urls[0], "--active-db", "127.0.0.1:"+itoa(dbPort))
	setConf(t, passive, map[string]any{"ADMIN_LISTEN_ADDRESS": ""}) // one host: the active's admin port is taken
	kts(t, "db", "init", "--role", "passive", "--confdir", passive)
	kts(t, "db", "start", "--confdir", passive)
	startServer(t, passive)
	waitFor(t, "writes with the passive attached", func() bool {
		return cl.Put(context.Background(), "paired-again", []byte("both")) == nil
	})
	if got := curl(t, "-k", urls[1]+"/?a=fingerprint"); got != fingerprint {
		t.Fatalf("the new passive's fingerprint %s, want %s", got, fingerprint)
	}
}

// jsonConfPort reads DB_PORT from the keytrustee.conf inside an archive.
func jsonConfPort(t *testing.T, archive, home string) int {
	t.Helper()
	tarball := archive + ".tar"
	gpg(t, home, "--batch", "--yes", "-d", "-o", tarball, archive)
	defer os.Remove(tarball)
	list, err := exec.Command("tar", "tf", tarball).Output()
	if err != nil {
		t.Fatal(err)
	}
	for _, name := range strings.Split(string(list), "\n") {
		if strings.HasSuffix(name, "/keytrustee.conf") {
			data, err := exec.Command("tar", "xOf", tarball, name).Output()
			if err != nil {
				t.Fatal(err)
			}
			var conf struct {
				Port int `json:"DB_PORT"`
			}
			if err := json.Unmarshal(data, &conf); err != nil {
				t.Fatal(err)
			}
			return conf.Port
		}
	}
	t.Fatal("no keytrustee.conf in the archive")
	return 0
}

// TestHSMRestoreChecksTheTokenFirst: an HSM server's backup restores onto a
// fresh host only where the token holds every key its deposits are
// wrapped with, and this is checked before anything is written: refused,
// the new state directory does not exist afterwards. The restore drill
// opens the archive as a restore does: without the token, or without a
// key, it fails too.
func TestHSMRestoreChecksTheTokenFirst(t *testing.T) {
	root := memberpods.RootDir(t)
	token, pinFile := hsmToken(t, root)
	srv, dir, _, _, _ := singleServer(t, root, 20)
	kts(t, "keyhsm", "init", "--confdir", dir, "--module", token.Module, "--token-label", token.TokenLabel, "--pin-file", pinFile)
	srv.stop()
	srv.restart(t)
	kts(t, "keyhsm", "migrate", "--confdir", dir)
	archive := strings.TrimSpace(kts(t, "backup", "--confdir", dir, "--cleartext", "--quiet"))
	work := filepath.Join(root, "drills")
	os.Mkdir(work, 0o755)
	if r := runTool(t, "", "kts", "backup", "verify", archive, "--work-dir", work); r.err != nil {
		t.Fatalf("the drill with the token: %v\n%s%s", r.err, r.stdout, r.stderr)
	}

	// Without the token the drill fails as a restore would.
	tokenDir, away := hsmtest.TokenDir(token), filepath.Join(root, "token-away")
	if err := os.Rename(tokenDir, away); err != nil {
		t.Fatal(err)
	}
	r := runTool(t, "", "kts", "backup", "verify", archive, "--work-dir", work)
	os.Rename(away, tokenDir)
	if r.err == nil || strings.Contains(r.stdout, "ok") || !strings.Contains(r.stderr, "restore needs it") {
		t.Fatalf("the drill of an HSM archive without the token: %v\nstdout %q\nstderr %q", r.err, r.stdout, r.stderr)
	}

	// The token lost the deposits' key (the state key still opens the
	// sealed secrets): a restore onto a fresh host refuses before it
	// writes anything, and so does the drill.
	srv.stop()
	pkcs11Tool(t, token.Module, token.TokenLabel, token.PIN, "--delete-object", "--type", "secrkey", "--label", "kts-kek-1")
	fresh := filepath.Join(root, "fresh")
	r = runTool(t, "", "kts", "restore", "--confdir", fresh, "--database-port", itoa(harness.FreePort(t)), archive)
	if r.err == nil || !strings.Contains(r.stderr, `HSM key "kts-kek-1"`) || !strings.Contains(r.stderr, "nothing was changed") {
		t.Fatalf("restore without the deposits' HSM key: %v\n%s%s", r.err, r.stdout, r.stderr)
	}
	if _, err := os.Lstat(fresh); !os.IsNotExist(err) {
		entries, _ := os.ReadDir(fresh)
		t.Fatalf("a refused restore left %s behind: %v %v", fresh, entries, err)
	}
	r = runTool(t, "", "kts", "backup", "verify", archive, "--work-dir", work)
	if r.err == nil || !strings.Contains(r.stderr, `HSM key "kts-kek-1"`) {
		t.Fatalf("the drill without the deposits' HSM key: %v\nstdout %q\nstderr %q", r.err, r.stdout, r.stderr)
	}
	if left, _ := os.ReadDir(work); len(left) != 0 {
		t.Errorf("the drills left %d entries in their work directory", len(left))
	}
}
