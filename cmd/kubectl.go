package cmd

import (
	"context"
	"time"

	"github.com/spf13/cobra"

	"trustee.dev/trustee/controllers/kubeplugin"
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
	// command is a subcommand that connects, then runs run.
	command := func(use, short string, args cobra.PositionalArgs, run func(context.Context, *kubeplugin.Plugin, []string) error) *cobra.Command {
		return &cobra.Command{Use: use, Short: short, Args: args, RunE: func(cmd *cobra.Command, args []string) error {
			p, err := kubeplugin.Connect(conn, cmd.OutOrStdout())
			if err != nil {
				return err
			}
			return run(cmd.Context(), p, args)
		}}
	}

	status := command("status NAME", "The KeyTrusteeServer NAME at a glance: members, conditions to look at, backups, organizations",
		cobra.ExactArgs(1), func(ctx context.Context, p *kubeplugin.Plugin, args []string) error { return p.Status(ctx, args[0]) })

	var w waitFlags
	var to string
	switchover := command("switchover NAME", "Make the passive (or --to a|b) the active of the KeyTrusteeServer NAME, and follow the operator until it serves",
		cobra.ExactArgs(1), func(ctx context.Context, p *kubeplugin.Plugin, args []string) error {
			return p.Switchover(ctx, args[0], to, w.wait, w.timeout)
		})
	switchover.Long = `switchover sets spec.activeMember of the KeyTrusteeServer and, with --wait
(the default), prints each step the operator reports (fencing, promoting,
rejoining) until the new active serves. It refuses, changing nothing, a
server without high availability, a member that is already the active, and a
pair that is not ready and in sync.`
	switchover.Flags().StringVar(&to, "to", "", "the member to make the active, a or b (default: the passive)")
	w.add(switchover, true, 10*time.Minute)

	var bw waitFlags
	backup := command("backup SCHEDULE", "Back up now: a Job from the BackupSchedule's CronJob (as kubectl create job --from=cronjob/...)",
		cobra.ExactArgs(1), func(ctx context.Context, p *kubeplugin.Plugin, args []string) error {
			return p.Backup(ctx, args[0], bw.wait, bw.timeout)
		})
	bw.add(backup, false, 30*time.Minute)

	var dw waitFlags
	var decryptionKey string
	drill := command("drill SCHEDULE [ARCHIVE]", "A restore drill (kts backup verify) of the BackupSchedule's last archive, or of ARCHIVE, in a Job on its CronJob's pod template",
		cobra.RangeArgs(1, 2), func(ctx context.Context, p *kubeplugin.Plugin, args []string) error {
			archive := ""
			if len(args) == 2 {
				archive = args[1]
			}
			return p.Drill(ctx, args[0], archive, decryptionKey, dw.wait, dw.timeout)
		})
	drill.Flags().StringVar(&decryptionKey, "decryption-key", "", "SECRET/KEY: the Secret key holding the secret key that opens the archive (default: spec.verify.decryptionKeyRef)")
	dw.add(drill, false, 30*time.Minute)

	cmd.AddCommand(status, switchover, backup, drill)
	return cmd
}

// waitFlags are --wait and --timeout of a command that can wait.
type waitFlags struct {
	wait    bool
	timeout time.Duration
}

func (w *waitFlags) add(cmd *cobra.Command, waitDefault bool, timeoutDefault time.Duration) {
	cmd.Flags().BoolVar(&w.wait, "wait", waitDefault, "wait until it is done, printing progress")
	cmd.Flags().DurationVar(&w.timeout, "timeout", timeoutDefault, "with --wait: how long to wait")
}
