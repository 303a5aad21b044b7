package member

import (
	"context"
	"errors"
	"fmt"
	"io"
	"time"

	"trustee.dev/trustee/server/confdir"
	"trustee.dev/trustee/server/config"
	"trustee.dev/trustee/server/pg"
)

// replaceFormerActive moves a primary's cluster aside on a passive, when
// the active marker names the other member: this member was the active,
// and the other was promoted. A primary's cluster is refused otherwise.
func (o Options) replaceFormerActive(ctx context.Context, out io.Writer, inst *pg.Instance) error {
	agreed := roleAgreed(readMarker(o.ActiveMarker), o.Name, config.RolePassive)
	replace, err := decideReplace(inst, agreed, inst.DataDir)
	if err != nil || !replace {
		return err
	}
	old, err := inst.MoveAside(ctx)
	if err != nil {
		return err
	}
	fmt.Fprintf(out, "this member was the active, and the other one was promoted: its old cluster is kept in %s; copying the new active\n", old)
	return nil
}

// passiveCluster copies the active's cluster on first start, waiting for
// the active as long as ctx allows, and copies it anew when the copy is
// stale.
func (o Options) passiveCluster(ctx context.Context, out io.Writer, cfg config.Config, inst *pg.Instance) error {
	host, port, pw, err := confdir.ActiveDB(o.Dir, cfg)
	if err != nil {
		return err
	}
	if inst.Initialized() {
		stale, why, err := inst.UpstreamStale(ctx, host, port, pw)
		switch decideStandby(stale, err) {
		case keepUnknown:
			fmt.Fprintf(out, "PostgreSQL standby in %s exists; keeping it, for whether it can still follow the active is not known: %v\n", inst.DataDir, err)
			return nil
		case keepFollowing:
			fmt.Fprintf(out, "PostgreSQL standby in %s exists and can follow the active\n", inst.DataDir)
			return nil
		}
		fmt.Fprintf(out, "PostgreSQL standby in %s is stale: %s; copying the active anew (the old data directory is kept beside it)\n", inst.DataDir, why)
		inst.CreateMissingSlot = true // the active may run on without it
		err = inst.Reseed(ctx, host, port, pw)
		if err == nil {
			fmt.Fprintf(out, "copied the active's PostgreSQL at %s anew into %s\n", cfg.ActiveDB, inst.DataDir)
			return nil
		}
		reason, again := copyAfterFailedReseed(err, inst.Initialized())
		if !again {
			return err
		}
		fmt.Fprintf(out, "copying the active anew failed: %s\n", reason)
	}
	if err := confdir.PrepareStateDir(out, o.Dir, cfg, inst); err != nil {
		return err
	}
	delay := firstCopyRetry
	for attempt := 1; ; attempt++ {
		err := inst.InitStandby(ctx, host, port, pw)
		if err == nil {
			fmt.Fprintf(out, "copied the active's PostgreSQL at %s into %s: a hot standby of it\n", cfg.ActiveDB, inst.DataDir)
			return nil
		}
		var ce *pg.CopyError
		if !errors.As(err, &ce) {
			return err
		}
		if ctx.Err() != nil {
			return fmt.Errorf("stopped waiting for the active's PostgreSQL at %s: %w", cfg.ActiveDB, ctx.Err())
		}
		fmt.Fprintf(out, "waiting for the active's PostgreSQL at %s to copy it (attempt %d): %s; next attempt in %s\n",
			cfg.ActiveDB, attempt, ce.Reason(), delay)
		select {
		case <-ctx.Done():
			return fmt.Errorf("stopped waiting for the active's PostgreSQL at %s: %w", cfg.ActiveDB, ctx.Err())
		case <-time.After(delay):
		}
		delay = nextCopyRetry(delay)
	}
}
