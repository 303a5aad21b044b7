package security

import (
	"context"
	"crypto/rand"
	"encoding/base64"
	"encoding/json"
	"io/fs"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"testing"

	"trustee.dev/trustee/server/config"
)

// stolenData is what a workload gave the server: the secrets, which no
// copy of its data may show, and what a copy does show (clients' keys,
// deposit names: metadata, stored in the clear).
type stolenData struct {
	secrets      []secret
	fingerprints []string
	names        []string
}

// workload registers clients of a new organization with its auth code
// (and one with a wrong code), stores deposits of 30 B to 300 KiB (random
// text, which compression does not hide), deletes one and opens sessions.
func workload(t *testing.T, s *server) stolenData {
	t.Helper()
	var w stolenData
	code := secretText("auth code", "code-")
	w.secrets = append(w.secrets, secret{"auth code", code})
	org := s.newOrg(t, code)
	pending := newIdentity(t)
	want(t, "registration with a wrong code", s.register(t, pending, org, secretText("auth code", "wrong-")), 201, "")
	w.fingerprints = append(w.fingerprints, pending.fpr)
	for c := 0; c < 2; c++ {
		id := s.activeClient(t, org, code)
		w.fingerprints = append(w.fingerprints, id.fpr)
		for i, size := range []int{30, 4 << 10, 300 << 10} {
			name := "name-" + randomHex(8)
			raw := make([]byte, size*3/4)
			rand.Read(raw)
			data := "plaintext-" + base64.StdEncoding.EncodeToString(raw)
			used.add("deposit", data)
			s.put(t, id, name, []byte(data))
			w.secrets = append(w.secrets, secret{"deposit", data}, secret{"deposit's first bytes", data[10:40]})
			if i == 0 {
				// A deleted deposit leaves nothing readable either.
				want(t, "delete", s.signed(t, id, "DELETE", "/v1/deposits/"+name, nil), 204, "")
			} else {
				w.names = append(w.names, name)
			}
		}
		w.secrets = append(w.secrets, secret{"session token", s.session(t, id)})
	}
	return w
}

// pgBinary returns the path of a PostgreSQL 15 client program.
func pgBinary(t *testing.T, name string) string {
	t.Helper()
	if p := filepath.Join("/usr/lib/postgresql/15/bin", name); fileExists(p) {
		return p
	}
	p, err := exec.LookPath(name)
	if err != nil {
		t.Fatalf("%s is needed (Debian: postgresql-client-15)", name)
	}
	return p
}

func fileExists(p string) bool {
	_, err := os.Stat(p)
	return err == nil
}

// TestDatabaseDumpRevealsNoSecrets: pg_dump of the server's database —
// everything an attacker who reads the database gets — holds no deposit
// in any encoding (the bytea columns are sealed), no auth code (only its
// Argon2id hash) and no session token, although it names every client and
// deposit and holds the queued mail.
func TestDatabaseDumpRevealsNoSecrets(t *testing.T) {
	s := shared(t)
	w := workload(t, s)
	cfg, err := config.Load(s.dir)
	if err != nil {
		t.Fatal(err)
	}
	pw := strings.TrimSpace(string(mustRead(t, cfg.Path(s.dir, cfg.DBPasswordFile))))
	r := runCommand([]string{"PGPASSWORD=" + pw}, "", pgBinary(t, "pg_dump"), "--no-password",
		"-h", cfg.DBHost, "-p", strconv.Itoa(cfg.DBPort), "-U", cfg.DBUser, "-d", cfg.DBName)
	if r.err != nil {
		t.Fatalf("pg_dump: %s", r)
	}
	dump := []byte(r.stdout)
	// The dump is the whole database.
	for _, s := range append(append([]string{"argon2id$", "COPY public.deposits", "KeyTrustee Client Registration"}, w.fingerprints...), w.names...) {
		if !strings.Contains(r.stdout, s) {
			t.Fatalf("the dump lacks %q: it is not the database the test wrote", s)
		}
	}
	for _, f := range findSecrets(w.secrets, map[string][]byte{"the dump": dump}) {
		t.Error(f)
	}
	t.Logf("searched a dump of %d KiB for %d secrets", len(dump)>>10, len(w.secrets))
}

