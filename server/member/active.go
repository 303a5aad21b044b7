package member

import (
	"context"
	"fmt"
	"io"

	"trustee.dev/trustee/server/confdir"
	"trustee.dev/trustee/server/config"
	"trustee.dev/trustee/server/pg"
)

// promote makes a standby's cluster the active's, when the active marker
// names this member; a standby's cluster is refused otherwise.
func (o Options) promote(ctx context.Context, out io.Writer, inst *pg.Instance) error {
	agreed := roleAgreed(readMarker(o.ActiveMarker), o.Name, config.RoleActive)
	promote, err := decidePromote(inst, agreed, inst.DataDir)
	if err != nil || !promote {
		return err
	}
	fmt.Fprintf(out, "%s holds a copy of the old active's cluster, and this member is now the active: promoting it\n", inst.DataDir)
	if err := inst.Promote(ctx); err != nil {
		return err
	}
	fmt.Fprintf(out, "promoted: %s is the active's cluster\n", inst.DataDir)
	return nil
}

// activeCluster creates the active's cluster on first start and, for a
// pair, its replication account and slot. A server whose database was
// created before (the created marker exists) gets no new, empty one.
func (o Options) activeCluster(ctx context.Context, out io.Writer, cfg config.Config, inst *pg.Instance) error {
	step, err := decideActive(inst.Initialized(), readMarker(o.CreatedMarker), cfg.StandbyName, inst.DataDir)
	if err != nil {
		return err
	}
	if step.InitDB {
		if err := confdir.InitDB(ctx, out, o.Dir, cfg, inst); err != nil {
			return err
		}
	} else {
		fmt.Fprintf(out, "PostgreSQL cluster in %s exists\n", inst.DataDir)
	}
	if !step.Replication {
		fmt.Fprintln(out, "a single server (no STANDBY_NAME): no replication to set up")
		return nil
	}
	if err := confdir.ConfigureActive(ctx, o.Dir, cfg, inst); err != nil {
		return err
	}
	fmt.Fprintf(out, "replication account and slot are ready; commits wait for standby %q\n", cfg.StandbyName)
	return nil
}
