// Package bench is Trustee's benchmark: the scenarios of kts-bench (the
// benchmark build of kts, docs/PERFORMANCE.md) over the load generator of
// package loadgen. Run measures deposit get and put against a bare TLS
// handler and raw PostgreSQL, and the audit log's cost against the
// benchmark build's audit-off listener; Backup measures backup and restore
// as the database grows; HSM the HSM keyring against the file keyring.
package bench

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"net/http"
	"os"
	"slices"
	"strconv"
	"strings"
	"time"

	"trustee.dev/trustee/bench/loadgen"
	"trustee.dev/trustee/server/client"
	"trustee.dev/trustee/server/confdir"
	"trustee.dev/trustee/server/store"
)

// Options are the knobs of a run (kts-bench bench --help).
type Options struct {
	// Confdir and Server are the server measured, unless Scratch starts
	// one (or with Pair, an active/passive pair) for the run.
	Confdir, Server string
	Scratch, Pair   bool
	Workers, Rounds int
	Size, Prefill   int
	Warmup, Window  time.Duration
	// RateFraction is the fixed-rate GET's fraction of the peak GET rate.
	RateFraction float64
	// Only, when set, is the one measurement run, without the summary.
	Only string
	// ServerProfile and AuditSync are the scratch server's --cpu-profile
	// and --audit-sync.
	ServerProfile, AuditSync string
	// Start starts a child of the benchmark binary.
	Start Starter

	unaudited string // the scratch server's audit-off listener
}

// Child is a child process serving at URL.
type Child struct {
	URL string
	// Unaudited is the URL of a server's audit-off listener, when it
	// announced one.
	Unaudited string
	// Stop asks the process to end and waits for it.
	Stop func()
}

// Starter runs the benchmark binary with args and waits for it to print
// "listening ADDR".
type Starter func(ctx context.Context, args ...string) (*Child, error)

