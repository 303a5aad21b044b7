package daemon

import (
	"context"
	"fmt"
	"log/slog"
	"sync"
	"time"

	"trustee.dev/trustee/server/confdir"
	"trustee.dev/trustee/server/hsmkeys"
	"trustee.dev/trustee/server/store"
)

// kekPoll is how often a server reads which key-encryption key is current:
// `kts keyhsm rotate` changes it while the servers run, and waits longer
// than this before its last pass.
const kekPoll = 2 * time.Second

// KEKPoll is kekPoll, for the rotation's wait.
const KEKPoll = kekPoll

// followCurrentKEK makes the keyring wrap with the key the database names
// current, now and whenever that changes.
func followCurrentKEK(ctx context.Context, db *store.Store, st *confdir.State, log *slog.Logger) error {
	apply := func() error {
		id, err := db.CurrentKEK(ctx)
		if err != nil {
			return err
		}
		if id == "" || id == st.Keyring.CurrentKeyID() {
			return nil
		}
		if err := st.Keyring.Prepare(id); err != nil {
			return err
		}
		if err := st.Keyring.SetCurrent(id); err != nil {
			return err
		}
		log.Info("key-encryption key changed", "current", id)
		return nil
	}
	keks, err := db.UsableKEKs(ctx)
	if err != nil {
		return err
	}
	for _, id := range keks {
		if err := st.Keyring.Prepare(id); err != nil {
			return fmt.Errorf("key-encryption key %s: %w", id, err)
		}
	}
	if err := apply(); err != nil {
		return fmt.Errorf("current key-encryption key: %w", err)
	}
	go func() {
		t := time.NewTicker(kekPoll)
		defer t.Stop()
		for {
			select {
			case <-ctx.Done():
				return
			case <-t.C:
				if err := apply(); err != nil && ctx.Err() == nil {
					log.Warn("reading the current key-encryption key", "err", err)
				}
			}
		}
	}()
	return nil
}

// hsmHealth makes /readyz fail while the HSM does not answer a wrap and
// unwrap of a test value with its state key or, when the HSM seals nothing
// (HSM_SEAL_STATE false), with the key that wraps new deposits (none while
// the file keyring's does); the result is kept for a second so that probes
// do not load the token.
func hsmHealth(st *confdir.State, next func(context.Context) (any, error)) func(context.Context) (any, error) {
	kr := hsmkeys.NewKeyring(st.HSM, hsmkeys.Describe(st.Config))
	probe := func() string {
		if st.Config.HSMSealState {
			return hsmkeys.ID(st.Config.HSMStateKey)
		}
		id := st.Keyring.CurrentKeyID()
		if _, inHSM := hsmkeys.Label(id); inHSM {
			return id
		}
		return ""
	}
	var mu sync.Mutex
	var checked time.Time
	var last error
	return func(ctx context.Context) (any, error) {
		mu.Lock()
		if time.Since(checked) > time.Second {
			last = nil
			if id := probe(); id != "" {
				last = kr.Check(ctx, id)
			}
			checked = time.Now()
		}
		err := last
		mu.Unlock()
		if err != nil {
			return nil, err
		}
		return next(ctx)
	}
}
