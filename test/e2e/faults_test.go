package e2e

import (
	"cmp"
	"context"
	"crypto/sha256"
	"crypto/tls"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"maps"
	"math"
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

	"github.com/anishathalye/porcupine"

	"trustee.dev/trustee/server/client"
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
	opTimeout          = 15 * time.Second       // bound on one client operation
	holdLimit          = 30 * time.Second       // longest a fault is kept waiting for the workload to show its effect
	recoverLimit       = 60 * time.Second       // longest the pair may take to recover from a fault
	workloadPause      = 20 * time.Millisecond  // between iterations of a client
	failurePause       = 200 * time.Millisecond // after an operation failed, as a client backs off
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
	h := &history{t0: time.Now()}
	p.h = h
	h.preload(t, p.clientDir, 300, 64<<10)
	stop := h.runWorkload(t, p.clientDir, seed)
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

	ops := h.snapshot()
	stale := checkNoStaleReads(t, ops)
	checkLinearizable(t, ops, windows)
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
	h         *history
	readyz    *http.Client
}

// startFaultPair sets the pair up with the documented commands, as
// TestPairAsUsersRunIt does, and registers one client.
func startFaultPair(t *testing.T) *faultPair {
	root := stateRoot(t)
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
		c, err := client.Open(clientWithServers(t, p.clientDir, filepath.Join(root, name), p.urls[i]))
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

func lastLines(s string, n int) string {
	lines := strings.Split(strings.TrimRight(s, "\n"), "\n")
	return strings.Join(lines[max(0, len(lines)-n):], "\n")
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
	healthy := p.h.now()
	bounded(t, recoverLimit, what+": a write acknowledged once the pair was healthy again", func() bool {
		return p.h.any(healthy, func(o op) bool { return o.put && o.call >= healthy && o.res == resOK })
	})
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
	w.down = h.now()
	readOK := func(o op) bool { return !o.put && o.call >= w.down && o.res != resFailed }
	refused := func(o op) bool { return o.put && o.call >= w.down && o.code == "passive_unavailable" }
	bounded(t, holdLimit, fmt.Sprintf("a successful read while the %s was down", kind), func() bool {
		return h.now()-w.down >= hold && h.any(w.down, readOK)
	})
	if kind == passiveDB {
		bounded(t, holdLimit, "a write refused with passive_unavailable while the passive's PostgreSQL was down", func() bool {
			return h.any(w.down, refused)
		})
	}
	w.restart = h.now()
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
	w.recovered = h.now()
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
			if key, ok := p.h.pickAcknowledged(rng); ok {
				p.h.get(p.alone[1], passiveProbe, key)
			}
			time.Sleep(2 * time.Millisecond)
		}
	})
	return func() { done.Store(true); wg.Wait() }
}

// inside reports whether o was called and answered while the process was down.
func (w window) inside(o op) bool { return o.call >= w.down && o.ret <= w.restart }

func (w window) describe(h *history) string {
	var reads, readsOK, acked, refused, unknown int
	for _, o := range h.snapshot() {
		if !w.inside(o) {
			continue
		}
		switch {
		case !o.put:
			reads++
			if o.res != resFailed {
				readsOK++
			}
		case o.res == resOK:
			acked++
		case o.res == resRefused:
			refused++
		case o.res == resUnknown:
			unknown++
		}
	}
	return fmt.Sprintf("%s down %.1fs, recovered %.1fs after restart; inside: reads %d/%d ok, writes acknowledged %d, refused %d, unknown %d",
		w.kind, (w.restart - w.down).Seconds(), (w.recovered - w.restart).Seconds(), readsOK, reads, acked, refused, unknown)
}

