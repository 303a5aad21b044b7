package cmd

import (
	"fmt"

	"github.com/spf13/cobra"

	"trustee.dev/trustee/server/confdir"
	"trustee.dev/trustee/server/daemon"
)

func newServerCommand() *cobra.Command {
	var dir, logLevel string
	var announce bool
	var cpuProfile string
	cmd := &cobra.Command{
		Use:   "server",
		Short: "Serve the deposit API over HTTPS (port 11371 by default)",
		Args:  cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			tuneGC()
			log, err := newLogger(cmd.ErrOrStderr(), logLevel)
			if err != nil {
				return err
			}
			stopProfile, err := startCPUProfile(cpuProfile)
			if err != nil {
				return err
			}
			defer stopProfile()
			st, err := confdir.Open(dir)
			if err != nil {
				return err
			}
			defer st.Close()
			o := daemon.Options{Log: log}
			if announce {
				o.Ready = func(addr string) { fmt.Fprintln(cmd.OutOrStdout(), "listening", addr) }
			}
			return daemon.Run(cmd.Context(), st, o)
		},
	}
	addConfdirFlag(cmd, &dir)
	cmd.Flags().StringVar(&logLevel, "log-level", "info", "log level: debug, info, warn or error")
	cmd.Flags().StringVar(&cpuProfile, "cpu-profile", "", "write a CPU profile of the run to this file (for performance work)")
	cmd.Flags().BoolVar(&announce, "announce", false, `print "listening ADDR" on standard output once serving`)
	return cmd
}
