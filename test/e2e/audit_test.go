package e2e

import (
	"bytes"
	"encoding/base64"
	"encoding/json"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strings"
	"testing"

	"trustee.dev/trustee/test/harness"
	"trustee.dev/trustee/test/memberpods"
)

// TestAuditLogAfterAWorkload runs a server through what an installation
// does — organizations, registrations, deposits, refusals, a backup — then
// checks the audit log with `kts audit verify`, exports it, and tampers
// with the database and the journal to see verify name the record.
func TestAuditLogAfterAWorkload(t *testing.T) {
	root := memberpods.RootDir(t)
	dir := filepath.Join(root, "keytrustee")
	apiPort, dbPort := harness.FreePort(t), harness.FreePort(t)
	url := "https://127.0.0.1:" + itoa(apiPort)
	kts(t, "init", "--confdir", dir, "--hostname", "localhost", "--key-type", "ed25519",
		"--listen", "127.0.0.1:"+itoa(apiPort), "--db-port", itoa(dbPort))
	kts(t, "db", "init", "--confdir", dir)
	kts(t, "db", "start", "--confdir", dir)
	t.Cleanup(func() { runTool(t, "", "kts", "db", "stop", "--confdir", dir) })
	srv := startServer(t, dir)

	const code = "Audit-S3cret-Code!"
	kts(t, "org", "add", "--confdir", dir, "-n", "acme", "-c", "finn@example.com")
	if r := runTool(t, code+"\n", "kts", "org", "set-auth", "--confdir", dir, "-n", "acme", "-s", "-"); r.err != nil {
		t.Fatalf("set-auth: %v %s", r.err, r.stderr)
	}
	ca := filepath.Join(dir, ".ssl", "ssl-cert-keytrustee.pem")
	codeFile := filepath.Join(root, "code")
	os.WriteFile(codeFile, []byte(code+"\n"), 0o600)
	c1, c2 := filepath.Join(root, "c1"), filepath.Join(root, "c2")
	kts(t, "client", "register", "--dir", c1, "--server", url, "--org", "acme", "--auth-code-file", codeFile, "--ca-file", ca)
	out := kts(t, "client", "register", "--dir", c2, "--server", url, "--org", "acme", "--auth-code", "wrong", "--ca-file", ca)
	fp2 := regexp.MustCompile(`fingerprint: ([0-9A-F]{40})`).FindStringSubmatch(out)[1]
	const contents = "DEPOSIT-BYTES-for-the-audit-test"
	deposit := filepath.Join(root, "deposit")
	os.WriteFile(deposit, []byte(contents), 0o600)
	for i := range 5 {
		name := "key" + itoa(i)
		kts(t, "client", "put", "--dir", c1, name, deposit)
		kts(t, "client", "get", "--dir", c1, name)
	}
	kts(t, "client", "delete", "--dir", c1, "key0")
	kts(t, "client", "list", "--dir", c1)
	if r := runTool(t, "", "kts", "client", "put", "--dir", c2, "k", deposit); r.err == nil {
		t.Fatal("a pending client stored a deposit")
	}
	kts(t, "org", "enable-client", "--confdir", dir, "--fingerprint", fp2)
	kts(t, "backup", "--confdir", dir, "--cleartext", "--output", root, "--quiet")
	// A clean stop signs both chains' heads.
	if err := srv.stop(); err != nil {
		t.Fatal(err)
	}

	out = kts(t, "audit", "verify", "--confdir", dir, "--max-unsigned", "1")
	for _, want := range []string{"db: ", "journal: ", "signed through record"} {
		if !strings.Contains(out, want) {
			t.Fatalf("verify: %q lacks %q", out, want)
		}
	}
	export := filepath.Join(root, "audit.jsonl")
	kts(t, "audit", "export", "--confdir", dir, "--output", export)
	data, err := os.ReadFile(export)
	if err != nil {
		t.Fatal(err)
	}
	actions := map[string]int{}
	for _, line := range strings.Split(strings.TrimSpace(string(data)), "\n") {
		var r struct{ Chain, Action, Actor, Outcome string }
		if err := json.Unmarshal([]byte(line), &r); err != nil {
			t.Fatalf("export line %q: %v", line, err)
		}
		actions[r.Action+" "+r.Outcome]++
		if r.Action == "org.auth_code" && r.Actor != "os:root" && !strings.HasPrefix(r.Actor, "os:") {
			t.Errorf("org.auth_code by %q", r.Actor)
		}
	}
	for want, n := range map[string]int{
		"org.create ok": 1, "org.auth_code ok": 1, "client.register active": 1, "client.register pending": 1,
		"deposit.create ok": 5, "deposit.read ok": 5, "deposit.delete ok": 1, "deposit.list ok": 1,
		"client.state ok": 1, "backup started": 1, "backup ok": 1, "session.open ok": 1,
		"auth.failure client_not_active": 1,
	} {
		if actions[want] < n {
			t.Errorf("export has %d %q, want at least %d (%v)", actions[want], want, n, actions)
		}
	}
	if actions["audit.checkpoint ok"] < 2 {
		t.Errorf("export has %d checkpoints", actions["audit.checkpoint ok"])
	}
	for what, secret := range map[string]string{"auth code": code, "deposit": contents, "deposit (base64)": base64.StdEncoding.EncodeToString([]byte(contents))} {
		if bytes.Contains(data, []byte(secret)) {
			t.Errorf("the export holds the %s", what)
		}
	}
	if out := kts(t, "audit", "verify", "--file", export, "--confdir", dir); !strings.Contains(out, "db: ") || !strings.Contains(out, "journal@localhost: ") {
		t.Fatalf("verify --file: %q", out)
	}

	// Tampering with the database, as someone with its password could.
	psql := func(sql string) {
		t.Helper()
		cmd := exec.Command(psqlPath(t), "-h", "127.0.0.1", "-p", itoa(dbPort), "-U", "keytrustee", "-d", "keytrustee", "-v", "ON_ERROR_STOP=1", "-c", sql)
		pw, _ := os.ReadFile(filepath.Join(dir, "db.password"))
		cmd.Env = append(os.Environ(), "PGPASSWORD="+strings.TrimSpace(string(pw)))
		if out, err := cmd.CombinedOutput(); err != nil {
			t.Fatalf("psql %s: %v\n%s", sql, err, out)
		}
	}
	broken := func(want ...string) {
		t.Helper()
		r := runTool(t, "", "kts", "audit", "verify", "--confdir", dir)
		if r.err == nil {
			t.Fatalf("verify passed a tampered chain: %s", r.stdout)
		}
		for _, w := range want {
			if !strings.Contains(r.stderr, w) {
				t.Fatalf("verify said %q, want %q", r.stderr, w)
			}
		}
	}
	// A deposit creation made to look like someone else's.
	psql(`UPDATE audit_log SET actor = 'client:0000000000000000000000000000000000000000' WHERE seq = (SELECT min(seq) FROM audit_log WHERE action = 'deposit.create')`)
	broken("BROKEN: audit chain db: record ", "hash does not match its contents")
	psql(`UPDATE audit_log SET actor = (SELECT actor FROM audit_log WHERE action = 'deposit.create' AND actor <> 'client:0000000000000000000000000000000000000000' LIMIT 1) WHERE actor = 'client:0000000000000000000000000000000000000000'`)
	kts(t, "audit", "verify", "--confdir", dir)
	// The record of the deletion removed.
	psql(`CREATE TABLE kept AS SELECT * FROM audit_log WHERE action = 'deposit.delete'`)
	psql(`DELETE FROM audit_log WHERE action = 'deposit.delete'`)
	broken("is missing (deleted)")
	psql(`INSERT INTO audit_log SELECT * FROM kept`)
	kts(t, "audit", "verify", "--confdir", dir)
	// The tail cut off, the last checkpoint with it, and the head made to
	// agree: the chain holds together, the anchor file says what is gone.
	psql(`CREATE TABLE tail AS SELECT * FROM audit_log WHERE seq > (SELECT max(seq) - 3 FROM audit_log)`)
	psql(`CREATE TABLE head AS SELECT * FROM audit_head`)
	psql(`DELETE FROM audit_log WHERE seq IN (SELECT seq FROM tail)`)
	psql(`UPDATE audit_head SET seq = l.seq, hash = l.hash FROM (SELECT seq, hash FROM audit_log ORDER BY seq DESC LIMIT 1) l`)
	broken("anchor file", "cut short")
	psql(`INSERT INTO audit_log SELECT * FROM tail`)
	psql(`UPDATE audit_head SET seq = h.seq, hash = h.hash FROM head h`)
	kts(t, "audit", "verify", "--confdir", dir)

	// Tampering with the journal: a read made to look refused.
	files, err := filepath.Glob(filepath.Join(dir, "audit", "journal-*.jsonl"))
	if err != nil || len(files) == 0 {
		t.Fatalf("journal files: %v %v", files, err)
	}
	j, _ := os.ReadFile(files[0])
	i := bytes.Index(j, []byte(`"action":"deposit.read","object":`))
	k := i + bytes.Index(j[i:], []byte(`"outcome":"ok"`))
	tampered := append(append(bytes.Clone(j[:k]), `"outcome":"no"`...), j[k+len(`"outcome":"ok"`):]...)
	os.WriteFile(files[0], tampered, 0o600)
	r := runTool(t, "", "kts", "audit", "verify", "--confdir", dir)
	if r.err == nil || !strings.Contains(r.stderr, "audit chain journal: record ") || !strings.Contains(r.stderr, "hash does not match its contents") {
		t.Fatalf("verify of a tampered journal: %v %q %q", r.err, r.stdout, r.stderr)
	}
	os.WriteFile(files[0], j, 0o600)

	// The server starts again on its chains and goes on with them.
	startServer(t, dir)
	kts(t, "client", "get", "--dir", c1, "key1")
	kts(t, "audit", "verify", "--confdir", dir)
}
