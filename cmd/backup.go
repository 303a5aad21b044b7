package cmd

import (
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"time"

	"github.com/ProtonMail/go-crypto/openpgp"
	"github.com/spf13/cobra"

	"trustee.dev/trustee/server/audit"
	"trustee.dev/trustee/server/backup"
	"trustee.dev/trustee/server/confdir"
	"trustee.dev/trustee/server/config"
	"trustee.dev/trustee/server/daemon"
	"trustee.dev/trustee/server/gnupg"
	"trustee.dev/trustee/server/localdb"
	"trustee.dev/trustee/server/pg"
	"trustee.dev/trustee/server/restore"
)

type backupFlags struct {
	confdir, client string
	dbPort          int
	recipient       string
	keyring         string
	cleartext       bool
	output          string
	roll            int
	quiet, verbose  bool
	profile         string
	resultFile      string
	verify          bool
	verifyKey       string
}

func newBackupCommand() *cobra.Command {
	var f backupFlags
	cmd := &cobra.Command{
		Use:     "backup",
		Aliases: []string{"ktbackup.sh"},
		Short:   "Back up the server's state directory and database (ktbackup.sh)",
		Long: `backup writes a tar archive of the state directory and a plain-SQL dump
of the database, named kts_bak_<host>_<YYYY-MM-DD_HH-MM-SS>.tar, encrypted
(.tar.gpg) to the public key of --gpg-recipient, which is looked up in the
GnuPG keyring of the account running it (import it with gpg --import) or in
--gpg-keyring. gpg -d decrypts it; kts restore puts it back.

It is also what the binary does when called as ktbackup.sh. It can run on
either server of a pair while the servers keep serving.

With --client DIR it archives a client's state directory instead
(kts_client_bak_<host>_...): losing a client's keys loses its data.

With --verify (or --verify-key) each new archive is then restored into a
throw-away PostgreSQL and compared with what was backed up, as kts backup
verify does: an archive that does not restore whole fails the backup, is
kept for inspection, and no older archive is rolled away for it.`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error { return runBackup(cmd, f) },
	}
	addConfdirFlag(cmd, &f.confdir)
	fl := cmd.Flags()
	fl.IntVar(&f.dbPort, "database-port", 0, "database port (default: the state directory's DB_PORT, 11381)")
	fl.StringVar(&f.recipient, "gpg-recipient", "", "encrypt to this key: name, e-mail or fingerprint")
	fl.StringVar(&f.keyring, "gpg-keyring", "", "look the recipient up in this public key file instead of GnuPG's keyring")
	fl.BoolVar(&f.cleartext, "cleartext", false, "write an unencrypted archive (never in production: it holds every key)")
	fl.StringVar(&f.output, "output", "", "directory for the archive (default: the directory holding the state directory)")
	fl.IntVar(&f.roll, "roll", 0, "afterwards keep only the newest n backups of this host in the output directory")
	fl.BoolVarP(&f.quiet, "quiet", "q", false, "print only the archive's path")
	fl.BoolVar(&f.verbose, "verbose", false, "say what each step does")
	fl.StringVar(&f.client, "client", "", "back up this client state directory instead of the server")
	fl.BoolVar(&f.verify, "verify", false, "restore the new archive into a throw-away PostgreSQL and compare it (a restore drill); a failed drill fails the backup")
	fl.StringVar(&f.verifyKey, "verify-key", "", "with --verify: the secret key that decrypts the archive (default: GnuPG's keyring)")
	fl.StringVar(&f.resultFile, "result-file", "", "also write the archive's file name to this file (in Kubernetes: /dev/termination-log, which the operator reads)")
	fl.StringVar(&f.profile, "cpu-profile", "", "write a CPU profile of the backup to this file")
	fl.MarkHidden("cpu-profile")
	cmd.AddCommand(newBackupVerifyCommand())
	return cmd
}

