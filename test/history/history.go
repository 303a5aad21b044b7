// Package history records what the clients of a pair asked and learned,
// and checks it against the contract of a key-value store whose put is
// create-only: linearizable (porcupine), no acknowledged write read as
// absent, and every acknowledged write kept by both servers.
package history

import (
	"cmp"
	"context"
	"crypto/sha256"
	"encoding/json"
	"errors"
	"fmt"
	"maps"
	"math"
	"math/rand/v2"
	"net/http"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/anishathalye/porcupine"

	"trustee.dev/trustee/server/client"
)

// Pacing of the workload.
const (
	opTimeout     = 15 * time.Second       // bound on one client operation
	workloadPause = 20 * time.Millisecond  // between iterations of a client
	failurePause  = 200 * time.Millisecond // after an operation failed, as a client backs off
)

// New starts a history now.
func New() *History { return &History{t0: time.Now()} }

// outcome is what an operation's caller learned.
type Outcome int

const (
	OK       Outcome = iota // put acknowledged; get found the value
	NotFound                // get: no such deposit
	Exists                  // put: 409, the name was taken
	Unknown                 // put that may or may not have taken effect
	Refused                 // put the server refused without doing it
	Failed                  // get no server answered
)

func (r Outcome) String() string {
	return [...]string{"ok", "not found", "exists", "unknown", "refused", "failed"}[r]
}

// Op is one operation of the history; times are offsets from the start.
type Op struct {
	Client    int
	Put       bool
	Key       string
	Value     string // put: the value written; get: the value read
	Call, Ret time.Duration
	Res       Outcome
	Code      string // the error code, or the transport error, of a failure
}

func (o Op) String() string {
	name, v := "get", ""
	if o.Put {
		name = "put"
	}
	if o.Value != "" {
		v = fmt.Sprintf(" %q", o.Value)
	}
	return fmt.Sprintf("[%s, %s] client %d %s %s%s -> %s %s", FmtOffset(o.Call), FmtOffset(o.Ret), o.Client, name, o.Key, v, o.Res, o.Code)
}

// FmtOffset shows an offset from the history's start.
func FmtOffset(d time.Duration) string { return fmt.Sprintf("%.3fs", d.Seconds()) }

// history records every operation of the workload and of the final reads.
type History struct {
	t0    time.Time
	mu    sync.Mutex
	ops   []Op
	keys  []string // keys of every put attempted, in order
	acked []string // keys of the acknowledged puts
}

func (h *History) Now() time.Duration { return time.Since(h.t0) }

func (h *History) add(o Op) {
	h.mu.Lock()
	h.ops = append(h.ops, o)
	if o.Put && o.Res == OK {
		h.acked = append(h.acked, o.Key)
	}
	h.mu.Unlock()
}

func (h *History) Snapshot() []Op {
	h.mu.Lock()
	defer h.mu.Unlock()
	return slices.Clone(h.ops)
}

// any reports whether an operation answered after from satisfies f.
func (h *History) Any(from time.Duration, f func(Op) bool) bool {
	h.mu.Lock()
	defer h.mu.Unlock()
	// Operations are added as they answer; allow for a little reordering.
	for i := len(h.ops) - 1; i >= 0 && h.ops[i].Ret >= from-time.Second; i-- {
		if h.ops[i].Ret >= from && f(h.ops[i]) {
			return true
		}
	}
	return false
}

