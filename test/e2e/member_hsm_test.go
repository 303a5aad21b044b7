package e2e

import (
	"bytes"
	"context"
	"encoding/json"
	"io/fs"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"

	"trustee.dev/trustee/server/client"
	"trustee.dev/trustee/server/confdir"
	"trustee.dev/trustee/server/config"
	"trustee.dev/trustee/server/hsm/hsmtest"
	"trustee.dev/trustee/test/harness"
	hist "trustee.dev/trustee/test/history"
	"trustee.dev/trustee/test/memberpods"
)

// TestMemberPodsWithHSM runs the pair as its pods do with spec.hsm: one
// token for both members (as one network HSM), the PIN on a Secret's
// mount, the identity on read-only mounts that stay unsealed
// (HSM_SEAL_STATE false). The active's setup creates the deposit key in the
// token and records it; the passive's checks it is there. Deposits are
// wrapped by the token's key and read on both members; a second setup
// changes nothing; a passive whose token lacks the key is refused, naming
// it, and nothing changes; the PIN appears in no output, log or file.
func TestMemberPodsWithHSM(t *testing.T) {
	root := memberpods.RootDir(t)
	token := hsmtest.NewToken(t)
	tokenDir := hsmtest.TokenDir(token)
	// The token as it is before any key is made in it: what a passive sees
	// when given another token than the active's.
	keyless := filepath.Join(t.TempDir(), "token")
	if out, err := exec.Command("cp", "-a", tokenDir, keyless).CombinedOutput(); err != nil {
		t.Fatalf("copy the token: %v\n%s", err, out)
	}
	mounts := layOutMounts(t, root)
	pinMount := filepath.Join(root, "etc", "hsm")
	writeMount(t, pinMount, map[string][]byte{"pin": []byte(token.PIN + "\n")})
	active, passive := &memberPod{name: "active"}, &memberPod{name: "passive"}
	renderMemberConfigs(t, root, mounts, active, passive, func(c *config.Config) {
		c.HSMModule, c.HSMTokenLabel, c.HSMPINFile = token.Module, token.TokenLabel, filepath.Join(pinMount, "pin")
		c.HSMSealState = false
	})
	before := hashTree(t, filepath.Join(root, "etc"))
	var printed []string           // what the commands printed
	var running []*harness.Process // every kts db run, for its output

	// The passive starts first and waits for the active, whose setup
	// creates the deposit key.
	passiveSetup := startKts(t, "passive setup", "member", "setup", "--member", "passive", "--config", passive.conf, "--confdir", passive.state)
	bounded(t, 30*time.Second, "the passive says it waits for the active", func() bool {
		return strings.Contains(passiveSetup.Output(), "waiting for the active's PostgreSQL at 127.0.0.1:"+itoa(active.dbPort))
	})
	active.setupOut = kts(t, "member", "setup", "--member", "active", "--config", active.conf, "--confdir", active.state)
	printed = append(printed, active.setupOut)
	for _, want := range []string{"created PostgreSQL cluster", `deposit key "kts-kek-1" created in the token`,
		"recorded hsm:kts-kek-1 in the database as the key that wraps new deposits"} {
		if !strings.Contains(active.setupOut, want) {
			t.Fatalf("active setup output lacks %q:\n%s", want, active.setupOut)
		}
	}
	checkStopped(t, active)
	active.dbRun = startDBRun(t, active)
	running = append(running, active.dbRun)
	if err := passiveSetup.Wait(90 * time.Second); err != nil {
		t.Fatalf("passive setup: %v\n%s", err, passiveSetup.Output())
	}
	passive.setupOut = passiveSetup.Output()
	printed = append(printed, passive.setupOut)
	for _, want := range []string{"copied the active's PostgreSQL", `deposit key "kts-kek-1" is in the token; this passive uses the keys the active chooses`} {
		if !strings.Contains(passive.setupOut, want) {
			t.Fatalf("passive setup output lacks %q:\n%s", want, passive.setupOut)
		}
	}
	t.Logf("active setup:\n%s\npassive setup:\n%s", active.setupOut, passive.setupOut)
	checkStopped(t, passive)
	passive.dbRun = startDBRun(t, passive)
	running = append(running, passive.dbRun)
	active.server, passive.server = startServer(t, active.state), startServer(t, passive.state)
	checkPair(t, mounts, active, passive) // /readyz tests the token with the deposit key

	// A client's deposit is wrapped by the token's key, and read on both.
	kts(t, "org", "add", "-n", "acme", "-c", "a@example.com", "--confdir", active.state)
	kts(t, "org", "set-auth", "-n", "acme", "-s", "", "--confdir", active.state)
	client := filepath.Join(root, "client")
	kts(t, "client", "register", "--dir", client, "--server", active.url+","+passive.url, "--org", "acme", "--ca-file", mounts.ca)
	onlyPassive := hist.ClientWithServers(t, client, filepath.Join(root, "client-passive"), passive.url)
	putStdin(t, client, "disk-1", "key of disk 1")
	for _, c := range []string{client, onlyPassive} {
		if got := kts(t, "client", "get", "--dir", c, "disk-1"); got != "key of disk 1" {
			t.Fatalf("%s reads %q", c, got)
		}
	}
	checkWrappedByHSM(t, active, 1)
	check := kts(t, "keyhsm", "check", "--confdir", active.state)
	printed = append(printed, check)
	for _, want := range []string{`key "kts-kek-1"`, "sensitive=true", "extractable=false", "never-extractable=true",
		"wrap/unwrap self-test ok", "deposits wrapped by hsm:kts-kek-1 (current): 1", "server-key.asc: not sealed (HSM_SEAL_STATE is false)"} {
		if !strings.Contains(check, want) {
			t.Fatalf("keyhsm check lacks %q:\n%s", want, check)
		}
	}
	if strings.Contains(check, config.DefaultHSMStateKey) {
		t.Fatalf("keyhsm check shows a state key:\n%s", check)
	}

	// Set up again: nothing changes.
	stopPods(t, active, passive)
	confBefore, keysBefore := memberFiles(t, active, passive), tokenObjects(t, tokenDir)
	active.setupOut = kts(t, "member", "setup", "--member", "active", "--config", active.conf, "--confdir", active.state)
	printed = append(printed, active.setupOut)
	if !strings.Contains(active.setupOut, "keytrustee.conf is up to date") ||
		!strings.Contains(active.setupOut, `deposit key "kts-kek-1" is in the token and wraps new deposits`) ||
		strings.Contains(active.setupOut, "created") || strings.Contains(active.setupOut, "recorded") || strings.Contains(active.setupOut, "re-wrap") {
		t.Fatalf("second active setup:\n%s", active.setupOut)
	}
	active.dbRun = startDBRun(t, active)
	running = append(running, active.dbRun)

	// The passive's token lacks the key: refused, naming token and key,
	// before anything changes.
	away := filepath.Join(t.TempDir(), "token")
	if err := os.Rename(tokenDir, away); err != nil {
		t.Fatal(err)
	}
	if out, err := exec.Command("cp", "-a", keyless, tokenDir).CombinedOutput(); err != nil {
		os.Rename(away, tokenDir)
		t.Fatalf("put the keyless token in place: %v\n%s", err, out)
	}
	r := runTool(t, "", "kts", "member", "setup", "--member", "passive", "--config", passive.conf, "--confdir", passive.state)
	os.RemoveAll(tokenDir)
	if err := os.Rename(away, tokenDir); err != nil {
		t.Fatal(err)
	}
	printed = append(printed, r.stdout, r.stderr)
	if r.err == nil || !strings.Contains(r.stderr, `has no key "kts-kek-1": a passive uses the active's deposit keys`) ||
		!strings.Contains(r.stderr, token.Module) || !strings.Contains(r.stderr, `"`+token.TokenLabel+`"`) {
		t.Fatalf("passive setup with a token without the key: %v\nstdout: %s\nstderr: %s", r.err, r.stdout, r.stderr)
	}
	t.Logf("passive setup with a token without the key: %s", r.stderr)
	if after := memberFiles(t, active, passive); !equalHashes(confBefore, after) {
		t.Fatal("the refused setup changed files")
	}
	if old, _ := filepath.Glob(passive.dataDir + ".old-*"); len(old) != 0 {
		t.Fatalf("the refused setup copied the active anew: %v", old)
	}

	passive.setupOut = kts(t, "member", "setup", "--member", "passive", "--config", passive.conf, "--confdir", passive.state)
	printed = append(printed, passive.setupOut)
	for _, want := range []string{"keytrustee.conf is up to date", "exists and can follow the active", `deposit key "kts-kek-1" is in the token`} {
		if !strings.Contains(passive.setupOut, want) {
			t.Fatalf("second passive setup lacks %q:\n%s", want, passive.setupOut)
		}
	}
	if after := memberFiles(t, active, passive); !equalHashes(confBefore, after) {
		t.Fatalf("a second setup changed files:\nbefore %v\nafter  %v", confBefore, after)
	}
	if keys := tokenObjects(t, tokenDir); !slices.Equal(keysBefore, keys) {
		t.Fatalf("a second setup changed the token's objects: %v, then %v", keysBefore, keys)
	}
	passive.dbRun = startDBRun(t, passive)
	running = append(running, passive.dbRun)
	for _, m := range []*memberPod{active, passive} {
		if err := m.server.start(); err != nil {
			t.Fatal(err)
		}
	}
	checkPair(t, mounts, active, passive)
	putStdin(t, client, "disk-2", "key of disk 2")
	for _, name := range []string{"disk-1", "disk-2"} {
		if got := kts(t, "client", "get", "--dir", onlyPassive, name); got != "key of "+strings.Replace(name, "-", " ", 1) {
			t.Fatalf("the passive reads %s as %q", name, got)
		}
	}
	checkWrappedByHSM(t, active, 2)

	// The backup Job of such a server (of its passive, its PIN mounted, as
	// the operator mounts it) and a restore: the restored standalone server
	// opens the deposits with the token's key.
	var c config.Config
	if err := json.Unmarshal(must(os.ReadFile(passive.conf)), &c); err != nil {
		t.Fatal(err)
	}
	c.DBSocketDir = ""
	jobConfig := filepath.Join(root, "job", "config") // the Job's ConfigMap
	writeMount(t, jobConfig, map[string][]byte{"backup.conf": must(json.MarshalIndent(c, "", "  "))})
	jobState, archives := filepath.Join(root, "job", "state"), filepath.Join(root, "archives")
	if err := os.Mkdir(archives, 0o755); err != nil { // the destination volume
		t.Fatal(err)
	}
	printed = append(printed, kts(t, "member", "setup", "--member", "passive", "--config-only", "--config", filepath.Join(jobConfig, "backup.conf"), "--confdir", jobState))
	archive := strings.TrimSpace(kts(t, "backup", "--confdir", jobState, "--cleartext", "--output", archives, "--quiet"))
	printed = append(printed, archive)
	fresh := filepath.Join(root, "restored")
	r = runTool(t, "", "kts", "restore", "--confdir", fresh, "--database-port", itoa(harness.FreePort(t)), archive)
	t.Cleanup(func() { runTool(t, "", "kts", "db", "stop", "--confdir", fresh) })
	printed = append(printed, r.stdout, r.stderr)
	if r.err != nil || !strings.Contains(r.stdout, "2 deposits") {
		t.Fatalf("restore of an HSM member's backup: %v\n%s%s", r.err, r.stdout, r.stderr)
	}
	stopPods(t, active, passive)
	kts(t, "db", "start", "--confdir", fresh)
	restored := startServer(t, fresh)
	if got := kts(t, "client", "get", "--dir", onlyPassive, "disk-2"); got != "key of disk 2" {
		t.Fatalf("the restored server reads %q", got)
	}
	if err := restored.stop(); err != nil {
		t.Fatal(err)
	}

	if after := hashTree(t, filepath.Join(root, "etc")); !equalHashes(before, after) {
		t.Fatal("the mounted Secrets and ConfigMap changed")
	}
	checkModes0440(t, filepath.Join(root, "etc"))

	// The PIN is in no output, no log and no file but its Secret's.
	for _, s := range printed {
		if strings.Contains(s, token.PIN) {
			t.Fatalf("a command printed the PIN:\n%s", s)
		}
	}
	for _, s := range []*ktsServer{active.server, passive.server} {
		if strings.Contains(s.Logs.String(), token.PIN) {
			t.Fatalf("the log of kts server --confdir %s holds the PIN", s.confdir)
		}
	}
	for _, p := range running {
		if strings.Contains(p.Output(), token.PIN) {
			t.Fatalf("the output of %s holds the PIN", p.What)
		}
	}
	pinFile := filepath.Join(pinMount, "pin")
	filepath.WalkDir(root, func(p string, d fs.DirEntry, err error) error {
		if err != nil || d.IsDir() || p == pinFile {
			return nil
		}
		if data, err := os.ReadFile(p); err == nil && bytes.Contains(data, []byte(token.PIN)) {
			t.Errorf("%s holds the PIN", p)
		}
		return nil
	})
}

