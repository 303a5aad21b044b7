package restore_test

import (
	"context"
	"io"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"

	"trustee.dev/trustee/server/backup"
	"trustee.dev/trustee/server/config"
	"trustee.dev/trustee/server/restore"
)

func TestFreshConfigIsAStandaloneServer(t *testing.T) {
	single := config.Default("kts01")
	active := single
	active.StandbyName = "kts_passive"
	passive := active
	passive.Role, passive.ActiveURL, passive.ActiveCA, passive.ActiveDB = config.RolePassive, "https://kts01:11371", "active-ca.pem", "kts01:11381"
	for _, tc := range []struct {
		name       string
		archived   config.Config
		wasPaired  string
		keepsOther bool
	}{
		{"a single server stays one", single, "", true},
		{"an active waits for no passive", active, config.RoleActive, true},
		{"a passive follows no active", passive, config.RolePassive, true},
	} {
		t.Run(tc.name, func(t *testing.T) {
			got, was := restore.FreshConfig(tc.archived)
			if was != tc.wasPaired {
				t.Errorf("was paired %q, want %q", was, tc.wasPaired)
			}
			if got.Role != config.RoleActive || got.StandbyName != "" || got.ActiveURL != "" || got.ActiveCA != "" || got.ActiveDB != "" {
				t.Errorf("pairing left: role %q standby %q active %q %q %q", got.Role, got.StandbyName, got.ActiveURL, got.ActiveCA, got.ActiveDB)
			}
			if got.Hostname != tc.archived.Hostname || got.DBPort != tc.archived.DBPort || got.ServerKey != tc.archived.ServerKey {
				t.Errorf("other settings changed: %+v", got)
			}
		})
	}
}

func TestOutsideFilesAreTheConfiguredOnesOutsideTheStateDirectory(t *testing.T) {
	dir := "/var/lib/keytrustee/.keytrustee"
	for _, tc := range []struct {
		name string
		set  func(*config.Config)
		want []string
	}{
		{"defaults are all inside", func(*config.Config) {}, nil},
		{"the admin CA beside the state directory", func(c *config.Config) { c.AdminCAFile = "/var/lib/keytrustee/admin-ca.pem" },
			[]string{"/var/lib/keytrustee/admin-ca.pem"}},
		{"relative paths are inside", func(c *config.Config) { c.AdminCAFile = "admin-ca.pem"; c.SMTPCAFile = ".ssl/smtp.pem" }, nil},
		{"absolute paths inside are inside", func(c *config.Config) { c.SSLCertificate = dir + "/.ssl/x.pem" }, nil},
		{"a relative path that leaves is outside", func(c *config.Config) { c.DBCAFile = "../db-ca.pem" },
			[]string{"/var/lib/keytrustee/db-ca.pem"}},
		{"each file once, commands and the PIN file never", func(c *config.Config) {
			c.SSLCertificate, c.SSLPrivateKey, c.SSLCertificateChain = "/etc/kts/tls.crt", "/etc/kts/tls.key", "/etc/kts/chain.pem"
			c.ActiveCA, c.DBCAFile, c.SMTPCAFile, c.SMTPPasswordFile = "/etc/kts/ca.pem", "/etc/kts/ca.pem", "/etc/ssl/smtp.pem", "/etc/kts/smtp.pw"
			c.HSMPINFile, c.SSLPrivateKeyPasswordScript, c.SMTPPasswordScript, c.HSMPINScript = "/etc/kts/hsm.pin", "/usr/local/bin/pw", "/usr/local/bin/smtp", "/usr/local/bin/pin"
		}, []string{"/etc/kts/tls.crt", "/etc/kts/tls.key", "/etc/kts/chain.pem", "/etc/kts/ca.pem", "/etc/ssl/smtp.pem", "/etc/kts/smtp.pw"}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			c := config.Default("kts01")
			tc.set(&c)
			if got := restore.OutsideFiles(dir, c); !slices.Equal(got, tc.want) {
				t.Errorf("OutsideFiles = %q, want %q", got, tc.want)
			}
		})
	}
}

