package security

import (
	"context"
	"io"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"

	"trustee.dev/trustee/server/backup"
	"trustee.dev/trustee/server/config"
	"trustee.dev/trustee/test/harness"
)

// TestForgedArchiveWritesOutsideOnlyWhereItsConfigurationSays: anyone with
// the recipient's public key can make an archive. Restored onto a fresh
// host, a forged archive that lists a path its keytrustee.conf does not
// name (a cron job) has it ignored, and one whose keytrustee.conf names a
// path that is a symbolic link on the host writes nothing through the link;
// a file it names that is missing is written, at most 0640.
func TestForgedArchiveWritesOutsideOnlyWhereItsConfigurationSays(t *testing.T) {
	s := shared(t)
	root, err := os.MkdirTemp("", "kts-security-restore-")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { os.RemoveAll(root) })
	os.Chmod(root, 0o755)

	// A real backup gives the forger a dump and state files.
	r := s.kts("", "backup", "--confdir", s.dir, "--cleartext", "--quiet", "--output", root)
	if r.err != nil {
		t.Fatalf("kts backup: %s", r)
	}
	f, err := os.Open(strings.TrimSpace(r.stdout))
	if err != nil {
		t.Fatal(err)
	}
	staged, err := backup.Unpack(f, nil, filepath.Join(root, "stage"))
	f.Close()
	if err != nil {
		t.Fatal(err)
	}
	forger := filepath.Join(root, "forger", ".keytrustee")
	if _, err := staged.Place(forger, func(string) bool { return false }); err != nil {
		t.Fatal(err)
	}
	dump := mustRead(t, staged.File(staged.Dump))
	staged.Remove()

	adminCA, chain, planted := filepath.Join(root, "admin-ca.pem"), filepath.Join(root, "tls", "chain.pem"), filepath.Join(root, "cron.d", "evil")
	for p, content := range map[string]string{adminCA: "admin CA", chain: "chain", planted: "* * * * * root sh -c evil"} {
		os.MkdirAll(filepath.Dir(p), 0o755)
		if err := os.WriteFile(p, []byte(content), 0o755); err != nil {
			t.Fatal(err)
		}
	}
	cfg, err := config.Load(forger)
	if err != nil {
		t.Fatal(err)
	}
	cfg.AdminCAFile, cfg.SSLCertificateChain = adminCA, chain
	if err := cfg.Save(forger); err != nil {
		t.Fatal(err)
	}
	res, err := backup.Make(context.Background(), backup.Options{Kind: backup.KindServer, StateDir: forger, Output: root, Host: "forged",
		Now: time.Now(), Extra: []string{adminCA, chain, planted}, Skip: func(rel string) bool { return rel == "db" },
		Dump: func(_ context.Context, w io.Writer) error { _, err := w.Write(dump); return err }})
	if err != nil {
		t.Fatal(err)
	}

	// The new host: none of those files, but the admin CA's path is a
	// symbolic link to where the forger would like to write.
	for _, p := range []string{adminCA, chain, planted} {
		os.Remove(p)
	}
	target := filepath.Join(root, "target")
	if err := os.Symlink(target, adminCA); err != nil {
		t.Fatal(err)
	}
	port := harness.FreePort(t)
	fresh := filepath.Join(root, "fresh")
	r = runCommand(nil, "", filepath.Join(binDir, "kts"), "restore", "--confdir", fresh, "--database-port", strconv.Itoa(port), res.Path)
	if r.err != nil {
		t.Fatalf("kts restore: %s", r)
	}
	if _, err := os.Lstat(planted); !os.IsNotExist(err) {
		t.Errorf("the restore wrote %s, which the archive's configuration does not name (%v)", planted, err)
	}
	if _, err := os.Lstat(target); !os.IsNotExist(err) {
		t.Errorf("the restore wrote through the symbolic link %s (%v)", adminCA, err)
	}
	if fi, err := os.Lstat(adminCA); err != nil || fi.Mode()&os.ModeSymlink == 0 {
		t.Errorf("%s is no longer the host's symbolic link: %v %v", adminCA, fi, err)
	}
	if fi, err := os.Stat(chain); err != nil || fi.Mode().Perm() != 0o640 || string(mustRead(t, chain)) != "chain" {
		t.Errorf("the missing chain file it names: %v %v; want it written 0640", fi, err)
	}
	if !strings.Contains(r.stdout, "kept "+adminCA) {
		t.Errorf("the restore did not say it kept %s:\n%s", adminCA, r.stdout)
	}
}
