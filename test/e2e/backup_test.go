package e2e

import (
	"bytes"
	"context"
	"crypto/rand"
	"fmt"
	"maps"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"trustee.dev/trustee/server/client"
	"trustee.dev/trustee/test/harness"
	"trustee.dev/trustee/test/memberpods"
)

// gnupgHome is a GnuPG home directory holding a key administrator's key
// pair, made by real gpg as the reference docs make it.
func gnupgHome(t *testing.T) string {
	t.Helper()
	home, err := os.MkdirTemp("", "kts-e2e-gnupg-")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		kill := exec.Command("gpgconf", "--kill", "gpg-agent")
		kill.Env = append(os.Environ(), "GNUPGHOME="+home)
		kill.Run()
		os.RemoveAll(home)
	})
	gpg(t, home, "--batch", "--pinentry-mode", "loopback", "--passphrase", "",
		"--quick-gen-key", "John Doe (Key Trustee Backup) <john.doe@example.com>", "default", "default", "never")
	return home
}

func gpg(t *testing.T, home string, args ...string) string {
	t.Helper()
	cmd := exec.Command("gpg", args...)
	cmd.Env = append(os.Environ(), "GNUPGHOME="+home)
	out, err := cmd.Output()
	if err != nil {
		stderr := ""
		if ee, ok := err.(*exec.ExitError); ok {
			stderr = string(ee.Stderr)
		}
		t.Fatalf("gpg %v: %v\n%s", args, err, stderr)
	}
	return string(out)
}

// withGnuPG runs a tool with GNUPGHOME set, as the service account would.
func withGnuPG(t *testing.T, home, tool string, args ...string) result {
	t.Helper()
	cmd := exec.Command(filepath.Join(bin, tool), args...)
	cmd.Env = append(os.Environ(), "GNUPGHOME="+home)
	var out, errb bytes.Buffer
	cmd.Stdout, cmd.Stderr = &out, &errb
	err := cmd.Run()
	return result{out.String(), errb.String(), err}
}

// singleServer initializes, starts and fills a server: one organization,
// three clients and n deposits of random bytes. It returns the state
// directory, the server's URL and what each client deposited.
func singleServer(t *testing.T, root string, n int) (srv *ktsServer, dir, url string, clients []string, deposits map[string]map[string][]byte) {
	t.Helper()
	dir = filepath.Join(root, "keytrustee")
	apiPort := harness.FreePort(t)
	url = "https://127.0.0.1:" + itoa(apiPort)
	kts(t, "init", "--confdir", dir, "--hostname", "kts01.example.com", "--key-type", "ed25519",
		"--listen", "127.0.0.1:"+itoa(apiPort), "--db-port", itoa(harness.FreePort(t)))
	kts(t, "db", "init", "--confdir", dir)
	kts(t, "db", "start", "--confdir", dir)
	t.Cleanup(func() { runTool(t, "", "kts", "db", "stop", "--confdir", dir) })
	srv = startServer(t, dir)
	runTool(t, "", "keytrustee-orgtool", "add", "-n", "acme", "-c", "a@example.com", "--confdir", dir)
	runTool(t, "", "keytrustee-orgtool", "set-auth", "-n", "acme", "-s", "", "--confdir", dir)
	deposits = map[string]map[string][]byte{}
	for i := range 3 {
		c := filepath.Join(root, "client"+itoa(i))
		kts(t, "client", "register", "--dir", c, "--server", url, "--org", "acme", "--skip-ssl-check")
		clients = append(clients, c)
		deposits[c] = map[string][]byte{}
	}
	var mu sync.Mutex
	var wg sync.WaitGroup
	errs := make(chan error, 8)
	for w := range 8 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			cdir := clients[w%len(clients)]
			cl, err := client.Open(cdir)
			if err != nil {
				errs <- err
				return
			}
			for i := w; i < n; i += 8 {
				data := make([]byte, 1+i%2048)
				rand.Read(data)
				name := fmt.Sprintf("deposit-%05d", i)
				if err := cl.Put(context.Background(), name, data); err != nil {
					errs <- err
					return
				}
				mu.Lock()
				deposits[cdir][name] = data
				mu.Unlock()
			}
		}()
	}
	wg.Wait()
	close(errs)
	for err := range errs {
		t.Fatal(err)
	}
	return srv, dir, url, clients, deposits
}

// restart starts a server stopped by the test again.
func (s *ktsServer) restart(t *testing.T) {
	t.Helper()
	if err := s.start(); err != nil {
		t.Fatal(err)
	}
}