func runBackup(cmd *cobra.Command, f backupFlags) error {
	ctx := cmd.Context()
	stopProfile, err := startCPUProfile(f.profile)
	if err != nil {
		return err
	}
	defer stopProfile()
	if cmd.Flags().Changed("roll") && f.roll < 1 {
		return fmt.Errorf("--roll=%d: keep at least the newest backup (--roll=1)", f.roll)
	}
	encrypt, recipient, err := backupRecipient(ctx, f)
	if err != nil {
		return err
	}
	verify := f.verify || f.verifyKey != ""
	if verify && f.client != "" {
		return errors.New("--verify restores a server's database; a client backup holds none")
	}
	opts := backup.Options{Encrypt: encrypt, Roll: f.roll, Now: time.Now()}
	if verify {
		opts.Roll = 0 // older archives go only once the new one restored
	}
	if f.verbose && !f.quiet {
		opts.Verbose = func(format string, args ...any) { fmt.Fprintf(cmd.ErrOrStderr(), format+"\n", args...) }
	}
	if !f.quiet && isTerminal(os.Stderr) {
		opts.Progress = os.Stderr
	}
	if f.client != "" {
		err = clientBackupOptions(&opts, f)
	} else {
		err = serverBackupOptions(&opts, f)
	}
	if err != nil {
		return err
	}
	if opts.Output == "" {
		opts.Output = filepath.Dir(opts.StateDir)
	}
	// A server backup is recorded in the audit log before it starts (so
	// that the archive holds its own record) and when it ends.
	var finish func(res backup.Result, err error) error
	if opts.Kind == backup.KindServer {
		if finish, err = recordBackup(ctx, opts, recipient); err != nil {
			return err
		}
	}
	res, err := backup.Make(ctx, opts)
	if finish != nil {
		if ferr := finish(res, err); ferr != nil && err == nil {
			return fmt.Errorf("the backup %s is complete and kept, but %w", res.Path, ferr)
		}
	}
	if err != nil {
		return err
	}
	result := filepath.Base(res.Path)
	drilled := ""
	if verify {
		d, err := restore.Drill(ctx, res.Path, restore.DrillOptions{Decryption: restore.Decryption{KeyFile: f.verifyKey}, RunAs: pg.DefaultRunAs})
		if err != nil {
			msg := "restore drill failed: " + err.Error()
			if f.resultFile != "" {
				os.WriteFile(f.resultFile, []byte(result+": "+msg), 0o644)
			}
			return fmt.Errorf("the backup %s was written, but its %s; it is not a good backup (it is kept for inspection, and no older backup was rolled away)", res.Path, msg)
		}
		drilled = "restore drill: ok, " + d.Summary()
		result += "\n" + drilled
		if f.roll > 0 {
			res.Removed, err = backup.Roll(opts.Output, opts.Kind, opts.Host, f.roll)
			if err != nil {
				return fmt.Errorf("the backup %s is complete and passed its restore drill, but removing older ones failed: %w", res.Path, err)
			}
		}
	}
	if f.resultFile != "" {
		if err := os.WriteFile(f.resultFile, []byte(result), 0o644); err != nil {
			return fmt.Errorf("the backup %s is complete and kept, but writing its name to --result-file failed: %w", res.Path, err)
		}
	}
	out := cmd.OutOrStdout()
	if f.quiet {
		fmt.Fprintln(out, res.Path)
		return nil
	}
	what := "state directory " + opts.StateDir
	if opts.Kind == backup.KindServer {
		what += fmt.Sprintf(" and database (%d bytes of SQL)", res.DumpSize)
	}
	fmt.Fprintf(out, "backed up %s\n", what)
	if recipient != nil {
		fmt.Fprintf(out, "encrypted to %s\n", gnupg.Describe(recipient))
	} else {
		fmt.Fprintln(out, "WARNING: the archive is not encrypted and holds every key of the server; keep it safe")
	}
	for _, p := range res.Removed {
		fmt.Fprintf(out, "removed older backup %s\n", p)
	}
	fmt.Fprintf(out, "wrote %s (%d bytes)\n", res.Path, res.Size)
	if drilled != "" {
		fmt.Fprintln(out, drilled)
	}
	return nil
}

// recordBackup records that a backup starts, and returns what records how
// it ended. When the start cannot be recorded, the backup does not start.
func recordBackup(ctx context.Context, opts backup.Options, recipient *openpgp.Entity) (func(backup.Result, error) error, error) {
	log, err := localdb.OpenRecorder(ctx, opts.StateDir)
	if err != nil {
		return nil, fmt.Errorf("the backup did not start: %w", err)
	}
	object := "backup:" + opts.Host
	encryption := "cleartext"
	if recipient != nil {
		encryption = "to " + recipient.PrimaryKey.KeyIdString()
		if fp := recipient.PrimaryKey.Fingerprint; len(fp) > 0 {
			encryption = fmt.Sprintf("to %X", fp)
		}
	}
	details := map[string]any{"output": opts.Output, "encryption": encryption}
	if err := log.Record(ctx, audit.ActionBackup, object, audit.OutcomeStarted, details); err != nil {
		log.Close()
		return nil, fmt.Errorf("the backup did not start: %w", err)
	}
	return func(res backup.Result, err error) error {
		defer log.Close()
		outcome, more := localdb.Outcome(err)
		if err == nil {
			more = map[string]any{"archive": filepath.Base(res.Path), "bytes": res.Size}
		}
		ctx := context.WithoutCancel(ctx)
		if rerr := log.Record(ctx, audit.ActionBackup, object, outcome, localdb.JoinDetails(details, more)); rerr != nil {
			return fmt.Errorf("recording its end in the audit log failed: %w", rerr)
		}
		return nil
	}, nil
}

