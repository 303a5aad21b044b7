package e2e

import (
	"crypto/tls"
	"encoding/json"
	"fmt"
	"io"
	"math/rand/v2"
	"net/http"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"testing"
	"time"

	"trustee.dev/trustee/server/client"
	"trustee.dev/trustee/test/harness"
	hist "trustee.dev/trustee/test/history"
	"trustee.dev/trustee/test/memberpods"
)

// Settings of TestFaultsKeepTheContract.
const (
	faultClients  = 4                // concurrent clients of the workload, ids 0 to 3
	activeAlone   = faultClients     // id of the reads from the active alone, after the faults
	passiveAlone  = faultClients + 1 // id of the reads from the passive alone, after the faults
	passiveProbe  = faultClients + 2 // id of the reads from the passive alone while its database restarts
	preloader     = faultClients + 3 // id of the writes made before the workload
	defaultFaults = 20               // faults injected unless KTS_FAULTS says otherwise
	// serverWriteTimeout is the server's bound on a write's commit
	// (daemon.writeTimeout): a write admitted just before the passive's
	// database went away fails after it with 503 timeout.
	serverWriteTimeout = 3 * time.Second
	holdLimit          = 30 * time.Second // longest a fault is kept waiting for the workload to show its effect
	recoverLimit       = 60 * time.Second // longest the pair may take to recover from a fault
)

// TestFaultsKeepTheContract crashes the four processes of the pair in turn
// (SIGKILL of the active server, the passive server, the active's
// PostgreSQL, the passive's PostgreSQL) while clients keep writing and
// reading, and checks the contract of the pair:
//
//   - the history of puts and gets is linearizable, for a key-value store
//     whose put is create-only, where a write refused by the server never
//     took effect and a write with an unknown outcome may have taken effect;
//     in particular no read misses a deposit whose write was acknowledged
//     before it was sent, also when it reads the passive alone while the
//     passive's database comes back from a crash;
//   - every acknowledged write reads back, with its value, from the active
//     and from the passive after the faults: nothing acknowledged is lost;
//   - reads keep succeeding while any one process is down;
//   - no write is acknowledged while a database is down, and while the
//     passive's database is down writes are refused with passive_unavailable
//     (a write admitted just before the loss was noticed fails with timeout);
//   - after each fault the pair recovers by itself once the process is
//     restarted, and accepts writes again.
//
// KTS_FAULTS=n injects n faults instead of 20.
func TestFaultsKeepTheContract(t *testing.T) {
	faults := faultCount(t)
	started := time.Now()
	seed := uint64(started.UnixNano())
	t.Logf("seed %d, %d faults", seed, faults)
	rng := rand.New(rand.NewPCG(seed, 0))

	p := startFaultPair(t)
	h := hist.New()
	p.h = h
	h.Preload(t, p.clientDir, preloader, 300, 64<<10)
	stop := h.RunWorkload(t, p.clientDir, faultClients, seed)
	p.waitRecovered(t, "before the first fault")

	var windows []window
	passiveDBFaults := 0
	for i := range faults {
		kind := faultKind(i % 4)
		hold := time.Second + time.Duration(rng.Int64N(int64(time.Second)))
		if kind == passiveDB {
			// Every other time, the passive's database stays away longer
			// than two write timeouts, so that the writes admitted before
			// the active noticed (the batch being committed and the one
			// queued behind it) meet their timeout instead of being
			// confirmed by the returning passive.
			if passiveDBFaults%2 == 1 {
				hold += 2*serverWriteTimeout + time.Second
			}
			passiveDBFaults++
		}
		w := p.inject(t, kind, hold)
		windows = append(windows, w)
		t.Logf("fault %d: %s", i+1, w.describe(h))
	}
	stop()

	// After the faults: every write, read back from each server alone.
	verifyStart := time.Now()
	lost := p.verifyWrites(t)
	t.Logf("every write read back from each server in %v", time.Since(verifyStart).Round(time.Millisecond))

	ops := h.Snapshot()
	stale := hist.CheckNoStaleReads(t, ops, fmt.Sprintf("client %d reads the passive alone while its database restarts", passiveProbe))
	hist.CheckLinearizable(t, ops, fmt.Sprintf("clients 0-%d: the workload; %d, %d: the active, the passive alone after the faults; "+
		"%d: the passive alone while its database restarted", faultClients-1, activeAlone, passiveAlone, passiveProbe), aroundFaults(windows))
	for _, w := range windows {
		w.check(t, ops)
	}

	s := summarize(ops, windows)
	line := fmt.Sprintf("faults: %d, ops: %d (after %d preloaded deposits; and %d reads after recovery), writes acknowledged: %d, unknown: %d (timeout %d, the slowest after %.1fs), "+
		"refused: %d (passive_unavailable %d); reads ok: %d, failed: %d; reads during faults ok: %d, failed: %d (%.1f%% succeeded); "+
		"reads of the passive while its database restarted: %d (%d answered); acknowledged writes read as absent: %d; lost acknowledged writes: %d; %v",
		len(windows), s.ops, s.preloaded, s.finalReads, s.acked, s.unknown, s.timeouts, s.slowestTimeout.Seconds(), s.refused, s.passiveUnavailable,
		s.readsOK, s.readsFailed, s.windowReadsOK, s.windowReadsFailed, s.windowReadRatio()*100,
		s.probes, s.probesAnswered, stale, lost,
		time.Since(started).Round(time.Second))
	t.Logf("summary: %s", line)
	fmt.Printf("TestFaultsKeepTheContract: %s\n", line)
}

