package e2e

import (
	"bytes"
	"context"
	"crypto/sha256"
	"encoding/json"
	"errors"
	"io/fs"
	"maps"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"

	"trustee.dev/trustee/server/confdir"
	"trustee.dev/trustee/server/config"
	"trustee.dev/trustee/server/openpgp"
	"trustee.dev/trustee/server/tlsconf"
	"trustee.dev/trustee/test/harness"
	hist "trustee.dev/trustee/test/history"
	"trustee.dev/trustee/test/memberpods"
)

// memberPod is one member laid out as its Kubernetes pod has it: the
// Secrets and the ConfigMap as read-only files, a volume for the state
// directory, and a directory for PostgreSQL's socket.
type memberPod struct {
	name     string // active or passive
	conf     string // the rendered keytrustee.conf (the ConfigMap's MEMBER.conf)
	state    string // the state directory on the member's volume
	dataDir  string
	url      string
	dbPort   int
	server   *ktsServer
	dbRun    *harness.Process
	setupOut string
}

// TestMemberPodsAsKubernetesRunsThem runs the pair as its pods do, as
// local processes: kts member setup (the passive first, waiting for the
// active), kts db run, kts server; then stops everything, sets up again
// (which changes nothing) and starts again; then sets up a passive whose
// replication slot is gone, which copies the active anew.
func TestMemberPodsAsKubernetesRunsThem(t *testing.T) {
	root := memberpods.RootDir(t)
	mounts := layOutMounts(t, root)
	active, passive := &memberPod{name: "active"}, &memberPod{name: "passive"}
	renderMemberConfigs(t, root, mounts, active, passive)

	// Bad input changes nothing.
	for _, tc := range []struct {
		args []string
		want string
	}{
		{[]string{"--member", "passive", "--config", active.conf}, `is the configuration of the active (ROLE "active"), but --member is passive`},
		{[]string{"--member", "standby", "--config", active.conf}, `--member "standby": use active or passive`},
		{[]string{"--member", "active", "--config", withMissingIdentity(t, root, active.conf)},
			`SERVER_KEY: ` + mounts.identity + `/server-key-old.asc does not exist: the Secret mounted at ` + mounts.identity + ` lacks the key "server-key-old.asc"`},
	} {
		r := runTool(t, "", "kts", append([]string{"member", "setup", "--confdir", active.state}, tc.args...)...)
		if r.err == nil || !strings.Contains(r.stderr, tc.want) {
			t.Fatalf("member setup %v: %v\n%s\nwant %q", tc.args, r.err, r.stderr, tc.want)
		}
		if _, err := os.Stat(active.state); !errors.Is(err, fs.ErrNotExist) {
			t.Fatalf("member setup %v created %s", tc.args, active.state)
		}
	}
	before := hashTree(t, filepath.Join(root, "etc"))

	// The passive starts first and waits for the active.
	passiveSetup := startKts(t, "passive setup", "member", "setup", "--member", "passive", "--config", passive.conf, "--confdir", passive.state)
	bounded(t, 30*time.Second, "the passive says it waits for the active", func() bool {
		return strings.Contains(passiveSetup.Output(), "waiting for the active's PostgreSQL at 127.0.0.1:"+itoa(active.dbPort))
	})
	active.setupOut = kts(t, "member", "setup", "--member", "active", "--config", active.conf, "--confdir", active.state)
	for _, want := range []string{"installed " + active.conf, "created PostgreSQL cluster", `commits wait for standby "kts_passive"`} {
		if !strings.Contains(active.setupOut, want) {
			t.Fatalf("active setup output lacks %q:\n%s", want, active.setupOut)
		}
	}
	checkStopped(t, active)
	active.dbRun = startDBRun(t, active)
	if err := passiveSetup.Wait(90 * time.Second); err != nil {
		t.Fatalf("passive setup: %v\n%s", err, passiveSetup.Output())
	}
	passive.setupOut = passiveSetup.Output()
	t.Logf("passive setup:\n%s", passive.setupOut)
	if !strings.Contains(passive.setupOut, "copied the active's PostgreSQL at 127.0.0.1:"+itoa(active.dbPort)) {
		t.Fatalf("passive setup output:\n%s", passive.setupOut)
	}
	checkStopped(t, passive)
	passive.dbRun = startDBRun(t, passive)
	active.server, passive.server = startServer(t, active.state), startServer(t, passive.state)

	// The pair: synchronous replication, one identity, the active's writes
	// readable on the passive.
	checkPair(t, mounts, active, passive)
	kts(t, "org", "add", "-n", "acme", "-c", "a@example.com", "--confdir", active.state)
	kts(t, "org", "set-auth", "-n", "acme", "-s", "", "--confdir", active.state)
	client := filepath.Join(root, "client")
	kts(t, "client", "register", "--dir", client, "--server", active.url+","+passive.url, "--org", "acme", "--ca-file", mounts.ca)
	onlyPassive := hist.ClientWithServers(t, client, filepath.Join(root, "client-passive"), passive.url)
	putStdin(t, client, "disk-1", "key of disk 1")
	if got := kts(t, "client", "get", "--dir", onlyPassive, "disk-1"); got != "key of disk 1" {
		t.Fatalf("the passive reads %q", got)
	}
	trusteeConf, err := os.ReadFile(filepath.Join(active.dataDir, "trustee.conf"))
	if err != nil || !strings.Contains(string(trusteeConf), "work_mem = '8MB'\n") {
		t.Fatalf("DB_PARAMETERS are not in the cluster's configuration: %v\n%s", err, trusteeConf)
	}

	// Stop the pods: SIGTERM ends PostgreSQL with kts db run.
	stopPods(t, active, passive)
	confBefore := memberFiles(t, active, passive)

	// Set up again: nothing changes, and the data is kept.
	if err := runTool(t, "", "kts", "db", "start", "--confdir", active.state).err; err != nil {
		t.Fatal(err)
	}
	if r := runTool(t, "", "kts", "member", "setup", "--member", "active", "--config", active.conf, "--confdir", active.state); r.err == nil ||
		!strings.Contains(r.stderr, "PostgreSQL runs in "+active.dataDir) {
		t.Fatalf("setup while PostgreSQL runs: %v\n%s", r.err, r.stderr)
	}
	kts(t, "db", "stop", "--confdir", active.state)
	active.setupOut = kts(t, "member", "setup", "--member", "active", "--config", active.conf, "--confdir", active.state)
	if !strings.Contains(active.setupOut, "keytrustee.conf is up to date") || !strings.Contains(active.setupOut, "PostgreSQL cluster in "+active.dataDir+" exists") {
		t.Fatalf("second active setup:\n%s", active.setupOut)
	}
	active.dbRun = startDBRun(t, active)
	passive.setupOut = kts(t, "member", "setup", "--member", "passive", "--config", passive.conf, "--confdir", passive.state)
	if !strings.Contains(passive.setupOut, "keytrustee.conf is up to date") || !strings.Contains(passive.setupOut, "exists and can follow the active") {
		t.Fatalf("second passive setup:\n%s", passive.setupOut)
	}
	if after := memberFiles(t, active, passive); !equalHashes(confBefore, after) {
		t.Fatalf("a second setup changed files:\nbefore %v\nafter  %v", confBefore, after)
	}
	if old, _ := filepath.Glob(passive.dataDir + ".old-*"); len(old) != 0 {
		t.Fatalf("the passive was copied anew: %v", old)
	}
	passive.dbRun = startDBRun(t, passive)
	for _, m := range []*memberPod{active, passive} {
		if err := m.server.start(); err != nil {
			t.Fatal(err)
		}
	}
	checkPair(t, mounts, active, passive)
	for _, c := range []string{client, onlyPassive} {
		if got := kts(t, "client", "get", "--dir", c, "disk-1"); got != "key of disk 1" {
			t.Fatalf("after the restart, %s reads %q", c, got)
		}
	}
	putStdin(t, client, "disk-2", "key of disk 2")
	if got := kts(t, "client", "get", "--dir", onlyPassive, "disk-2"); got != "key of disk 2" {
		t.Fatalf("the passive reads %q after the restart", got)
	}

	// The passive's replication slot is dropped while it is down: its next
	// setup copies the active anew (the active runs on), keeping the old
	// copy, and it follows the active again.
	stopPods(t, passive)
	if _, err := dbConn(t, active.state).Exec(context.Background(), "SELECT pg_drop_replication_slot('kts_passive')"); err != nil {
		t.Fatal(err)
	}
	passive.setupOut = kts(t, "member", "setup", "--member", "passive", "--config", passive.conf, "--confdir", passive.state)
	for _, want := range []string{`is stale: the active has no replication slot "kts_passive"`, "copied the active's PostgreSQL at 127.0.0.1:" + itoa(active.dbPort) + " anew"} {
		if !strings.Contains(passive.setupOut, want) {
			t.Fatalf("setup of the passive without its slot lacks %q:\n%s", want, passive.setupOut)
		}
	}
	if old, _ := filepath.Glob(passive.dataDir + ".old-*"); len(old) != 1 {
		t.Fatalf("the old copy is not kept: %v", old)
	}
	passive.dbRun = startDBRun(t, passive)
	if err := passive.server.start(); err != nil {
		t.Fatal(err)
	}
	checkPair(t, mounts, active, passive)
	putStdin(t, client, "disk-3", "key of disk 3")
	for _, name := range []string{"disk-1", "disk-2", "disk-3"} {
		if got := kts(t, "client", "get", "--dir", onlyPassive, name); got != "key of "+strings.Replace(name, "-", " ", 1) {
			t.Fatalf("the passive copied anew reads %s as %q", name, got)
		}
	}

	if after := hashTree(t, filepath.Join(root, "etc")); !equalHashes(before, after) {
		t.Fatal("the mounted Secrets and ConfigMap changed")
	}
	checkModes0440(t, filepath.Join(root, "etc"))
	stopPods(t, active, passive)
}

