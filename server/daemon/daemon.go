// Package daemon runs a deposit server from an opened state directory: it
// connects to PostgreSQL, applies migrations, loads TLS settings and serves
// HTTPS until its context ends, then shuts down gracefully.
package daemon

import (
	"context"
	"crypto/tls"
	"errors"
	"fmt"
	"github.com/jackc/pgx/v5/pgconn"
	"github.com/prometheus/client_golang/prometheus"
	"log/slog"
	"net"
	"net/http"
	"path/filepath"
	"strconv"
	"time"
	"trustee.dev/trustee/server/adminapi"
	"trustee.dev/trustee/server/audit"
	"trustee.dev/trustee/server/auth"
	"trustee.dev/trustee/server/config"

	"trustee.dev/trustee/server/confdir"
	"trustee.dev/trustee/server/deposit"
	"trustee.dev/trustee/server/httpapi"
	"trustee.dev/trustee/server/store"
	"trustee.dev/trustee/server/tlsconf"
)

// dbConns is the database pool size: enough connections that concurrent
// writes share commits (group commit) instead of queueing for a connection.
const dbConns = 32

// Deposit reads and writes are coalesced by batchWorkers workers each, at
// most maxBatch requests a statement (see store.Batcher).
const (
	batchWorkers = 1
	maxBatch     = 64
)

// writeTimeout bounds a write's commit. It backs up the replication check:
// a write admitted just as the passive went away fails after this long
// instead of waiting for the passive to come back.
const writeTimeout = 3 * time.Second

// readCacheBytes bounds the sealed deposits kept in memory (store.Cache).
const readCacheBytes = 64 << 20

// Options tune a run.
type Options struct {
	Log *slog.Logger
	// Ready is called with the address served once the server accepts.
	Ready func(addr string)
	// DBWait bounds how long the server waits at start for its database
	// to accept connections (PostgreSQL still starting, or a standby not
	// yet consistent), trying again with back-off; 0 tries once.
	DBWait time.Duration
	// AuditSync is when a journal record counts as written:
	// audit.SyncWrite (default) or audit.SyncFlush.
	AuditSync string
	// CheckpointEvery is how often the audit chains are signed (default
	// audit.CheckpointEvery).
	CheckpointEvery time.Duration
	// Bench is the benchmark build's audit-off listener (see
	// BenchOptions); kts itself has none.
	Bench BenchOptions
}

// Back-off of the start-up wait for the database. An attempt that gets no
// answer (a host that drops packets) is given up after dbAttemptTimeout.
const (
	firstDBRetry     = 250 * time.Millisecond
	maxDBRetry       = 5 * time.Second
	dbAttemptTimeout = 10 * time.Second
)