// check verifies what the contract says of the operations inside the window.
func (w window) check(t *testing.T, ops []op) {
	t.Helper()
	readsOK, refusals := 0, 0
	var problems []string
	for _, o := range ops {
		if !w.inside(o) {
			continue
		}
		if !o.put {
			if o.res != resFailed {
				readsOK++
			}
			continue
		}
		switch {
		case w.kind == passiveServer:
			// The passive's database still confirms: writes go on.
		case o.res == resOK:
			// The active cannot commit without its database, nor confirm
			// without the passive's, nor answer while it is dead.
			problems = append(problems, fmt.Sprintf("acknowledged: %v", o))
		case w.kind != passiveDB:
		case o.res == resRefused && o.code == "passive_unavailable":
			refusals++
			if o.ret-o.call >= serverWriteTimeout {
				problems = append(problems, fmt.Sprintf("refused only after %v, not at once: %v", o.ret-o.call, o))
			}
		case o.res == resUnknown && o.code == "timeout":
			// Admitted before the active noticed, which its replication
			// check does well within the write timeout.
			if o.call-w.down > serverWriteTimeout {
				problems = append(problems, fmt.Sprintf("admitted %v after the loss, then timed out: %v", o.call-w.down, o))
			}
		default:
			problems = append(problems, fmt.Sprintf("want passive_unavailable, or timeout if admitted first: %v", o))
		}
	}
	if len(problems) > 0 {
		t.Errorf("%s down [%s, %s]: %d writes broke the contract, the first:\n  %s", w.kind, fmtOffset(w.down), fmtOffset(w.restart),
			len(problems), strings.Join(problems[:min(len(problems), 5)], "\n  "))
	}
	if readsOK == 0 {
		t.Errorf("%s down [%s, %s]: no read succeeded", w.kind, fmtOffset(w.down), fmtOffset(w.restart))
	}
	if w.kind == passiveDB && refusals == 0 {
		t.Errorf("%s down [%s, %s]: no write was refused with passive_unavailable", w.kind, fmtOffset(w.down), fmtOffset(w.restart))
	}
}

// ---- The workload and its history ----

// outcome is what an operation's caller learned.
type outcome int

const (
	resOK       outcome = iota // put acknowledged; get found the value
	resNotFound                // get: no such deposit
	resExists                  // put: 409, the name was taken
	resUnknown                 // put that may or may not have taken effect
	resRefused                 // put the server refused without doing it
	resFailed                  // get no server answered
)

func (r outcome) String() string {
	return [...]string{"ok", "not found", "exists", "unknown", "refused", "failed"}[r]
}

// op is one operation of the history; times are offsets from the start.
type op struct {
	client    int
	put       bool
	key       string
	value     string // put: the value written; get: the value read
	call, ret time.Duration
	res       outcome
	code      string // the error code, or the transport error, of a failure
}

func (o op) String() string {
	name, v := "get", ""
	if o.put {
		name = "put"
	}
	if o.value != "" {
		v = fmt.Sprintf(" %q", o.value)
	}
	return fmt.Sprintf("[%s, %s] client %d %s %s%s -> %s %s", fmtOffset(o.call), fmtOffset(o.ret), o.client, name, o.key, v, o.res, o.code)
}

func fmtOffset(d time.Duration) string { return fmt.Sprintf("%.3fs", d.Seconds()) }

// history records every operation of the workload and of the final reads.
type history struct {
	t0    time.Time
	mu    sync.Mutex
	ops   []op
	keys  []string // keys of every put attempted, in order
	acked []string // keys of the acknowledged puts
}

func (h *history) now() time.Duration { return time.Since(h.t0) }

func (h *history) add(o op) {
	h.mu.Lock()
	h.ops = append(h.ops, o)
	if o.put && o.res == resOK {
		h.acked = append(h.acked, o.key)
	}
	h.mu.Unlock()
}

func (h *history) snapshot() []op {
	h.mu.Lock()
	defer h.mu.Unlock()
	return slices.Clone(h.ops)
}

// any reports whether an operation answered after from satisfies f.
func (h *history) any(from time.Duration, f func(op) bool) bool {
	h.mu.Lock()
	defer h.mu.Unlock()
	// Operations are added as they answer; allow for a little reordering.
	for i := len(h.ops) - 1; i >= 0 && h.ops[i].ret >= from-time.Second; i-- {
		if h.ops[i].ret >= from && f(h.ops[i]) {
			return true
		}
	}
	return false
}

