package e2e

import (
	"encoding/json"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"trustee.dev/trustee/test/harness"
	hist "trustee.dev/trustee/test/history"
	"trustee.dev/trustee/test/memberpods"
)

// TestPairAsUsersRunIt sets up the active/passive pair with the documented
// commands and checks the contract: what the active acknowledged is
// readable on the passive, writes sent to the passive reach the active,
// writes are refused at once while the passive is away and accepted again
// when it is back, and reads survive the loss of a server.
func TestPairAsUsersRunIt(t *testing.T) {
	root := memberpods.RootDir(t)
	active, passive := filepath.Join(root, "active"), filepath.Join(root, "passive")
	urls := initPair(t, [2]string{active, passive})
	aURL, pURL := urls[0], urls[1]
	startServer(t, active)
	passiveServer := startServer(t, passive)

	if a, p := curl(t, "-k", aURL+"/?a=fingerprint"), curl(t, "-k", pURL+"/?a=fingerprint"); a != p {
		t.Fatalf("the pair shows two identities: %s and %s", a, p)
	}
	var ready map[string]any
	json.Unmarshal([]byte(curl(t, "-k", aURL+"/readyz")), &ready)
	if ready["role"] != "active" || ready["writable"] != true {
		t.Fatalf("active readyz: %v", ready)
	}
	json.Unmarshal([]byte(curl(t, "-k", pURL+"/readyz")), &ready)
	if ready["role"] != "passive" || ready["wal_receiver"] != "streaming" {
		t.Fatalf("passive readyz: %v", ready)
	}

	runTool(t, "", "keytrustee-orgtool", "add", "-n", "acme", "-c", "a@example.com", "--confdir", active)
	runTool(t, "", "keytrustee-orgtool", "set-auth", "-n", "acme", "-s", "", "--confdir", active)
	both := filepath.Join(root, "client")
	kts(t, "client", "register", "--dir", both, "--server", aURL+","+pURL, "--org", "acme", "--skip-ssl-check")
	onlyPassive := hist.ClientWithServers(t, both, filepath.Join(root, "client-passive"), pURL)
	passiveFirst := hist.ClientWithServers(t, both, filepath.Join(root, "client-passive-first"), pURL, aURL)

	// Acknowledged on the active → readable on the passive at once.
	for i := range 20 {
		name := "k" + itoa(i)
		putStdin(t, both, name, "value "+name)
		if got := kts(t, "client", "get", "--dir", onlyPassive, name); got != "value "+name {
			t.Fatalf("passive read of %s = %q", name, got)
		}
	}
	// A write sent to the passive is carried to the active.
	putStdin(t, passiveFirst, "via-passive", "forwarded")
	if got := kts(t, "client", "get", "--dir", both, "via-passive"); got != "forwarded" {
		t.Fatalf("forwarded write reads %q", got)
	}

	// Without the passive's database, writes are refused at once; reads go
	// on. A write admitted just before the loss was noticed fails after the
	// write timeout with an unknown outcome ("timeout"); one refused with
	// passive_unavailable was never applied.
	kts(t, "db", "stop", "--confdir", passive)
	var refused []string
	attempt := 0
	waitFor(t, "writes refused", func() bool {
		attempt++
		name := "while-down-" + itoa(attempt)
		start := time.Now()
		r := runTool(t, "lost", "kts", "client", "put", "--dir", both, name)
		if r.err == nil {
			return false
		}
		if took := time.Since(start); took > 5*time.Second {
			t.Fatalf("a failed write took %v: %s", took, r.stderr)
		}
		if strings.Contains(r.stderr, "passive_unavailable") {
			refused = append(refused, name)
			return time.Since(start) < time.Second
		}
		return false
	})
	if got := kts(t, "client", "get", "--dir", both, "k1"); got != "value k1" {
		t.Fatalf("read while the passive is down = %q", got)
	}
	kts(t, "db", "start", "--confdir", passive)
	waitFor(t, "writes accepted after the passive is back", func() bool {
		return runTool(t, "back", "kts", "client", "put", "--dir", both, "after-rejoin").err == nil
	})
	if got := kts(t, "client", "get", "--dir", onlyPassive, "after-rejoin"); got != "back" {
		t.Fatalf("rejoined passive reads %q", got)
	}
	for _, name := range refused {
		if r := runTool(t, "", "kts", "client", "get", "--dir", both, name); r.err == nil || !strings.Contains(r.stderr, "404") {
			t.Fatalf("write %s was refused but reads back: %v %s", name, r.err, r.stderr)
		}
	}

	// A crashed passive server: every read still succeeds through the active.
	passiveServer.kill()
	for i := range 6 {
		if got := kts(t, "client", "get", "--dir", both, "k"+itoa(i)); got != "value k"+itoa(i) {
			t.Fatalf("read %d with the passive server down = %q", i, got)
		}
	}
}

