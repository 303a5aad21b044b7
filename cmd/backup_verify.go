package cmd

import (
	"fmt"
	"path/filepath"

	"github.com/spf13/cobra"

	"trustee.dev/trustee/server/restore"
)

type drillFlags struct {
	restoreFlags
	work string
}

func newBackupVerifyCommand() *cobra.Command {
	var f drillFlags
	cmd := &cobra.Command{
		Use:   "verify ARCHIVE",
		Short: "Restore a server backup into a throw-away PostgreSQL and compare it with what was backed up (a restore drill)",
		Long: `verify is a restore drill: it decrypts and checks the archive (its
manifest and the checksum of every entry) and, as kts restore does, that the
configured HSM opens its sealed secrets and holds every key its deposits are
wrapped with; then it creates a new PostgreSQL cluster
in a temporary directory, loads the archive's database dump into it, dumps
that database again and compares the two table by table: the number of rows
and a checksum of them. It changes no server and removes what it made.

It exits 0 when every table came back with the same rows, and 1 naming each
table that did not, or the step that failed (an archive that cannot be
decrypted, is damaged, or does not load): a backup that does not restore is
a failed backup.

An encrypted archive is opened with the secret key in --gpg-keyring or with
GnuPG's keyring of the account running it.`,
		Args: cobra.ExactArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error { return runDrill(cmd, f, args[0]) },
	}
	fl := cmd.Flags()
	addArchiveFlags(fl, &f.restoreFlags)
	fl.StringVar(&f.work, "work-dir", "", "where to make the throw-away cluster (default: the system's temporary directory)")
	return cmd
}

func runDrill(cmd *cobra.Command, f drillFlags, archive string) error {
	res, err := restore.Drill(cmd.Context(), archive, f.options())
	if err != nil {
		return fmt.Errorf("restore drill of %s: %w", archive, err)
	}
	fmt.Fprintf(cmd.OutOrStdout(), "restore drill of %s: ok, %s\n", filepath.Base(archive), res.Summary())
	return nil
}

func (f drillFlags) options() restore.DrillOptions {
	return restore.DrillOptions{Decryption: f.decryption(), RunAs: f.runAs, WorkDir: f.work}
}