// startMemberPair sets up and starts the pair as its pods run it (the
// passive's setup waiting for the active) and checks that it replicates.
func startMemberPair(t *testing.T, root string, m mounts) (active, passive *memberPod) {
	t.Helper()
	active, passive = &memberPod{name: "active"}, &memberPod{name: "passive"}
	renderMemberConfigs(t, root, m, active, passive)
	passiveSetup := startKts(t, "passive setup", "member", "setup", "--member", "passive", "--config", passive.conf, "--confdir", passive.state)
	active.setupOut = kts(t, "member", "setup", "--member", "active", "--config", active.conf, "--confdir", active.state)
	active.dbRun = startDBRun(t, active)
	if err := passiveSetup.Wait(90 * time.Second); err != nil {
		t.Fatalf("passive setup: %v\n%s", err, passiveSetup.Output())
	}
	passive.setupOut = passiveSetup.Output()
	passive.dbRun = startDBRun(t, passive)
	active.server, passive.server = startServer(t, active.state), startServer(t, passive.state)
	checkPair(t, m, active, passive)
	return active, passive
}

// TestMemberServerStartsBeforeItsPostgreSQL starts each member's server
// before its PostgreSQL, as a pod's containers may start: the server waits,
// saying what for, and serves once PostgreSQL takes connections (the
// passive's standby refuses them while it starts up). Without PostgreSQL
// it gives up after --db-wait with an error that says so.
func TestMemberServerStartsBeforeItsPostgreSQL(t *testing.T) {
	root := memberpods.RootDir(t)
	mounts := layOutMounts(t, root)
	active, passive := &memberPod{name: "active"}, &memberPod{name: "passive"}
	renderMemberConfigs(t, root, mounts, active, passive)
	kts(t, "member", "setup", "--member", "active", "--config", active.conf, "--confdir", active.state)
	const waiting = `"msg":"waiting for the database to accept connections"`
	activeDB := "127.0.0.1:" + itoa(active.dbPort)

	// No PostgreSQL: a bounded wait, one line per attempt, a clear error.
	begin := time.Now()
	r := runTool(t, "", "kts", "server", "--confdir", active.state, "--db-wait", "2s")
	if r.err == nil || !strings.Contains(r.stderr, "PostgreSQL at "+activeDB+" did not accept connections within 2s (--db-wait; ") ||
		!strings.Contains(r.stderr, "connection refused") {
		t.Fatalf("kts server without its PostgreSQL: %v\n%s", r.err, r.stderr)
	}
	if n := strings.Count(r.stderr, waiting); n < 2 || !strings.Contains(r.stderr, `"reason":"connect: connection refused"`) ||
		!strings.Contains(r.stderr, `"db":"`+activeDB+`"`) {
		t.Fatalf("kts server logged %d attempts:\n%s", n, r.stderr)
	}
	if took := time.Since(begin); took > 20*time.Second {
		t.Fatalf("kts server --db-wait 2s gave up after %v", took)
	}
	if r := runTool(t, "", "kts", "server", "--confdir", active.state, "--db-wait", "-1s"); r.err == nil || !strings.Contains(r.stderr, "--db-wait -1s") {
		t.Fatalf("kts server --db-wait -1s: %v\n%s", r.err, r.stderr)
	}

	// The active's server first, then its PostgreSQL. Its schema commit
	// waits for the passive, which is set up, and whose server also starts
	// before its PostgreSQL.
	serve := func(m *memberPod) *harness.Process {
		return startKts(t, m.name+" server", "server", "--confdir", m.state, "--announce", "--db-wait", "2m")
	}
	activeServer := serve(active)
	bounded(t, 30*time.Second, "the active's server to wait for its database", func() bool {
		return strings.Count(activeServer.Output(), waiting) >= 2
	})
	active.dbRun = startDBRun(t, active)
	kts(t, "member", "setup", "--member", "passive", "--config", passive.conf, "--confdir", passive.state)
	passiveServer := serve(passive)
	bounded(t, 30*time.Second, "the passive's server to wait for its database", func() bool {
		return strings.Contains(passiveServer.Output(), waiting)
	})
	passive.dbRun = startDBRun(t, passive)
	for _, p := range []*harness.Process{activeServer, passiveServer} {
		bounded(t, 60*time.Second, p.What+" to serve", func() bool {
			if !p.Running() {
				t.Fatalf("%s exited: %v\n%s", p.What, p.Wait(0), p.Output())
			}
			return strings.Contains(p.Output(), "listening ")
		})
	}
	checkPair(t, mounts, active, passive)
	t.Logf("the active's server waited:\n%s", grepLines(activeServer.Output(), waiting))
	t.Logf("the passive's server waited:\n%s", grepLines(passiveServer.Output(), waiting))

	for _, p := range []*harness.Process{passiveServer, activeServer} {
		p.Signal(syscall.SIGTERM)
		if err := p.Wait(20 * time.Second); err != nil {
			t.Fatalf("%s after SIGTERM: %v\n%s", p.What, err, p.Output())
		}
	}
}

