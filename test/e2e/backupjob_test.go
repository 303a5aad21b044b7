package e2e

import (
	"encoding/json"
	"os"
	"path/filepath"
	"regexp"
	"strings"
	"testing"
	"time"

	"trustee.dev/trustee/server/config"
	"trustee.dev/trustee/test/harness"
	hist "trustee.dev/trustee/test/history"
	"trustee.dev/trustee/test/memberpods"
)

// jobArchiveName is what a backup of a member is named: after its HOSTNAME.
var jobArchiveName = regexp.MustCompile(`^kts_bak_localhost_\d{4}-\d\d-\d\d_\d\d-\d\d-\d\d\.tar$`)

// TestBackupJobOfAMember backs up the passive of a running pair as the
// operator's backup Job does: in a pod of its own, with no database, whose
// init container installs the member's configuration with `kts member
// setup --config-only` and whose container runs `kts backup` against the
// member's PostgreSQL over the network, writing the archive's name to its
// termination log. The archive restores on a fresh host and serves what
// was deposited before the backup. A termination log that cannot be
// written fails the Job, and the archive is kept.
func TestBackupJobOfAMember(t *testing.T) {
	root := memberpods.RootDir(t)
	mounts := layOutMounts(t, root)
	active, passive := startMemberPair(t, root, mounts)

	// The member admits its database user from the networks the operator
	// gives (DB_CLIENTS_FROM), next to the replication lines.
	for _, m := range []*memberPod{active, passive} {
		hba := string(must(os.ReadFile(filepath.Join(m.dataDir, "pg_hba.conf"))))
		for _, want := range []string{"host    all          \"keytrustee\"  0.0.0.0/0  scram-sha-256\n",
			"host    all          \"keytrustee\"  ::/0  scram-sha-256\n"} {
			if !strings.Contains(hba, want) {
				t.Fatalf("%s's pg_hba.conf lacks %q:\n%s", m.name, want, hba)
			}
		}
	}

	kts(t, "org", "add", "-n", "acme", "-c", "a@example.com", "--confdir", active.state)
	kts(t, "org", "set-auth", "-n", "acme", "-s", "", "--confdir", active.state)
	client := filepath.Join(root, "client")
	kts(t, "client", "register", "--dir", client, "--server", active.url+","+passive.url, "--org", "acme", "--ca-file", mounts.ca)
	onlyPassive := hist.ClientWithServers(t, client, filepath.Join(root, "client-passive"), passive.url)
	putStdin(t, client, "disk-1", "key of disk 1")

	// The Job's ConfigMap: the passive's keytrustee.conf reading its
	// PostgreSQL over the network, as the operator renders it.
	var c config.Config
	if err := json.Unmarshal(must(os.ReadFile(passive.conf)), &c); err != nil {
		t.Fatal(err)
	}
	c.DBHost, c.DBPort, c.DBSocketDir = "127.0.0.1", passive.dbPort, ""
	data, err := json.MarshalIndent(c, "", "  ")
	if err != nil {
		t.Fatal(err)
	}
	jobConfig := filepath.Join(root, "etc", "backup-config")
	writeMount(t, jobConfig, map[string][]byte{"backup.conf": append(data, '\n')})
	jobState := filepath.Join(root, "job", "state") // an emptyDir
	archives := filepath.Join(root, "backup-volume", "kts")
	if err := os.MkdirAll(archives, 0o755); err != nil {
		t.Fatal(err)
	}
	termLog := filepath.Join(root, "job", "termination-log")

	// The init container.
	out := kts(t, "member", "setup", "--member", "passive", "--config-only", "--config", filepath.Join(jobConfig, "backup.conf"), "--confdir", jobState)
	for _, want := range []string{"installed ", "the database is the passive's at 127.0.0.1:" + itoa(passive.dbPort)} {
		if !strings.Contains(out, want) {
			t.Fatalf("setup --config-only lacks %q:\n%s", want, out)
		}
	}
	if entries, _ := os.ReadDir(jobState); len(entries) != 1 || entries[0].Name() != config.FileName {
		t.Fatalf("setup --config-only left %v in the Job's state directory", entries)
	}

	// The container.
	r := runTool(t, "", "kts", "backup", "--confdir", jobState, "--cleartext", "--output", archives, "--quiet", "--result-file", termLog)
	if r.err != nil {
		t.Fatalf("kts backup as the Job runs it: %v\n%s", r.err, r.stderr)
	}
	archive := strings.TrimSuffix(r.stdout, "\n")
	name := string(must(os.ReadFile(termLog)))
	if name != filepath.Base(archive) || !jobArchiveName.MatchString(name) || filepath.Dir(archive) != archives {
		t.Fatalf("termination log %q, printed %q; want the archive's name", name, r.stdout)
	}
	if fi, err := os.Stat(archive); err != nil || fi.Mode().Perm() != 0o600 {
		t.Fatalf("archive %s: %v, %v", archive, fi, err)
	}

	// With spec.verify the container also runs the new archive's restore
	// drill; what it found follows the name in the termination log.
	time.Sleep(time.Second) // archive names have a resolution of a second
	r = runTool(t, "", "kts", "backup", "--confdir", jobState, "--cleartext", "--output", archives, "--quiet", "--verify", "--result-file", termLog)
	if r.err != nil {
		t.Fatalf("kts backup --verify as the Job runs it: %v\n%s", r.err, r.stderr)
	}
	drilled := regexp.MustCompile(`^(kts_bak_\S+\.tar)\nrestore drill: ok, \d+ tables and \d+ rows restored as they were backed up \(1 organizations, 1 clients, 1 deposits\)$`)
	if m := drilled.FindStringSubmatch(string(must(os.ReadFile(termLog)))); m == nil || m[1] != filepath.Base(strings.TrimSpace(r.stdout)) {
		t.Fatalf("termination log of a verified backup: %q (printed %q)", must(os.ReadFile(termLog)), r.stdout)
	}
	putStdin(t, client, "disk-after", "written after the backup")

	// A termination log that cannot be written: the Job fails and says
	// the archive is complete and kept.
	time.Sleep(time.Second) // archive names have a resolution of a second
	missing := filepath.Join(root, "no-such-dir", "termination-log")
	r = runTool(t, "", "kts", "backup", "--confdir", jobState, "--cleartext", "--output", archives, "--quiet", "--result-file", missing)
	m := regexp.MustCompile(`the backup (\S+) is complete and kept, but writing its name to --result-file failed: .*` + regexp.QuoteMeta(missing)).FindStringSubmatch(r.stderr)
	if r.err == nil || m == nil {
		t.Fatalf("kts backup --result-file %s: %v\n%s", missing, r.err, r.stderr)
	}
	if _, err := os.Stat(m[1]); err != nil || m[1] == archive || filepath.Dir(m[1]) != archives {
		t.Fatalf("the archive %s the error names: %v", m[1], err)
	}

	// Restored on a fresh host (a passive's backup becomes a standalone
	// server), it serves the deposit made before the backup, at the
	// passive's address and with its certificate.
	fresh := filepath.Join(root, "restored")
	r = runTool(t, "", "kts", "restore", "--confdir", fresh, "--database-port", itoa(harness.FreePort(t)), archive)
	t.Cleanup(func() { runTool(t, "", "kts", "db", "stop", "--confdir", fresh) })
	if r.err != nil {
		t.Fatalf("restore of the Job's archive: %v\n%s", r.err, r.stderr)
	}
	for _, want := range []string{"1 organizations, 1 clients, 1 deposits", "restored as a standalone server"} {
		if !strings.Contains(r.stdout, want) {
			t.Fatalf("restore output lacks %q:\n%s", want, r.stdout)
		}
	}
	if err := passive.server.stop(); err != nil {
		t.Fatal(err)
	}
	kts(t, "db", "start", "--confdir", fresh)
	startServer(t, fresh)
	if got := kts(t, "client", "get", "--dir", onlyPassive, "disk-1"); got != "key of disk 1" {
		t.Fatalf("the restored server reads %q", got)
	}
	if r := runTool(t, "", "kts", "client", "get", "--dir", onlyPassive, "disk-after"); r.err == nil {
		t.Fatalf("the restored server has the deposit made after the backup: %q", r.stdout)
	}
	if list := kts(t, "org", "list", "--confdir", fresh); !strings.Contains(list, `"acme"`) {
		t.Fatalf("org list of the restored server:\n%s", list)
	}
}
