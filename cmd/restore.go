package cmd

import (
	"context"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"time"

	"github.com/spf13/cobra"
	"github.com/spf13/pflag"

	"trustee.dev/trustee/server/audit"
	"trustee.dev/trustee/server/backup"
	"trustee.dev/trustee/server/confdir"
	"trustee.dev/trustee/server/config"
	"trustee.dev/trustee/server/pg"
	"trustee.dev/trustee/server/restore"
	"trustee.dev/trustee/server/store"
)

type restoreFlags struct {
	confdir, client   string
	keyFile, passFile string
	dbPort            int
	runAs             string
}

func newRestoreCommand() *cobra.Command {
	var f restoreFlags
	cmd := &cobra.Command{
		Use:   "restore ARCHIVE",
		Short: "Restore the state directory and database from a backup",
		Long: `restore puts back what kts backup (or ktbackup.sh) archived: the state
directory and the database, on a fresh host or over an existing server.

An encrypted archive is decrypted with GnuPG (the recipient's secret key in
the keyring of the account running restore) or with --gpg-keyring, a secret
key file. The whole archive is read and checked before anything changes: a
damaged, truncated, altered or foreign archive, or one whose deposits need
HSM keys the configured token does not hold, changes nothing.

On a fresh host (no keytrustee.conf, no database cluster) the state
directory comes back with a new database cluster, as a standalone server
(a pair's settings are cleared; pair it again from it); if a step fails,
everything made is removed. Start it with kts db start, then kts server.
Files keytrustee.conf names outside the state directory are written back
where missing, never over a file or through a symbolic link.

Over an existing server, its database is replaced in one step and its
keytrustee.conf and database passwords stay (they belong to this host's
database); keys, certificates and the rest of the state come from the
archive. Stop the kts server first (PostgreSQL may keep running) and start
it again afterwards. Deposits made after the backup are not restored.

With --client DIR it restores a client's state directory from a client
archive.`,
		Args: cobra.ExactArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error { return runRestore(cmd, f, args[0]) },
	}
	addConfdirFlag(cmd, &f.confdir)
	fl := cmd.Flags()
	addArchiveFlags(fl, &f)
	fl.IntVar(&f.dbPort, "database-port", 0, "database port (default: the state directory's DB_PORT, 11381)")
	fl.StringVar(&f.client, "client", "", "restore a client archive into this client state directory")
	return cmd
}

// addArchiveFlags adds what opening an archive and running its PostgreSQL
// take (kts restore, kts backup verify).
func addArchiveFlags(fl *pflag.FlagSet, f *restoreFlags) {
	fl.StringVar(&f.keyFile, "gpg-keyring", "", "decrypt with the secret key in this file instead of GnuPG")
	fl.StringVar(&f.passFile, "passphrase-file", "", "file holding the passphrase of the key in --gpg-keyring")
	fl.StringVar(&f.runAs, "run-as", pg.DefaultRunAs, "account that runs PostgreSQL when kts runs as root")
}

