package cmd

import (
	"context"
	"fmt"
	"os"
	"os/user"
	"strconv"

	"github.com/spf13/cobra"

	"trustee.dev/trustee/server/confdir"
	"trustee.dev/trustee/server/config"
	"trustee.dev/trustee/server/pg"
)

func newDBCommand() *cobra.Command {
	var dir, runAs string
	cmd := &cobra.Command{
		Use:   "db",
		Short: "Manage the server's local PostgreSQL instance (ktadmin db)",
		Long: `db owns the PostgreSQL 15 instance that stores the server's data, in the
state directory (DB_DATA_DIR, default "db") on DB_PORT (default 11381).

PostgreSQL refuses to run as root: when run by root, PostgreSQL runs as the
--run-as account, which is given the state directory itself (not its files,
which stay readable by root only) so that it can reach its data directory.`,
	}
	cmd.PersistentFlags().StringVarP(&dir, "confdir", "c", defaultConfdir(), "server state directory (env KTS_CONFDIR)")
	cmd.PersistentFlags().StringVar(&runAs, "run-as", pg.DefaultRunAs, "account that runs PostgreSQL when kts runs as root")

	instance := func() (*pg.Instance, config.Config, error) {
		cfg, err := config.Load(dir)
		if err != nil {
			return nil, cfg, fmt.Errorf("%w (run `kts init --confdir %s` first)", err, dir)
		}
		return &pg.Instance{DataDir: cfg.Path(dir, cfg.DBDataDir), Host: cfg.DBHost, Port: cfg.DBPort, User: cfg.DBUser, RunAs: runAs}, cfg, nil
	}
	cmd.AddCommand(
		&cobra.Command{
			Use:   "init",
			Short: "Create the PostgreSQL cluster and the keytrustee database",
			Args:  cobra.NoArgs,
			RunE: func(cmd *cobra.Command, _ []string) error {
				inst, cfg, err := instance()
				if err != nil {
					return err
				}
				if inst.Initialized() {
					fmt.Fprintf(cmd.OutOrStdout(), "PostgreSQL cluster in %s already exists; nothing changed\n", inst.DataDir)
					return nil
				}
				return initDB(cmd.Context(), dir, cfg, inst)
			},
		},
		&cobra.Command{
			Use:   "start",
			Short: "Start PostgreSQL in the background",
			Args:  cobra.NoArgs,
			RunE: func(cmd *cobra.Command, _ []string) error {
				inst, _, err := instance()
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

// initDB creates the cluster of a state directory. When run by root, the
// PostgreSQL account gets the state directory itself so it can reach the
// data directory inside it.
func initDB(ctx context.Context, dir string, cfg config.Config, inst *pg.Instance) error {
	if os.Geteuid() == 0 {
		if err := chownTo(dir, inst.RunAs); err != nil {
			return err
		}
	}
	pw, err := confdir.ReadDBPassword(dir, cfg)
	if err != nil {
		return err
	}
	if err := inst.Init(ctx, pw); err != nil {
		return err
	}
	fmt.Printf("created PostgreSQL cluster in %s (port %d)\n", inst.DataDir, inst.Port)
	return nil
}

func chownTo(path, account string) error {
	u, err := user.Lookup(account)
	if err != nil {
		return fmt.Errorf("account %q for PostgreSQL: %w (create it with `useradd --system %s` or pass --run-as)", account, err, account)
	}
	uid, _ := strconv.Atoi(u.Uid)
	gid, _ := strconv.Atoi(u.Gid)
	return os.Chown(path, uid, gid)
}