// runWorkload starts faultClients clients, each with the registered client
// state opened anew, looping: put a fresh key, get a key already attempted
// (often a recent one), and now and then get a key never written. The
// returned function stops them and waits.
func (h *history) runWorkload(t *testing.T, dir string, seed uint64) (stop func()) {
	var done atomic.Bool
	var wg sync.WaitGroup
	for id := range faultClients {
		c, err := client.Open(dir)
		if err != nil {
			t.Fatal(err)
		}
		rng := rand.New(rand.NewPCG(seed, uint64(id)+1))
		wg.Go(func() {
			for seq := 0; !done.Load(); seq++ {
				key := fmt.Sprintf("c%d-%d", id, seq)
				w := h.put(c, id, key, fmt.Appendf(nil, "value of %s %016x", key, rng.Uint64()))
				r := h.get(c, id, h.pick(rng))
				if rng.IntN(8) == 0 {
					h.get(c, id, fmt.Sprintf("never-%d-%d", id, seq))
				}
				if w.res != resOK || r.res == resFailed {
					time.Sleep(failurePause)
				}
				time.Sleep(workloadPause)
			}
		})
	}
	var once sync.Once
	stop = func() { once.Do(func() { done.Store(true); wg.Wait() }) }
	t.Cleanup(stop)
	return stop
}

func (h *history) pick(rng *rand.Rand) string {
	h.mu.Lock()
	defer h.mu.Unlock()
	n := len(h.keys)
	if rng.IntN(2) == 0 {
		return h.keys[n-1-rng.IntN(min(n, 16))]
	}
	return h.keys[rng.IntN(n)]
}

func (h *history) pickAcknowledged(rng *rand.Rand) (string, bool) {
	h.mu.Lock()
	defer h.mu.Unlock()
	if len(h.acked) == 0 {
		return "", false
	}
	return h.acked[rng.IntN(len(h.acked))], true
}

func (h *history) put(c *client.Client, id int, key string, data []byte) op {
	h.mu.Lock()
	h.keys = append(h.keys, key)
	h.mu.Unlock()
	ctx, cancel := context.WithTimeout(context.Background(), opTimeout)
	defer cancel()
	o := op{client: id, put: true, key: key, value: recorded(data), call: h.now()}
	err := c.Put(ctx, key, data)
	o.ret = h.now()
	o.res, o.code = putResult(err)
	h.add(o)
	return o
}

func (h *history) get(c *client.Client, id int, key string) op {
	ctx, cancel := context.WithTimeout(context.Background(), opTimeout)
	defer cancel()
	o := op{client: id, key: key, call: h.now()}
	data, err := c.Get(ctx, key)
	o.ret = h.now()
	o.res, o.code = getResult(err)
	if o.res == resOK {
		o.value = recorded(data)
	}
	h.add(o)
	return o
}

// recorded is how the history keeps a deposit: as is when short, else by
// its size and digest.
func recorded(data []byte) string {
	if len(data) <= 200 {
		return string(data)
	}
	return fmt.Sprintf("%d bytes, SHA-256 %x", len(data), sha256.Sum256(data))
}

// preload writes n deposits of size bytes before the workload starts, as a
// pair in use holds data. A standby that crashes replays the WAL written
// since its last restartpoint when it starts again: only with data behind
// it does that take long enough to matter.
func (h *history) preload(t *testing.T, dir string, n, size int) {
	t.Helper()
	c, err := client.Open(dir)
	if err != nil {
		t.Fatal(err)
	}
	var wg sync.WaitGroup
	var next atomic.Int64
	for range 4 {
		wg.Go(func() {
			for i := next.Add(1) - 1; i < int64(n); i = next.Add(1) - 1 {
				data := []byte(fmt.Sprintf("preloaded %d ", i))
				data = append(data, strings.Repeat("-", size-len(data))...)
				if o := h.put(c, preloader, fmt.Sprintf("pre-%d", i), data); o.res != resOK {
					t.Errorf("preload: %v", o)
				}
			}
		})
	}
	wg.Wait()
	if t.Failed() {
		t.FailNow()
	}
}

