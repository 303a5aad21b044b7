package security

import (
	"bytes"
	"context"
	"os"
	"os/exec"
	"os/user"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"trustee.dev/trustee/server/config"
	"trustee.dev/trustee/server/pg"
)

// postgresAccount returns the uid and gid of the account PostgreSQL runs
// as, the attacker of these tests; they need kts to run as root, for only
// then does PostgreSQL run as an account of its own.
func postgresAccount(t *testing.T) (uid, gid int) {
	t.Helper()
	if os.Geteuid() != 0 {
		t.Skip("PostgreSQL runs as an account of its own only when kts runs as root")
	}
	u, err := user.Lookup(pg.DefaultRunAs)
	if err != nil {
		t.Fatal(err)
	}
	uid, _ = strconv.Atoi(u.Uid)
	gid, _ = strconv.Atoi(u.Gid)
	return uid, gid
}

// asPostgres runs a shell command as the PostgreSQL account.
func asPostgres(command string) result {
	return runCommand(nil, "", "runuser", "-u", pg.DefaultRunAs, "--", "/bin/sh", "-c", command)
}

// entries lists everything under dir but the database's data directory
// (PostgreSQL's own), with owners and modes.
func entries(t *testing.T, dir string) []string {
	t.Helper()
	var list []string
	err := filepath.Walk(dir, func(p string, fi os.FileInfo, err error) error {
		if err != nil {
			return err
		}
		rel, _ := filepath.Rel(dir, p)
		if rel == "db" {
			return filepath.SkipDir
		}
		st := fi.Sys().(*syscall.Stat_t)
		list = append(list, rel+" "+fi.Mode().String()+" "+strconv.Itoa(int(st.Uid)))
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	return list
}

// TestPostgresAccountCannotChangeStateDir plays the account PostgreSQL runs
// as, on a server set up as docs/OPERATIONS.md says (kts init, kts db init,
// kts db start, kts server, all as root): it can write its data directory,
// and nothing else in the state directory. A state directory older
// versions gave to that account is refused by kts server, and taken back
// by kts db start.
func TestPostgresAccountCannotChangeStateDir(t *testing.T) {
	postgresAccount(t)
	s, err := startServer(ktsBinary(t), serverOptions{})
	if err != nil {
		t.Fatal(err)
	}
	defer s.close()
	dir := s.dir
	if _, err := os.Stat(filepath.Join(dir, "audit")); err != nil {
		t.Fatal(err)
	}
	if r := asPostgres("touch " + filepath.Join(dir, "db", "probe") + " && rm " + filepath.Join(dir, "db", "probe")); r.err != nil {
		t.Fatalf("the PostgreSQL account cannot write its own data directory (is the test acting as it?): %s", r)
	}
	before := entries(t, dir)
	for _, attempt := range []struct{ what, command string }{
		{"rename keytrustee.conf", "mv keytrustee.conf keytrustee.conf.old"},
		{"plant a keytrustee.conf beside it", "echo '{}' > keytrustee.conf.new"},
		{"append to keytrustee.conf", "echo x >> keytrustee.conf"},
		{"rename the server key", "mv server-key.asc server-key.old"},
		{"plant a file in the state directory", "echo x > planted"},
		{"make a directory in the state directory", "mkdir planted.d"},
		{"open up the state directory", "chmod 0777 ."},
		{"rename .ssl", "mv .ssl .ssl.old"},
		{"plant a key in .ssl", "echo x > .ssl/planted.pem"},
		{"rename the TLS key", "mv .ssl/ssl-cert-keytrustee-pk.pem .ssl/old.pem"},
		{"rename audit", "mv audit audit.old"},
		{"plant a journal in audit", "echo x > audit/journal-0.jsonl"},
	} {
		if r := asPostgres("cd " + dir + " && " + attempt.command); r.err == nil {
			t.Errorf("the PostgreSQL account could %s (%s)", attempt.what, attempt.command)
		}
	}
	if after := entries(t, dir); !slices.Equal(before, after) {
		t.Errorf("the state directory changed:\nbefore %q\nafter  %q", before, after)
	}

	// A state directory as older versions left it: the PostgreSQL
	// account's.
	if err := s.halt(); err != nil {
		t.Fatal(err)
	}
	uid, gid := postgresAccount(t)
	if err := os.Chown(dir, uid, gid); err != nil {
		t.Fatal(err)
	}
	if err := os.Chmod(dir, 0o700); err != nil {
		t.Fatal(err)
	}
	stderr := refusedStart(t, s)
	for _, want := range []string{dir + " (", `account "postgres"`, "chown root " + dir} {
		if !strings.Contains(stderr, want) {
			t.Errorf("kts server on the older state directory: %q does not say %q", stderr, want)
		}
	}
	out := s.mustKTS(t, "", "db", "start")
	if !strings.Contains(out, `was owned by OS account "postgres"`) {
		t.Errorf("kts db start took the state directory back without saying so: %q", out)
	}
	fi, err := os.Stat(dir)
	if err != nil {
		t.Fatal(err)
	}
	if st := fi.Sys().(*syscall.Stat_t); st.Uid != 0 || fi.Mode().Perm() != 0o710 || int(st.Gid) != gid {
		t.Errorf("the state directory after kts db start: uid %d gid %d mode %v; want root's, group postgres, 0710", st.Uid, st.Gid, fi.Mode().Perm())
	}
	if r := asPostgres("echo x > " + filepath.Join(dir, "planted")); r.err == nil {
		t.Error("the PostgreSQL account can still plant files in the state directory taken back")
	}
	if err := s.start(); err != nil {
		t.Fatal(err)
	}
}

// TestServerRefusesFilesOtherAccountsCanChange: kts server does not start
// when another account than root can change keytrustee.conf, a key, a
// program the configuration runs or the directory holding one; the error
// names the file, who can change it and the command that stops it.
func TestServerRefusesFilesOtherAccountsCanChange(t *testing.T) {
	uid, gid := postgresAccount(t)
	s, err := startServer(ktsBinary(t), serverOptions{})
	if err != nil {
		t.Fatal(err)
	}
	defer s.close()
	if err := s.stop(); err != nil {
		t.Fatal(err)
	}
	conf := filepath.Join(s.dir, config.FileName)
	sslDir := filepath.Join(s.dir, ".ssl")
	pristine, err := os.ReadFile(conf)
	if err != nil {
		t.Fatal(err)
	}
	// A password script in a directory of its own, as an operator would
	// install it; the TLS key is not encrypted, and kts never gets to run
	// it.
	scriptDir := filepath.Join(s.root, "bin")
	script := filepath.Join(scriptDir, "tls-password")
	if err := os.Mkdir(scriptDir, 0o755); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(script, []byte("#!/bin/sh\necho secret\n"), 0o755); err != nil {
		t.Fatal(err)
	}
	withScript := func() {
		cfg, err := config.Load(s.dir)
		if err != nil {
			t.Fatal(err)
		}
		cfg.SSLPrivateKeyPasswordScript = script + " --for kts"
		if err := cfg.Save(s.dir); err != nil {
			t.Fatal(err)
		}
	}
	must := func(err error) {
		t.Helper()
		if err != nil {
			t.Fatal(err)
		}
	}
	for _, tc := range []struct {
		name            string
		change, restore func()
		file, who, fix  string
	}{
		{"keytrustee.conf owned by postgres",
			func() { must(os.Chown(conf, uid, gid)) }, func() { must(os.Chown(conf, 0, 0)) },
			conf, `account "postgres"`, "chown root " + conf},
		{"keytrustee.conf writable by postgres's group",
			func() { must(os.Chown(conf, 0, gid)); must(os.Chmod(conf, 0o660)) }, func() { must(os.Chown(conf, 0, 0)); must(os.Chmod(conf, 0o600)) },
			conf, `group "postgres"`, "chmod g-w " + conf},
		{"keytrustee.conf writable by everyone",
			func() { must(os.Chmod(conf, 0o602)) }, func() { must(os.Chmod(conf, 0o600)) },
			conf, "every", "chmod "},
		{"the directory of the TLS key writable by postgres's group",
			func() { must(os.Chown(sslDir, 0, gid)); must(os.Chmod(sslDir, 0o770)) }, func() { must(os.Chown(sslDir, 0, 0)); must(os.Chmod(sslDir, 0o700)) },
			sslDir, `group "postgres"`, "chmod g-w " + sslDir},
		{"a password script owned by postgres",
			func() { withScript(); must(os.Chown(script, uid, gid)) }, func() { must(os.WriteFile(conf, pristine, 0o600)); must(os.Chown(script, 0, 0)) },
			script, `account "postgres"`, "chown root " + script},
		{"the directory of a password script writable by everyone",
			func() { withScript(); must(os.Chmod(scriptDir, 0o777)) }, func() { must(os.WriteFile(conf, pristine, 0o600)); must(os.Chmod(scriptDir, 0o755)) },
			scriptDir, "everyone", "chmod o-w " + scriptDir},
	} {
		t.Run(tc.name, func(t *testing.T) {
			tc.change()
			defer tc.restore()
			stderr := refusedStart(t, s)
			for _, want := range []string{tc.file, tc.who, tc.fix} {
				if !strings.Contains(stderr, want) {
					t.Errorf("%q does not say %q", stderr, want)
				}
			}
			if strings.Contains(stderr, "--for kts") {
				t.Errorf("%q quotes the script's arguments, which may hold its secret", stderr)
			}
		})
	}
	// Safe again, and a file only root's group may write is fine.
	must(os.Chmod(conf, 0o660))
	if err := s.start(); err != nil {
		t.Fatal(err)
	}
}

// refusedStart runs kts server on s's state directory, which must refuse
// to start, and returns what it said.
func refusedStart(t *testing.T, s *server) string {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	cmd := exec.CommandContext(ctx, filepath.Join(binDir, "kts"), "server", "--confdir", s.dir)
	var out bytes.Buffer
	cmd.Stdout, cmd.Stderr = &out, &out
	err := cmd.Run()
	if ctx.Err() != nil {
		t.Fatalf("kts server started although it should have refused:\n%s", out.String())
	}
	if err == nil {
		t.Fatalf("kts server exited 0 although it should have refused:\n%s", out.String())
	}
	return out.String()
}
