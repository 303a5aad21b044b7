package cmd

import (
	"fmt"
	"os"

	"github.com/spf13/cobra"

	"trustee.dev/trustee/server/backupjob"
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
	stopProfile, err := startCPUProfile(f.profile)
	if err != nil {
		return err
	}
	defer stopProfile()
	o := backupjob.Options{StateDir: f.confdir, Client: f.client, DBPort: f.dbPort,
		Recipient: f.recipient, Keyring: f.keyring, Cleartext: f.cleartext, Output: f.output,
		Roll: f.roll, RollSet: cmd.Flags().Changed("roll"), Verify: f.verify || f.verifyKey != "", VerifyKey: f.verifyKey,
		ResultFile: f.resultFile}
	if f.verbose && !f.quiet {
		o.Verbose = func(format string, args ...any) { fmt.Fprintf(cmd.ErrOrStderr(), format+"\n", args...) }
	}
	if !f.quiet && isTerminal(os.Stderr) {
		o.Progress = os.Stderr
	}
	res, err := backupjob.Run(cmd.Context(), o)
	if err != nil {
		return err
	}
	out := cmd.OutOrStdout()
	if f.quiet {
		fmt.Fprintln(out, res.Path)
		return nil
	}
	for _, line := range res.Lines() {
		fmt.Fprintln(out, line)
	}
	return nil
}

// isTerminal reports whether f is a terminal.
func isTerminal(f *os.File) bool {
	fi, err := f.Stat()
	return err == nil && fi.Mode()&os.ModeCharDevice != 0
}