// Run serves until ctx is done.
func Run(ctx context.Context, st *confdir.State, o Options) error {
	log := o.Log
	if log == nil {
		log = slog.Default()
	}
	cfg := st.Config
	db, err := openStore(ctx, st, o.DBWait, log)
	if err != nil {
		return err
	}
	defer db.Close()
	tlsCfg, err := TLSConfig(st, log)
	if err != nil {
		return err
	}
	opts := httpapi.Options{
		Store:     db,
		ServerKey: st.ServerKey.Public(),
		Tokens:    st.Tokens,
		Log:       log,
		Collectors: []prometheus.Collector{prometheus.NewGaugeFunc(prometheus.GaugeOpts{
			Name: "kts_role_info", Help: "The server's role in the pair.", ConstLabels: prometheus.Labels{"role": cfg.Role},
		}, func() float64 { return 1 }), audit.Failures, audit.Appended, audit.Signed, certificateExpiry(tlsCfg)},
	}
	batcher := store.NewBatcher(ctx, db, batchWorkers, maxBatch)
	batcher.Timeout = writeTimeout
	deposits := &deposit.Service{Keyring: st.Keyring, MaxBytes: cfg.MaxDepositBytes}
	if cfg.Role == config.RolePassive {
		// The database is a read-only standby: reads are local, writes go
		// to the active, nonces are kept in memory, and there is no read
		// cache (notifications do not reach a standby).
		if opts.Forward, err = forwarder(st, log); err != nil {
			return err
		}
		if err := waitForSchema(ctx, db, log); err != nil {
			return err
		}
		deposits.Store = batcher
		opts.Nonces = auth.NewMemoryNonces()
		opts.Health = passiveHealth(db, cfg.ActiveURL)
	} else {
		if err := waitForStandbyToMigrate(ctx, db, cfg.StandbyName, o.DBWait, log); err != nil {
			return err
		}
		if err := db.Migrate(ctx); err != nil {
			return err
		}
		// Nonces need no confirmation from the passive: a signed read must
		// not wait for it.
		nonces, err := store.Open(ctx, st.DSN()+"&synchronous_commit=local", 4)
		if err != nil {
			return err
		}
		defer nonces.Close()
		mon := newReplicationMonitor(db, cfg.StandbyName, log)
		mon.poll(ctx) // known before the first request
		go mon.run(ctx)
		opts.Nonces, opts.WriteGate, opts.Health = nonces, mon.WriteGate, mon.health
		opts.Collectors = append(opts.Collectors, mon.collectors()...)
		deposits.Store = store.NewCache(ctx, db, batcher, readCacheBytes, log)
		go nonces.PruneNoncesEvery(ctx, time.Minute, log)
		m, err := newMailer(db, st, log)
		if err != nil {
			return err
		}
		if m != nil {
			go m.run(ctx)
			opts.Collectors = append(opts.Collectors, m.collectors()...)
		}
	}
	if err := followCurrentKEK(ctx, db, st, log); err != nil {
		return err
	}
	// The database chain is signed by the active, whose database takes
	// writes; each server signs its own journal.
	signed := db
	if cfg.Role == config.RolePassive {
		signed = nil
	}
	auditing, err := startAuditing(ctx, st, signed, o, log)
	if err != nil {
		return err
	}
	defer func() {
		if err := auditing.stop(); err != nil {
			log.Error("audit journal: closing", "err", err)
		}
	}()
	opts.Journal = auditing.journal
	if st.HSM != nil {
		opts.Health = hsmHealth(st, opts.Health)
	}
	opts.Deposits = deposits
	api := httpapi.New(opts)
	srv := &http.Server{
		Handler:           api.Handler(),
		TLSConfig:         tlsCfg,
		ReadHeaderTimeout: 10 * time.Second,
		ReadTimeout:       60 * time.Second,
		WriteTimeout:      60 * time.Second,
		IdleTimeout:       2 * time.Minute,
		MaxHeaderBytes:    64 << 10,
		ErrorLog:          slog.NewLogLogger(log.Handler(), slog.LevelWarn),
		ConnContext:       httpapi.ConnContext,
	}
	// The admin API, when on, has a listener of its own that admits only
	// admin client certificates; the client API's port never serves it.
	var admin *http.Server
	var adminLn net.Listener
	if cfg.AdminListenAddress != "" {
		adminTLS, err := AdminTLSConfig(tlsCfg, cfg.Path(st.Dir, cfg.AdminCAFile), log)
		if err != nil {
			return err
		}
		admin = newAdminServer(adminapi.New(adminapi.Options{
			Store:     db,
			LinkBase:  cfg.LinkBase(),
			Log:       log,
			ReadOnly:  cfg.Role == config.RolePassive,
			WriteGate: opts.WriteGate,
			Journal:   auditing.journal,
		}), adminTLS, log)
		if adminLn, err = listenAdmin(cfg.AdminListenAddress); err != nil {
			return err
		}
		defer adminLn.Close()
	}
	ln, err := net.Listen("tcp", cfg.ListenAddress)
	if err != nil {
		return fmt.Errorf("listen on %s (LISTEN_ADDRESS): %w", cfg.ListenAddress, err)
	}
	// HKP (plain HTTP, public keys only) and HTTPS share the port.
	plain := &http.Server{
		Handler:           api.PublicHandler(),
		ReadHeaderTimeout: 10 * time.Second,
		ReadTimeout:       30 * time.Second,
		WriteTimeout:      30 * time.Second,
		IdleTimeout:       time.Minute,
		MaxHeaderBytes:    16 << 10,
		ErrorLog:          srv.ErrorLog,
		ConnContext:       httpapi.ConnContext,
	}
	sides := split(ln)
	errc := make(chan error, 4)
	// Both answer requests net/http cannot parse with the API's JSON errors.
	go func() {
		errc <- srv.Serve(httpapi.JSONErrorListener(tls.NewListener(sides.tls, tlsCfg), srv.MaxHeaderBytes))
	}()
	go func() { errc <- plain.Serve(httpapi.JSONErrorListener(sides.plain, plain.MaxHeaderBytes)) }()
	if admin != nil {
		go func() { errc <- serveAdmin(admin, adminLn) }()
		log.Info("serving the admin API (mutual TLS)", "addr", adminLn.Addr().String())
	}
	bench, closeBench, err := serveUnaudited(ctx, o.Bench, unauditedServer{journal: auditing.journal,
		api: api.Handler(), srv: srv, plain: plain, tlsCfg: tlsCfg, errc: errc, log: log})
	if err != nil {
		return err
	}
	defer closeBench()
	log.Info("serving", "addr", ln.Addr().String(), "role", cfg.Role, "fingerprint", st.ServerKey.Public().ID())
	if o.Ready != nil {
		o.Ready(ln.Addr().String())
	}
	select {
	case err := <-errc:
		return err
	case <-ctx.Done():
	}
	shutdownCtx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	ln.Close()
	err = errors.Join(srv.Shutdown(shutdownCtx), plain.Shutdown(shutdownCtx))
	if admin != nil {
		err = errors.Join(err, admin.Shutdown(shutdownCtx))
	}
	if bench != nil {
		err = errors.Join(err, bench.Shutdown(shutdownCtx))
	}
	if err != nil && !errors.Is(err, http.ErrServerClosed) {
		return err
	}
	log.Info("stopped")
	return nil
}

