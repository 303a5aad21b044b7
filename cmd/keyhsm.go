package cmd

import (
	"github.com/spf13/cobra"

	"trustee.dev/trustee/server/config"
	"trustee.dev/trustee/server/hsmadmin"
	"trustee.dev/trustee/server/hsmkeys"
)

func newKeyHSMCommand() *cobra.Command {
	var dir string
	cmd := &cobra.Command{
		Use:   "keyhsm",
		Short: "Keep the server's keys in an HSM (PKCS#11): init, check, migrate, rotate",
		Long: `keyhsm puts the server's key-encryption keys in a PKCS#11 token (an HSM),
as ktadmin keyhsm does: AES-256 keys generated inside the token, sensitive and
never extractable, that wrap every deposit's data key; the server's OpenPGP
key, session key and file keyring are sealed by a token key too, so a copy of
the state directory and the database opens nothing without the token.

The token's PIN comes from a file, an environment variable or a command
(--pin-file, --pin-env, --pin-script), never from the command line.`,
	}
	cmd.PersistentFlags().StringVarP(&dir, "confdir", "c", defaultConfdir(), "server state directory (env KTS_CONFDIR)")
	cmd.AddCommand(newKeyHSMInitCommand(&dir), newKeyHSMCheckCommand(&dir), newKeyHSMMigrateCommand(&dir), newKeyHSMRotateCommand(&dir))
	return cmd
}

func newKeyHSMInitCommand(dir *string) *cobra.Command {
	var o hsmadmin.InitOptions
	cmd := &cobra.Command{
		Use:   "init",
		Short: "Create (or adopt) the HSM's keys, seal the state directory's secrets, and wrap new deposits in the HSM",
		Args:  cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			return hsmadmin.Init(cmd.Context(), cmd.OutOrStdout(), *dir, o)
		},
	}
	f := cmd.Flags()
	f.StringVar(&o.Module, "module", "", "PKCS#11 library of the HSM (e.g. /usr/lib/softhsm/libsofthsm2.so)")
	f.StringVar(&o.Token, "token-label", "", "label of the token that holds the keys")
	f.StringVar(&o.PINFile, "pin-file", "", "file holding the token's user PIN")
	f.StringVar(&o.PINEnv, "pin-env", "", "environment variable holding the token's user PIN")
	f.StringVar(&o.PINScript, "pin-script", "", "command (absolute path, no shell) that prints the token's user PIN")
	f.StringVar(&o.KeyLabel, "key-label", hsmkeys.KEKLabelPrefix+"1", "label of the key that wraps deposits (adopted when the token has it)")
	f.StringVar(&o.StateKey, "state-key", "", "label of the key that seals the state directory's secrets (default "+config.DefaultHSMStateKey+")")
	cmd.MarkFlagRequired("module")
	cmd.MarkFlagRequired("token-label")
	return cmd
}

func newKeyHSMCheckCommand(dir *string) *cobra.Command {
	return &cobra.Command{
		Use:   "check",
		Short: "Show the HSM, its keys and their attributes, and test wrapping with each",
		Args:  cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			return hsmadmin.Check(cmd.Context(), cmd.OutOrStdout(), *dir)
		},
	}
}

func newKeyHSMMigrateCommand(dir *string) *cobra.Command {
	return &cobra.Command{
		Use:   "migrate",
		Short: "Re-wrap the deposits still wrapped by the file keyring with the HSM's current key (resumable)",
		Args:  cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			return hsmadmin.Migrate(cmd.Context(), cmd.OutOrStdout(), *dir)
		},
	}
}

func newKeyHSMRotateCommand(dir *string) *cobra.Command {
	return &cobra.Command{
		Use:   "rotate",
		Short: "Make a new HSM key version current and re-wrap every deposit with it (resumable; no downtime)",
		Long: `rotate creates the next deposit key version in the token (kts-kek-N), makes
it current — running servers wrap new deposits with it within seconds — and
re-wraps every existing deposit's data key with it in the background of the
servers, showing progress. Deposits stay readable throughout: a row holds its
old or its new wrapping, and the old key opens the old one. When no deposit
uses the old version any more, it is marked retired; it stays in the token,
for backups made before the rotation need it. A new version takes a label
the token does not hold yet: a key the database never recorded (made by a
rotation after the backup it was restored from) is left alone, unused.

Interrupted, it is resumed by running it again: while an older version still
wraps deposits, rotate finishes that rotation instead of starting another.`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			return hsmadmin.Rotate(cmd.Context(), cmd.OutOrStdout(), *dir)
		},
	}
}
