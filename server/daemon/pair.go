package daemon

import (
	"context"
	"crypto/tls"
	"crypto/x509"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"net/http"
	"net/http/httputil"
	"net/url"
	"os"
	"strings"
	"sync"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/prometheus/client_golang/prometheus"

	"trustee.dev/trustee/server/confdir"
	"trustee.dev/trustee/server/member/contract"
	"trustee.dev/trustee/server/store"
)

// replicationMonitor watches, on the active, whether PostgreSQL can confirm
// a commit: when synchronous_standby_names is set, a commit waits for the
// passive, so a write is accepted only while the passive is attached and
// synchronous. The state is polled every pollEvery and trusted for
// staleAfter.
type replicationMonitor struct {
	db      *store.Store
	standby string
	log     *slog.Logger

	mu    sync.Mutex
	state contract.Replication

	writable prometheus.Gauge
	lag      prometheus.Gauge
	// inSync is nil for a single server (no STANDBY_NAME): there is no
	// pair to be in sync.
	inSync prometheus.Gauge
}

const (
	pollEvery  = 500 * time.Millisecond
	staleAfter = 3 * time.Second
)

func newReplicationMonitor(db *store.Store, standby string, log *slog.Logger) *replicationMonitor {
	m := &replicationMonitor{db: db, standby: standby, log: log,
		writable: prometheus.NewGauge(prometheus.GaugeOpts{Name: "kts_writable", Help: "1 when this server accepts writes."}),
		lag:      prometheus.NewGauge(prometheus.GaugeOpts{Name: "kts_replication_lag_bytes", Help: "WAL bytes the passive has yet to replay."}),
	}
	if standby != "" {
		m.inSync = prometheus.NewGauge(prometheus.GaugeOpts{Name: "kts_replication_in_sync",
			Help: "1 when the passive streams to this active as its synchronous standby (every commit waits for it), 0 when it is away, catching up or not known."})
	}
	return m
}

// collectors are the monitor's metrics.
func (m *replicationMonitor) collectors() []prometheus.Collector {
	c := []prometheus.Collector{m.writable, m.lag}
	if m.inSync != nil {
		c = append(c, m.inSync)
	}
	return c
}

func (m *replicationMonitor) run(ctx context.Context) {
	t := time.NewTicker(pollEvery)
	defer t.Stop()
	for {
		m.poll(ctx)
		select {
		case <-ctx.Done():
			return
		case <-t.C:
		}
	}
}

func (m *replicationMonitor) poll(ctx context.Context) {
	ctx, cancel := context.WithTimeout(ctx, time.Second)
	defer cancel()
	rep, err := m.db.StandbyReplication(ctx, m.standby)
	st := contract.Replication{Paired: rep.Paired, Attached: rep.Attached, SyncState: rep.SyncState, LagBytes: rep.LagBytes, CheckedAt: time.Now()}
	if err != nil {
		st.Err = err.Error()
	}
	m.observe(st)
}

// observe records a poll's result: the state WriteGate and health read,
// and the metrics.
func (m *replicationMonitor) observe(st contract.Replication) {
	m.mu.Lock()
	prev := m.state
	m.state = st
	m.mu.Unlock()
	if writable := m.check(st) == nil; writable != (m.check(prev) == nil) || prev.CheckedAt.IsZero() {
		m.log.Info("write availability changed", "writable", writable, "passive_attached", st.Attached, "sync_state", st.SyncState)
	}
	m.writable.Set(boolGauge(m.check(st) == nil))
	m.lag.Set(float64(st.LagBytes))
	if m.inSync != nil {
		m.inSync.Set(boolGauge(st.Err == "" && contract.InSync(st.Attached, st.SyncState)))
	}
}

// WriteGate refuses writes the pair cannot confirm.
func (m *replicationMonitor) WriteGate() error {
	m.mu.Lock()
	st := m.state
	m.mu.Unlock()
	return m.check(st)
}

func (m *replicationMonitor) check(st contract.Replication) error {
	switch {
	case st.CheckedAt.IsZero() || time.Since(st.CheckedAt) > staleAfter:
		return errors.New("the replication state is not known yet")
	case st.Err != "":
		return errors.New("the database does not answer")
	case !st.Paired:
		return nil // a single server: commits do not wait for a standby
	case !st.Attached:
		return errors.New("the passive server's database is not connected")
	case !contract.InSync(st.Attached, st.SyncState):
		return fmt.Errorf("the passive is catching up (%s)", st.SyncState)
	}
	return nil
}

func (m *replicationMonitor) health(context.Context) (any, error) {
	m.mu.Lock()
	st := m.state
	m.mu.Unlock()
	writable := m.check(st)
	out := contract.Readyz{Status: "ready", Role: "active", Writable: writable == nil, Replication: st}
	if writable != nil {
		out.WriteRefusal = writable.Error()
	}
	return out, nil
}