func faultCount(t *testing.T) int {
	v := os.Getenv("KTS_FAULTS")
	if v == "" {
		return defaultFaults
	}
	n, err := strconv.Atoi(v)
	if err != nil || n < 1 {
		t.Fatalf("KTS_FAULTS=%q: want a positive number of faults", v)
	}
	return n
}

// ---- The pair, with processes that can be crashed and restarted ----

// faultPair is an active/passive pair set up as users do it; index 0 is the
// active, 1 the passive.
type faultPair struct {
	dirs      [2]string // state directories
	urls      [2]string
	servers   [2]*ktsServer
	clientDir string            // a client registered with both servers
	alone     [2]*client.Client // the same client, knowing one server only
	h         *hist.History
	readyz    *http.Client
}

// startFaultPair sets the pair up with the documented commands, as
// TestPairAsUsersRunIt does, and registers one client.
func startFaultPair(t *testing.T) *faultPair {
	root := memberpods.RootDir(t)
	p := &faultPair{
		dirs: [2]string{filepath.Join(root, "active"), filepath.Join(root, "passive")},
		// /readyz is only read for the role and replication state; the
		// servers' certificates are self-signed and this stays on loopback.
		readyz: &http.Client{Timeout: 5 * time.Second, Transport: &http.Transport{
			TLSClientConfig: &tls.Config{InsecureSkipVerify: true}}},
	}
	t.Cleanup(func() { p.keepEvidence(t) })
	p.urls = initPair(t, p.dirs)
	for i, dir := range p.dirs {
		p.servers[i] = startServer(t, dir)
	}

	for _, args := range [][]string{{"add", "-n", "acme", "-c", "a@example.com"}, {"set-auth", "-n", "acme", "-s", ""}} {
		if r := runTool(t, "", "keytrustee-orgtool", append(args, "--confdir", p.dirs[0])...); r.err != nil {
			t.Fatalf("keytrustee-orgtool %v: %v\n%s", args, r.err, r.stderr)
		}
	}
	p.clientDir = filepath.Join(root, "client")
	kts(t, "client", "register", "--dir", p.clientDir, "--server", p.urls[0]+","+p.urls[1], "--org", "acme", "--skip-ssl-check")
	for i, name := range []string{"client-active", "client-passive"} {
		c, err := client.Open(hist.ClientWithServers(t, p.clientDir, filepath.Join(root, name), p.urls[i]))
		if err != nil {
			t.Fatal(err)
		}
		p.alone[i] = c
	}
	return p
}

// withoutAccessLog drops the server's line per request.
func withoutAccessLog(logs string) string {
	var b strings.Builder
	for line := range strings.Lines(logs) {
		if !strings.Contains(line, `"msg":"request",`) {
			b.WriteString(line)
		}
	}
	return b.String()
}

