package cmd

import (
	"context"
	"crypto/rand"
	"crypto/tls"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"time"

	"github.com/spf13/cobra"

	"trustee.dev/trustee/server/audit"
	"trustee.dev/trustee/server/bench"
	"trustee.dev/trustee/server/client"
	"trustee.dev/trustee/server/confdir"
	"trustee.dev/trustee/server/config"
	"trustee.dev/trustee/server/daemon"
	"trustee.dev/trustee/server/openpgp"
	"trustee.dev/trustee/server/pg"
	"trustee.dev/trustee/server/store"
)

type benchOptions struct {
	confdir, server string
	scratch         bool
	workers, rounds int
	size, prefill   int
	warmup, window  time.Duration
	rateFraction    float64
	only            string
	pair            bool
	unaudited       string // the server's audit-off listener, with --scratch
	serverProfile   string
	profile         string
	auditSync       string
}

func newBenchCommand() *cobra.Command {
	var o benchOptions
	cmd := &cobra.Command{
		Use:   "bench",
		Short: "Measure deposit put/get against the bare TLS and raw PostgreSQL limits",
		Long: `bench registers clients, then measures in interleaved rounds, on this machine
and in the same run:

  bare-tls-get   a bare Go TLS handler with the server's TLS settings returning
                 the same payload size (the transport limit)
  kts-get        deposit GET of a prefilled set
  kts-put        deposit PUT of fresh names
  raw-insert     pgx single-row INSERT of rows shaped like deposits (the storage limit)
  raw-select     pgx primary-key SELECT of the same rows

then a fixed-rate GET at --rate-fraction of the peak GET rate for its p99.
It prints ops/s, p50 and p99 of each, and the median ratios with their range.

With --scratch it first starts a throwaway PostgreSQL and server in a
temporary directory and removes them afterwards; otherwise it runs against
--server, using --confdir for direct database access.`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			tuneGC()
			stopProfile, err := startCPUProfile(o.profile)
			if err != nil {
				return err
			}
			defer stopProfile()
			return runBench(cmd.Context(), cmd.OutOrStdout(), o)
		},
	}
	f := cmd.Flags()
	addConfdirFlag(cmd, &o.confdir)
	f.StringVar(&o.server, "server", "https://127.0.0.1:11371", "server URL (ignored with --scratch)")
	f.BoolVar(&o.scratch, "scratch", false, "start a throwaway PostgreSQL and server for the run")
	f.IntVar(&o.workers, "concurrency", 16, "closed-loop clients, one keep-alive connection each")
	f.IntVar(&o.rounds, "rounds", 3, "interleaved rounds")
	f.IntVar(&o.size, "size", 256, "payload bytes")
	f.IntVar(&o.prefill, "prefill", 100, "deposits per client read by kts-get")
	f.DurationVar(&o.warmup, "warmup", 2*time.Second, "warm-up before each measured window")
	f.DurationVar(&o.window, "duration", 10*time.Second, "measured window of each run")
	f.Float64Var(&o.rateFraction, "rate-fraction", 0.5, "fixed-rate GET at this fraction of the peak GET rate")
	f.BoolVar(&o.pair, "pair", false, "with --scratch: an active/passive pair on synchronous replication; the clients read from both")
	f.StringVar(&o.only, "only", "", "run only this measurement (e.g. kts-get), once per round, without the summary")
	f.StringVar(&o.profile, "cpu-profile", "", "write the load generator's CPU profile to this file")
	f.StringVar(&o.serverProfile, "server-cpu-profile", "", "with --scratch: write the server's CPU profile to this file")
	f.StringVar(&o.auditSync, "audit-sync", audit.SyncWrite, `with --scratch: the server's --audit-sync ("write" or "fsync")`)
	cmd.AddCommand(newBareServerCommand(), newBenchBackupCommand(), newBenchHSMCommand())
	return cmd
}