// openStore connects to the server's database, waiting up to wait for it
// to accept connections. A passive's connections pass its standbyGate, and
// a passive waits for its standby to catch up.
func openStore(ctx context.Context, st *confdir.State, wait time.Duration, log *slog.Logger) (*store.Store, error) {
	open := func(ctx context.Context) (*store.Store, error) { return store.Open(ctx, st.DSN(), dbConns) }
	if st.Config.Role == config.RolePassive {
		gate := newStandbyGate(filepath.Join(st.Dir, StandbyGateFile))
		open = func(ctx context.Context) (*store.Store, error) {
			return store.OpenChecked(ctx, st.DSN(), dbConns, gate.check)
		}
	}
	addr := net.JoinHostPort(st.Config.DBHost, strconv.Itoa(st.Config.DBPort))
	deadline := time.Now().Add(wait)
	delay := firstDBRetry
	catchingUp := false
	for attempt := 1; ; attempt++ {
		actx, cancel := context.WithTimeout(ctx, dbAttemptTimeout)
		db, err := open(actx)
		timedOut := err != nil && actx.Err() != nil
		cancel()
		switch {
		case err == nil:
			return db, nil
		case ctx.Err() != nil:
			return nil, fmt.Errorf("stopped waiting for PostgreSQL at %s: %w", addr, ctx.Err())
		case errors.Is(err, errStandbyCatchingUp):
			// The database answers; the standby replays for as long as
			// it takes.
			if !catchingUp {
				log.Info("waiting for the standby to catch up with the active")
				catchingUp = true
			}
			if err := sleep(ctx, 500*time.Millisecond); err != nil {
				return nil, fmt.Errorf("stopped waiting for the standby to catch up: %w", err)
			}
			continue
		case !timedOut && !store.ConnectionLost(err):
			return nil, err // such as a wrong password: waiting does not help
		case wait <= 0:
			return nil, err
		case !time.Now().Before(deadline):
			return nil, fmt.Errorf("PostgreSQL at %s did not accept connections within %v (--db-wait; %d attempts): %w", addr, wait, attempt, err)
		}
		next := min(delay, time.Until(deadline))
		log.Info("waiting for the database to accept connections", "db", addr, "attempt", attempt,
			"reason", waitReason(err, timedOut), "next_attempt_in", next.Round(time.Millisecond).String(),
			"gives_up_in", time.Until(deadline).Round(time.Second).String())
		if err := sleep(ctx, next); err != nil {
			return nil, fmt.Errorf("stopped waiting for PostgreSQL at %s: %w", addr, err)
		}
		delay = min(2*delay, maxDBRetry)
	}
}