// mounts are the read-only volumes of the pods.
type mounts struct {
	identity, replication, tls, config, ca string
}

// layOutMounts writes what the Secrets and the ConfigMap hold, as the
// kubelet mounts them: files 0440 in directories nobody writes to.
func layOutMounts(t *testing.T, root string) mounts {
	t.Helper()
	etc := filepath.Join(root, "etc")
	m := mounts{identity: filepath.Join(etc, "identity"), replication: filepath.Join(etc, "replication"),
		tls: filepath.Join(etc, "tls"), config: filepath.Join(etc, "config")}
	m.ca = filepath.Join(m.tls, "ca.crt")
	identity, err := confdir.NewIdentity(confdir.IdentityOptions{Hostname: "localhost", KeyType: openpgp.Ed25519})
	if err != nil {
		t.Fatal(err)
	}
	scratch := t.TempDir()
	cert, key := filepath.Join(scratch, "tls.crt"), filepath.Join(scratch, "tls.key")
	if err := tlsconf.GenerateSelfSigned([]string{"localhost", "127.0.0.1"}, cert, key, 365*24*time.Hour); err != nil {
		t.Fatal(err)
	}
	tls := map[string][]byte{"tls.crt": must(os.ReadFile(cert)), "tls.key": must(os.ReadFile(key))}
	tls["ca.crt"] = tls["tls.crt"] // self-signed: the certificate is its own CA
	for dir, files := range map[string]map[string][]byte{
		m.identity: identity, m.replication: confdir.NewReplicationSecret(), m.tls: tls,
	} {
		writeMount(t, dir, files)
	}
	return m
}