func runBench(ctx context.Context, out io.Writer, o benchOptions) error {
	if o.workers < 1 || o.rounds < 1 || o.size < 1 || o.prefill < 1 {
		return errors.New("--concurrency, --rounds, --size and --prefill must be positive")
	}
	if o.scratch {
		env, err := startScratch(ctx, out, o)
		if err != nil {
			return err
		}
		defer env.stop()
		o.confdir, o.server, o.unaudited = env.confdir, env.url, env.unaudited
	}
	st, err := confdir.Open(o.confdir)
	if err != nil {
		return err
	}
	caFile := st.Config.Path(st.Dir, st.Config.SSLCertificate)
	db, err := store.Open(ctx, st.DSN(), int32(o.workers))
	if err != nil {
		return err
	}
	defer db.Close()
	if err := db.Migrate(ctx); err != nil {
		return err
	}

	fmt.Fprintf(out, "registering %d clients and prefilling %d deposits of %d bytes...\n", o.workers, o.workers*o.prefill, o.size)
	clients, unauditedClients, err := benchClients(ctx, db, o, caFile)
	if err != nil {
		return err
	}
	payload := make([]byte, o.size)
	rand.Read(payload)
	for w, c := range clients {
		for i := 0; i < o.prefill; i++ {
			if err := c.Put(ctx, "p-"+strconv.Itoa(i), payload); err != nil {
				return fmt.Errorf("prefill client %d: %w", w, err)
			}
		}
	}
	raw, err := newRawDB(ctx, db, o, payload)
	if err != nil {
		return err
	}
	defer raw.drop(context.WithoutCancel(ctx))

	bare, err := startBareServer(ctx, o.confdir, o.size)
	if err != nil {
		return err
	}
	defer bare.stop()
	bareClients := make([]*http.Client, o.workers)
	for i := range bareClients {
		bareClients[i] = benchHTTPClient(clients[0].HTTP)
	}

	runID := hex.EncodeToString(payload[:4])
	get := func(cs []*client.Client) bench.Op {
		return func(ctx context.Context, w, seq int) error {
			b, err := cs[w].Get(ctx, "p-"+strconv.Itoa(seq%o.prefill))
			if err == nil && len(b) != o.size {
				err = fmt.Errorf("got %d bytes", len(b))
			}
			return err
		}
	}
	put := func(cs []*client.Client, prefix string) bench.Op {
		return func(ctx context.Context, w, seq int) error {
			return cs[w].Put(ctx, fmt.Sprintf("%s-%s-%d", prefix, runID, seq), payload)
		}
	}
	ops := []struct {
		name string
		op   bench.Op
	}{
		{"bare-tls-get", func(ctx context.Context, w, _ int) error { return bareGet(ctx, bareClients[w], bare.url, o.size) }},
		{"kts-get", get(clients)},
		{"kts-put", put(clients, "w")},
		{"raw-insert", raw.insert},
		{"raw-select", raw.selectRow},
	}
	if unauditedClients != nil {
		// The same server with audit recording off (its benchmark-only
		// listener), right next to the audited run; which of the two goes
		// first alternates by round.
		ops = append(ops[:1], append([]struct {
			name string
			op   bench.Op
		}{
			{"kts-get", get(clients)}, {"kts-get-noaudit", get(unauditedClients)},
			{"kts-put", put(clients, "w")}, {"kts-put-noaudit", put(unauditedClients, "u")},
		}, ops[3:]...)...)
	}
	if o.pair {
		// The same INSERT committing without waiting for the standby: what
		// synchronous replication costs.
		local, err := store.Open(ctx, st.DSN()+"&synchronous_commit=local", int32(o.workers))
		if err != nil {
			return err
		}
		defer local.Close()
		ops = append(ops, struct {
			name string
			op   bench.Op
		}{"raw-insert-async", func(ctx context.Context, w, seq int) error {
			return raw.insertInto(ctx, local, raw.owner(w), fmt.Sprintf("a-%d-%d", raw.round, seq))
		}})
	}
	results := map[string][]bench.Result{}
	var fixed, fixedBare []bench.Result
	for round := 1; round <= o.rounds; round++ {
		runID = fmt.Sprintf("%s-%d", hex.EncodeToString(payload[:4]), round)
		raw.round = round
		fmt.Fprintf(out, "\nround %d/%d  load average %s\n", round, o.rounds, loadAverage())
		order := ops
		if unauditedClients != nil && round%2 == 0 {
			order = slices.Clone(ops)
			for i := range order {
				if strings.HasSuffix(order[i].name, "-noaudit") {
					order[i-1], order[i] = order[i], order[i-1]
				}
			}
		}
		for _, op := range order {
			if o.only != "" && o.only != op.name {
				continue
			}
			r := bench.ClosedLoop(ctx, op.name, o.workers, o.warmup, o.window, op.op)
			results[op.name] = append(results[op.name], r)
			fmt.Fprintf(out, "  %s\n", r)
			if op.name == "raw-insert-async" {
				// Let the standby replay what it was not waited for, so the
				// next run does not pay for it.
				if err := waitReplayed(ctx, db); err != nil {
					return err
				}
			}
			if ctx.Err() != nil {
				return ctx.Err()
			}
		}
		if o.only != "" {
			return nil
		}
		settle(ctx, out, db)
		rate := o.rateFraction * results["kts-get"][round-1].Rate()
		r := bench.FixedRate(ctx, fmt.Sprintf("kts-get@%.0f/s", rate), o.workers, rate, o.warmup, o.window, get(clients))
		fixed = append(fixed, r)
		fmt.Fprintf(out, "  %s\n", r)
		r = bench.FixedRate(ctx, fmt.Sprintf("bare-tls@%.0f/s", rate), o.workers, rate, o.warmup, o.window, ops[0].op)
		fixedBare = append(fixedBare, r)
		fmt.Fprintf(out, "  %s\n", r)
	}
	return report(out, o, results, fixed, fixedBare)
}