// dataDir is the PostgreSQL data directory of side i.
func (p *faultPair) dataDir(i int) string { return filepath.Join(p.dirs[i], "db") }

// killDB SIGKILLs side i's postmaster, the first line of postmaster.pid, and
// waits until every process of that cluster has exited: its children notice
// the postmaster's death and end by themselves.
func (p *faultPair) killDB(t *testing.T, i int) (postmaster int) {
	t.Helper()
	dir, err := filepath.EvalSymlinks(p.dataDir(i))
	if err != nil {
		t.Fatal(err)
	}
	raw, err := os.ReadFile(filepath.Join(dir, "postmaster.pid"))
	if err != nil {
		t.Fatalf("PostgreSQL of %s is not running: %v", p.dirs[i], err)
	}
	first, _, _ := strings.Cut(string(raw), "\n")
	pid, err := strconv.Atoi(strings.TrimSpace(first))
	if err != nil || !slices.Contains(clusterProcesses(dir), pid) {
		t.Fatalf("postmaster.pid of %s names %q, not a process of that cluster", dir, first)
	}
	if err := syscall.Kill(pid, syscall.SIGKILL); err != nil {
		t.Fatalf("SIGKILL postmaster %d: %v", pid, err)
	}
	bounded(t, holdLimit, "the processes of the killed PostgreSQL in "+dir+" to exit", func() bool {
		return len(clusterProcesses(dir)) == 0
	})
	return pid
}

// restartDB starts side i's PostgreSQL again with `kts db start`, which
// runs crash recovery. The killed postmaster keeps its PID until its parent
// (init) reaps it, and PostgreSQL takes a lock file naming a live PID for
// another server's: wait for the reaping first. Where nothing ever reaps
// (some containers' init), the zombie holds no resource and every process
// of the cluster is gone, so its stale lock file is removed instead.
func (p *faultPair) restartDB(t *testing.T, i, postmaster int) {
	t.Helper()
	deadline := time.Now().Add(10 * time.Second)
	for processExists(postmaster) && time.Now().Before(deadline) {
		time.Sleep(50 * time.Millisecond)
	}
	if processExists(postmaster) {
		t.Logf("postmaster %d was not reaped within 10 s; removing its stale postmaster.pid", postmaster)
		os.Remove(filepath.Join(p.dataDir(i), "postmaster.pid"))
	}
	bounded(t, recoverLimit, "kts db start --confdir "+p.dirs[i], func() bool {
		r := runTool(t, "", "kts", "db", "start", "--confdir", p.dirs[i])
		if r.err != nil {
			t.Logf("kts db start --confdir %s: %v\n%s", p.dirs[i], r.err, r.stderr)
		}
		return r.err == nil
	})
}

// clusterProcesses lists the live processes working in a PostgreSQL data
// directory: the server chdirs there and its children inherit it.
func clusterProcesses(dataDir string) []int {
	entries, _ := os.ReadDir("/proc")
	var pids []int
	for _, e := range entries {
		pid, err := strconv.Atoi(e.Name())
		if err != nil {
			continue
		}
		if cwd, err := os.Readlink("/proc/" + e.Name() + "/cwd"); err == nil && cwd == dataDir {
			pids = append(pids, pid)
		}
	}
	return pids
}

func processExists(pid int) bool {
	_, err := os.Stat("/proc/" + strconv.Itoa(pid))
	return err == nil
}

// bounded polls cond until it holds, failing the test after limit.
func bounded(t *testing.T, limit time.Duration, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(limit)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("waited %v for %s", limit, what)
		}
		time.Sleep(50 * time.Millisecond)
	}
}