func runRestore(cmd *cobra.Command, f restoreFlags, archive string) error {
	ctx := cmd.Context()
	target := f.confdir
	if f.client != "" {
		target = f.client
	}
	target, err := filepath.Abs(target)
	if err != nil {
		return err
	}
	staged, err := restore.Unpack(ctx, archive, restore.Decryption{KeyFile: f.keyFile, PassphraseFile: f.passFile}, target)
	if err != nil {
		return fmt.Errorf("%s: %w; nothing was changed", archive, err)
	}
	defer staged.Remove()
	out := cmd.OutOrStdout()
	taken := fmt.Sprintf("the backup of %s taken at %s", staged.Host, staged.Created.UTC().Format(time.DateTime+" MST"))
	if f.client != "" {
		if staged.Kind != backup.KindClient {
			staged.Abandon(target)
			return fmt.Errorf("%s is a server backup; restore it without --client; nothing was changed", archive)
		}
		if _, err := staged.Place(target, func(string) bool { return false }); err != nil {
			return err
		}
		fmt.Fprintf(out, "restored client state directory %s (%d entries) from %s\n", target, len(staged.Entries), taken)
		return nil
	}
	if staged.Kind != backup.KindServer {
		staged.Abandon(target)
		return fmt.Errorf("%s is a client backup; restore it with --client DIR; nothing was changed", archive)
	}
	res, err := restoreServer(ctx, staged, target, f, archive)
	if err != nil {
		return err
	}
	c := res.contents
	fmt.Fprintf(out, "restored state directory %s and database %q from %s\n", target, res.cfg.DBName, taken)
	fmt.Fprintf(out, "restored rows: %d organizations, %d clients, %d deposits (%d in all)\n",
		c.Organizations, c.Clients, c.Deposits, c.Organizations+c.Clients+c.Deposits)
	fmt.Fprintln(out, "deposits made after the backup was taken are not restored")
	if staged.Fingerprint != "" {
		fmt.Fprintf(out, "server key %s\n", staged.Fingerprint)
	}
	for _, line := range restore.Report(res.outside, archive) {
		fmt.Fprintln(out, line)
	}
	if !res.fresh {
		fmt.Fprintln(out, "start (or restart) the kts server now")
		return nil
	}
	if res.wasPaired != "" {
		fmt.Fprintf(out, "the backup came from the %s of a pair; it was restored as a standalone server, which takes writes on its own "+
			"(pair it again as docs/OPERATIONS.md says: with its server stopped, kts db init --role active here, then kts init --from-active on the other host)\n", res.wasPaired)
	}
	fmt.Fprintf(out, "start its database and the server now: kts db start --confdir %s, then kts server --confdir %s\n", target, target)
	return nil
}

type serverRestore struct {
	cfg       config.Config
	contents  store.Contents
	fresh     bool   // restored onto a fresh host
	wasPaired string // fresh: the archived server's role in a pair, or ""
	outside   []restore.OutsideFile
}

// restoreServer puts a staged server archive in place. Every check comes
// first (the archive, its configuration, the HSM keys its deposits need,
// the files outside the state directory): a refusal changes nothing. Over
// an existing server the database is replaced first and the files follow;
// on a fresh host the files come first, then a new database cluster takes
// the dump, and if any step fails everything made so far is removed.
func restoreServer(ctx context.Context, staged *backup.Staged, target string, f restoreFlags, archive string) (res serverRestore, err error) {
	refuse := func(err error) (serverRestore, error) {
		staged.Abandon(target)
		return res, fmt.Errorf("%w; nothing was changed", err)
	}
	archived, err := restore.Config(staged)
	if err != nil {
		return refuse(err)
	}
	res.cfg, err = config.Load(target)
	if err != nil {
		if !errors.Is(err, os.ErrNotExist) {
			return refuse(err)
		}
		res.fresh = true
		res.cfg, res.wasPaired = restore.FreshConfig(archived)
	}
	if res.cfg.Role == config.RolePassive {
		return refuse(fmt.Errorf("%s is a passive's state directory, whose database follows the active's: restore on the active "+
			"(the passive follows; when the restored keys differ from the passive's, set it up again with `kts init --from-active`)", target))
	}
	if f.dbPort != 0 {
		res.cfg.DBPort = f.dbPort
	}
	cfg := res.cfg
	inst := confdir.Instance(target, cfg, f.runAs)
	if res.fresh && inst.Initialized() {
		return refuse(fmt.Errorf("%s holds a database cluster (%s) but no %s: restore onto a fresh host needs a state directory without either "+
			"(move it away, or restore into another directory)", target, inst.DataDir, config.FileName))
	}
	if !res.fresh && !inst.Initialized() {
		return refuse(fmt.Errorf("%s has a %s but no database cluster (%s): create it with `kts db init --confdir %s` and restore again, "+
			"or restore into a new state directory", target, config.FileName, inst.DataDir, target))
	}
	tok, err := restore.Check(staged, target, cfg)
	if err != nil {
		return refuse(err)
	}
	if tok != nil {
		defer tok.Close()
	}
	if res.outside, err = restore.PlanOutside(staged, archived); err != nil {
		return refuse(err)
	}
	if res.fresh {
		if err := restoreFresh(ctx, staged, target, inst, &res, archive); err != nil {
			return res, err
		}
		return res, nil
	}
	keep := func(rel string) bool {
		return rel == config.FileName || rel == cfg.DBPasswordFile || rel == cfg.ReplicationPasswordFile
	}
	st, err := inst.Status(ctx)
	if err != nil {
		return refuse(err)
	}
	if !st.Running {
		if err := inst.Start(ctx); err != nil {
			return refuse(err)
		}
		defer func() { err = errors.Join(err, inst.Stop(context.WithoutCancel(ctx))) }()
	}
	pw, err := confdir.ReadDBPassword(target, cfg)
	if err != nil {
		return refuse(err)
	}
	if err := restore.CheckPassiveAttached(ctx, inst, cfg, pw); err != nil {
		return refuse(err)
	}
	if res.contents, err = restore.ReplaceDatabase(ctx, inst, cfg, pw, staged, archive); err != nil {
		return refuse(err)
	}
	// The anchor names a checkpoint of the replaced chain; the server
	// writes the restored chain's at its next checkpoint.
	if err := os.Remove(filepath.Join(target, audit.AnchorFile)); err != nil && !errors.Is(err, os.ErrNotExist) {
		return res, fmt.Errorf("the database is restored, but removing the audit anchor file failed: %w", err)
	}
	if _, err := staged.Place(target, keep); err != nil {
		return res, fmt.Errorf("the database is restored, but putting the state directory back failed: %w", err)
	}
	if _, _, err := restore.WriteOutside(staged, res.outside); err != nil {
		return res, fmt.Errorf("the database and the state directory are restored, but %w", err)
	}
	return res, nil
}