func writeMount(t *testing.T, dir string, files map[string][]byte) {
	t.Helper()
	if err := os.MkdirAll(dir, 0o755); err != nil {
		t.Fatal(err)
	}
	for name, data := range files {
		p := filepath.Join(dir, name)
		if err := os.WriteFile(p, data, 0o440); err != nil {
			t.Fatal(err)
		}
		if err := os.Chmod(p, 0o440); err != nil {
			t.Fatal(err)
		}
	}
	if err := os.Chmod(dir, 0o555); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { os.Chmod(dir, 0o755) }) // so that the test's directory can be removed
}

// renderMemberConfigs writes active.conf and passive.conf as the operator
// renders them, on free ports, and makes the members' volumes; edits are
// made to both configurations before they are written.
func renderMemberConfigs(t *testing.T, root string, m mounts, active, passive *memberPod, edits ...func(*config.Config)) {
	t.Helper()
	aAPI, aDB, pAPI, pDB := harness.FreePort(t), harness.FreePort(t), harness.FreePort(t), harness.FreePort(t)
	active.url, active.dbPort = "https://127.0.0.1:"+itoa(aAPI), aDB
	passive.url, passive.dbPort = "https://127.0.0.1:"+itoa(pAPI), pDB
	files := map[string][]byte{}
	for _, p := range []*memberPod{active, passive} {
		volume := filepath.Join(root, "var-lib-kts-"+p.name) // the PersistentVolume's mount
		if err := os.Mkdir(volume, 0o755); err != nil {
			t.Fatal(err)
		}
		p.state = filepath.Join(volume, "state")
		p.dataDir = filepath.Join(p.state, "db")
		c := config.Default("localhost")
		c.ListenAddress = strings.TrimPrefix(p.url, "https://")
		c.SSLCertificate, c.SSLPrivateKey = filepath.Join(m.tls, "tls.crt"), filepath.Join(m.tls, "tls.key")
		c.DBHost, c.DBPort = "127.0.0.1", p.dbPort
		c.ServerKey = filepath.Join(m.identity, confdir.IdentityServerKey)
		c.Keyring = filepath.Join(m.identity, confdir.IdentityKeyring)
		c.SessionKey = filepath.Join(m.identity, confdir.IdentitySessionKey)
		c.DBPasswordFile = filepath.Join(m.identity, confdir.IdentityDBPassword)
		c.ReplicationPasswordFile = filepath.Join(m.replication, confdir.ReplicationPassword)
		c.DBListenAddresses = "127.0.0.1"
		c.DBSocketDir = filepath.Join(root, "run-"+p.name, "postgresql") // an emptyDir
		c.ReplicationFrom = []string{"127.0.0.1/32"}
		c.DBClientsFrom = []string{"0.0.0.0/0", "::/0"} // as the operator sets it, for the backup Job
		c.DBParameters = map[string]string{"work_mem": "8MB"}
		c.StandbyName = "kts_passive"
		if p == passive {
			c.Role, c.ActiveURL, c.ActiveCA, c.ActiveDB = config.RolePassive, active.url, m.ca, "127.0.0.1:"+itoa(active.dbPort)
		}
		for _, edit := range edits {
			edit(&c)
		}
		data, err := json.MarshalIndent(c, "", "  ")
		if err != nil {
			t.Fatal(err)
		}
		files[p.name+".conf"] = append(data, '\n')
		p.conf = filepath.Join(m.config, p.name+".conf")
	}
	writeMount(t, m.config, files)
}