// checkDeposits reads every deposit back with its client's own keys.
func checkDeposits(t *testing.T, deposits map[string]map[string][]byte) {
	t.Helper()
	for cdir, want := range deposits {
		cl, err := client.Open(cdir)
		if err != nil {
			t.Fatal(err)
		}
		for name, data := range want {
			got, err := cl.Get(context.Background(), name)
			if err != nil {
				t.Fatalf("%s: get %s: %v", cdir, name, err)
			}
			if !bytes.Equal(got, data) {
				t.Fatalf("%s: deposit %s differs after the restore", cdir, name)
			}
		}
	}
}

var archiveName = regexp.MustCompile(`^kts_bak_kts01_example_com_\d{4}-\d\d-\d\d_\d\d-\d\d-\d\d\.tar\.gpg$`)

// TestBackupAndRestoreAsUsersRunIt backs up a server with thousands of
// deposits to a key made by real gpg, refuses bad requests and damaged
// archives without changing anything, and restores on a fresh host and over
// an existing server: every deposit byte-identical, the clients' old keys
// still accepted, the server's fingerprint unchanged.
func TestBackupAndRestoreAsUsersRunIt(t *testing.T) {
	root := memberpods.RootDir(t)
	home := gnupgHome(t)
	srv, dir, url, _, deposits := singleServer(t, root, 2000)
	fingerprint := curl(t, "-k", url+"/?a=fingerprint")
	out := filepath.Join(root, "backups")
	os.Mkdir(out, 0o700)

	// Refused: nothing written.
	for _, bad := range []struct {
		args []string
		want string
	}{
		{[]string{}, "no --gpg-recipient"},
		{[]string{"--gpg-recipient", "Jane Roe"}, "Jane Roe"},
		{[]string{"--gpg-recipient", "John Doe", "--cleartext"}, "contradict"},
		{[]string{"--gpg-recipient", "John Doe", "--roll=0"}, "--roll=0"},
		{[]string{"--gpg-recipient", "John Doe", "--output", filepath.Join(root, "missing")}, "--output"},
	} {
		r := withGnuPG(t, home, "ktbackup.sh", append([]string{"--confdir", dir, "--output", out}, bad.args...)...)
		if r.err == nil || !strings.Contains(r.stderr, bad.want) {
			t.Errorf("ktbackup.sh %v: %v %q; want an error naming %q", bad.args, r.err, r.stderr, bad.want)
		}
	}
	if entries, _ := os.ReadDir(out); len(entries) != 0 {
		t.Fatalf("refused backups left %d files", len(entries))
	}

	// The cron line of the docs: --quiet prints the archive's path only.
	r := withGnuPG(t, home, "ktbackup.sh", "--confdir", dir, "--gpg-recipient", "John Doe", "--quiet", "--output", out, "--roll=10")
	if r.err != nil {
		t.Fatalf("ktbackup.sh: %v\n%s", r.err, r.stderr)
	}
	archive := strings.TrimSuffix(r.stdout, "\n")
	if filepath.Dir(archive) != out || !archiveName.MatchString(filepath.Base(archive)) || strings.Count(r.stdout, "\n") != 1 || r.stderr != "" {
		t.Fatalf("--quiet printed %q (stderr %q); want only the archive's path", r.stdout, r.stderr)
	}
	if fi, err := os.Stat(archive); err != nil || fi.Mode().Perm() != 0o600 {
		t.Fatalf("archive: %v %v; want mode 0600", fi, err)
	}
	if head, _ := os.ReadFile(archive); bytes.Contains(head, []byte("ustar")) || bytes.Contains(head, []byte("deposit-")) {
		t.Fatal("the archive is not encrypted")
	}
	// gpg -d opens it; tar lists the state directory and the SQL dump as
	// the docs show them.
	tarball := filepath.Join(root, "decrypted.tar")
	gpg(t, home, "--batch", "-d", "-o", tarball, archive)
	listing, err := exec.Command("tar", "tvf", tarball).Output()
	if err != nil {
		t.Fatal(err)
	}
	rel := strings.TrimPrefix(dir, "/")
	sqlName := strings.TrimPrefix(filepath.Join(root, strings.TrimSuffix(filepath.Base(archive), ".tar.gpg")+".sql"), "/")
	for _, want := range []string{rel + "/keytrustee.conf", rel + "/server-key.asc", rel + "/.ssl/ssl-cert-keytrustee.pem",
		rel + "/.ssl/ssl-cert-keytrustee-pk.pem", rel + "/deposit-keyring.json", sqlName} {
		if !regexp.MustCompile(`(?m)^-rw------- .* ` + regexp.QuoteMeta(want) + `$`).Match(listing) {
			t.Errorf("tar tvf lacks %s (mode -rw-------):\n%s", want, listing)
		}
	}
	if bytes.Contains(listing, []byte(rel+"/db/")) {
		t.Error("the archive holds the database's files; the dump stands for them")
	}

	// A new deposit after the backup, then damaged and foreign archives:
	// refused, nothing changed.
	cl, _ := client.Open(filepath.Join(root, "client0"))
	if err := cl.Put(context.Background(), "after-backup", []byte("late")); err != nil {
		t.Fatal(err)
	}
	data, _ := os.ReadFile(archive)
	tampered := bytes.Clone(data)
	tampered[len(tampered)/2] ^= 1
	foreignTar := filepath.Join(root, "foreign.tar")
	exec.Command("tar", "cf", foreignTar, "-C", root, "client0").Run()
	for name, content := range map[string][]byte{
		"truncated.tar.gpg": data[:len(data)/2],
		"tampered.tar.gpg":  tampered,
		"foreign.tar.gpg":   []byte(gpg(t, home, "--batch", "-e", "-r", "John Doe", "-o", "-", foreignTar)),
		"notes.txt":         []byte("not an archive at all\n"),
	} {
		p := filepath.Join(root, name)
		os.WriteFile(p, content, 0o600)
		before := hashTree(t, dir)
		r := withGnuPG(t, home, "kts", "restore", "--confdir", dir, p)
		if r.err == nil || !strings.Contains(r.stderr, "nothing was changed") {
			t.Errorf("restore of %s: %v %q; want a refusal", name, r.err, r.stderr)
		}
		if !maps.Equal(before, hashTree(t, dir)) {
			t.Fatalf("restore of %s changed the state directory", name)
		}
	}
	if got, err := cl.Get(context.Background(), "after-backup"); err != nil || string(got) != "late" {
		t.Fatalf("after refused restores the database changed: %q %v", got, err)
	}

	// While the server runs, restore refuses to pull the database away.
	r = withGnuPG(t, home, "kts", "restore", "--confdir", dir, archive)
	if r.err == nil || !strings.Contains(r.stderr, "stop the kts server") || !strings.Contains(r.stderr, "nothing was changed") {
		t.Fatalf("restore under a running server: %v %q", r.err, r.stderr)
	}

	// Over the existing server: the backup's deposits, not the later one.
	srv.stop()
	r = withGnuPG(t, home, "kts", "restore", "--confdir", dir, archive)
	if r.err != nil {
		t.Fatalf("restore: %v\n%s", r.err, r.stderr)
	}
	if !strings.Contains(r.stdout, "1 organizations, 3 clients, 2000 deposits") || !strings.Contains(r.stdout, "kts01.example.com") {
		t.Fatalf("restore output lacks the rows restored and the backup's host:\n%s", r.stdout)
	}
	srv.restart(t)
	checkDeposits(t, deposits)
	if _, err := cl.Get(context.Background(), "after-backup"); err == nil || !strings.Contains(err.Error(), "404") {
		t.Fatalf("a deposit made after the backup survived its restore: %v", err)
	}
	if got := curl(t, "-k", url+"/?a=fingerprint"); got != fingerprint {
		t.Fatalf("fingerprint after restore %s, want %s", got, fingerprint)
	}

	// A fresh host: the state directory and its database are gone.
	srv.stop()
	kts(t, "db", "stop", "--confdir", dir)
	os.RemoveAll(dir)
	key := filepath.Join(root, "john.key")
	os.WriteFile(key, []byte(gpg(t, home, "--batch", "--export-secret-keys", "John Doe")), 0o600)
	// With the secret key in a file instead of GnuPG.
	r = runTool(t, "", "kts", "restore", "--confdir", dir, "--gpg-keyring", key, archive)
	if r.err != nil {
		t.Fatalf("restore on a fresh host: %v\n%s", r.err, r.stderr)
	}
	checkModes(t, dir)
	kts(t, "db", "start", "--confdir", dir)
	srv.restart(t)
	checkDeposits(t, deposits)
	if got := curl(t, "-k", url+"/?a=fingerprint"); got != fingerprint {
		t.Fatalf("fingerprint after restore on a fresh host %s, want %s", got, fingerprint)
	}

	// --roll=1 leaves only the newest backup.
	time.Sleep(time.Second) // archive names have a resolution of a second
	r = withGnuPG(t, home, "ktbackup.sh", "--confdir", dir, "--gpg-recipient", "john.doe@example.com", "--output", out, "--roll=1")
	if r.err != nil || !strings.Contains(r.stdout, "removed older backup "+archive) {
		t.Fatalf("backup --roll=1: %v\n%s\n%s", r.err, r.stdout, r.stderr)
	}
	if entries, _ := os.ReadDir(out); len(entries) != 1 || filepath.Join(out, entries[0].Name()) == archive {
		t.Fatalf("after --roll=1 the output directory holds %v", entries)
	}
}