func report(out io.Writer, o benchOptions, results map[string][]bench.Result, fixed, fixedBare []bench.Result) error {
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
	getMed, getLo, getHi := bench.Median(ratio("kts-get", "bare-tls-get"))
	putMed, putLo, putHi := bench.Median(ratio("kts-put", "raw-insert"))
	p99 := func(rs []bench.Result) (med, lo, hi float64) {
		var xs []float64
		for _, r := range rs {
			xs = append(xs, ms(r.Percentile(0.99)))
		}
		return bench.Median(xs)
	}
	p99Med, p99Lo, p99Hi := p99(fixed)
	bareMed, _, _ := p99(fixedBare)
	verdict := func(ok bool) string {
		if ok {
			return "met"
		}
		return "MISSED"
	}
	fmt.Fprintf(out, "\nmedian over %d rounds (range), %d clients, %d-byte values, %v windows:\n", o.rounds, o.workers, o.size, o.window)
	fmt.Fprintf(out, "  get / bare TLS handler   %.2f (%.2f–%.2f)   target ≥ 0.50  %s\n", getMed, getLo, getHi, verdict(getMed >= 0.5))
	fmt.Fprintf(out, "  put / raw pgx INSERT     %.2f (%.2f–%.2f)   target ≥ 0.60  %s\n", putMed, putLo, putHi, verdict(putMed >= 0.6))
	if o.pair {
		m, lo, hi := bench.Median(ratio("raw-insert", "raw-insert-async"))
		fmt.Fprintf(out, "  INSERT with the synchronous standby / without  %.2f (%.2f–%.2f)\n", m, lo, hi)
		m, lo, hi = bench.Median(ratio("kts-put", "raw-insert-async"))
		fmt.Fprintf(out, "  put / INSERT without the standby               %.2f (%.2f–%.2f)\n", m, lo, hi)
	}
	fmt.Fprintf(out, "  get p99 at %.0f%% of peak  %.2f ms (%.2f–%.2f)  target < 10 ms  %s   (bare handler at that rate: %.2f ms)\n",
		o.rateFraction*100, p99Med, p99Lo, p99Hi, verdict(p99Med < 10), bareMed)
	if len(results["kts-get-noaudit"]) > 0 {
		m, lo, hi := bench.Median(ratio("kts-get", "kts-get-noaudit"))
		fmt.Fprintf(out, "  get, audit on / off      %.2f (%.2f–%.2f)   target ≥ 0.85  %s\n", m, lo, hi, verdict(m >= 0.85))
		m, lo, hi = bench.Median(ratio("kts-put", "kts-put-noaudit"))
		fmt.Fprintf(out, "  put, audit on / off      %.2f (%.2f–%.2f)   target ≥ 0.85  %s\n", m, lo, hi, verdict(m >= 0.85))
	}
	if errorsSeen > 0 {
		return fmt.Errorf("%d operations failed: the run is void", errorsSeen)
	}
	return nil
}