// initPair sets up an active and its passive in dirs with the documented
// commands, on free ports, and starts their PostgreSQL (stopped when the
// test ends). It returns the two API URLs.
func initPair(t *testing.T, dirs [2]string) [2]string {
	t.Helper()
	active, passive := dirs[0], dirs[1]
	aAPI, aDB, pAPI, pDB := harness.FreePort(t), harness.FreePort(t), harness.FreePort(t), harness.FreePort(t)
	urls := [2]string{"https://127.0.0.1:" + itoa(aAPI), "https://127.0.0.1:" + itoa(pAPI)}
	kts(t, "init", "--confdir", active, "--hostname", "localhost", "--key-type", "ed25519",
		"--listen", "127.0.0.1:"+itoa(aAPI), "--db-port", itoa(aDB))
	kts(t, "db", "init", "--role", "active", "--confdir", active)
	kts(t, "db", "start", "--confdir", active)
	t.Cleanup(func() { runTool(t, "", "kts", "db", "stop", "--confdir", active) })
	kts(t, "init", "--confdir", passive, "--from-active", active, "--hostname", "localhost",
		"--listen", "127.0.0.1:"+itoa(pAPI), "--db-port", itoa(pDB),
		"--active-url", urls[0], "--active-db", "127.0.0.1:"+itoa(aDB))
	kts(t, "db", "init", "--role", "passive", "--confdir", passive)
	kts(t, "db", "start", "--confdir", passive)
	t.Cleanup(func() { runTool(t, "", "kts", "db", "stop", "--confdir", passive) })
	return urls
}

func putStdin(t *testing.T, dir, name, value string) {
	t.Helper()
	if r := runTool(t, value, "kts", "client", "put", "--dir", dir, name); r.err != nil {
		t.Fatalf("put %s: %v\n%s", name, r.err, r.stderr)
	}
}

// waitFor waits 30 s at most for cond to hold.
func waitFor(t *testing.T, what string, cond func() bool) {
	t.Helper()
	harness.Eventually(t, 30*time.Second, what, func() (bool, string) { return cond(), "" })
}

// TestOrgToolOnThePassive runs keytrustee-orgtool against a real pair's
// passive: a change says once, in words, to run it on the active (named by
// the passive's configuration) and changes nothing; reads work there.
func TestOrgToolOnThePassive(t *testing.T) {
	root := memberpods.RootDir(t)
	active, passive := filepath.Join(root, "active"), filepath.Join(root, "passive")
	initPair(t, [2]string{active, passive})
	kts(t, "org", "add", "-n", "acme", "-c", "a@example.com", "--confdir", active)
	for _, args := range [][]string{
		{"add", "-n", "other", "-c", "b@example.com"},
		{"set-auth", "-n", "acme", "-s", "code"},
	} {
		r := runTool(t, "", "keytrustee-orgtool", append(args, "--confdir", passive)...)
		msg := "this server is the passive of its pair, whose database is a read-only copy of the active's: run it on the active (127.0.0.1)"
		if r.err == nil || !strings.Contains(r.stderr, msg) || strings.Count(r.stderr, msg) != 1 ||
			strings.Contains(r.stderr, "SQLSTATE") || strings.Contains(r.stderr, "read-only transaction") {
			t.Fatalf("keytrustee-orgtool %s on the passive: %v\nstdout: %s\nstderr: %s", args[0], r.err, r.stdout, r.stderr)
		}
	}
	for _, dir := range []string{active, passive} {
		var orgs map[string]any
		r := runTool(t, "", "keytrustee-orgtool", "list", "--confdir", dir)
		if r.err != nil || json.Unmarshal([]byte(r.stdout), &orgs) != nil || len(orgs) != 1 || orgs["acme"] == nil {
			t.Fatalf("keytrustee-orgtool list on %s: %v %q %q", dir, r.err, r.stdout, r.stderr)
		}
	}
}
