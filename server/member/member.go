// Package member sets up one member of the pair as its pod's init
// container does (`kts member setup`): it installs the member's
// keytrustee.conf in the state directory, then makes its PostgreSQL ready
// for the role the operator gave it, and sets up its HSM.
//
// Each step observes the cluster and the state Secret's markers
// (observe.go), decides with a pure function (decide.go, table-tested) and
// acts (active.go, passive.go, bootstrap.go, hsm.go):
//
//   - the role: a state directory installed for the other role is taken
//     over only when the active marker (contract.KeyActiveMember) agrees;
//   - active: a standby's cluster is promoted only with the marker's
//     agreement; a new cluster is loaded from a restore archive; an empty
//     volume is refused once the server's database existed
//     (contract.KeyDatabaseCreated, ErrVolumeLost); replication is set up;
//   - passive: a former active's cluster is moved aside only with the
//     marker's agreement; the active is copied on first start, waiting for
//     it, and anew when the copy can no longer follow it (stale).
package member

import (
	"context"
	"errors"
	"fmt"
	"io"
	"net"
	"path/filepath"
	"strconv"
	"time"

	"trustee.dev/trustee/server/confdir"
	"trustee.dev/trustee/server/config"
	"trustee.dev/trustee/server/member/contract"
	"trustee.dev/trustee/server/pg"
)

// Retry intervals of a passive waiting for its active.
const (
	firstCopyRetry = time.Second
	maxCopyRetry   = 10 * time.Second
)

// ErrVolumeLost: the active's volume holds no database although the
// server's database was created before. The command exits with
// contract.ExitVolumeLost.
var ErrVolumeLost = errors.New("the active's volume holds no database")

// Options is what a member's setup is asked to do.
type Options struct {
	contract.Setup
	// RunAs is the account that runs PostgreSQL when kts runs as root.
	RunAs string
}

// Run sets up the member, saying what it does on out. A second run changes
// nothing. PostgreSQL is left stopped.
func (o Options) Run(ctx context.Context, out io.Writer) error {
	cfg, data, err := o.check(ctx, out)
	if err != nil {
		return err
	}
	changed, err := installConfig(o.Dir, data)
	if err != nil {
		return err
	}
	if changed {
		fmt.Fprintf(out, "installed %s as %s\n", o.ConfigFile, filepath.Join(o.Dir, config.FileName))
	} else {
		fmt.Fprintf(out, "%s is up to date\n", filepath.Join(o.Dir, config.FileName))
	}
	if o.ConfigOnly {
		fmt.Fprintf(out, "configuration only: nothing set up for PostgreSQL; the database is the %s's at %s\n",
			cfg.Role, net.JoinHostPort(cfg.DBHost, strconv.Itoa(cfg.DBPort)))
		return nil
	}
	inst := confdir.Instance(o.Dir, cfg, o.RunAs)
	if cfg.Role == config.RoleActive {
		return o.setupActive(ctx, out, cfg, inst)
	}
	return o.setupPassive(ctx, out, cfg, inst)
}

// setupActive promotes a copy the marker makes the active's, loads the
// restore archive into a new cluster, makes the cluster ready and sets up
// the HSM.
func (o Options) setupActive(ctx context.Context, out io.Writer, cfg config.Config, inst *pg.Instance) error {
	if err := o.promote(ctx, out, inst); err != nil {
		return err
	}
	if err := o.bootstrap(ctx, out, cfg, inst); err != nil {
		return err
	}
	if err := o.activeCluster(ctx, out, cfg, inst); err != nil {
		return err
	}
	if cfg.HasHSM() {
		return setupActiveHSM(ctx, out, o.Dir, inst)
	}
	return nil
}

// setupPassive moves a former active's cluster aside when the marker says
// the other member was promoted, copies the active and checks the HSM.
func (o Options) setupPassive(ctx context.Context, out io.Writer, cfg config.Config, inst *pg.Instance) error {
	if err := o.replaceFormerActive(ctx, out, inst); err != nil {
		return err
	}
	if err := o.passiveCluster(ctx, out, cfg, inst); err != nil {
		return err
	}
	if cfg.HasHSM() {
		return setupPassiveHSM(out, o.Dir)
	}
	return nil
}