// health reports why the pair is not healthy: the active must say
// writable, the passive's WAL receiver must be streaming.
func (p *faultPair) health() error {
	var a struct {
		Role         string `json:"role"`
		Writable     bool   `json:"writable"`
		WriteRefusal string `json:"write_refusal"`
	}
	if err := p.getReadyz(0, &a); err != nil {
		return err
	}
	if a.Role != "active" || !a.Writable {
		return fmt.Errorf("active %s: role %q, writable %v (%s)", p.urls[0], a.Role, a.Writable, a.WriteRefusal)
	}
	var b struct {
		Role        string  `json:"role"`
		WALReceiver *string `json:"wal_receiver"`
	}
	if err := p.getReadyz(1, &b); err != nil {
		return err
	}
	if b.Role != "passive" || b.WALReceiver == nil || *b.WALReceiver != "streaming" {
		receiver := "none"
		if b.WALReceiver != nil {
			receiver = *b.WALReceiver
		}
		return fmt.Errorf("passive %s: role %q, wal_receiver %s", p.urls[1], b.Role, receiver)
	}
	return nil
}

func (p *faultPair) getReadyz(i int, v any) error {
	resp, err := p.readyz.Get(p.urls[i] + "/readyz")
	if err != nil {
		return err
	}
	defer resp.Body.Close()
	body, err := io.ReadAll(resp.Body)
	if err != nil {
		return err
	}
	if resp.StatusCode != http.StatusOK {
		return fmt.Errorf("%s/readyz: %d %s", p.urls[i], resp.StatusCode, strings.TrimSpace(string(body)))
	}
	return json.Unmarshal(body, v)
}

// waitRecovered waits until the pair reports healthy and then until the
// workload has a write acknowledged that it sent after that.
func (p *faultPair) waitRecovered(t *testing.T, what string) {
	t.Helper()
	deadline := time.Now().Add(recoverLimit)
	for {
		err := p.health()
		if err == nil {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("%s: the pair did not recover within %v: %v", what, recoverLimit, err)
		}
		time.Sleep(100 * time.Millisecond)
	}
	healthy := p.h.Now()
	bounded(t, recoverLimit, what+": a write acknowledged once the pair was healthy again", func() bool {
		return p.h.Any(healthy, func(o hist.Op) bool { return o.Put && o.Call >= healthy && o.Res == hist.OK })
	})
}

// verifyWrites reads every write back from each server alone once the
// pair is healthy (History.VerifyWrites); it returns the acknowledged
// writes lost.
func (p *faultPair) verifyWrites(t *testing.T) int {
	t.Helper()
	if err := p.health(); err != nil {
		t.Fatalf("the pair is not healthy after the faults: %v", err)
	}
	return p.h.VerifyWrites(t, p.alone, [2]int{activeAlone, passiveAlone}, [2]string{"the active " + p.urls[0], "the passive " + p.urls[1]})
}

// aroundFaults describes the faults near a key's operations.
func aroundFaults(windows []window) func([]hist.Op) string {
	return func(ops []hist.Op) string {
		var b strings.Builder
		for _, w := range windows {
			if w.down-5*time.Second <= ops[len(ops)-1].Ret && ops[0].Call <= w.recovered+5*time.Second {
				fmt.Fprintf(&b, "  fault: %s down [%s, %s], recovered %s\n", w.kind, hist.FmtOffset(w.down), hist.FmtOffset(w.restart), hist.FmtOffset(w.recovered))
			}
		}
		return b.String()
	}
}

// ---- Faults ----

type faultKind int

const (
	activeServer faultKind = iota
	passiveServer
	activeDB
	passiveDB
)

func (k faultKind) String() string {
	return [...]string{"active server", "passive server", "active's PostgreSQL", "passive's PostgreSQL"}[k]
}

// side is 0 for the active, 1 for the passive.
func (k faultKind) side() int { return int(k) % 2 }

// window is one fault: the process was down from down to restart (offsets
// in the history), and the pair was healthy and writable again at recovered.
type window struct {
	kind                     faultKind
	down, restart, recovered time.Duration
}