// TestStateDirectoryHoldsNoPlaintext: every file of the state directory —
// keys, configuration, and PostgreSQL's data files and WAL, after a
// checkpoint — holds no deposit, auth code or session token as written.
// (The keys that open the deposits are there: without an HSM, the state
// directory is the thing to protect; see docs/SECURITY.md.)
func TestStateDirectoryHoldsNoPlaintext(t *testing.T) {
	s := shared(t)
	w := workload(t, s)
	if _, err := s.db(t).Exec(context.Background(), "CHECKPOINT"); err != nil {
		t.Fatal(err)
	}
	var total int
	var files int
	err := filepath.WalkDir(s.dir, func(path string, d fs.DirEntry, err error) error {
		if err != nil || !d.Type().IsRegular() {
			return err
		}
		b, err := os.ReadFile(path)
		if err != nil {
			return err
		}
		total += len(b)
		files++
		for _, sec := range w.secrets {
			if strings.Contains(string(b), sec.value) {
				t.Errorf("%s holds a %s as written", path, sec.kind)
			}
		}
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	t.Logf("searched %d files, %d MiB", files, total>>20)
}

// TestBackupRevealsNothingWithoutTheRecipientKey: a backup made as the
// documentation says (kts backup --gpg-recipient) is an OpenPGP message:
// without the recipient's secret key it shows no deposit, auth code or
// session token, none of the server's keys (the deposit keyring, the
// OpenPGP key, the session key) or database password, and no tar or SQL
// structure; gpg cannot open it. With the key, it opens to the state
// directory and the dump.
func TestBackupRevealsNothingWithoutTheRecipientKey(t *testing.T) {
	s := shared(t)
	w := workload(t, s)
	home := t.TempDir()
	gpg := func(home string, args ...string) result {
		return runCommand([]string{"GNUPGHOME=" + home}, "", "gpg", append([]string{"--batch"}, args...)...)
	}
	t.Cleanup(func() { exec.Command("gpgconf", "--homedir", home, "--kill", "all").Run() })
	if r := gpg(home, "--passphrase", "", "--quick-gen-key", "Backup Recipient <backup@example.com>", "default", "default", "never"); r.err != nil {
		t.Fatalf("gpg --quick-gen-key: %s", r)
	}
	out := t.TempDir()
	r := runCommand([]string{"GNUPGHOME=" + home}, "", filepath.Join(binDir, "kts"), "backup", "--confdir", s.dir,
		"--gpg-recipient", "Backup Recipient", "--output", out, "--quiet")
	if r.err != nil {
		t.Fatalf("kts backup: %s", r)
	}
	archive := strings.TrimSpace(r.stdout)
	data := mustRead(t, archive)

	secrets := append([]secret(nil), w.secrets...)
	cfg, err := config.Load(s.dir)
	if err != nil {
		t.Fatal(err)
	}
	secrets = append(secrets,
		secret{"database password", strings.TrimSpace(string(mustRead(t, cfg.Path(s.dir, cfg.DBPasswordFile))))},
		secret{"session key", string(mustRead(t, cfg.Path(s.dir, cfg.SessionKey)))})
	for _, line := range strings.Split(string(mustRead(t, cfg.Path(s.dir, cfg.ServerKey))), "\n") {
		if len(line) >= 60 { // the armored key's body
			secrets = append(secrets, secret{"line of the server's private key", line})
		}
	}
	var keyring any
	if err := json.Unmarshal(mustRead(t, cfg.Path(s.dir, cfg.Keyring)), &keyring); err != nil {
		t.Fatal(err)
	}
	for _, v := range stringsIn(keyring) {
		if len(v) >= 32 {
			secrets = append(secrets, secret{"deposit keyring value", v})
		}
	}
	for _, marker := range []string{"PRIVATE KEY", "ustar", "CREATE TABLE", "COPY public.", "keytrustee.conf"} {
		secrets = append(secrets, secret{"structure", marker})
	}
	for _, f := range findSecrets(secrets, map[string][]byte{"the archive": data}) {
		t.Error(f)
	}

	// Only the recipient's secret key opens it.
	stranger := t.TempDir()
	t.Cleanup(func() { exec.Command("gpgconf", "--homedir", stranger, "--kill", "all").Run() })
	plain := filepath.Join(t.TempDir(), "backup.tar")
	if r := gpg(stranger, "-o", plain, "-d", archive); r.err == nil || fileExists(plain) {
		t.Fatalf("gpg opened the backup without the recipient's key: %s", r)
	}
	if r := gpg(home, "-o", plain, "-d", archive); r.err != nil {
		t.Fatalf("gpg -d with the recipient's key: %s", r)
	}
	listing := runCommand(nil, "", "tar", "tf", plain)
	if listing.err != nil || !strings.Contains(listing.stdout, "deposit-keyring.json") || !strings.Contains(listing.stdout, ".sql") {
		t.Fatalf("the opened backup is not the state directory and dump: %s", listing)
	}
}

// stringsIn returns every string in a decoded JSON value.
func stringsIn(v any) []string {
	var out []string
	switch v := v.(type) {
	case string:
		out = append(out, v)
	case []any:
		for _, e := range v {
			out = append(out, stringsIn(e)...)
		}
	case map[string]any:
		for _, e := range v {
			out = append(out, stringsIn(e)...)
		}
	}
	return out
}