// TestManualRestoreAsTheDocsDescribe restores an archive by hand: gpg -d,
// tar xvf -C /, drop and create the database, psql -f.
func TestManualRestoreAsTheDocsDescribe(t *testing.T) {
	root := memberpods.RootDir(t)
	home := gnupgHome(t)
	srv, dir, _, clients, deposits := singleServer(t, root, 300)
	r := withGnuPG(t, home, "ktbackup.sh", "--confdir", dir, "--gpg-recipient", "John Doe", "-q")
	if r.err != nil {
		t.Fatalf("ktbackup.sh: %v\n%s", r.err, r.stderr)
	}
	archive := strings.TrimSpace(r.stdout)
	if filepath.Dir(archive) != root {
		t.Fatalf("archive %s; want it beside the state directory by default", archive)
	}
	// Client state too, or the clients' data is lost with their keys.
	r = withGnuPG(t, home, "kts", "backup", "--client", clients[0], "--gpg-recipient", "John Doe", "-q")
	if r.err != nil || !strings.Contains(r.stdout, "kts_client_bak_") {
		t.Fatalf("client backup: %v %q %s", r.err, r.stdout, r.stderr)
	}
	clientArchive := strings.TrimSpace(r.stdout)

	// Lose everything: the server's state, its database, a client.
	srv.stop()
	kts(t, "db", "stop", "--confdir", dir)
	os.RemoveAll(dir)
	os.RemoveAll(clients[0])

	tarball := filepath.Join(root, "backup.tar")
	gpg(t, home, "--batch", "-d", "-o", tarball, archive)
	if out, err := exec.Command("tar", "xvf", tarball, "-C", "/").CombinedOutput(); err != nil {
		t.Fatalf("tar xvf: %v\n%s", err, out)
	}
	kts(t, "db", "init", "--confdir", dir)
	kts(t, "db", "start", "--confdir", dir)
	password, _ := os.ReadFile(filepath.Join(dir, "db.password"))
	port := regexp.MustCompile(`"DB_PORT": (\d+)`).FindStringSubmatch(string(must(os.ReadFile(filepath.Join(dir, "keytrustee.conf")))))[1]
	psql := func(args ...string) {
		t.Helper()
		cmd := exec.Command(psqlPath(t), append([]string{"-h", "127.0.0.1", "-p", port, "-U", "keytrustee", "-v", "ON_ERROR_STOP=1"}, args...)...)
		cmd.Env = append(os.Environ(), "PGPASSWORD="+strings.TrimSpace(string(password)))
		if out, err := cmd.CombinedOutput(); err != nil {
			t.Fatalf("psql %v: %v\n%s", args, err, out)
		}
	}
	psql("-d", "postgres", "-c", "DROP DATABASE keytrustee")
	psql("-d", "postgres", "-c", "CREATE DATABASE keytrustee")
	psql("-d", "keytrustee", "-f", strings.TrimSuffix(archive, ".tar.gpg")+".sql")

	r = withGnuPG(t, home, "kts", "restore", "--client", clients[0], clientArchive)
	if r.err != nil {
		t.Fatalf("client restore: %v\n%s", r.err, r.stderr)
	}
	srv.restart(t)
	checkDeposits(t, deposits)
}