// waitReplayed waits until every standby has replayed the active's WAL.
func waitReplayed(ctx context.Context, db *store.Store) error {
	deadline := time.Now().Add(time.Minute)
	for {
		var behind int64
		err := db.Pool().QueryRow(ctx, `SELECT coalesce(max(pg_wal_lsn_diff(pg_current_wal_lsn(), replay_lsn)), 0)::bigint
			FROM pg_stat_replication`).Scan(&behind)
		if err != nil || behind == 0 {
			return err
		}
		if time.Now().After(deadline) {
			return fmt.Errorf("the standby is still %d bytes behind after a minute", behind)
		}
		time.Sleep(100 * time.Millisecond)
	}
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

// benchClients registers one client per worker in fresh organizations
// without an auth code (8 clients each, under the registration rate limit).
// With o.unaudited set, it also returns the same clients talking to that
// URL (the server's audit-off listener).
func benchClients(ctx context.Context, db *store.Store, o benchOptions, caFile string) (clients, unaudited []*client.Client, err error) {
	tag := make([]byte, 4)
	rand.Read(tag)
	dir, err := os.MkdirTemp("", "kts-bench-clients-")
	if err != nil {
		return nil, nil, err
	}
	defer os.RemoveAll(dir)
	ctx = audit.WithActor(ctx, audit.Actor{ID: audit.LocalUser(), Source: audit.LocalSource(), Details: map[string]any{"tool": "kts bench"}})
	for w := 0; w < o.workers; w++ {
		orgName := fmt.Sprintf("bench-%x-%d", tag, w/8)
		if w%8 == 0 {
			if _, _, err := db.AddOrganization(ctx, orgName, []string{"bench@example.com"}, ""); err != nil {
				return nil, nil, err
			}
		}
		cdir := filepath.Join(dir, strconv.Itoa(w))
		c, res, err := client.Register(ctx, cdir, client.RegisterOptions{
			ServerURL: o.server, Org: orgName, CAFile: caFile, KeyType: openpgp.Ed25519,
			// Each server of a scratch pair has its own self-signed certificate.
			SkipSSLCheck: o.pair,
		})
		if err != nil {
			return nil, nil, fmt.Errorf("register bench client: %w", err)
		}
		if res.State != string(store.StateActive) {
			return nil, nil, fmt.Errorf("bench client registered as %s, want active", res.State)
		}
		clients = append(clients, c)
		if o.unaudited != "" {
			u, err := clientAt(cdir, o.unaudited)
			if err != nil {
				return nil, nil, err
			}
			unaudited = append(unaudited, u)
		}
	}
	return clients, unaudited, nil
}

// clientAt opens the client state in dir to talk to url instead.
func clientAt(dir, url string) (*client.Client, error) {
	data, err := os.ReadFile(filepath.Join(dir, client.ConfigFile))
	if err != nil {
		return nil, err
	}
	var cfg client.Config
	if err := json.Unmarshal(data, &cfg); err != nil {
		return nil, err
	}
	armored, err := os.ReadFile(filepath.Join(dir, client.KeyFile))
	if err != nil {
		return nil, err
	}
	key, err := openpgp.ReadPrivate(armored)
	if err != nil {
		return nil, err
	}
	cfg.ServerURL, cfg.Servers, cfg.PinnedSPKISHA256 = url, []string{url}, nil
	return client.New(cfg, key)
}

// benchHTTPClient makes a client with its own connection and the same TLS
// settings as like.
func benchHTTPClient(like *http.Client) *http.Client {
	tr := like.Transport.(*http.Transport).Clone()
	return &http.Client{Transport: tr, Timeout: 30 * time.Second}
}

func bareGet(ctx context.Context, c *http.Client, url string, size int) error {
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, url, nil)
	if err != nil {
		return err
	}
	resp, err := c.Do(req)
	if err != nil {
		return err
	}
	defer resp.Body.Close()
	n, err := io.Copy(io.Discard, resp.Body)
	if err == nil && (resp.StatusCode != 200 || int(n) != size) {
		err = fmt.Errorf("bare server answered %d with %d bytes", resp.StatusCode, n)
	}
	return err
}

// rawDB measures PostgreSQL itself with rows shaped like sealed deposits.
type rawDB struct {
	db               *store.Store
	wrapped, sealed  []byte
	prefill, workers int
	round            int
	tag              string
}