// inject crashes one process and keeps it down for hold, and until the
// workload has shown what the contract promises meanwhile (a successful
// read; for the passive's database, a write refused with
// passive_unavailable); then restarts it and waits for the pair to recover.
func (p *faultPair) inject(t *testing.T, kind faultKind, hold time.Duration) window {
	t.Helper()
	h, side := p.h, kind.side()
	w := window{kind: kind}
	postmaster := 0
	switch kind {
	case activeServer, passiveServer:
		p.servers[side].kill()
	case activeDB, passiveDB:
		postmaster = p.killDB(t, side)
	}
	w.down = h.Now()
	readOK := func(o hist.Op) bool { return !o.Put && o.Call >= w.down && o.Res != hist.Failed }
	refused := func(o hist.Op) bool { return o.Put && o.Call >= w.down && o.Code == "passive_unavailable" }
	bounded(t, holdLimit, fmt.Sprintf("a successful read while the %s was down", kind), func() bool {
		return h.Now()-w.down >= hold && h.Any(w.down, readOK)
	})
	if kind == passiveDB {
		bounded(t, holdLimit, "a write refused with passive_unavailable while the passive's PostgreSQL was down", func() bool {
			return h.Any(w.down, refused)
		})
	}
	w.restart = h.Now()
	switch kind {
	case activeServer, passiveServer:
		if err := p.servers[side].start(); err != nil {
			t.Fatal(err)
		}
	case activeDB:
		p.restartDB(t, side, postmaster)
	case passiveDB:
		// While the passive's database comes back, read acknowledged
		// deposits from the passive alone: whatever it answers must not
		// be older than what it confirmed before the crash.
		stopProbe := p.probePassive()
		p.restartDB(t, side, postmaster)
		defer stopProbe()
	}
	p.waitRecovered(t, "after restarting the "+kind.String())
	w.recovered = h.Now()
	return w
}

// probePassive reads acknowledged deposits from the passive alone, one
// after another, until the returned function is called.
func (p *faultPair) probePassive() (stop func()) {
	var done atomic.Bool
	var wg sync.WaitGroup
	wg.Go(func() {
		rng := rand.New(rand.NewPCG(uint64(time.Now().UnixNano()), 0))
		for !done.Load() {
			if key, ok := p.h.PickAcknowledged(rng); ok {
				p.h.Get(p.alone[1], passiveProbe, key)
			}
			time.Sleep(2 * time.Millisecond)
		}
	})
	return func() { done.Store(true); wg.Wait() }
}

// inside reports whether o was called and answered while the process was down.
func (w window) inside(o hist.Op) bool { return o.Call >= w.down && o.Ret <= w.restart }

func (w window) describe(h *hist.History) string {
	var reads, readsOK, acked, refused, unknown int
	for _, o := range h.Snapshot() {
		if !w.inside(o) {
			continue
		}
		switch {
		case !o.Put:
			reads++
			if o.Res != hist.Failed {
				readsOK++
			}
		case o.Res == hist.OK:
			acked++
		case o.Res == hist.Refused:
			refused++
		case o.Res == hist.Unknown:
			unknown++
		}
	}
	return fmt.Sprintf("%s down %.1fs, recovered %.1fs after restart; inside: reads %d/%d ok, writes acknowledged %d, refused %d, unknown %d",
		w.kind, (w.restart - w.down).Seconds(), (w.recovered - w.restart).Seconds(), readsOK, reads, acked, refused, unknown)
}

// check verifies what the contract says of the operations inside the window.
func (w window) check(t *testing.T, ops []hist.Op) {
	t.Helper()
	readsOK, refusals := 0, 0
	var problems []string
	for _, o := range ops {
		if !w.inside(o) {
			continue
		}
		if !o.Put {
			if o.Res != hist.Failed {
				readsOK++
			}
			continue
		}
		switch {
		case w.kind == passiveServer:
			// The passive's database still confirms: writes go on.
		case o.Res == hist.OK:
			// The active cannot commit without its database, nor confirm
			// without the passive's, nor answer while it is dead.
			problems = append(problems, fmt.Sprintf("acknowledged: %v", o))
		case w.kind != passiveDB:
		case o.Res == hist.Refused && o.Code == "passive_unavailable":
			refusals++
			if o.Ret-o.Call >= serverWriteTimeout {
				problems = append(problems, fmt.Sprintf("refused only after %v, not at once: %v", o.Ret-o.Call, o))
			}
		case o.Res == hist.Unknown && o.Code == "timeout":
			// Admitted before the active noticed, which its replication
			// check does well within the write timeout.
			if o.Call-w.down > serverWriteTimeout {
				problems = append(problems, fmt.Sprintf("admitted %v after the loss, then timed out: %v", o.Call-w.down, o))
			}
		default:
			problems = append(problems, fmt.Sprintf("want passive_unavailable, or timeout if admitted first: %v", o))
		}
	}
	if len(problems) > 0 {
		t.Errorf("%s down [%s, %s]: %d writes broke the contract, the first:\n  %s", w.kind, hist.FmtOffset(w.down), hist.FmtOffset(w.restart),
			len(problems), strings.Join(problems[:min(len(problems), 5)], "\n  "))
	}
	if readsOK == 0 {
		t.Errorf("%s down [%s, %s]: no read succeeded", w.kind, hist.FmtOffset(w.down), hist.FmtOffset(w.restart))
	}
	if w.kind == passiveDB && refusals == 0 {
		t.Errorf("%s down [%s, %s]: no write was refused with passive_unavailable", w.kind, hist.FmtOffset(w.down), hist.FmtOffset(w.restart))
	}
}

