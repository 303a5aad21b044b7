package cmd

import (
	"context"
	"fmt"
	"io"

	"github.com/spf13/cobra"

	"trustee.dev/trustee/server/confdir"
	"trustee.dev/trustee/server/config"
	"trustee.dev/trustee/server/pg"
)

func newDBCommand() *cobra.Command {
	var dir, runAs, role string
	cmd := &cobra.Command{
		Use:   "db",
		Short: "Manage the server's local PostgreSQL instance (ktadmin db)",
		Long: `db owns the PostgreSQL 15 instance that stores the server's data, in the
state directory (DB_DATA_DIR, default "db") on DB_PORT (default 11381).

PostgreSQL refuses to run as root: when run by root, PostgreSQL runs as the
--run-as account, which owns only its data directory (and socket directory).
The state directory stays root's, and that account may only pass through it
(mode 0710, its group). init, start and run take back a state directory
that account owns, as older versions left it, and refuse to go on when
another account can change keytrustee.conf, a key, a program the
configuration runs, or the directory holding one.`,
	}
	cmd.PersistentFlags().StringVarP(&dir, "confdir", "c", defaultConfdir(), "server state directory (env KTS_CONFDIR)")
	cmd.PersistentFlags().StringVar(&runAs, "run-as", pg.DefaultRunAs, "account that runs PostgreSQL when kts runs as root")
	cmd.PersistentFlags().StringVar(&role, "role", "", "with init: active or passive, to set up the pair's replication")

	instance := func() (*pg.Instance, config.Config, error) { return confdir.OpenInstance(dir, runAs) }
	prepared := func(out io.Writer) (*pg.Instance, config.Config, error) {
		return confdir.PreparedInstance(out, dir, runAs)
	}
	cmd.AddCommand(
		&cobra.Command{
			Use:   "init",
			Short: "Create the PostgreSQL cluster (--role active|passive for the pair)",
			Long: `init creates the PostgreSQL cluster of a single server. For the pair:
--role active (on the active) also creates the replication account and slot
and makes every commit wait for the passive (synchronous replication);
--role passive (on a passive made with kts init --from-active) copies the
active's database with pg_basebackup and runs it as a hot standby.`,
			Args: cobra.NoArgs,
			RunE: func(cmd *cobra.Command, _ []string) error {
				inst, cfg, err := prepared(cmd.OutOrStdout())
				if err != nil {
					return err
				}
				return confdir.InitDBRole(cmd.Context(), cmd.OutOrStdout(), dir, cfg, inst, role, runAs)
			},
		},
		&cobra.Command{
			Use:   "reseed",
			Short: "Copy the active's database anew onto this passive (after it fell too far behind)",
			Long: `reseed is for a passive whose replication slot on the active is gone (it was
down too long): it stops the passive's PostgreSQL, keeps the old data
directory under a new name, and copies the active's database again.`,
			Args: cobra.NoArgs,
			RunE: func(cmd *cobra.Command, _ []string) error {
				inst, cfg, err := prepared(cmd.OutOrStdout())
				if err != nil {
					return err
				}
				if err := confdir.Reseed(cmd.Context(), dir, cfg, inst); err != nil {
					return err
				}
				fmt.Fprintln(cmd.OutOrStdout(), "re-seeded from the active; start it with `kts db start`")
				return nil
			},
		},
		&cobra.Command{
			Use:   "start",
			Short: "Start PostgreSQL in the background",
			Args:  cobra.NoArgs,
			RunE: func(cmd *cobra.Command, _ []string) error {
				inst, _, err := prepared(cmd.OutOrStdout())
				if err != nil {
					return err
				}
				if err := inst.Start(cmd.Context()); err != nil {
					return err
				}
				fmt.Fprintf(cmd.OutOrStdout(), "PostgreSQL is running on %s:%d\n", inst.Host, inst.Port)
				return nil
			},
		},
		&cobra.Command{
			Use:   "run",
			Short: "Run PostgreSQL in the foreground until SIGTERM or SIGINT, which stop it fast",
			Long: `run runs PostgreSQL in the foreground, as a container's process does: its
log goes to standard error, SIGTERM and SIGINT shut it down fast (open
transactions are rolled back), SIGHUP makes it re-read its configuration, and
the exit status is PostgreSQL's. Like start, it writes Trustee's PostgreSQL
configuration first. With DB_TLS, it makes PostgreSQL re-read its certificate
and key when their files change (checked every second).`,
			Args: cobra.NoArgs,
			RunE: func(cmd *cobra.Command, _ []string) error {
				inst, _, err := prepared(cmd.ErrOrStderr())
				if err != nil {
					return err
				}
				return runDB(cmd.Context(), cmd.ErrOrStderr(), inst)
			},
		},
		&cobra.Command{
			Use:   "reload",
			Short: "Make the running PostgreSQL re-read its configuration and TLS certificate",
			Long: `reload makes the running PostgreSQL re-read its configuration files and, with
DB_TLS, its certificate and key (SSL_CERTIFICATE, SSL_PRIVATE_KEY): run it
after replacing them when PostgreSQL was started with start. kts db run
reloads by itself when they change.`,
			Args: cobra.NoArgs,
			RunE: func(cmd *cobra.Command, _ []string) error {
				inst, _, err := instance()
				if err != nil {
					return err
				}
				if err := inst.Reload(cmd.Context()); err != nil {
					return err
				}
				fmt.Fprintln(cmd.OutOrStdout(), "PostgreSQL re-reads its configuration")
				return nil
			},
		},
		&cobra.Command{
			Use:   "stop",
			Short: "Stop PostgreSQL (fast shutdown)",
			Args:  cobra.NoArgs,
			RunE: func(cmd *cobra.Command, _ []string) error {
				inst, _, err := instance()
				if err != nil {
					return err
				}
				if err := inst.Stop(cmd.Context()); err != nil {
					return err
				}
				fmt.Fprintln(cmd.OutOrStdout(), "PostgreSQL is stopped")
				return nil
			},
		},
		&cobra.Command{
			Use:   "status",
			Short: "Report whether PostgreSQL runs (exit status 3 when it does not)",
			Args:  cobra.NoArgs,
			RunE: func(cmd *cobra.Command, _ []string) error {
				inst, _, err := instance()
				if err != nil {
					return err
				}
				st, err := inst.Status(cmd.Context())
				if err != nil {
					return err
				}
				if !st.Running {
					fmt.Fprintf(cmd.OutOrStdout(), "PostgreSQL is not running (data directory %s)\n", st.DataDir)
					return exitError(3)
				}
				fmt.Fprintf(cmd.OutOrStdout(), "PostgreSQL is running: pid %d, port %d, data directory %s\n", st.PID, st.Port, st.DataDir)
				return nil
			},
		},
	)
	return cmd
}

// runDB runs PostgreSQL in the foreground (pg.Instance.RunForeground); a
// failure exit of PostgreSQL becomes kts's exit status.
func runDB(ctx context.Context, log io.Writer, inst *pg.Instance) error {
	err := inst.RunForeground(ctx, log)
	code, failed := pg.ExitStatus(err)
	if !failed {
		return err
	}
	fmt.Fprintf(log, "kts db run: %v\n", err)
	return exitError(code)
}