// backupRecipient finds the key to encrypt to, or settles on cleartext.
func backupRecipient(ctx context.Context, f backupFlags) (func(io.Writer, string) (io.WriteCloser, error), *openpgp.Entity, error) {
	switch {
	case f.cleartext && f.recipient != "":
		return nil, nil, errors.New("--cleartext and --gpg-recipient contradict each other; choose one")
	case f.cleartext:
		return nil, nil, nil
	case f.recipient == "":
		return nil, nil, errors.New("no --gpg-recipient: backups hold every key, so they are encrypted to a key administrator's " +
			"OpenPGP key (import it with `gpg --import FILE` and name it by name, e-mail or fingerprint); " +
			"--cleartext writes an unencrypted archive instead, not for production")
	}
	keys, err := gnupg.PublicKeys(ctx, f.keyring)
	if err != nil {
		return nil, nil, err
	}
	to, err := gnupg.FindRecipient(keys, f.recipient, time.Now())
	if err != nil {
		return nil, nil, err
	}
	return func(w io.Writer, name string) (io.WriteCloser, error) { return gnupg.Encrypt(w, to, name) }, to, nil
}

// serverBackupOptions fills in a backup of the server's state directory
// and database.
func serverBackupOptions(o *backup.Options, f backupFlags) error {
	dir, err := filepath.Abs(f.confdir)
	if err != nil {
		return err
	}
	st, err := confdir.Open(dir)
	if err != nil {
		return err
	}
	cfg := st.Config
	if f.dbPort != 0 {
		cfg.DBPort = f.dbPort
	}
	inst := confdir.Instance(dir, cfg, "")
	o.Kind, o.StateDir, o.Output = backup.KindServer, dir, f.output
	o.Host, o.Fingerprint, o.Role = backupHost(cfg.Hostname), st.ServerKey.Public().ID(), cfg.Role
	o.Skip = stateSkip(dir, cfg)
	o.Extra = restore.OutsideFiles(dir, cfg)
	o.Dump = func(ctx context.Context, w io.Writer) error { return inst.Dump(ctx, st.DBPassword, cfg.DBName, w) }
	return nil
}

// clientBackupOptions fills in a backup of a client state directory.
func clientBackupOptions(o *backup.Options, f backupFlags) error {
	dir, err := filepath.Abs(f.client)
	if err != nil {
		return err
	}
	if fi, err := os.Stat(dir); err != nil || !fi.IsDir() {
		return fmt.Errorf("--client %s: not a client state directory (%v)", f.client, err)
	}
	o.Kind, o.StateDir, o.Output, o.Host = backup.KindClient, dir, f.output, backupHost("")
	return nil
}

// backupHost is the host name an archive is named after.
func backupHost(configured string) string {
	if configured != "" {
		return configured
	}
	h, err := os.Hostname()
	if err != nil || h == "" {
		return "localhost"
	}
	return h
}

// stateSkip leaves out of a server archive what is not state: the
// database's files (the dump stands for them) and what the server keeps
// while it runs.
func stateSkip(dir string, cfg config.Config) func(rel string) bool {
	data, _ := filepath.Rel(dir, cfg.Path(dir, cfg.DBDataDir))
	data = filepath.ToSlash(data)
	return func(rel string) bool {
		// The server's audit journal can be large and is exported rather
		// than archived (the database's chain is in the dump).
		return rel == data || rel == daemon.StandbyGateFile || rel == audit.JournalDir
	}
}

// isTerminal reports whether f is a terminal.
func isTerminal(f *os.File) bool {
	fi, err := f.Stat()
	return err == nil && fi.Mode()&os.ModeCharDevice != 0
}