// withMissingIdentity writes a copy of conf whose SERVER_KEY is not in
// the identity Secret.
func withMissingIdentity(t *testing.T, root, conf string) string {
	t.Helper()
	data := bytes.Replace(must(os.ReadFile(conf)), []byte("/server-key.asc"), []byte("/server-key-old.asc"), 1)
	p := filepath.Join(root, "missing-identity.conf")
	if err := os.WriteFile(p, data, 0o600); err != nil {
		t.Fatal(err)
	}
	return p
}

// startDBRun runs `kts db run` for a member, as its postgresql container
// does, and waits until PostgreSQL takes connections. When the test ends
// it is stopped, and any server left behind with it.
func startDBRun(t *testing.T, m *memberPod) *harness.Process {
	t.Helper()
	p := startKts(t, m.name+" db run", "db", "run", "--confdir", m.state)
	t.Cleanup(func() {
		if p.Running() {
			p.Signal(syscall.SIGTERM)
			p.Wait(30 * time.Second)
		}
		runTool(t, "", "kts", "db", "stop", "--confdir", m.state)
	})
	isready := filepath.Join(filepath.Dir(psqlPath(t)), "pg_isready")
	bounded(t, 30*time.Second, m.name+"'s PostgreSQL takes connections", func() bool {
		if !p.Running() {
			t.Fatalf("%s db run exited: %v\n%s", m.name, p.Wait(0), p.Output())
		}
		return exec.Command(isready, "--quiet", "--host", "127.0.0.1", "--port", itoa(m.dbPort)).Run() == nil
	})
	return p
}