// TestBackupFromThePassiveWhileWritesGoOn backs up the passive of a running
// pair while a client keeps writing: no write fails or waits on the backup,
// and the archive restores to a consistent snapshot.
func TestBackupFromThePassiveWhileWritesGoOn(t *testing.T) {
	root := memberpods.RootDir(t)
	active, passive := filepath.Join(root, "active"), filepath.Join(root, "passive")
	urls := initPair(t, [2]string{active, passive})
	startServer(t, active)
	startServer(t, passive)
	runTool(t, "", "keytrustee-orgtool", "add", "-n", "acme", "-c", "a@example.com", "--confdir", active)
	runTool(t, "", "keytrustee-orgtool", "set-auth", "-n", "acme", "-s", "", "--confdir", active)
	cdir := filepath.Join(root, "client")
	kts(t, "client", "register", "--dir", cdir, "--server", urls[0]+","+urls[1], "--org", "acme", "--skip-ssl-check")
	cl, err := client.Open(cdir)
	if err != nil {
		t.Fatal(err)
	}
	for i := range 500 {
		if err := cl.Put(context.Background(), "pre-"+itoa(i), []byte("v")); err != nil {
			t.Fatal(err)
		}
	}

	var acked atomic.Int64
	var slowest atomic.Int64
	stop := make(chan struct{})
	done := make(chan error, 1)
	go func() {
		for i := 0; ; i++ {
			select {
			case <-stop:
				done <- nil
				return
			default:
			}
			start := time.Now()
			if err := cl.Put(context.Background(), "during-"+itoa(i), []byte("w")); err != nil {
				done <- err
				return
			}
			acked.Add(1)
			if d := int64(time.Since(start)); d > slowest.Load() {
				slowest.Store(d)
			}
		}
	}()
	time.Sleep(300 * time.Millisecond)
	before := acked.Load()
	r := runTool(t, "", "ktbackup.sh", "--confdir", passive, "--cleartext", "--quiet")
	after := acked.Load()
	time.Sleep(300 * time.Millisecond)
	close(stop)
	if err := <-done; err != nil {
		t.Fatalf("a write failed while the passive was backed up: %v", err)
	}
	if r.err != nil {
		t.Fatalf("backup of the passive: %v\n%s", r.err, r.stderr)
	}
	if after == before {
		t.Fatal("no write was acknowledged while the backup ran")
	}
	t.Logf("writes acknowledged during the backup: %d; slowest write %v", after-before, time.Duration(slowest.Load()))

	// The archive restores, on a fresh host, to a snapshot between the
	// writes acknowledged before the backup began and those after it ended.
	fresh := filepath.Join(root, "restored")
	r2 := runTool(t, "", "kts", "restore", "--confdir", fresh, "--database-port", itoa(harness.FreePort(t)), strings.TrimSpace(r.stdout))
	if r2.err != nil {
		t.Fatalf("restore of the passive's backup: %v\n%s", r2.err, r2.stderr)
	}
	t.Cleanup(func() { runTool(t, "", "kts", "db", "stop", "--confdir", fresh) })
	m := regexp.MustCompile(`(\d+) deposits`).FindStringSubmatch(r2.stdout)
	if m == nil || !strings.Contains(r2.stdout, "standalone") {
		t.Fatalf("restore output:\n%s", r2.stdout)
	}
	n := int64(must(strconvAtoi(m[1])))
	if n < 500+before || n > 500+after {
		t.Fatalf("restored %d deposits; want between %d and %d", n, 500+before, 500+after)
	}
}