// putResult sorts a write's outcome: refused (a 4xx, or a 503 the server
// sends before doing anything) never took effect; a transport failure, a
// 503 timeout or database_unavailable, or a 500 may have.
func putResult(err error) (outcome, string) {
	if err == nil {
		return resOK, ""
	}
	var ae *client.APIError
	if !errors.As(err, &ae) {
		return resUnknown, transportCode(err)
	}
	switch {
	case ae.Status == http.StatusConflict:
		return resExists, ae.Code
	case ae.Status == http.StatusServiceUnavailable && (ae.Code == "passive_unavailable" || ae.Code == "active_unavailable"):
		return resRefused, ae.Code
	case ae.Status >= 400 && ae.Status < 500:
		return resRefused, ae.Code
	}
	return resUnknown, ae.Code
}

func getResult(err error) (outcome, string) {
	if err == nil {
		return resOK, ""
	}
	var ae *client.APIError
	if errors.As(err, &ae) && ae.Status == http.StatusNotFound && ae.Code == "not_found" {
		return resNotFound, ""
	}
	if ae != nil {
		return resFailed, ae.Code
	}
	return resFailed, transportCode(err)
}

func transportCode(err error) string {
	for _, s := range []string{"connection refused", "connection reset", "EOF", "deadline exceeded"} {
		if strings.Contains(err.Error(), s) {
			return s
		}
	}
	msg := err.Error()
	return msg[max(0, len(msg)-120):]
}

// ---- Checks ----

// verifyWrites reads every key the workload tried to write from the active
// alone and from the passive alone, once the pair has recovered: an
// acknowledged write must read back with its value from both, a refused one
// from neither, and the two servers must agree on writes of unknown
// outcome. The reads join the history. It returns the acknowledged writes
// lost.
func (p *faultPair) verifyWrites(t *testing.T) (lost int) {
	t.Helper()
	if err := p.health(); err != nil {
		t.Fatalf("the pair is not healthy after the faults: %v", err)
	}
	var puts []op
	for _, o := range p.h.snapshot() {
		if o.put {
			puts = append(puts, o)
		}
	}
	var mu sync.Mutex
	var wg sync.WaitGroup
	next := atomic.Int64{}
	for range 8 {
		wg.Go(func() {
			for n := next.Add(1) - 1; n < int64(len(puts)); n = next.Add(1) - 1 {
				w := puts[n]
				var got [2]op
				for i, c := range p.alone {
					for attempt := 0; ; attempt++ {
						got[i] = p.h.get(c, activeAlone+i, w.key)
						if got[i].res != resFailed || attempt == 2 {
							break
						}
						time.Sleep(time.Second)
					}
				}
				mu.Lock()
				lost += p.judge(t, w, got)
				mu.Unlock()
			}
		})
	}
	wg.Wait()
	return lost
}

// judge checks what the active (got[0]) and the passive (got[1]) return for
// write w after recovery; it returns 1 when w was acknowledged but is lost.
func (p *faultPair) judge(t *testing.T, w op, got [2]op) int {
	t.Helper()
	for i, g := range got {
		if g.res == resFailed {
			t.Errorf("after recovery, %s could not read %s: %s", p.urls[i], w.key, g.code)
			return 0
		}
	}
	switch w.res {
	case resOK:
		for _, g := range got {
			if g.res != resOK || g.value != w.value {
				t.Errorf("LOST acknowledged write: %v\n  active reads: %v\n  passive reads: %v", w, got[0], got[1])
				return 1
			}
		}
	case resRefused:
		if got[0].res != resNotFound || got[1].res != resNotFound {
			t.Errorf("a refused write took effect: %v\n  active reads: %v\n  passive reads: %v", w, got[0], got[1])
		}
	default:
		if got[0].res != got[1].res || got[0].value != got[1].value {
			t.Errorf("the servers disagree after recovery on %v\n  active reads: %v\n  passive reads: %v", w, got[0], got[1])
		}
	}
	return 0
}

