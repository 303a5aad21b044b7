package cmd

import (
	"fmt"
	"os"

	"github.com/spf13/cobra"
	"github.com/spf13/pflag"

	"trustee.dev/trustee/server/pg"
	"trustee.dev/trustee/server/restore"
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
	o := restore.Options{Dir: f.confdir, Decryption: f.decryption(), DBPort: f.dbPort, RunAs: f.runAs, Log: os.Stdout}
	if f.client != "" {
		o.Dir, o.Client = f.client, true
	}
	res, err := restore.Run(cmd.Context(), archive, o)
	if err != nil {
		return err
	}
	for _, line := range res.Lines() {
		fmt.Fprintln(cmd.OutOrStdout(), line)
	}
	return nil
}

func (f restoreFlags) decryption() restore.Decryption {
	return restore.Decryption{KeyFile: f.keyFile, PassphraseFile: f.passFile}
}