func must[T any](v T, err error) T {
	if err != nil {
		panic(err)
	}
	return v
}

func strconvAtoi(s string) (int, error) {
	var n int
	_, err := fmt.Sscan(s, &n)
	return n, err
}

// psqlPath finds PostgreSQL's psql.
func psqlPath(t *testing.T) string {
	if p := "/usr/lib/postgresql/15/bin/psql"; fileExists(p) {
		return p
	}
	p, err := exec.LookPath("psql")
	if err != nil {
		t.Skip("psql not installed")
	}
	return p
}

func fileExists(p string) bool { _, err := os.Stat(p); return err == nil }

// TestRestoreDrill: kts backup verify restores an archive into a
// throw-away PostgreSQL and finds every table as it was backed up; a
// damaged archive is a failed drill, naming why; nothing is left behind.
func TestRestoreDrill(t *testing.T) {
	root := memberpods.RootDir(t)
	home := gnupgHome(t)
	_, dir, _, _, _ := singleServer(t, root, 20)
	out := filepath.Join(root, "backups")
	work := filepath.Join(root, "drills")
	for _, d := range []string{out, work} {
		if err := os.Mkdir(d, 0o755); err != nil {
			t.Fatal(err)
		}
	}
	r := withGnuPG(t, home, "kts", "backup", "--confdir", dir, "--gpg-recipient", "John Doe", "--quiet", "--output", out)
	if r.err != nil {
		t.Fatalf("kts backup: %v\n%s", r.err, r.stderr)
	}
	archive := strings.TrimSpace(r.stdout)

	r = withGnuPG(t, home, "kts", "backup", "verify", archive, "--work-dir", work)
	if r.err != nil {
		t.Fatalf("the drill of a good archive failed: %v\n%s%s", r.err, r.stdout, r.stderr)
	}
	if !regexp.MustCompile(`^restore drill of kts_bak_\S+\.tar\.gpg: ok, \d+ tables and \d+ rows restored as they were backed up \(1 organizations, 3 clients, 20 deposits\)\n$`).MatchString(r.stdout) {
		t.Errorf("the drill said %q", r.stdout)
	}

	data, _ := os.ReadFile(archive)
	tampered := bytes.Clone(data)
	tampered[len(tampered)/2] ^= 1
	for name, c := range map[string]struct {
		content []byte
		want    string
	}{
		"truncated.tar.gpg": {data[:len(data)/2], "restore drill of"},
		"tampered.tar.gpg":  {tampered, "restore drill of"},
	} {
		p := filepath.Join(root, name)
		if err := os.WriteFile(p, c.content, 0o600); err != nil {
			t.Fatal(err)
		}
		r := withGnuPG(t, home, "kts", "backup", "verify", p, "--work-dir", work)
		if r.err == nil || !strings.Contains(r.stderr, c.want) || strings.Contains(r.stdout, "ok") {
			t.Errorf("the drill of %s: %v\nstdout %q\nstderr %q; want a failure", name, r.err, r.stdout, r.stderr)
		}
	}

	// kts backup --verify: the drill of the new archive is part of the
	// backup and of its result; older archives roll away only after it.
	result := filepath.Join(root, "result")
	r = withGnuPG(t, home, "kts", "backup", "--confdir", dir, "--gpg-recipient", "John Doe", "--output", out, "--roll", "1",
		"--verify", "--result-file", result)
	if r.err != nil {
		t.Fatalf("kts backup --verify: %v\n%s%s", r.err, r.stdout, r.stderr)
	}
	verified := lastArchive(t, out)
	msg, _ := os.ReadFile(result)
	if !regexp.MustCompile(`^`+regexp.QuoteMeta(filepath.Base(verified))+`\nrestore drill: ok, \d+ tables and \d+ rows restored as they were backed up \(1 organizations, 3 clients, 20 deposits\)$`).Match(msg) ||
		!strings.Contains(r.stdout, "restore drill: ok") || !strings.Contains(r.stdout, "removed older backup "+archive) {
		t.Errorf("kts backup --verify said %q, its result file %q", r.stdout, msg)
	}
	// A drill that cannot open the archive (another key than the one it is
	// encrypted to) fails the backup; the archive it wrote and the one
	// before it are both kept.
	otherKey := filepath.Join(root, "other-secret.asc")
	other := gnupgHome(t)
	os.WriteFile(otherKey, []byte(gpg(t, other, "--batch", "--pinentry-mode", "loopback", "--passphrase", "", "--armor", "--export-secret-keys")), 0o600)
	time.Sleep(time.Second) // archive names are to the second
	r = withGnuPG(t, home, "kts", "backup", "--confdir", dir, "--gpg-recipient", "John Doe", "--output", out, "--roll", "1",
		"--verify-key", otherKey, "--result-file", result)
	msg, _ = os.ReadFile(result)
	failed := lastArchive(t, out)
	if r.err == nil || !strings.Contains(r.stderr, "restore drill failed") || !strings.Contains(r.stderr, "not a good backup") ||
		!strings.HasPrefix(string(msg), filepath.Base(failed)+": restore drill failed: ") || failed == verified {
		t.Errorf("a backup whose drill cannot decrypt it: %v\nstderr %q\nresult %q", r.err, r.stderr, msg)
	}
	if _, err := os.Stat(verified); err != nil {
		t.Errorf("the last good archive was rolled away for one that failed its drill: %v", err)
	}
	if left, _ := os.ReadDir(work); len(left) != 0 {
		t.Errorf("the drills left %d entries in their work directory", len(left))
	}
}

// lastArchive is the newest server archive in dir.
func lastArchive(t *testing.T, dir string) string {
	t.Helper()
	names, _ := filepath.Glob(filepath.Join(dir, "kts_bak_*"))
	if len(names) == 0 {
		t.Fatalf("no archive in %s", dir)
	}
	slices.Sort(names)
	return names[len(names)-1]
}