type summary struct {
	ops, preloaded, finalReads, probes, probesAnswered     int
	acked, unknown, timeouts, refused, passiveUnavailable  int
	readsOK, readsFailed, windowReadsOK, windowReadsFailed int
	slowestTimeout                                         time.Duration // of the writes answered 503 timeout
}

func (s summary) windowReadRatio() float64 {
	return float64(s.windowReadsOK) / float64(max(1, s.windowReadsOK+s.windowReadsFailed))
}

func summarize(ops []hist.Op, windows []window) summary {
	var s summary
	for _, o := range ops {
		switch o.Client {
		case preloader:
			s.preloaded++
			continue
		case activeAlone, passiveAlone:
			s.finalReads++
			continue
		case passiveProbe:
			s.probes++
			if o.Res != hist.Failed {
				s.probesAnswered++
			}
			continue
		}
		s.ops++
		if !o.Put {
			if o.Res == hist.Failed {
				s.readsFailed++
			} else {
				s.readsOK++
			}
			for _, w := range windows {
				if w.inside(o) {
					if o.Res == hist.Failed {
						s.windowReadsFailed++
					} else {
						s.windowReadsOK++
					}
				}
			}
			continue
		}
		switch o.Res {
		case hist.OK:
			s.acked++
		case hist.Unknown:
			s.unknown++
			if o.Code == "timeout" {
				s.timeouts++
				s.slowestTimeout = max(s.slowestTimeout, o.Ret-o.Call)
			}
		case hist.Refused:
			s.refused++
			if o.Code == "passive_unavailable" {
				s.passiveUnavailable++
			}
		}
	}
	return s
}

// keepEvidence, when the test failed, saves the servers' and PostgreSQL's
// logs and the history to a directory that outlives the test, and shows
// their ends.
func (p *faultPair) keepEvidence(t *testing.T) {
	if !t.Failed() {
		return
	}
	dir, err := os.MkdirTemp("", "kts-faults-evidence-")
	if err != nil {
		t.Log(err)
		return
	}
	for i, name := range []string{"active", "passive"} {
		if s := p.servers[i]; s != nil {
			logs := s.Logs.String()
			os.WriteFile(filepath.Join(dir, name+"-server.log"), []byte(logs), 0o644)
			t.Logf("end of the %s server's log, without the access log:\n%s", name, harness.Tail(withoutAccessLog(logs), 60))
		}
		if pg, err := os.ReadFile(filepath.Join(p.dataDir(i), "log", "postgresql.log")); err == nil {
			os.WriteFile(filepath.Join(dir, name+"-postgresql.log"), pg, 0o644)
			t.Logf("end of the %s PostgreSQL log:\n%s", name, harness.Tail(string(pg), 30))
		}
	}
	if p.h != nil {
		var b strings.Builder
		for _, o := range p.h.Snapshot() {
			fmt.Fprintln(&b, o)
		}
		os.WriteFile(filepath.Join(dir, "history.txt"), []byte(b.String()), 0o644)
	}
	t.Logf("logs and history kept in %s", dir)
}