func boolGauge(b bool) float64 {
	if b {
		return 1
	}
	return 0
}

// forwarder sends a passive's writes to the active, verifying the active's
// certificate with ACTIVE_CA. The request travels unchanged: its signature
// or session token is checked by the active.
func forwarder(st *confdir.State, log *slog.Logger) (http.Handler, error) {
	cfg := st.Config
	target, err := url.Parse(cfg.ActiveURL)
	if err != nil {
		return nil, err
	}
	pem, err := os.ReadFile(cfg.Path(st.Dir, cfg.ActiveCA))
	if err != nil {
		return nil, fmt.Errorf("ACTIVE_CA: %w", err)
	}
	roots := x509.NewCertPool()
	if !roots.AppendCertsFromPEM(pem) {
		return nil, fmt.Errorf("ACTIVE_CA %s holds no PEM certificate", cfg.ActiveCA)
	}
	tr := http.DefaultTransport.(*http.Transport).Clone()
	tr.TLSClientConfig = &tls.Config{RootCAs: roots, MinVersion: tls.VersionTLS12}
	tr.ForceAttemptHTTP2 = false
	tr.MaxIdleConnsPerHost = 64
	proxy := &httputil.ReverseProxy{
		Rewrite: func(r *httputil.ProxyRequest) {
			r.SetURL(target)
			r.SetXForwarded()
		},
		Transport: tr,
		ErrorLog:  slog.NewLogLogger(log.Handler(), slog.LevelWarn),
		ErrorHandler: func(w http.ResponseWriter, r *http.Request, err error) {
			log.Warn("forward write to the active failed", "route", r.Pattern, "err", err)
			w.Header().Set("Content-Type", "application/json")
			if !neverSent(err) {
				// The active may have carried it out before it stopped
				// answering: the client must not take it as refused.
				w.WriteHeader(http.StatusBadGateway)
				fmt.Fprintln(w, `{"error": "forward_failed", "message": "the active stopped answering while it handled this write: its outcome is unknown; read it back before retrying"}`)
				return
			}
			w.Header().Set("Retry-After", "5")
			w.WriteHeader(http.StatusServiceUnavailable)
			fmt.Fprintln(w, `{"error": "active_unavailable", "message": "this passive server forwards writes to the active, which does not answer; nothing was stored; reads still work, retry the write later"}`)
		},
	}
	return proxy, nil
}

// neverSent reports whether a forwarded request failed before any of it
// reached the active: the connection could not be made.
func neverSent(err error) bool {
	var op *net.OpError
	return errors.As(err, &op) && op.Op == "dial"
}

// passiveHealth reports the standby's replay position.
func passiveHealth(db *store.Store, activeURL string) func(context.Context) (any, error) {
	return func(ctx context.Context) (any, error) {
		st, err := db.Standby(ctx)
		if err != nil {
			return nil, err
		}
		if !st.InRecovery {
			return nil, errors.New("this passive's database is not a standby; re-seed it from the active")
		}
		out := contract.PassiveReadyz{Status: "ready", Role: "passive", ActiveURL: activeURL, InRecovery: st.InRecovery,
			WALReceiver: st.WALReceiver, SecondsSinceLastReplayedCommit: st.SecondsSinceReplay}
		return out, nil
	}
}

// StandbyGateFile, in a passive's state directory, names the standby's
// postmaster known to have caught up (see standbyGate). It describes the
// running database, not state to back up.
const StandbyGateFile = "standby-caught-up"

// standbyGate keeps a passive from reading a standby that restarted and has
// not replayed all the WAL it had already confirmed: after a crash the
// standby accepts connections from its last restartpoint on, before it is
// back where it was. A connection is used only if its postmaster is one that
// was seen streaming from the active (the WAL receiver starts only once the
// local WAL has been replayed). The postmaster's start time that passed is
// kept in a file, so a restarted passive server can read while the active's
// database is away.
type standbyGate struct {
	file string
	mu   sync.Mutex
	ok   string // start time of the postmaster known to have caught up
}

func newStandbyGate(file string) *standbyGate {
	ok, _ := os.ReadFile(file)
	return &standbyGate{file: file, ok: strings.TrimSpace(string(ok))}
}

// check is run on every new connection to the passive's database.
func (g *standbyGate) check(ctx context.Context, conn *pgx.Conn) error {
	started, receiver, err := store.PostmasterStatus(ctx, conn)
	if err != nil {
		return err
	}
	g.mu.Lock()
	defer g.mu.Unlock()
	if started == g.ok {
		return nil
	}
	if receiver == nil || *receiver != "streaming" {
		return errStandbyCatchingUp
	}
	g.ok = started
	if err := os.WriteFile(g.file, []byte(started+"\n"), 0o600); err != nil {
		return err
	}
	return nil
}

var errStandbyCatchingUp = fmt.Errorf("%w: the passive's database restarted and is still replaying to where it was; reads wait until it streams from the active again", store.ErrNotReady)
