package cmd

import (
	"fmt"
	"io"
	"time"

	"github.com/spf13/cobra"

	"trustee.dev/trustee/server/audit"
	"trustee.dev/trustee/server/confdir"
	"trustee.dev/trustee/server/daemon"
)

// defaultDBWait is how long kts server waits at start for its database:
// in a pod, PostgreSQL starts beside it and a standby may replay for a
// while before it takes connections.
const defaultDBWait = 2 * time.Minute

func newServerCommand() *cobra.Command {
	var dir, logLevel string
	var announce bool
	var cpuProfile string
	var dbWait, checkpointEvery time.Duration
	var auditSync string
	var benchOptions func(io.Writer, bool) daemon.BenchOptions
	cmd := &cobra.Command{
		Use:   "server",
		Short: "Serve the deposit API over HTTPS (port 11371 by default)",
		Long: `server serves the deposit API over HTTPS (LISTEN_ADDRESS, port 11371 by
default) from the state directory's configuration and database.

At start it waits for its database to accept connections, for as long as
--db-wait allows: PostgreSQL may still be starting (connection refused), or a
standby may still be replaying ("the database system is starting up"). It
tries again with back-off, logging one line per attempt that says what it
waits for, and then gives up with an error. Errors that waiting cannot mend,
such as a wrong password, end it at once.`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			if dbWait < 0 {
				return fmt.Errorf("--db-wait %v: give how long to wait for the database, such as 2m, or 0 to try once", dbWait)
			}
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
			o := daemon.Options{Log: log, DBWait: dbWait, AuditSync: auditSync, CheckpointEvery: checkpointEvery,
				Bench: benchOptions(cmd.OutOrStdout(), announce)}
			if announce {
				o.Ready = func(addr string) { fmt.Fprintln(cmd.OutOrStdout(), "listening", addr) }
			}
			return daemon.Run(cmd.Context(), st, o)
		},
	}
	addConfdirFlag(cmd, &dir)
	cmd.Flags().StringVar(&logLevel, "log-level", "info", "log level: debug, info, warn or error")
	cmd.Flags().StringVar(&cpuProfile, "cpu-profile", "", "write a CPU profile of the run to this file (for performance work)")
	cmd.Flags().DurationVar(&dbWait, "db-wait", defaultDBWait, "how long to wait at start for the database to accept connections (0: try once)")
	cmd.Flags().BoolVar(&announce, "announce", false, `print "listening ADDR" on standard output once serving`)
	cmd.Flags().StringVar(&auditSync, "audit-sync", audit.SyncWrite, `when a journal record counts as written: "write" (in the file; flushed to disk within 100 ms) or "fsync" (flushed before the answer)`)
	cmd.Flags().DurationVar(&checkpointEvery, "audit-checkpoint-every", audit.CheckpointEvery, "how often the audit chains' heads are signed (sooner after 10,000 records)")
	benchOptions = serverBenchFlags(cmd)
	return cmd
}