// waitReason says in a few words why the database did not take a
// connection: PostgreSQL's own message (such as "the database system is
// starting up"), or the network's (such as "connection refused").
func waitReason(err error, timedOut bool) string {
	var pe *pgconn.PgError
	var oe *net.OpError
	switch {
	case timedOut:
		return fmt.Sprintf("no answer within %v", dbAttemptTimeout)
	case errors.As(err, &pe):
		return pe.Message
	case errors.As(err, &oe) && oe.Err != nil:
		return oe.Err.Error()
	}
	return err.Error()
}

// sleep waits for d, or until ctx is done.
func sleep(ctx context.Context, d time.Duration) error {
	t := time.NewTimer(d)
	defer t.Stop()
	select {
	case <-ctx.Done():
		return ctx.Err()
	case <-t.C:
		return nil
	}
}

// waitForSchema waits until the standby has replayed the schema the active
// created, so that a passive started first serves as soon as it can.
func waitForSchema(ctx context.Context, db *store.Store, log *slog.Logger) error {
	for i := 0; ; i++ {
		if v, err := db.SchemaVersion(ctx); err == nil && v > 0 {
			return nil
		}
		if i == 0 {
			log.Info("waiting for the schema to replicate from the active")
		}
		select {
		case <-ctx.Done():
			return ctx.Err()
		case <-time.After(500 * time.Millisecond):
		}
	}
}

// certificateExpiry exports when the certificate the server serves
// expires: the one cfg's GetCertificate hands to a client now, which
// follows a certificate replaced on disk.
func certificateExpiry(cfg *tls.Config) prometheus.Collector {
	return prometheus.NewGaugeFunc(prometheus.GaugeOpts{
		Name: "kts_tls_certificate_expiry_timestamp_seconds",
		Help: "When the TLS certificate this server serves expires (its NotAfter, Unix time).",
	}, func() float64 {
		if cfg.GetCertificate == nil {
			return 0
		}
		cert, err := cfg.GetCertificate(&tls.ClientHelloInfo{})
		if err != nil || cert == nil || cert.Leaf == nil {
			return 0
		}
		return float64(cert.Leaf.NotAfter.Unix())
	})
}

// TLSConfig builds the server TLS settings from the state directory's
// configuration; warnings are logged.
func TLSConfig(st *confdir.State, log *slog.Logger) (*tls.Config, error) {
	cfg := st.Config
	chain := ""
	if cfg.SSLCertificateChain != "" {
		chain = cfg.Path(st.Dir, cfg.SSLCertificateChain)
	}
	certs, err := tlsconf.NewCertSource(cfg.Path(st.Dir, cfg.SSLCertificate), chain,
		cfg.Path(st.Dir, cfg.SSLPrivateKey), cfg.SSLPrivateKeyPasswordScript, log)
	if err != nil {
		return nil, err
	}
	tlsCfg, warnings, err := tlsconf.ServerConfig(cfg.TLSMinVersion, cfg.SSLCipherList, certs)
	if err != nil {
		return nil, err
	}
	for _, w := range warnings {
		log.Warn(w)
	}
	tlsCfg.NextProtos = []string{"http/1.1"}
	return tlsCfg, nil
}
