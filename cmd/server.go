package cmd

import (
	"github.com/spf13/cobra"

	"trustee.dev/trustee/server/confdir"
	"trustee.dev/trustee/server/daemon"
)

func newServerCommand() *cobra.Command {
	var dir, logLevel string
	cmd := &cobra.Command{
		Use:   "server",
		Short: "Serve the deposit API over HTTPS (port 11371 by default)",
		Args:  cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			log, err := newLogger(cmd.ErrOrStderr(), logLevel)
			if err != nil {
				return err
			}
			st, err := confdir.Open(dir)
			if err != nil {
				return err
			}
			return daemon.Run(cmd.Context(), st, daemon.Options{Log: log})
		},
	}
	addConfdirFlag(cmd, &dir)
	cmd.Flags().StringVar(&logLevel, "log-level", "info", "log level: debug, info, warn or error")
	return cmd
}