// checkNoStaleReads finds reads that answered "not found" for a deposit
// whose write had been acknowledged before the read was sent: a
// linearizability violation of the plainest kind, reported on its own. It
// returns how many there were.
func checkNoStaleReads(t *testing.T, ops []op) int {
	t.Helper()
	acked := map[string]op{}
	for _, o := range ops {
		if o.put && o.res == resOK {
			acked[o.key] = o
		}
	}
	var stale []string
	for _, o := range ops {
		if w, ok := acked[o.key]; ok && !o.put && o.res == resNotFound && o.call > w.ret {
			stale = append(stale, fmt.Sprintf("%v\n    after %v", o, w))
		}
	}
	if len(stale) > 0 {
		t.Errorf("%d reads answered not found for a write acknowledged before they were sent "+
			"(client %d reads the passive alone while its database restarts), the first:\n  %s",
			len(stale), passiveProbe, strings.Join(stale[:min(len(stale), 5)], "\n  "))
	}
	return len(stale)
}

// kvIn and kvOut are the input and output of an operation for porcupine.
type kvIn struct {
	put        bool
	key, value string
}

type kvOut struct {
	res   outcome
	value string
}

// kvModel is a key-value store with create-only puts, partitioned by key;
// a key's state is its value, "" while absent (values are never empty).
var kvModel = porcupine.Model{
	Partition: func(history []porcupine.Operation) [][]porcupine.Operation {
		byKey := map[string][]porcupine.Operation{}
		var keys []string
		for _, o := range history {
			k := o.Input.(kvIn).key
			if _, ok := byKey[k]; !ok {
				keys = append(keys, k)
			}
			byKey[k] = append(byKey[k], o)
		}
		out := make([][]porcupine.Operation, len(keys))
		for i, k := range keys {
			out[i] = byKey[k]
		}
		return out
	},
	Init: func() any { return "" },
	Step: func(state, input, output any) (bool, any) {
		cur, in, out := state.(string), input.(kvIn), output.(kvOut)
		switch {
		case !in.put && out.res == resOK:
			return cur == out.value, cur
		case !in.put: // not found
			return cur == "", cur
		case out.res == resOK:
			return cur == "", in.value
		case out.res == resExists:
			return cur != "", cur
		}
		// Unknown outcome: it took effect when it is linearized. Its
		// return is open, so it may be linearized after everything else,
		// which is the same as never taking effect.
		if cur == "" {
			return true, in.value
		}
		return true, cur
	},
	DescribeOperation: func(input, output any) string {
		in, out := input.(kvIn), output.(kvOut)
		if in.put {
			return fmt.Sprintf("put(%s, %q) -> %s", in.key, in.value, out.res)
		}
		return fmt.Sprintf("get(%s) -> %s %q", in.key, out.res, out.value)
	},
}

// porcupineOps turns the history into porcupine operations: refused writes
// and failed reads are left out (they had no effect), and writes of unknown
// outcome never return.
func porcupineOps(ops []op) []porcupine.Operation {
	var out []porcupine.Operation
	for _, o := range ops {
		if o.res == resRefused || o.res == resFailed {
			continue
		}
		ret := int64(o.ret)
		if o.res == resUnknown {
			ret = math.MaxInt64
		}
		out = append(out, porcupine.Operation{ClientId: o.client, Input: kvIn{o.put, o.key, o.value},
			Call: int64(o.call), Output: kvOut{o.res, o.value}, Return: ret})
	}
	return out
}