// staged backs up a state directory whose keytrustee.conf names the given
// files outside it (with contents), plus extra archived paths it does not
// name, and stages the archive in a new state directory.
func staged(t *testing.T, root string, named map[string]string, extra map[string]string) *backup.Staged {
	t.Helper()
	dir := filepath.Join(root, "old", ".keytrustee")
	os.MkdirAll(dir, 0o700)
	cfg := config.Default("kts01")
	var files []string
	for key, p := range map[string]*string{"ADMIN_CA_FILE": &cfg.AdminCAFile, "SSL_CERTIFICATE_CHAIN": &cfg.SSLCertificateChain, "SMTP_CA_FILE": &cfg.SMTPCAFile} {
		if content, ok := named[key]; ok {
			*p = filepath.Join(root, "old", strings.ToLower(key)+".pem")
			os.WriteFile(*p, []byte(content), 0o644)
			files = append(files, *p)
		}
	}
	for p, content := range extra {
		os.MkdirAll(filepath.Dir(p), 0o755)
		os.WriteFile(p, []byte(content), 0o644)
		files = append(files, p)
	}
	if err := cfg.Save(dir); err != nil {
		t.Fatal(err)
	}
	res, err := backup.Make(context.Background(), backup.Options{Kind: backup.KindServer, StateDir: dir, Output: root, Host: "kts01",
		Now: time.Now(), Extra: files, Dump: func(_ context.Context, w io.Writer) error { _, err := io.WriteString(w, "SELECT 1;\n"); return err }})
	if err != nil {
		t.Fatal(err)
	}
	f, err := os.Open(res.Path)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	s, err := backup.Unpack(f, nil, filepath.Join(root, "new"))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { s.Remove() })
	// The files are lost with the old host.
	os.RemoveAll(filepath.Join(root, "old"))
	for p := range extra {
		os.Remove(p)
	}
	return s
}

// TestOutsideFilesWrittenOnlyWhereNothingIs: a restore writes back the
// files the archive's keytrustee.conf names outside the state directory,
// only where nothing is — never another path the archive lists, never over
// a file, never through a symbolic link — with a mode of at most 0640, and
// undo removes what it wrote.
func TestOutsideFilesWrittenOnlyWhereNothingIs(t *testing.T) {
	root := t.TempDir()
	planted := filepath.Join(root, "etc", "cron.d", "evil")
	s := staged(t, root, map[string]string{"ADMIN_CA_FILE": "admin CA", "SSL_CERTIFICATE_CHAIN": "chain", "SMTP_CA_FILE": "smtp CA"},
		map[string]string{planted: "* * * * * root sh -c evil"})
	cfg, err := restore.Config(s)
	if err != nil {
		t.Fatal(err)
	}
	// On the new host: the chain is there as it was, the SMTP CA is a
	// symbolic link to somewhere else, the admin CA is missing.
	os.MkdirAll(filepath.Dir(cfg.SSLCertificateChain), 0o755)
	os.WriteFile(cfg.SSLCertificateChain, []byte("chain"), 0o644)
	target := filepath.Join(root, "elsewhere")
	os.Symlink(target, cfg.SMTPCAFile)

	plan, err := restore.PlanOutside(s, cfg)
	if err != nil {
		t.Fatal(err)
	}
	actions := map[string]string{}
	for _, f := range plan {
		actions[f.Path] = f.Action
	}
	want := map[string]string{cfg.AdminCAFile: restore.Write, cfg.SSLCertificateChain: restore.Same, cfg.SMTPCAFile: restore.Differs}
	if len(actions) != len(want) {
		t.Fatalf("plan %v, want %v", actions, want)
	}
	for p, a := range want {
		if actions[p] != a {
			t.Errorf("%s: %q, want %q", p, actions[p], a)
		}
	}
	written, undo, err := restore.WriteOutside(s, plan)
	if err != nil || !slices.Equal(written, []string{cfg.AdminCAFile}) {
		t.Fatalf("WriteOutside = %v, %v", written, err)
	}
	if data, err := os.ReadFile(cfg.AdminCAFile); err != nil || string(data) != "admin CA" {
		t.Fatalf("admin CA: %q %v", data, err)
	}
	if fi, _ := os.Stat(cfg.AdminCAFile); fi.Mode().Perm() != 0o640 {
		t.Errorf("admin CA written %v, want at most 0640", fi.Mode().Perm())
	}
	if _, err := os.Lstat(target); !os.IsNotExist(err) {
		t.Errorf("a file was written through the symbolic link: %v", err)
	}
	if _, err := os.Lstat(planted); !os.IsNotExist(err) {
		t.Errorf("%s, which the configuration does not name, was written: %v", planted, err)
	}
	report := strings.Join(restore.Report(plan, "a.tar.gpg"), "\n")
	if !strings.Contains(report, "restored "+cfg.AdminCAFile) || !strings.Contains(report, "kept "+cfg.SMTPCAFile) {
		t.Errorf("report:\n%s", report)
	}
	undo()
	if _, err := os.Lstat(cfg.AdminCAFile); !os.IsNotExist(err) {
		t.Errorf("undo left the admin CA file: %v", err)
	}
	if _, err := os.Lstat(cfg.SSLCertificateChain); err != nil {
		t.Errorf("undo removed a file it had not written: %v", err)
	}

	// A file that appears between the plan and the write is not replaced.
	plan, _ = restore.PlanOutside(s, cfg)
	os.MkdirAll(filepath.Dir(cfg.AdminCAFile), 0o755)
	os.WriteFile(cfg.AdminCAFile, []byte("someone else's"), 0o600)
	if _, _, err := restore.WriteOutside(s, plan); err == nil || !strings.Contains(err.Error(), cfg.AdminCAFile) {
		t.Fatalf("WriteOutside over a new file = %v", err)
	}
	if data, _ := os.ReadFile(cfg.AdminCAFile); string(data) != "someone else's" {
		t.Fatalf("a file that appeared was replaced: %q", data)
	}
}

