package cmd

import (
	"time"

	"github.com/spf13/cobra"

	"trustee.dev/trustee/cmd/kubeplugin"
)

// kubectlPlugin is the name kubectl runs the binary by, for `kubectl
// trustee`, once a link of that name is on PATH.
const kubectlPlugin = "kubectl-trustee"

func newKubectlCommand() *cobra.Command {
	var conn kubeplugin.Connection
	cmd := &cobra.Command{
		Use:     "kubectl",
		Aliases: []string{"trustee"},
		Short:   "kubectl trustee: a pair's status, switchover, a backup now, a restore drill",
		Long: `The kubectl plugin "kubectl trustee": make a link named
kubectl-trustee to kts on PATH (make build puts one in bin/), then run
kubectl trustee status NAME, and so on. It connects as kubectl does: --kubeconfig,
$KUBECONFIG or ~/.kube/config, --context, and -n/--namespace (by default the
context's namespace). See docs/OPERATOR.md "kubectl trustee".`,
	}
	fl := cmd.PersistentFlags()
	fl.StringVar(&conn.Kubeconfig, "kubeconfig", "", "the kubeconfig file (default: $KUBECONFIG, then ~/.kube/config)")
	fl.StringVar(&conn.Context, "context", "", "the kubeconfig context (default: the current one)")
	fl.StringVarP(&conn.Namespace, "namespace", "n", "", "the namespace (default: the context's)")
	connect := func(cmd *cobra.Command) (*kubeplugin.Plugin, error) {
		return kubeplugin.Connect(conn, cmd.OutOrStdout())
	}

	status := &cobra.Command{
		Use:   "status NAME",
		Short: "The KeyTrusteeServer NAME at a glance: members, conditions to look at, backups, organizations",
		Args:  cobra.ExactArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			p, err := connect(cmd)
			if err != nil {
				return err
			}
			return p.Status(cmd.Context(), args[0])
		},
	}

	var (
		to      string
		wait    bool
		timeout time.Duration
	)
	switchover := &cobra.Command{
		Use:   "switchover NAME",
		Short: "Make the passive (or --to a|b) the active of the KeyTrusteeServer NAME, and follow the operator until it serves",
		Long: `switchover sets spec.activeMember of the KeyTrusteeServer and, with --wait
(the default), prints each step the operator reports (fencing, promoting,
rejoining) until the new active serves. It refuses, changing nothing, a
server without high availability, a member that is already the active, and a
pair that is not ready and in sync.`,
		Args: cobra.ExactArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			p, err := connect(cmd)
			if err != nil {
				return err
			}
			return p.Switchover(cmd.Context(), args[0], to, wait, timeout)
		},
	}
	switchover.Flags().StringVar(&to, "to", "", "the member to make the active, a or b (default: the passive)")
	addWaitFlags(switchover, &wait, &timeout, true, 10*time.Minute)

	var backupWait bool
	var backupTimeout time.Duration
	backup := &cobra.Command{
		Use:   "backup SCHEDULE",
		Short: "Back up now: a Job from the BackupSchedule's CronJob (as kubectl create job --from=cronjob/...)",
		Args:  cobra.ExactArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			p, err := connect(cmd)
			if err != nil {
				return err
			}
			return p.Backup(cmd.Context(), args[0], backupWait, backupTimeout)
		},
	}
	addWaitFlags(backup, &backupWait, &backupTimeout, false, 30*time.Minute)

	var drillWait bool
	var drillTimeout time.Duration
	drill := &cobra.Command{
		Use:   "drill SCHEDULE [ARCHIVE]",
		Short: "A restore drill (kts backup verify) of the BackupSchedule's last archive, or of ARCHIVE, in a Job on its CronJob's pod template",
		Args:  cobra.RangeArgs(1, 2),
		RunE: func(cmd *cobra.Command, args []string) error {
			p, err := connect(cmd)
			if err != nil {
				return err
			}
			archive := ""
			if len(args) == 2 {
				archive = args[1]
			}
			return p.Drill(cmd.Context(), args[0], archive, drillWait, drillTimeout)
		},
	}
	addWaitFlags(drill, &drillWait, &drillTimeout, false, 30*time.Minute)

	cmd.AddCommand(status, switchover, backup, drill)
	return cmd
}

func addWaitFlags(cmd *cobra.Command, wait *bool, timeout *time.Duration, waitDefault bool, timeoutDefault time.Duration) {
	cmd.Flags().BoolVar(wait, "wait", waitDefault, "wait until it is done, printing progress")
	cmd.Flags().DurationVar(timeout, "timeout", timeoutDefault, "with --wait: how long to wait")
}