// checkWrappedByHSM checks that the member's database holds n deposits,
// each wrapped by the token's key kts-kek-1, which is current, and none by
// the file keyring.
func checkWrappedByHSM(t *testing.T, m *memberPod, n int) {
	t.Helper()
	conn := memberDB(t, m)
	query := func(sql string) []string {
		rows, err := conn.Query(context.Background(), sql)
		if err != nil {
			t.Fatal(err)
		}
		out, err := pgx.CollectRows(rows, pgx.RowTo[string])
		if err != nil {
			t.Fatal(err)
		}
		return out
	}
	if got := query(`SELECT kek_id || ': ' || count(*) FROM deposits GROUP BY kek_id`); !slices.Equal(got, []string{"hsm:kts-kek-1: " + itoa(n)}) {
		t.Fatalf("deposits by key: %v; want %d, all by hsm:kts-kek-1", got, n)
	}
	if got := query(`SELECT kek_id || ' ' || state FROM kek_versions`); !slices.Equal(got, []string{"hsm:kts-kek-1 current"}) {
		t.Fatalf("kek_versions: %v", got)
	}
}

// memberDB connects to a member's database as its configuration says,
// without opening its HSM.
func memberDB(t *testing.T, m *memberPod) *pgx.Conn {
	t.Helper()
	cfg, err := config.Load(m.state)
	if err != nil {
		t.Fatal(err)
	}
	pw, err := confdir.ReadDBPassword(m.state, cfg)
	if err != nil {
		t.Fatal(err)
	}
	conn, err := pgx.Connect(context.Background(), confdir.DSN(cfg, pw))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { conn.Close(context.Background()) })
	return conn
}