// stopPods stops the servers, then PostgreSQL with SIGTERM to kts db run,
// which must exit 0 and leave no process of the cluster behind.
func stopPods(t *testing.T, pods ...*memberPod) {
	t.Helper()
	for _, m := range pods {
		if err := m.server.stop(); err != nil {
			t.Fatalf("%s server: %v", m.name, err)
		}
	}
	for _, m := range pods {
		m.dbRun.Signal(syscall.SIGTERM)
		if err := m.dbRun.Wait(30 * time.Second); err != nil {
			t.Fatalf("%s db run after SIGTERM: %v\n%s", m.name, err, m.dbRun.Output())
		}
		if !strings.Contains(m.dbRun.Output(), "received fast shutdown request") {
			t.Errorf("%s db run: PostgreSQL's log on standard error shows no fast shutdown:\n%s", m.name, m.dbRun.Output())
		}
		checkStopped(t, m)
	}
}

// checkStopped checks that no PostgreSQL process of the member's cluster
// is left.
func checkStopped(t *testing.T, m *memberPod) {
	t.Helper()
	bounded(t, 10*time.Second, m.name+"'s PostgreSQL processes to end", func() bool {
		return len(clusterProcesses(m.dataDir)) == 0
	})
	if _, err := os.Stat(filepath.Join(m.dataDir, "postmaster.pid")); !errors.Is(err, fs.ErrNotExist) {
		t.Fatalf("%s: postmaster.pid is left: %v", m.name, err)
	}
}

// checkPair checks that the active's commits wait for the passive, which
// streams from it, and that both show one identity.
func checkPair(t *testing.T, m mounts, active, passive *memberPod) {
	t.Helper()
	var ready struct {
		Role        string `json:"role"`
		Writable    bool   `json:"writable"`
		Replication struct {
			Paired    bool   `json:"paired"`
			Attached  bool   `json:"attached"`
			SyncState string `json:"sync_state"`
		} `json:"replication"`
		WALReceiver string `json:"wal_receiver"`
	}
	waitFor(t, "the active's commits wait for the passive", func() bool {
		out, err := exec.Command("curl", "--silent", "--cacert", m.ca, active.url+"/readyz").Output()
		return err == nil && json.Unmarshal(out, &ready) == nil && ready.Role == "active" && ready.Writable &&
			ready.Replication.Paired && ready.Replication.Attached && ready.Replication.SyncState == "sync"
	})
	waitFor(t, "the passive streams from the active", func() bool {
		out, err := exec.Command("curl", "--silent", "--cacert", m.ca, passive.url+"/readyz").Output()
		return err == nil && json.Unmarshal(out, &ready) == nil && ready.Role == "passive" && ready.WALReceiver == "streaming"
	})
	a, p := curl(t, "--cacert", m.ca, active.url+"/?a=fingerprint"), curl(t, "--cacert", m.ca, passive.url+"/?a=fingerprint")
	if a != p || a == "" {
		t.Fatalf("the members show fingerprints %q and %q", a, p)
	}
}

// memberFiles hashes what setup writes: the installed configuration (with
// its modification time) and PostgreSQL's configuration files.
func memberFiles(t *testing.T, pods ...*memberPod) map[string][32]byte {
	t.Helper()
	out := map[string][32]byte{}
	for _, m := range pods {
		for _, f := range []string{filepath.Join(m.state, config.FileName), filepath.Join(m.dataDir, "trustee.conf"),
			filepath.Join(m.dataDir, "pg_hba.conf"), filepath.Join(m.dataDir, "postgresql.conf")} {
			fi, err := os.Stat(f)
			if err != nil {
				t.Fatal(err)
			}
			out[f] = sha256.Sum256(append(must(os.ReadFile(f)), fi.ModTime().String()...))
		}
	}
	return out
}

func equalHashes(a, b map[string][32]byte) bool {
	if len(a) != len(b) {
		return false
	}
	for k, v := range a {
		if b[k] != v {
			return false
		}
	}
	return true
}

// checkModes0440 checks that nothing chmod-ed the mounted files.
func checkModes0440(t *testing.T, dir string) {
	t.Helper()
	filepath.WalkDir(dir, func(p string, d fs.DirEntry, err error) error {
		if err != nil || d.IsDir() {
			return err
		}
		if fi, err := d.Info(); err != nil || fi.Mode().Perm() != 0o440 {
			t.Errorf("%s: mode %v, %v; want 0440", p, fi.Mode().Perm(), err)
		}
		return nil
	})
}