// Run measures the deposit API against its anchors (see the package doc)
// and prints the results and their summary to out.
func Run(ctx context.Context, out io.Writer, o Options) error {
	if o.Workers < 1 || o.Rounds < 1 || o.Size < 1 || o.Prefill < 1 {
		return errors.New("--concurrency, --rounds, --size and --prefill must be positive")
	}
	if o.Scratch {
		env, err := startScratch(ctx, out, o)
		if err != nil {
			return err
		}
		defer env.stop()
		o.Confdir, o.Server, o.unaudited = env.confdir, env.url, env.unaudited
	}
	st, err := confdir.Open(o.Confdir)
	if err != nil {
		return err
	}
	caFile := st.Config.Path(st.Dir, st.Config.SSLCertificate)
	db, err := store.Open(ctx, st.DSN(), 2)
	if err != nil {
		return err
	}
	defer db.Close()
	if err := db.Migrate(ctx); err != nil {
		return err
	}
	pool, err := openRaw(ctx, st.DSN(), o.Workers)
	if err != nil {
		return err
	}
	defer pool.Close()

	fmt.Fprintf(out, "registering %d clients and prefilling %d deposits of %d bytes...\n", o.Workers, o.Workers*o.Prefill, o.Size)
	clients, unauditedClients, err := benchClients(ctx, db, o, caFile)
	if err != nil {
		return err
	}
	payload := make([]byte, o.Size)
	rand.Read(payload)
	for w, c := range clients {
		for i := 0; i < o.Prefill; i++ {
			if err := c.Put(ctx, "p-"+strconv.Itoa(i), payload); err != nil {
				return fmt.Errorf("prefill client %d: %w", w, err)
			}
		}
	}
	raw, err := newRawDB(ctx, pool, o, payload)
	if err != nil {
		return err
	}
	defer raw.drop(context.WithoutCancel(ctx))

	bare, err := startBareServer(ctx, o)
	if err != nil {
		return err
	}
	defer bare.Stop()
	bareClients := make([]*http.Client, o.Workers)
	for i := range bareClients {
		bareClients[i] = benchHTTPClient(clients[0].HTTP)
	}

	runID := hex.EncodeToString(payload[:4])
	get := func(cs []*client.Client) loadgen.Op {
		return func(ctx context.Context, w, seq int) error {
			b, err := cs[w].Get(ctx, "p-"+strconv.Itoa(seq%o.Prefill))
			if err == nil && len(b) != o.Size {
				err = fmt.Errorf("got %d bytes", len(b))
			}
			return err
		}
	}
	put := func(cs []*client.Client, prefix string) loadgen.Op {
		return func(ctx context.Context, w, seq int) error {
			return cs[w].Put(ctx, fmt.Sprintf("%s-%s-%d", prefix, runID, seq), payload)
		}
	}
	ops := []run{
		{"bare-tls-get", func(ctx context.Context, w, _ int) error { return bareGet(ctx, bareClients[w], bare.URL, o.Size) }},
		{"kts-get", get(clients)},
		{"kts-put", put(clients, "w")},
		{"raw-insert", raw.insert},
		{"raw-select", raw.selectRow},
	}
	if unauditedClients != nil {
		// The same server with audit recording off (its benchmark-only
		// listener), right next to the audited run; which of the two goes
		// first alternates by round.
		ops = append(ops[:1], append([]run{
			{"kts-get", get(clients)}, {"kts-get-noaudit", get(unauditedClients)},
			{"kts-put", put(clients, "w")}, {"kts-put-noaudit", put(unauditedClients, "u")},
		}, ops[3:]...)...)
	}
	if o.Pair {
		// The same INSERT committing without waiting for the standby: what
		// synchronous replication costs.
		local, err := openRaw(ctx, st.DSN()+"&synchronous_commit=local", o.Workers)
		if err != nil {
			return err
		}
		defer local.Close()
		ops = append(ops, run{"raw-insert-async", func(ctx context.Context, w, seq int) error {
			return raw.insertInto(ctx, local, raw.owner(w), fmt.Sprintf("a-%d-%d", raw.round, seq))
		}})
	}
	results := map[string][]loadgen.Result{}
	var fixed, fixedBare []loadgen.Result
	for round := 1; round <= o.Rounds; round++ {
		runID = fmt.Sprintf("%s-%d", hex.EncodeToString(payload[:4]), round)
		raw.round = round
		fmt.Fprintf(out, "\nround %d/%d  load average %s\n", round, o.Rounds, loadAverage())
		for _, op := range roundOrder(ops, round) {
			if o.Only != "" && o.Only != op.name {
				continue
			}
			r := loadgen.ClosedLoop(ctx, op.name, o.Workers, o.Warmup, o.Window, op.op)
			results[op.name] = append(results[op.name], r)
			fmt.Fprintf(out, "  %s\n", r)
			if op.name == "raw-insert-async" {
				// Let the standby replay what it was not waited for, so the
				// next run does not pay for it.
				if err := waitReplayed(ctx, pool); err != nil {
					return err
				}
			}
			if ctx.Err() != nil {
				return ctx.Err()
			}
		}
		if o.Only != "" {
			return nil
		}
		settle(ctx, out, pool)
		rate := o.RateFraction * results["kts-get"][round-1].Rate()
		r := loadgen.FixedRate(ctx, fmt.Sprintf("kts-get@%.0f/s", rate), o.Workers, rate, o.Warmup, o.Window, get(clients))
		fixed = append(fixed, r)
		fmt.Fprintf(out, "  %s\n", r)
		r = loadgen.FixedRate(ctx, fmt.Sprintf("bare-tls@%.0f/s", rate), o.Workers, rate, o.Warmup, o.Window, ops[0].op)
		fixedBare = append(fixedBare, r)
		fmt.Fprintf(out, "  %s\n", r)
	}
	return report(out, o, results, fixed, fixedBare)
}

// run is one measurement of a round.
type run struct {
	name string
	op   loadgen.Op
}