// TestTrackUndoesWhatAFreshRestoreMade: undo removes what was made in a
// state directory that existed (and nothing that was there), or the whole
// directory when the restore created it, and a data directory made.
func TestTrackUndoesWhatAFreshRestoreMade(t *testing.T) {
	root := t.TempDir()
	dir, data := filepath.Join(root, "state"), filepath.Join(root, "pgdata")
	os.Mkdir(dir, 0o700)
	os.WriteFile(filepath.Join(dir, "notes"), []byte("mine"), 0o600)
	undo, err := restore.Track(dir, data)
	if err != nil {
		t.Fatal(err)
	}
	os.WriteFile(filepath.Join(dir, "keytrustee.conf"), []byte("{}"), 0o600)
	os.MkdirAll(filepath.Join(dir, ".ssl"), 0o700)
	os.MkdirAll(data, 0o700)
	if err := undo(false); err != nil {
		t.Fatal(err)
	}
	if entries, _ := os.ReadDir(dir); len(entries) != 1 || entries[0].Name() != "notes" {
		t.Fatalf("after undo the state directory holds %v", entries)
	}
	if _, err := os.Lstat(data); !os.IsNotExist(err) {
		t.Fatalf("undo left the data directory: %v", err)
	}

	fresh := filepath.Join(root, "fresh")
	undo, _ = restore.Track(fresh, filepath.Join(fresh, "db"))
	os.MkdirAll(filepath.Join(fresh, "db"), 0o700)
	if err := undo(true); err != nil {
		t.Fatal(err)
	}
	if _, err := os.Lstat(fresh); !os.IsNotExist(err) {
		t.Fatalf("undo left the state directory it created: %v", err)
	}
}

func TestWriteOutsideMakesMissingDirectoriesAndUndoesThem(t *testing.T) {
	root := t.TempDir()
	s := staged(t, root, map[string]string{"ADMIN_CA_FILE": "admin CA"}, nil)
	cfg, _ := restore.Config(s)
	plan, err := restore.PlanOutside(s, cfg)
	if err != nil || len(plan) != 1 || plan[0].Action != restore.Write {
		t.Fatalf("plan %+v, %v", plan, err)
	}
	_, undo, err := restore.WriteOutside(s, plan)
	if err != nil {
		t.Fatal(err)
	}
	if fi, err := os.Stat(filepath.Dir(cfg.AdminCAFile)); err != nil || fi.Mode().Perm() != 0o700 {
		t.Fatalf("the directory made: %v %v", fi, err)
	}
	undo()
	if _, err := os.Lstat(filepath.Dir(cfg.AdminCAFile)); !os.IsNotExist(err) {
		t.Fatalf("undo left the directory it made: %v", err)
	}
}

// TestCheckRunsNoScriptAnotherAccountCanChange: a restore opens the HSM
// with the configured PKCS#11 library and PIN script; when another account
// can change the script, it is refused before it runs, naming it.
func TestCheckRunsNoScriptAnotherAccountCanChange(t *testing.T) {
	root := t.TempDir()
	s := staged(t, root, nil, nil)
	bin := filepath.Join(root, "bin")
	if err := os.Mkdir(bin, 0o755); err != nil {
		t.Fatal(err)
	}
	ran := filepath.Join(root, "ran")
	script := filepath.Join(bin, "pin.sh")
	if err := os.WriteFile(script, []byte("#!/bin/sh\ntouch "+ran+"\necho 1234\n"), 0o755); err != nil {
		t.Fatal(err)
	}
	if err := os.Chmod(script, 0o777); err != nil { // writable by everyone
		t.Fatal(err)
	}
	cfg := config.Default("kts01")
	cfg.HSMModule = "/usr/lib/softhsm/libsofthsm2.so"
	cfg.HSMTokenLabel = "kts"
	cfg.HSMPINScript = script
	dir := filepath.Join(root, "state")
	_, err := restore.Check(s, dir, cfg)
	if err == nil || !strings.Contains(err.Error(), "HSM_PIN_SCRIPT") || !strings.Contains(err.Error(), script) {
		t.Fatalf("Check with a PIN script everyone can change: %v, want a refusal naming HSM_PIN_SCRIPT and %s", err, script)
	}
	if _, err := os.Stat(ran); err == nil {
		t.Fatal("the PIN script ran")
	}
}