func newRawDB(ctx context.Context, db *store.Store, o benchOptions, payload []byte) (*rawDB, error) {
	r := &rawDB{db: db, wrapped: make([]byte, 60), sealed: make([]byte, len(payload)+28), prefill: o.prefill, workers: o.workers}
	rand.Read(r.wrapped)
	rand.Read(r.sealed)
	tag := make([]byte, 4)
	rand.Read(tag)
	r.tag = hex.EncodeToString(tag)
	if _, err := db.Pool().Exec(ctx, `CREATE TABLE IF NOT EXISTS bench_raw (owner text NOT NULL, name text NOT NULL,
		kek_id text NOT NULL, wrapped_key bytea NOT NULL, ciphertext bytea NOT NULL, size integer NOT NULL,
		created_at timestamptz NOT NULL DEFAULT now(), PRIMARY KEY (owner, name))`); err != nil {
		return nil, err
	}
	for w := 0; w < o.workers; w++ {
		for i := 0; i < o.prefill; i++ {
			if err := r.insertRow(ctx, r.owner(w), "p-"+strconv.Itoa(i)); err != nil {
				return nil, err
			}
		}
	}
	return r, nil
}

func (r *rawDB) owner(w int) string { return fmt.Sprintf("%s-%02d", r.tag, w) }

func (r *rawDB) insertRow(ctx context.Context, owner, name string) error {
	return r.insertInto(ctx, r.db, owner, name)
}

func (r *rawDB) insertInto(ctx context.Context, db *store.Store, owner, name string) error {
	_, err := db.Pool().Exec(ctx, `INSERT INTO bench_raw(owner, name, kek_id, wrapped_key, ciphertext, size)
		VALUES ($1, $2, $3, $4, $5, $6)`, owner, name, "file-bench", r.wrapped, r.sealed, len(r.sealed)-28)
	return err
}

func (r *rawDB) insert(ctx context.Context, w, seq int) error {
	return r.insertRow(ctx, r.owner(w), fmt.Sprintf("w-%d-%d", r.round, seq))
}

func (r *rawDB) selectRow(ctx context.Context, w, seq int) error {
	var kek string
	var wrapped, sealed []byte
	return r.db.Pool().QueryRow(ctx, `SELECT kek_id, wrapped_key, ciphertext FROM bench_raw WHERE owner = $1 AND name = $2`,
		r.owner(w), "p-"+strconv.Itoa(seq%r.prefill)).Scan(&kek, &wrapped, &sealed)
}

func (r *rawDB) drop(ctx context.Context) {
	r.db.Pool().Exec(ctx, `DROP TABLE IF EXISTS bench_raw`)
}

func startBareServer(ctx context.Context, dir string, size int) (*process, error) {
	p, err := startChild(ctx, "bench", "bare-server", "--confdir", dir, "--size", strconv.Itoa(size))
	if err != nil {
		return nil, err
	}
	p.url += "/payload"
	return p, nil
}

// newBareServerCommand is the transport anchor: the server's TLS settings
// and a handler that only writes size bytes.
func newBareServerCommand() *cobra.Command {
	var dir string
	var size int
	cmd := &cobra.Command{
		Use:    "bare-server",
		Short:  "Serve a fixed payload with the server's TLS settings (bench anchor)",
		Hidden: true,
		Args:   cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			st, err := confdir.Open(dir)
			if err != nil {
				return err
			}
			log, _ := newLogger(io.Discard, "error")
			tlsCfg, err := daemon.TLSConfig(st, log)
			if err != nil {
				return err
			}
			payload := make([]byte, size)
			ln, err := net.Listen("tcp", "127.0.0.1:0")
			if err != nil {
				return err
			}
			srv := &http.Server{Handler: http.HandlerFunc(func(w http.ResponseWriter, _ *http.Request) {
				w.Header().Set("Content-Type", "application/octet-stream")
				w.Header().Set("Content-Length", strconv.Itoa(len(payload)))
				w.Write(payload)
			}), ReadHeaderTimeout: 10 * time.Second}
			fmt.Printf("listening %s\n", ln.Addr())
			go func() { <-cmd.Context().Done(); srv.Close() }()
			if err := srv.Serve(tls.NewListener(ln, tlsCfg)); !errors.Is(err, http.ErrServerClosed) {
				return err
			}
			return nil
		},
	}
	addConfdirFlag(cmd, &dir)
	cmd.Flags().IntVar(&size, "size", 256, "payload bytes")
	return cmd
}

// scratch is a throwaway PostgreSQL + server, or a pair of them.
type scratch struct {
	confdir, url string // the active's
	unaudited    string // the active's audit-off listener (single server only)
	servers      []*process
	insts        []*pg.Instance
	root         string
}

func (s *scratch) stop() {
	for i := len(s.servers) - 1; i >= 0; i-- {
		s.servers[i].stop()
	}
	for i := len(s.insts) - 1; i >= 0; i-- {
		s.insts[i].Stop(context.Background())
	}
	os.RemoveAll(s.root)
}

