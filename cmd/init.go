package cmd

import (
	"fmt"
	"os"

	"github.com/spf13/cobra"

	"trustee.dev/trustee/server/confdir"
	"trustee.dev/trustee/server/config"
	"trustee.dev/trustee/server/openpgp"
)

func newInitCommand() *cobra.Command {
	var (
		dir, hostname, keyType, listen  string
		adminListen                     string
		dbPort                          int
		fromActive, activeURL, activeDB string
	)
	cmd := &cobra.Command{
		Use:   "init",
		Short: "Create the server state directory: OpenPGP identity, TLS certificate, keytrustee.conf",
		Long: `init creates the server's state directory (mode 0700, files 0600): the server
OpenPGP key pair, a self-signed TLS certificate for the host name, the deposit
keyring and keytrustee.conf. Running it again creates only what is missing; it
never overwrites a key.`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			kt, err := openpgp.ParseKeyType(keyType)
			if err != nil {
				return err
			}
			if hostname == "" {
				if hostname, err = os.Hostname(); err != nil {
					return err
				}
			}
			if adminListen != "" && fromActive == "" {
				return fmt.Errorf("--admin-listen goes with --from-active (a passive's admin API); for another server set ADMIN_LISTEN_ADDRESS and ADMIN_CA_FILE in its keytrustee.conf")
			}
			var res confdir.InitResult
			if fromActive != "" {
				res, err = confdir.InitFromActive(fromActive, dir, confdir.PassiveOptions{
					Hostname: hostname, ListenAddress: orDefault(listen, config.DefaultListenAddress),
					DBPort: orDefault(dbPort, config.DefaultDBPort), ActiveURL: activeURL, ActiveDB: activeDB,
					AdminListenAddress: adminListen,
				})
			} else {
				res, err = confdir.Init(dir, confdir.InitOptions{Hostname: hostname, KeyType: kt, ListenAddress: listen, DBPort: dbPort})
			}
			out := cmd.OutOrStdout()
			for _, f := range res.Created {
				fmt.Fprintf(out, "created %s\n", f)
			}
			for _, w := range res.Warnings {
				fmt.Fprintf(cmd.ErrOrStderr(), "warning: %s\n", w)
			}
			if err != nil {
				return err
			}
			if len(res.Created) == 0 {
				fmt.Fprintf(out, "%s is already initialized; nothing changed\n", dir)
			}
			fmt.Fprintf(out, "server fingerprint: %s\n", res.ServerID)
			return nil
		},
	}
	addConfdirFlag(cmd, &dir)
	cmd.Flags().StringVar(&hostname, "hostname", "", "host name for the TLS certificate (default: this host's name)")
	cmd.Flags().StringVar(&listen, "listen", "", `address the server listens on (LISTEN_ADDRESS; default ":11371")`)
	cmd.Flags().IntVar(&dbPort, "db-port", 0, "PostgreSQL port (DB_PORT; default 11381)")
	cmd.Flags().StringVar(&fromActive, "from-active", "", "make a passive's state directory from this copy of the active's (its identity, keyring, secrets and settings; not .ssl, nor the settings of the active's host)")
	cmd.Flags().StringVar(&activeURL, "active-url", "", "with --from-active: the active's API URL, where the passive forwards writes")
	cmd.Flags().StringVar(&activeDB, "active-db", "", "with --from-active: the active's PostgreSQL as HOST:PORT")
	cmd.Flags().StringVar(&adminListen, "admin-listen", "", "with --from-active: the passive's admin API address (ADMIN_LISTEN_ADDRESS; default none: the active's is not copied)")
	cmd.Flags().StringVar(&keyType, "key-type", string(openpgp.RSA4096), "server OpenPGP key type: rsa4096 or ed25519")
	return cmd
}

func orDefault[T comparable](v, def T) T {
	var zero T
	if v == zero {
		return def
	}
	return v
}