// TestActiveRefusesAnEmptyVolumeOnceItsDatabaseExisted: once the operator
// has seen the active serve (the marker in the identity Secret), an active
// whose volume comes back empty is refused instead of starting an empty
// database that the passive would copy next.
func TestActiveRefusesAnEmptyVolumeOnceItsDatabaseExisted(t *testing.T) {
	root := memberpods.RootDir(t)
	mounts := layOutMounts(t, root)
	active, passive := &memberPod{name: "active"}, &memberPod{name: "passive"}
	renderMemberConfigs(t, root, mounts, active, passive)
	marker := filepath.Join(mounts.identity, "database-created")
	setup := func() result {
		return runTool(t, "", "kts", "member", "setup", "--member", "active", "--config", active.conf, "--confdir", active.state, "--created-marker", marker)
	}
	if r := setup(); r.err != nil || !strings.Contains(r.stdout, "created PostgreSQL cluster") {
		t.Fatalf("the first setup, before the marker: %v\n%s%s", r.err, r.stdout, r.stderr)
	}
	if err := os.WriteFile(marker, []byte("2026-11-27T10:00:00Z"), 0o440); err != nil {
		t.Fatal(err)
	}
	if r := setup(); r.err != nil || !strings.Contains(r.stdout, "PostgreSQL cluster in "+active.dataDir+" exists") {
		t.Fatalf("setup with the marker and the database in place: %v\n%s%s", r.err, r.stdout, r.stderr)
	}
	if err := os.RemoveAll(active.dataDir); err != nil { // the volume lost
		t.Fatal(err)
	}
	r := setup()
	for _, want := range []string{"the active's volume holds no database", "created on 2026-11-27T10:00:00Z", "refusing to create an empty one", "delete the key database-created"} {
		if r.err == nil || !strings.Contains(r.stderr, want) {
			t.Fatalf("setup on an empty volume after the marker: %v\n%s\nwant %q", r.err, r.stderr, want)
		}
	}
	if _, err := os.Stat(active.dataDir); !errors.Is(err, fs.ErrNotExist) {
		t.Fatalf("the refused setup made %s: %v", active.dataDir, err)
	}
}

