package member

import (
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"time"

	"trustee.dev/trustee/server/backup"
	"trustee.dev/trustee/server/confdir"
	"trustee.dev/trustee/server/config"
	"trustee.dev/trustee/server/pg"
	"trustee.dev/trustee/server/restore"
)

// bootstrapPending is a file of the state directory that exists while a
// new cluster is being filled from the restore archive.
const bootstrapPending = "bootstrap-pending"

// bootstrap creates a new active's cluster from the restore archive, as
// decideBootstrap decides.
func (o Options) bootstrap(ctx context.Context, out io.Writer, cfg config.Config, inst *pg.Instance) (err error) {
	pending := filepath.Join(o.Dir, bootstrapPending)
	_, statErr := os.Stat(pending)
	step := decideBootstrap(o.RestoreArchive, statErr == nil, inst.Initialized(), readMarker(o.CreatedMarker))
	if step.StartOver {
		fmt.Fprintf(out, "the load of %s into %s did not finish: starting it over\n", o.RestoreArchive, inst.DataDir)
		if err := os.RemoveAll(inst.DataDir); err != nil {
			return err
		}
	}
	if !step.Load {
		return nil
	}
	if _, err := os.Stat(o.RestoreArchive); err != nil {
		return fmt.Errorf("the archive to start from, %s, cannot be read (%v): is the Secret of spec.bootstrap there?", o.RestoreArchive, err)
	}
	// The archive is checked whole before the cluster is made.
	work, err := os.MkdirTemp(o.Dir, ".bootstrap-")
	if err != nil {
		return err
	}
	defer os.RemoveAll(work)
	staged, err := restore.Unpack(ctx, o.RestoreArchive, restore.Decryption{KeyFile: o.RestoreKey}, filepath.Join(work, "stage"))
	if err != nil {
		return fmt.Errorf("%s: %w; nothing was created", o.RestoreArchive, err)
	}
	defer staged.Remove()
	if staged.Kind != backup.KindServer {
		return fmt.Errorf("%s is a client backup, not a server's; nothing was created", o.RestoreArchive)
	}
	// As kts restore: the HSM keys the archive needs are checked first.
	tok, err := restore.Check(staged, o.Dir, cfg)
	if err != nil {
		return fmt.Errorf("%s: %w; nothing was created", o.RestoreArchive, err)
	}
	if tok != nil {
		tok.Close()
	}
	if err := os.WriteFile(pending, []byte(o.RestoreArchive+"\n"), 0o600); err != nil {
		return err
	}
	if err := confdir.InitDB(ctx, out, o.Dir, cfg, inst); err != nil {
		return err
	}
	// No passive is attached yet: the load's commits must not wait for one.
	alone := *inst
	alone.Standby = ""
	if err := alone.Start(ctx); err != nil {
		return err
	}
	defer func() { err = errors.Join(err, alone.Stop(context.WithoutCancel(ctx))) }()
	pw, err := confdir.ReadDBPassword(o.Dir, cfg)
	if err != nil {
		return err
	}
	c, err := restore.ReplaceDatabase(ctx, &alone, cfg, pw, staged, o.RestoreArchive)
	if err != nil {
		return fmt.Errorf("loading the database of %s: %w", o.RestoreArchive, err)
	}
	if err := os.Remove(pending); err != nil {
		return err
	}
	fmt.Fprintf(out, "started from the backup of %s taken at %s: %d organizations, %d clients, %d deposits\n",
		staged.Host, staged.Created.UTC().Format(time.DateTime+" MST"), c.Organizations, c.Clients, c.Deposits)
	return nil
}