// roundOrder is the order of a round's runs: as listed, but in even rounds
// each audit-off run (NAME-noaudit) goes before the audited run it follows,
// so that neither is always measured first.
func roundOrder(runs []run, round int) []run {
	if round%2 != 0 {
		return runs
	}
	order := slices.Clone(runs)
	for i := 1; i < len(order); i++ {
		if strings.HasSuffix(order[i].name, "-noaudit") {
			order[i-1], order[i] = order[i], order[i-1]
		}
	}
	return order
}

func report(out io.Writer, o Options, results map[string][]loadgen.Result, fixed, fixedBare []loadgen.Result) error {
	ratio := func(a, b string) []float64 {
		var xs []float64
		for i := range results[a] {
			xs = append(xs, results[a][i].Rate()/results[b][i].Rate())
		}
		return xs
	}
	errorsSeen := 0
	for _, rs := range results {
		for _, r := range rs {
			errorsSeen += r.Errors
		}
	}
	for _, r := range append(fixed, fixedBare...) {
		errorsSeen += r.Errors
	}
	getMed, getLo, getHi := loadgen.Median(ratio("kts-get", "bare-tls-get"))
	putMed, putLo, putHi := loadgen.Median(ratio("kts-put", "raw-insert"))
	p99 := func(rs []loadgen.Result) (med, lo, hi float64) {
		var xs []float64
		for _, r := range rs {
			xs = append(xs, ms(r.Percentile(0.99)))
		}
		return loadgen.Median(xs)
	}
	p99Med, p99Lo, p99Hi := p99(fixed)
	bareMed, _, _ := p99(fixedBare)
	verdict := func(ok bool) string {
		if ok {
			return "met"
		}
		return "MISSED"
	}
	fmt.Fprintf(out, "\nmedian over %d rounds (range), %d clients, %d-byte values, %v windows:\n", o.Rounds, o.Workers, o.Size, o.Window)
	fmt.Fprintf(out, "  get / bare TLS handler   %.2f (%.2f–%.2f)   target ≥ 0.50  %s\n", getMed, getLo, getHi, verdict(getMed >= 0.5))
	fmt.Fprintf(out, "  put / raw pgx INSERT     %.2f (%.2f–%.2f)   target ≥ 0.60  %s\n", putMed, putLo, putHi, verdict(putMed >= 0.6))
	if o.Pair {
		m, lo, hi := loadgen.Median(ratio("raw-insert", "raw-insert-async"))
		fmt.Fprintf(out, "  INSERT with the synchronous standby / without  %.2f (%.2f–%.2f)\n", m, lo, hi)
		m, lo, hi = loadgen.Median(ratio("kts-put", "raw-insert-async"))
		fmt.Fprintf(out, "  put / INSERT without the standby               %.2f (%.2f–%.2f)\n", m, lo, hi)
	}
	fmt.Fprintf(out, "  get p99 at %.0f%% of peak  %.2f ms (%.2f–%.2f)  target < 10 ms  %s   (bare handler at that rate: %.2f ms)\n",
		o.RateFraction*100, p99Med, p99Lo, p99Hi, verdict(p99Med < 10), bareMed)
	if len(results["kts-get-noaudit"]) > 0 {
		m, lo, hi := loadgen.Median(ratio("kts-get", "kts-get-noaudit"))
		fmt.Fprintf(out, "  get, audit on / off      %.2f (%.2f–%.2f)   target ≥ 0.85  %s\n", m, lo, hi, verdict(m >= 0.85))
		m, lo, hi = loadgen.Median(ratio("kts-put", "kts-put-noaudit"))
		fmt.Fprintf(out, "  put, audit on / off      %.2f (%.2f–%.2f)   target ≥ 0.85  %s\n", m, lo, hi, verdict(m >= 0.85))
	}
	if errorsSeen > 0 {
		return fmt.Errorf("%d operations failed: the run is void", errorsSeen)
	}
	return nil
}

func ms(d time.Duration) float64 { return float64(d) / float64(time.Millisecond) }

func loadAverage() string {
	b, err := os.ReadFile("/proc/loadavg")
	if err != nil {
		return "?"
	}
	f := strings.Fields(string(b))
	if len(f) < 3 {
		return "?"
	}
	return strings.Join(f[:3], " ")
}
