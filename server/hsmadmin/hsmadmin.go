// Package hsmadmin is kts keyhsm on a server's state directory: it opens
// the configuration, the token and the database, runs hsmkeys' init,
// check, migrate or rotate, and records each in the audit log, failing
// closed.
package hsmadmin

import (
	"context"
	"errors"
	"fmt"
	"io"
	"time"

	"trustee.dev/trustee/server/audit"
	"trustee.dev/trustee/server/confdir"
	"trustee.dev/trustee/server/config"
	"trustee.dev/trustee/server/daemon"
	"trustee.dev/trustee/server/hsmkeys"
	"trustee.dev/trustee/server/localdb"
	"trustee.dev/trustee/server/orgadmin"
	"trustee.dev/trustee/server/store"
)

// InitOptions are what kts keyhsm init is given.
type InitOptions struct {
	// Module and Token name the PKCS#11 library and the token.
	Module, Token string
	// PINFile, PINEnv and PINScript are where the token's PIN comes from.
	PINFile, PINEnv, PINScript string
	// KeyLabel is the deposit key's label, adopted when the token has it.
	KeyLabel string
	// StateKey, when set, is the label of the key that seals the state
	// directory's secrets.
	StateKey string
}

// initConfig is the configuration kts keyhsm init sets up from the state
// directory dir's configuration cfg. A state directory uses one HSM.
func initConfig(dir string, cfg config.Config, o InitOptions) (config.Config, error) {
	if cfg.HasHSM() && (cfg.HSMModule != o.Module || cfg.HSMTokenLabel != o.Token) {
		return cfg, fmt.Errorf("%s already keeps its keys in the HSM %s; a state directory uses one HSM", dir, hsmkeys.Describe(cfg))
	}
	cfg.HSMModule, cfg.HSMTokenLabel, cfg.HSMPINFile, cfg.HSMPINEnv, cfg.HSMPINScript = o.Module, o.Token, o.PINFile, o.PINEnv, o.PINScript
	if o.StateKey != "" {
		cfg.HSMStateKey = o.StateKey
	}
	return cfg, cfg.Validate()
}

// Init is kts keyhsm init on the state directory dir, recorded in the
// audit log.
func Init(ctx context.Context, out io.Writer, dir string, o InitOptions) error {
	cfg, err := config.Load(dir)
	if err != nil {
		return err
	}
	if cfg, err = initConfig(dir, cfg, o); err != nil {
		return err
	}
	if err := confdir.CheckTrusted(dir, cfg); err != nil { // before the PIN script runs
		return err
	}
	return recorded(ctx, dir, audit.ActionHSMInit, cfg, map[string]any{"key_label": o.KeyLabel, "seal_state": cfg.HSMSealState}, func() error {
		return InitKeys(ctx, out, dir, cfg, o.KeyLabel)
	})
}

// InitKeys does kts keyhsm init for a validated configuration, without
// recording it.
func InitKeys(ctx context.Context, out io.Writer, dir string, cfg config.Config, keyLabel string) error {
	tok, err := hsmkeys.OpenToken(dir, cfg)
	if err != nil {
		return fmt.Errorf("the HSM %s: %w", hsmkeys.Describe(cfg), err)
	}
	defer tok.Close()
	var db *store.Store
	if cfg.Role != config.RolePassive {
		if db, err = localdb.Open(ctx, dir); err != nil {
			return err
		}
		defer db.Close()
	}
	return hsmkeys.Init(ctx, out, dir, cfg, tok, db, keyLabel)
}

// Check is kts keyhsm check on the state directory dir, recorded in the
// audit log.
func Check(ctx context.Context, out io.Writer, dir string) error {
	cfg, err := config.Load(dir)
	if err != nil {
		return err
	}
	return recorded(ctx, dir, audit.ActionHSMCheck, cfg, nil, func() error {
		st, err := openWithHSM(dir)
		if err != nil {
			return err
		}
		defer st.Close()
		c := hsmkeys.Checkup{Dir: dir, Config: st.Config, Token: st.HSM, Out: out}
		if st.Config.Role != config.RolePassive {
			c.KEKs = func(ctx context.Context) ([]store.KEK, error) {
				db, err := localdb.Open(ctx, dir)
				if err != nil {
					return nil, err
				}
				defer db.Close()
				return db.KEKs(ctx)
			}
		}
		return c.Run(ctx)
	})
}

// Migrate is kts keyhsm migrate on the state directory dir, recorded in
// the audit log.
func Migrate(ctx context.Context, out io.Writer, dir string) error {
	return withStore(ctx, dir, audit.ActionHSMMigrate, func(st *confdir.State, db *store.Store) error {
		return hsmkeys.Migrate(ctx, db, st.Keyring, out)
	})
}

// Rotate is kts keyhsm rotate on the state directory dir, recorded in the
// audit log.
func Rotate(ctx context.Context, out io.Writer, dir string) error {
	return withStore(ctx, dir, audit.ActionHSMRotate, func(st *confdir.State, db *store.Store) error {
		return hsmkeys.Rotation{DB: db, Token: st.HSM, Keyring: st.Keyring, Wait: 2*daemon.KEKPoll + time.Second, Out: out}.Rotate(ctx)
	})
}

// openWithHSM opens the state directory dir and its HSM; it refuses one
// that keeps no keys in an HSM.
func openWithHSM(dir string) (*confdir.State, error) {
	st, err := confdir.Open(dir)
	if err != nil {
		return nil, err
	}
	if st.HSM == nil {
		st.Close()
		return nil, fmt.Errorf("%s keeps no keys in an HSM; set one up with `kts keyhsm init`", dir)
	}
	return st, nil
}

// withStore opens the state directory (and its HSM) and the database of
// an active for a keyhsm command, and records the command's outcome as
// action.
func withStore(ctx context.Context, dir, action string, run func(*confdir.State, *store.Store) error) error {
	st, err := openWithHSM(dir)
	if err != nil {
		return err
	}
	defer st.Close()
	if st.Config.Role == config.RolePassive {
		return orgadmin.Passive(st.Config.ActiveURL, st.Config.ActiveDB)
	}
	return recorded(ctx, dir, action, st.Config, nil, func() error {
		db, err := localdb.Open(ctx, dir)
		if err != nil {
			return err
		}
		defer db.Close()
		return run(st, db)
	})
}

// recorded runs an HSM operation and records its outcome in the audit
// log. It does nothing when the log cannot be reached (fail closed).
func recorded(ctx context.Context, dir, action string, cfg config.Config, details map[string]any, run func() error) error {
	log, err := localdb.OpenRecorder(ctx, dir)
	if err != nil {
		return fmt.Errorf("nothing was done: %w", err)
	}
	defer log.Close()
	err = run()
	outcome, more := localdb.Outcome(err)
	details = localdb.JoinDetails(map[string]any{"module": cfg.HSMModule, "token": cfg.HSMTokenLabel}, details, more)
	if rerr := log.Record(context.WithoutCancel(ctx), action, "hsm:"+cfg.HSMTokenLabel, outcome, details); rerr != nil {
		if err == nil {
			return fmt.Errorf("done, but recording it in the audit log failed: %w", rerr)
		}
		return errors.Join(err, rerr)
	}
	return err
}