// RunWorkload starts n clients (ids 0 to n-1), each with the registered client
// state opened anew, looping: put a fresh key, get a key already attempted
// (often a recent one), and now and then get a key never written. The
// returned function stops them and waits.
func (h *History) RunWorkload(t *testing.T, dir string, n int, seed uint64) (stop func()) {
	var done atomic.Bool
	var wg sync.WaitGroup
	for id := range n {
		c, err := client.Open(dir)
		if err != nil {
			t.Fatal(err)
		}
		rng := rand.New(rand.NewPCG(seed, uint64(id)+1))
		wg.Go(func() {
			for seq := 0; !done.Load(); seq++ {
				key := fmt.Sprintf("c%d-%d", id, seq)
				w := h.Put(c, id, key, fmt.Appendf(nil, "value of %s %016x", key, rng.Uint64()))
				r := h.Get(c, id, h.pick(rng))
				if rng.IntN(8) == 0 {
					h.Get(c, id, fmt.Sprintf("never-%d-%d", id, seq))
				}
				if w.Res != OK || r.Res == Failed {
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

func (h *History) pick(rng *rand.Rand) string {
	h.mu.Lock()
	defer h.mu.Unlock()
	n := len(h.keys)
	if rng.IntN(2) == 0 {
		return h.keys[n-1-rng.IntN(min(n, 16))]
	}
	return h.keys[rng.IntN(n)]
}

func (h *History) PickAcknowledged(rng *rand.Rand) (string, bool) {
	h.mu.Lock()
	defer h.mu.Unlock()
	if len(h.acked) == 0 {
		return "", false
	}
	return h.acked[rng.IntN(len(h.acked))], true
}

// Put writes a deposit through c as client id, and records it.
func (h *History) Put(c *client.Client, id int, key string, data []byte) Op {
	h.mu.Lock()
	h.keys = append(h.keys, key)
	h.mu.Unlock()
	ctx, cancel := context.WithTimeout(context.Background(), opTimeout)
	defer cancel()
	o := Op{Client: id, Put: true, Key: key, Value: recorded(data), Call: h.Now()}
	err := c.Put(ctx, key, data)
	o.Ret = h.Now()
	o.Res, o.Code = putResult(err)
	h.add(o)
	return o
}

// Get reads a deposit through c as client id, and records it.
func (h *History) Get(c *client.Client, id int, key string) Op {
	ctx, cancel := context.WithTimeout(context.Background(), opTimeout)
	defer cancel()
	o := Op{Client: id, Key: key, Call: h.Now()}
	data, err := c.Get(ctx, key)
	o.Ret = h.Now()
	o.Res, o.Code = getResult(err)
	if o.Res == OK {
		o.Value = recorded(data)
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
func (h *History) Preload(t *testing.T, dir string, id, n, size int) {
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
				if o := h.Put(c, id, fmt.Sprintf("pre-%d", i), data); o.Res != OK {
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
func putResult(err error) (Outcome, string) {
	if err == nil {
		return OK, ""
	}
	var ae *client.APIError
	if !errors.As(err, &ae) {
		return Unknown, transportCode(err)
	}
	switch {
	case ae.Status == http.StatusConflict:
		return Exists, ae.Code
	case ae.Status == http.StatusServiceUnavailable && (ae.Code == "passive_unavailable" || ae.Code == "active_unavailable" || ae.Code == "stopping"):
		return Refused, ae.Code
	case ae.Status >= 400 && ae.Status < 500:
		return Refused, ae.Code
	}
	return Unknown, ae.Code
}

func getResult(err error) (Outcome, string) {
	if err == nil {
		return OK, ""
	}
	var ae *client.APIError
	if errors.As(err, &ae) && ae.Status == http.StatusNotFound && ae.Code == "not_found" {
		return NotFound, ""
	}
	if ae != nil {
		return Failed, ae.Code
	}
	return Failed, transportCode(err)
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

// VerifyWrites reads every key the history tried to write from each of
// two servers alone (alone[i], whose reads join the history as client
// ids[i]), once the pair has recovered: an acknowledged write must read
// back with its value from both, a refused one from neither, and the two
// must agree on writes of unknown outcome. It returns the acknowledged
// writes lost.
func (h *History) VerifyWrites(t *testing.T, alone [2]*client.Client, ids [2]int, names [2]string) (lost int) {
	t.Helper()
	var puts []Op
	for _, o := range h.Snapshot() {
		if o.Put {
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
				var got [2]Op
				for i, c := range alone {
					for attempt := 0; ; attempt++ {
						got[i] = h.Get(c, ids[i], w.Key)
						if got[i].Res != Failed || attempt == 2 {
							break
						}
						time.Sleep(time.Second)
					}
				}
				mu.Lock()
				lost += judge(t, w, got, names)
				mu.Unlock()
			}
		})
	}
	wg.Wait()
	return lost
}

// judge checks what two servers return for write w after recovery; it
// returns 1 when w was acknowledged but is lost.
func judge(t *testing.T, w Op, got [2]Op, names [2]string) int {
	t.Helper()
	for i, g := range got {
		if g.Res == Failed {
			t.Errorf("after recovery, %s could not read %s: %s", names[i], w.Key, g.Code)
			return 0
		}
	}
	switch w.Res {
	case OK:
		for _, g := range got {
			if g.Res != OK || g.Value != w.Value {
				t.Errorf("LOST acknowledged write: %v\n  %s reads: %v\n  %s reads: %v", w, names[0], got[0], names[1], got[1])
				return 1
			}
		}
	case Refused:
		if got[0].Res != NotFound || got[1].Res != NotFound {
			t.Errorf("a refused write took effect: %v\n  %s reads: %v\n  %s reads: %v", w, names[0], got[0], names[1], got[1])
		}
	default:
		if got[0].Res != got[1].Res || got[0].Value != got[1].Value {
			t.Errorf("the servers disagree after recovery on %v\n  %s reads: %v\n  %s reads: %v", w, names[0], got[0], names[1], got[1])
		}
	}
	return 0
}

// CheckNoStaleReads finds reads that answered "not found" for a deposit
// whose write had been acknowledged before the read was sent: a
// linearizability violation of the plainest kind, reported on its own. It
// returns how many there were.
func CheckNoStaleReads(t *testing.T, ops []Op, clients string) int {
	t.Helper()
	acked := map[string]Op{}
	for _, o := range ops {
		if o.Put && o.Res == OK {
			acked[o.Key] = o
		}
	}
	var stale []string
	for _, o := range ops {
		if w, ok := acked[o.Key]; ok && !o.Put && o.Res == NotFound && o.Call > w.Ret {
			stale = append(stale, fmt.Sprintf("%v\n    after %v", o, w))
		}
	}
	if len(stale) > 0 {
		t.Errorf("%d reads answered not found for a write acknowledged before they were sent "+
			"(%s), the first:\n  %s",
			len(stale), clients, strings.Join(stale[:min(len(stale), 5)], "\n  "))
	}
	return len(stale)
}

// kvIn and kvOut are the input and output of an operation for porcupine.
type kvIn struct {
	put        bool
	key, value string
}

type kvOut struct {
	res   Outcome
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
		case !in.put && out.res == OK:
			return cur == out.value, cur
		case !in.put: // not found
			return cur == "", cur
		case out.res == OK:
			return cur == "", in.value
		case out.res == Exists:
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
func porcupineOps(ops []Op) []porcupine.Operation {
	var out []porcupine.Operation
	for _, o := range ops {
		if o.Res == Refused || o.Res == Failed {
			continue
		}
		ret := int64(o.Ret)
		if o.Res == Unknown {
			ret = math.MaxInt64
		}
		out = append(out, porcupine.Operation{ClientId: o.Client, Input: kvIn{o.Put, o.Key, o.Value},
			Call: int64(o.Call), Output: kvOut{o.Res, o.Value}, Return: ret})
	}
	return out
}

// CheckLinearizable runs porcupine over the whole history; on a violation
// it shows the history of the keys that are not linearizable, each with
// what around(those operations) says happened meanwhile, and clients,
// which says who the client ids are.
func CheckLinearizable(t *testing.T, ops []Op, clients string, around func([]Op) string) {
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
	byKey := map[string][]Op{}
	for _, o := range ops {
		byKey[o.Key] = append(byKey[o.Key], o)
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
		slices.SortFunc(keyOps, func(a, b Op) int { return cmp.Compare(a.Call, b.Call) })
		var b strings.Builder
		for _, o := range keyOps {
			fmt.Fprintf(&b, "  %v\n", o)
		}
		if around != nil {
			b.WriteString(around(keyOps))
		}
		t.Errorf("NOT LINEARIZABLE: key %s (%s):\n%s", key, clients, b.String())
	}
	if shown == 0 {
		t.Errorf("the history is not linearizable, but no single key was found illegal")
	}
}

// ClientWithServers copies a registered client's state with another server list.
func ClientWithServers(t *testing.T, from, to string, servers ...string) string {
	t.Helper()
	if err := os.MkdirAll(to, 0o700); err != nil {
		t.Fatal(err)
	}
	key, err := os.ReadFile(filepath.Join(from, "client-key.asc"))
	if err != nil {
		t.Fatal(err)
	}
	os.WriteFile(filepath.Join(to, "client-key.asc"), key, 0o600)
	raw, err := os.ReadFile(filepath.Join(from, "client.json"))
	if err != nil {
		t.Fatal(err)
	}
	var cfg map[string]any
	if err := json.Unmarshal(raw, &cfg); err != nil {
		t.Fatal(err)
	}
	cfg["servers"], cfg["server_url"] = servers, servers[0]
	out, _ := json.Marshal(cfg)
	os.WriteFile(filepath.Join(to, "client.json"), out, 0o600)
	return to
}
