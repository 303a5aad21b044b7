package daemon

import (
	"context"
	"log/slog"
	"path/filepath"
	"sync"
	"time"

	"trustee.dev/trustee/server/audit"
	"trustee.dev/trustee/server/confdir"
	"trustee.dev/trustee/server/store"
)

// auditing is what a server runs for the audit log: its journal and the
// checkpointers that sign its chains.
type auditing struct {
	journal *audit.Journal
	cancel  context.CancelFunc
	wg      sync.WaitGroup
}

// startAuditing opens the server's journal and starts signing it and, on
// the active (db not nil), the database chain, whose signed heads go to
// the anchor file.
func startAuditing(ctx context.Context, st *confdir.State, db *store.Store, o Options, log *slog.Logger) (*auditing, error) {
	j, err := audit.OpenJournal(filepath.Join(st.Dir, audit.JournalDir), audit.JournalOptions{Sync: o.AuditSync, Timeout: writeTimeout})
	if err != nil {
		return nil, err
	}
	ctx, cancel := context.WithCancel(context.WithoutCancel(ctx))
	a := &auditing{journal: j, cancel: cancel}
	every := o.CheckpointEvery
	run := func(c *audit.Checkpointer) {
		a.wg.Add(1)
		go func() {
			defer a.wg.Done()
			c.Run(ctx)
		}()
	}
	run(&audit.Checkpointer{Chain: audit.JournalChain{Journal: j}, Name: audit.ChainJournal, Key: st.ServerKey, Every: every, Log: log})
	if db != nil {
		anchor := filepath.Join(st.Dir, audit.AnchorFile)
		run(&audit.Checkpointer{Chain: store.AuditChain{Store: db}, Name: audit.ChainDB, Key: st.ServerKey, Every: every, Log: log,
			Done: func(h audit.Head) {
				if err := audit.WriteAnchor(anchor, h, time.Now()); err != nil {
					log.Error("audit: writing the anchor file", "file", anchor, "err", err)
				}
			}})
	}
	return a, nil
}

// stop makes the last checkpoints and closes the journal.
func (a *auditing) stop() error {
	a.cancel()
	a.wg.Wait()
	return a.journal.Close()
}