// checkLinearizable runs porcupine over the whole history; on a violation
// it shows the history of the keys that are not linearizable.
func checkLinearizable(t *testing.T, ops []op, windows []window) {
	t.Helper()
	start := time.Now()
	switch porcupine.CheckOperationsTimeout(kvModel, porcupineOps(ops), time.Minute) {
	case porcupine.Ok:
		t.Logf("linearizable: %d operations checked in %v", len(ops), time.Since(start).Round(time.Millisecond))
		return
	case porcupine.Unknown:
		t.Errorf("the linearizability check timed out after a minute: no verdict on %d operations", len(ops))
		return
	}
	byKey := map[string][]op{}
	for _, o := range ops {
		byKey[o.key] = append(byKey[o.key], o)
	}
	shown := 0
	for _, key := range slices.Sorted(maps.Keys(byKey)) {
		keyOps := byKey[key]
		if porcupine.CheckOperationsTimeout(kvModel, porcupineOps(keyOps), 10*time.Second) != porcupine.Illegal {
			continue
		}
		if shown++; shown > 5 {
			break
		}
		slices.SortFunc(keyOps, func(a, b op) int { return cmp.Compare(a.call, b.call) })
		var b strings.Builder
		for _, o := range keyOps {
			fmt.Fprintf(&b, "  %v\n", o)
		}
		for _, w := range windows {
			if w.down-5*time.Second <= keyOps[len(keyOps)-1].ret && keyOps[0].call <= w.recovered+5*time.Second {
				fmt.Fprintf(&b, "  fault: %s down [%s, %s], recovered %s\n", w.kind, fmtOffset(w.down), fmtOffset(w.restart), fmtOffset(w.recovered))
			}
		}
		t.Errorf("NOT LINEARIZABLE: key %s (clients 0-%d: the workload; %d, %d: the active, the passive alone after the faults; "+
			"%d: the passive alone while its database restarted):\n%s",
			key, faultClients-1, activeAlone, passiveAlone, passiveProbe, b.String())
	}
	if shown == 0 {
		t.Errorf("the history is not linearizable, but no single key was found illegal")
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

func summarize(ops []op, windows []window) summary {
	var s summary
	for _, o := range ops {
		switch o.client {
		case preloader:
			s.preloaded++
			continue
		case activeAlone, passiveAlone:
			s.finalReads++
			continue
		case passiveProbe:
			s.probes++
			if o.res != resFailed {
				s.probesAnswered++
			}
			continue
		}
		s.ops++
		if !o.put {
			if o.res == resFailed {
				s.readsFailed++
			} else {
				s.readsOK++
			}
			for _, w := range windows {
				if w.inside(o) {
					if o.res == resFailed {
						s.windowReadsFailed++
					} else {
						s.windowReadsOK++
					}
				}
			}
			continue
		}
		switch o.res {
		case resOK:
			s.acked++
		case resUnknown:
			s.unknown++
			if o.code == "timeout" {
				s.timeouts++
				s.slowestTimeout = max(s.slowestTimeout, o.ret-o.call)
			}
		case resRefused:
			s.refused++
			if o.code == "passive_unavailable" {
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
			logs := s.logs.String()
			os.WriteFile(filepath.Join(dir, name+"-server.log"), []byte(logs), 0o644)
			t.Logf("end of the %s server's log, without the access log:\n%s", name, lastLines(withoutAccessLog(logs), 60))
		}
		if pg, err := os.ReadFile(filepath.Join(p.dataDir(i), "log", "postgresql.log")); err == nil {
			os.WriteFile(filepath.Join(dir, name+"-postgresql.log"), pg, 0o644)
			t.Logf("end of the %s PostgreSQL log:\n%s", name, lastLines(string(pg), 30))
		}
	}
	if p.h != nil {
		var b strings.Builder
		for _, o := range p.h.snapshot() {
			fmt.Fprintln(&b, o)
		}
		os.WriteFile(filepath.Join(dir, "history.txt"), []byte(b.String()), 0o644)
	}
	t.Logf("logs and history kept in %s", dir)
}
