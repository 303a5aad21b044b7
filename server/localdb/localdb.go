// Package localdb opens the database of a state directory for the tools
// that run beside the server (kts org, kts keyhsm, kts backup): to change
// it, and to record what they do in its audit chain.
package localdb

import (
	"context"
	"errors"
	"fmt"
	"net"
	"strconv"
	"strings"
	"time"

	"trustee.dev/trustee/server/audit"
	"trustee.dev/trustee/server/confdir"
	"trustee.dev/trustee/server/config"
	"trustee.dev/trustee/server/orgadmin"
	"trustee.dev/trustee/server/store"
)

// Open connects to the database of the state directory dir and brings its
// schema up to date. A passive's database is a read-only standby: its
// schema is the active's, and changes are refused (orgadmin.OnPassive says
// where to make them).
func Open(ctx context.Context, dir string) (*store.Store, error) {
	db, _, err := open(ctx, dir)
	return db, err
}

// open is Open, also returning the state directory's configuration.
func open(ctx context.Context, dir string) (*store.Store, config.Config, error) {
	cfg, pw, err := load(dir)
	if err != nil {
		return nil, cfg, err
	}
	db, err := store.Open(ctx, confdir.Instance(dir, cfg, "").ConnString(cfg.DBName, pw), 2)
	if err != nil {
		return nil, cfg, err
	}
	standby, err := db.InRecovery(ctx)
	if err == nil && !standby {
		err = db.Migrate(ctx)
	}
	if err != nil {
		db.Close()
		return nil, cfg, err
	}
	return db, cfg, nil
}

func load(dir string) (config.Config, string, error) {
	cfg, err := config.Load(dir)
	if err != nil {
		return cfg, "", fmt.Errorf("%w (is --confdir the server's state directory?)", err)
	}
	pw, err := confdir.ReadDBPassword(dir, cfg)
	return cfg, pw, err
}

// Recorder records a local tool's own operations (a backup, an HSM
// operation) in the database chain.
type Recorder struct {
	db *store.Store
}

// OpenRecorder connects to the database that records the operations of a
// tool run on the state directory dir: its own, or when that is a standby
// (a passive's), the active's (ACTIVE_DB), with the same account. The
// audit log fails closed: a tool that cannot record what it is about to do
// does not do it.
func OpenRecorder(ctx context.Context, dir string) (*Recorder, error) {
	cfg, pw, err := load(dir)
	if err != nil {
		return nil, err
	}
	fail := func(where string, err error) (*Recorder, error) {
		if strings.Contains(err.Error(), "x509: ") || strings.Contains(err.Error(), "tls: failed to verify") {
			// As libpq words it, for pg_dump and the replication say the same.
			err = fmt.Errorf("certificate verify failed: the PostgreSQL's certificate does not verify against %s (DB_CA_FILE, or ACTIVE_CA): %w", cfg.DBCA(), err)
		}
		return nil, audit.Unavailable(fmt.Errorf("connect to %s to record this operation: %w", where, err))
	}
	db, err := store.Open(ctx, confdir.Instance(dir, cfg, "").ConnString(cfg.DBName, pw), 2)
	if err != nil {
		return fail("the database", err)
	}
	standby, err := db.InRecovery(ctx)
	if err != nil {
		db.Close()
		return fail("the database", err)
	}
	if !standby {
		if err := db.Migrate(ctx); err != nil { // the audit chain comes with the schema
			db.Close()
			return fail("the database", err)
		}
		return &Recorder{db: db}, nil
	}
	db.Close()
	if cfg.ActiveDB == "" {
		return fail("the database", errors.New("it is a standby, and ACTIVE_DB names no active to record in"))
	}
	host, port, err := net.SplitHostPort(cfg.ActiveDB)
	if err != nil {
		return fail("ACTIVE_DB", err)
	}
	active := cfg
	active.DBHost = host
	if active.DBPort, err = strconv.Atoi(port); err != nil {
		return fail("ACTIVE_DB", err)
	}
	where := "the active's database (ACTIVE_DB " + cfg.ActiveDB + ")"
	if db, err = store.Open(ctx, confdir.Instance(dir, active, "").ConnString(cfg.DBName, pw), 2); err != nil {
		return fail(where, err)
	}
	if err := db.Migrate(ctx); err != nil {
		db.Close()
		return fail(where, err)
	}
	return &Recorder{db: db}, nil
}

// Record appends an event by the actor of ctx.
func (r *Recorder) Record(ctx context.Context, action, object, outcome string, details map[string]any) error {
	return r.db.RecordChange(ctx, audit.Change(ctx, action, object, outcome, details))
}

// Close closes the connection.
func (r *Recorder) Close() { r.db.Close() }

// Outcome is the outcome of an operation that ended with err, and the
// details that say why it failed.
func Outcome(err error) (string, map[string]any) {
	if err == nil {
		return audit.OutcomeOK, nil
	}
	msg := err.Error()
	if len(msg) > 512 {
		msg = msg[:512]
	}
	return audit.OutcomeFailed, map[string]any{"error": msg}
}

// JoinDetails merges detail maps, later ones winning.
func JoinDetails(ds ...map[string]any) map[string]any {
	out := map[string]any{}
	for _, d := range ds {
		for k, v := range d {
			out[k] = v
		}
	}
	return out
}

// ChangeTimeout bounds an administration command: in a pair a change
// commits only once the passive confirms it.
const ChangeTimeout = 30 * time.Second

// Change opens the database of the state directory dir and runs change on
// it, with the directory's configuration, within ChangeTimeout. On a
// passive, the error says where to make the change instead; when the
// database did not confirm in time, it says the change may or may not have
// been applied.
func Change(ctx context.Context, dir string, change func(context.Context, *store.Store, config.Config) error) error {
	ctx, cancel := context.WithTimeout(ctx, ChangeTimeout)
	defer cancel()
	db, cfg, err := open(ctx, dir)
	if err != nil {
		return err
	}
	defer db.Close()
	err = orgadmin.OnPassive(change(ctx, db, cfg), cfg.ActiveURL, cfg.ActiveDB)
	if errors.Is(err, context.DeadlineExceeded) {
		return fmt.Errorf("the database did not confirm within %v; if this server is the active of a pair, is the passive running? The change may or may not have been applied: check with list", ChangeTimeout)
	}
	return err
}