// tokenObjects lists the objects SoftHSM2 keeps for a token (one file
// each).
func tokenObjects(t *testing.T, dir string) []string {
	t.Helper()
	names, err := filepath.Glob(filepath.Join(dir, "*.object"))
	if err != nil {
		t.Fatal(err)
	}
	slices.Sort(names)
	return names
}

// TestMemberHSMAddedToRunningPair adds spec.hsm to a pair that has
// deposits: the pods restart with the new configuration, and the active's
// setup creates the token's key and re-wraps every deposit the file
// keyring wrapped, while the passive is down (its commits do not wait for
// it). Both members then read every deposit, all wrapped by the token.
func TestMemberHSMAddedToRunningPair(t *testing.T) {
	root := memberpods.RootDir(t)
	token := hsmtest.NewToken(t)
	mounts := layOutMounts(t, root)
	pinMount := filepath.Join(root, "etc", "hsm")
	writeMount(t, pinMount, map[string][]byte{"pin": []byte(token.PIN + "\n")})
	active, passive := &memberPod{name: "active"}, &memberPod{name: "passive"}
	renderMemberConfigs(t, root, mounts, active, passive, func(c *config.Config) {
		c.HSMModule, c.HSMTokenLabel, c.HSMPINFile = token.Module, token.TokenLabel, filepath.Join(pinMount, "pin")
		c.HSMSealState = false
	})
	// The configurations before spec.hsm: the same without the HSM.
	withHSM := map[*memberPod]string{active: active.conf, passive: passive.conf}
	files := map[string][]byte{}
	for _, m := range []*memberPod{active, passive} {
		c, err := config.Parse(must(os.ReadFile(m.conf)))
		if err != nil {
			t.Fatal(err)
		}
		c.HSMModule, c.HSMTokenLabel, c.HSMPINFile, c.HSMSealState = "", "", "", true
		data, err := json.MarshalIndent(c, "", "  ")
		if err != nil {
			t.Fatal(err)
		}
		files[m.name+".conf"] = append(data, '\n')
		m.conf = filepath.Join(root, "etc", "config-before", m.name+".conf")
	}
	writeMount(t, filepath.Join(root, "etc", "config-before"), files)

	passiveSetup := startKts(t, "passive setup", "member", "setup", "--member", "passive", "--config", passive.conf, "--confdir", passive.state)
	kts(t, "member", "setup", "--member", "active", "--config", active.conf, "--confdir", active.state)
	active.dbRun = startDBRun(t, active)
	if err := passiveSetup.Wait(90 * time.Second); err != nil {
		t.Fatalf("passive setup: %v\n%s", err, passiveSetup.Output())
	}
	passive.dbRun = startDBRun(t, passive)
	active.server, passive.server = startServer(t, active.state), startServer(t, passive.state)
	checkPair(t, mounts, active, passive)
	kts(t, "org", "add", "-n", "acme", "-c", "a@example.com", "--confdir", active.state)
	kts(t, "org", "set-auth", "-n", "acme", "-s", "", "--confdir", active.state)
	both := filepath.Join(root, "client")
	kts(t, "client", "register", "--dir", both, "--server", active.url+","+passive.url, "--org", "acme", "--ca-file", mounts.ca)
	onlyPassive := hist.ClientWithServers(t, both, filepath.Join(root, "client-passive"), passive.url)
	const n = 520 // more than one re-wrap batch
	cl, err := client.Open(both)
	if err != nil {
		t.Fatal(err)
	}
	for i := range n {
		if err := cl.Put(context.Background(), "disk-"+itoa(i), []byte("key of disk "+itoa(i))); err != nil {
			t.Fatal(err)
		}
	}

	// spec.hsm is added: the pods restart with it.
	stopPods(t, active, passive)
	active.conf, passive.conf = withHSM[active], withHSM[passive]
	out := kts(t, "member", "setup", "--member", "active", "--config", active.conf, "--confdir", active.state)
	t.Logf("active setup:\n%s", out)
	for _, want := range []string{`deposit key "kts-kek-1" created in the token`, "recorded hsm:kts-kek-1",
		itoa(n) + " deposits are wrapped by another key than hsm:kts-kek-1: re-wrapping them",
		"re-wrapped " + itoa(n) + " of " + itoa(n) + " deposits", "every deposit is wrapped by hsm:kts-kek-1"} {
		if !strings.Contains(out, want) {
			t.Fatalf("active setup output lacks %q:\n%s", want, out)
		}
	}
	if strings.Contains(out, token.PIN) {
		t.Fatal("setup printed the PIN")
	}
	active.dbRun = startDBRun(t, active)
	if out := kts(t, "member", "setup", "--member", "passive", "--config", passive.conf, "--confdir", passive.state); !strings.Contains(out, `deposit key "kts-kek-1" is in the token`) {
		t.Fatalf("passive setup:\n%s", out)
	}
	passive.dbRun = startDBRun(t, passive)
	for _, m := range []*memberPod{active, passive} {
		if err := m.server.start(); err != nil {
			t.Fatal(err)
		}
	}
	checkPair(t, mounts, active, passive)
	putStdin(t, both, "disk-new", "key of the new disk")
	fromPassive, err := client.Open(onlyPassive)
	if err != nil {
		t.Fatal(err)
	}
	for i := range n {
		if got, err := fromPassive.Get(context.Background(), "disk-"+itoa(i)); err != nil || string(got) != "key of disk "+itoa(i) {
			t.Fatalf("the passive reads disk-%d as %q, %v", i, got, err)
		}
	}
	checkWrappedByHSM(t, active, n+1)
	waitFor(t, "the passive's copy to hold every deposit", func() bool {
		var c int
		memberDB(t, passive).QueryRow(context.Background(), `SELECT count(*) FROM deposits WHERE kek_id = 'hsm:kts-kek-1'`).Scan(&c)
		return c == n+1
	})
	checkWrappedByHSM(t, passive, n+1)
	stopPods(t, active, passive)
}