// restoreFresh restores onto a fresh host: the state files, the
// configuration and the files outside the state directory first (the new
// cluster takes the restored database password), then a new database
// cluster loaded with the dump. When a step fails, what was made is
// removed (the database stopped first) and the error says so.
func restoreFresh(ctx context.Context, staged *backup.Staged, target string, inst *pg.Instance, res *serverRestore, archive string) (err error) {
	cfg := res.cfg
	undo, err := restore.Track(target, inst.DataDir)
	if err != nil {
		staged.Abandon(target)
		return fmt.Errorf("%w; nothing was changed", err)
	}
	undoOutside := func() {}
	started := false
	defer func() {
		if err == nil {
			return
		}
		if started {
			err = errors.Join(err, inst.Stop(context.WithoutCancel(ctx)))
		}
		undoOutside()
		staged.Remove()
		if uerr := undo(staged.CreatedStateDir()); uerr != nil {
			err = fmt.Errorf("%w; removing what the restore had made failed (%v): remove %s before trying again", err, uerr, target)
			return
		}
		err = fmt.Errorf("%w; nothing was changed (what the restore had made is removed)", err)
	}()
	if _, err := staged.Place(target, func(string) bool { return false }); err != nil {
		return err
	}
	if err := cfg.Save(target); err != nil {
		return err
	}
	if _, undoOutside, err = restore.WriteOutside(staged, res.outside); err != nil {
		return err
	}
	if err := confdir.InitDB(ctx, os.Stdout, target, cfg, inst); err != nil {
		return fmt.Errorf("creating the database cluster: %w", err)
	}
	if err := inst.Start(ctx); err != nil {
		return fmt.Errorf("starting the new database cluster: %w", err)
	}
	started = true
	pw, err := confdir.ReadDBPassword(target, cfg)
	if err != nil {
		return err
	}
	if res.contents, err = restore.ReplaceDatabase(ctx, inst, cfg, pw, staged, archive); err != nil {
		return err
	}
	started = false
	return inst.Stop(context.WithoutCancel(ctx))
}