// startScratch starts a throwaway server (and with --pair its passive) in
// a temporary directory.
func startScratch(ctx context.Context, out io.Writer, o benchOptions) (_ *scratch, err error) {
	root, err := os.MkdirTemp("", "kts-bench-")
	if err != nil {
		return nil, err
	}
	os.Chmod(root, 0o755)
	s := &scratch{root: root, confdir: filepath.Join(root, "active")}
	defer func() {
		if err != nil {
			s.stop()
		}
	}()
	ports := make([]int, 4)
	for i := range ports {
		if ports[i], err = pg.FreePort(); err != nil {
			return nil, err
		}
	}
	what := "a scratch PostgreSQL and server"
	if o.pair {
		what = "a scratch pair (two PostgreSQL, two servers)"
	}
	fmt.Fprintf(out, "starting %s in %s\n", what, root)
	if _, err := confdir.Init(s.confdir, confdir.InitOptions{Hostname: "localhost", KeyType: openpgp.Ed25519,
		DBPort: ports[1], ListenAddress: "127.0.0.1:" + strconv.Itoa(ports[0])}); err != nil {
		return nil, err
	}
	cfg, err := config.Load(s.confdir)
	if err != nil {
		return nil, err
	}
	dirs := []string{s.confdir}
	if o.pair {
		if err := confdir.PairActive(ctx, os.Stdout, s.confdir, cfg, pg.DefaultRunAs); err != nil {
			return nil, err
		}
		if cfg, err = config.Load(s.confdir); err != nil {
			return nil, err
		}
	} else if err := confdir.InitDB(ctx, os.Stdout, s.confdir, cfg, confdir.Instance(s.confdir, cfg, pg.DefaultRunAs)); err != nil {
		return nil, err
	}
	s.insts = append(s.insts, confdir.Instance(s.confdir, cfg, pg.DefaultRunAs))
	if err := s.insts[0].Start(ctx); err != nil {
		return nil, err
	}
	if o.pair {
		passive := filepath.Join(root, "passive")
		if _, err := confdir.InitFromActive(s.confdir, passive, confdir.PassiveOptions{
			Hostname: "localhost", ListenAddress: "127.0.0.1:" + strconv.Itoa(ports[2]), DBPort: ports[3],
			ActiveURL: "https://127.0.0.1:" + strconv.Itoa(ports[0]), ActiveDB: "127.0.0.1:" + strconv.Itoa(ports[1]),
		}); err != nil {
			return nil, err
		}
		pcfg, err := config.Load(passive)
		if err != nil {
			return nil, err
		}
		inst := confdir.Instance(passive, pcfg, pg.DefaultRunAs)
		if err := confdir.InitPassive(ctx, os.Stdout, passive, pcfg, inst); err != nil {
			return nil, err
		}
		if err := inst.Start(ctx); err != nil {
			return nil, err
		}
		s.insts = append(s.insts, inst)
		dirs = append(dirs, passive)
	}
	for i, dir := range dirs {
		args := []string{"server", "--confdir", dir, "--log-level", "warn", "--announce", "--audit-sync", o.auditSync}
		if o.serverProfile != "" && i == 0 {
			args = append(args, "--cpu-profile", o.serverProfile)
		}
		if !o.pair {
			// What the audit log costs is measured on the same server,
			// through a listener that records nothing.
			args = append(args, "--bench-unaudited-listen", "127.0.0.1:0")
		}
		p, err := startChild(ctx, args...)
		if err != nil {
			return nil, err
		}
		s.servers = append(s.servers, p)
	}
	s.url, s.unaudited = s.servers[0].url, s.servers[0].unaudited
	if o.pair {
		s.url += "," + s.servers[1].url
	}
	return s, nil
}

// settle has PostgreSQL write out and vacuum what the put runs left before
// the fixed-rate window, so that the latency measured there is the get
// path's and not that of flushing the writes before it (which run with
// every put, audit records included, and land on whatever runs next). A
// server that refuses (an account that may not CHECKPOINT) is measured as
// it is, and the run says so.
func settle(ctx context.Context, out io.Writer, db *store.Store) {
	for _, q := range []string{"VACUUM (ANALYZE)", "CHECKPOINT"} {
		if _, err := db.Pool().Exec(ctx, q); err != nil {
			fmt.Fprintf(out, "  (could not run %s before the fixed-rate window: %v)\n", q, err)
		}
	}
}