// TestMemberRolesChangeOnlyWithTheMarker swaps the roles of a pair's
// members as a switchover does, with setup alone: while the active marker
// (the identity Secret's active-member) names a, b's copy is never promoted
// and a's cluster never replaced; once it names b, b's setup promotes its
// copy, which holds what a committed, and a's moves its old cluster aside
// and copies b. A setup told to start from an archive it cannot read
// creates nothing.
func TestMemberRolesChangeOnlyWithTheMarker(t *testing.T) {
	root := memberpods.RootDir(t)
	mounts := layOutMounts(t, root)
	a, b := &memberPod{name: "a"}, &memberPod{name: "b"}
	renderMemberConfigs(t, root, mounts, a, b)
	marker := filepath.Join(mounts.identity, "active-member")
	setup := func(p *memberPod, role, conf string, extra ...string) result {
		return runTool(t, "", "kts", append([]string{"member", "setup", "--member", role, "--config", conf, "--confdir", p.state,
			"--name", p.name, "--active-marker", marker}, extra...)...)
	}
	// The configurations after the switch: b the active, a its passive.
	swapped := func(p *memberPod, edit func(*config.Config)) string {
		var c config.Config
		if err := json.Unmarshal(must(os.ReadFile(p.conf)), &c); err != nil {
			t.Fatal(err)
		}
		edit(&c)
		data, err := json.MarshalIndent(c, "", "  ")
		if err != nil {
			t.Fatal(err)
		}
		f := filepath.Join(root, p.name+"-swapped.conf")
		if err := os.WriteFile(f, data, 0o600); err != nil {
			t.Fatal(err)
		}
		return f
	}
	bActive := swapped(b, func(c *config.Config) { c.Role, c.ActiveURL, c.ActiveCA, c.ActiveDB = config.RoleActive, "", "", "" })
	aPassive := swapped(a, func(c *config.Config) {
		c.Role, c.ActiveURL, c.ActiveCA, c.ActiveDB = config.RolePassive, b.url, mounts.ca, "127.0.0.1:"+itoa(b.dbPort)
	})

	// A setup that cannot read the archive it should start from makes nothing.
	if r := setup(a, "active", a.conf, "--restore-archive", filepath.Join(root, "no-such-archive")); r.err == nil ||
		!strings.Contains(r.stderr, "is the Secret of spec.bootstrap there?") {
		t.Fatalf("setup from a missing archive: %v\n%s", r.err, r.stderr)
	}
	garbage := filepath.Join(root, "garbage.tar")
	if err := os.WriteFile(garbage, []byte("not an archive"), 0o600); err != nil {
		t.Fatal(err)
	}
	if r := setup(a, "active", a.conf, "--restore-archive", garbage); r.err == nil || !strings.Contains(r.stderr, "nothing was created") {
		t.Fatalf("setup from a damaged archive: %v\n%s", r.err, r.stderr)
	}
	if _, err := os.Stat(a.dataDir); !errors.Is(err, fs.ErrNotExist) {
		t.Fatalf("a refused setup made %s: %v", a.dataDir, err)
	}

	// The pair as it starts, with an organization.
	if r := setup(a, "active", a.conf); r.err != nil {
		t.Fatalf("a's setup: %v\n%s", r.err, r.stderr)
	}
	a.dbRun = startDBRun(t, a)
	if r := setup(b, "passive", b.conf); r.err != nil {
		t.Fatalf("b's setup: %v\n%s", r.err, r.stderr)
	}
	b.dbRun = startDBRun(t, b)
	kts(t, "org", "add", "-n", "acme", "-c", "a@example.com", "--confdir", a.state)
	for _, p := range []*memberPod{a, b} {
		p.dbRun.Signal(syscall.SIGTERM)
		if err := p.dbRun.Wait(30 * time.Second); err != nil {
			t.Fatalf("%s db run: %v", p.name, err)
		}
	}
	before := memberFiles(t, a, b)

	// The marker still names a: both refuse, changing nothing.
	for _, c := range []struct {
		p          *memberPod
		role, conf string
		want       string
	}{
		{b, "active", bActive, "holds the state of the passive, and this is the active"},
		{a, "passive", aPassive, "holds the state of the active, and this is the passive"},
	} {
		if r := setup(c.p, c.role, c.conf); r.err == nil || !strings.Contains(r.stderr, c.want) {
			t.Fatalf("%s's setup as the %s before the marker: %v\n%s\nwant %q", c.p.name, c.role, r.err, r.stderr, c.want)
		}
	}
	if after := memberFiles(t, a, b); !maps.Equal(before, after) {
		t.Fatalf("refused setups changed the members' files")
	}
	if _, err := os.Stat(filepath.Join(b.dataDir, "standby.signal")); err != nil {
		t.Fatalf("b's copy is no longer a standby: %v", err)
	}

	// The marker names b: b is promoted, a copies it.
	if err := os.WriteFile(marker, []byte("b"), 0o440); err != nil {
		t.Fatal(err)
	}
	r := setup(b, "active", bActive)
	if r.err != nil || !strings.Contains(r.stdout, "promoted: "+b.dataDir+" is the active's cluster") {
		t.Fatalf("b's setup as the active: %v\n%s%s", r.err, r.stdout, r.stderr)
	}
	if _, err := os.Stat(filepath.Join(b.dataDir, "standby.signal")); !errors.Is(err, fs.ErrNotExist) {
		t.Fatalf("b's cluster is still a standby: %v", err)
	}
	b.dbRun = startDBRun(t, b)
	r = setup(a, "passive", aPassive)
	if r.err != nil || !strings.Contains(r.stdout, "this member was the active, and the other one was promoted: its old cluster is kept in "+a.dataDir+".old-") ||
		!strings.Contains(r.stdout, "copied the active's PostgreSQL at 127.0.0.1:"+itoa(b.dbPort)) {
		t.Fatalf("a's setup as the passive: %v\n%s%s", r.err, r.stdout, r.stderr)
	}
	a.dbRun = startDBRun(t, a)
	kts(t, "org", "add", "-n", "after", "-c", "b@example.com", "--confdir", b.state)
	if orgs := kts(t, "org", "list", "--confdir", b.state); !strings.Contains(orgs, `"acme"`) || !strings.Contains(orgs, `"after"`) {
		t.Fatalf("b after the switch lists:\n%s", orgs)
	}
	if _, err := os.Stat(filepath.Join(a.dataDir, "standby.signal")); err != nil {
		t.Fatalf("a's new cluster is not a standby: %v", err)
	}
}
