package cmd

import (
	"errors"
	"fmt"
	"os"

	"github.com/spf13/cobra"

	"trustee.dev/trustee/server/member"
	"trustee.dev/trustee/server/member/contract"
	"trustee.dev/trustee/server/pg"
)

func newMemberCommand() *cobra.Command {
	cmd := &cobra.Command{
		Use:   "member",
		Short: "Prepare a member of the pair as a Kubernetes pod runs it",
	}
	cmd.AddCommand(newMemberSetupCommand())
	return cmd
}

func newMemberSetupCommand() *cobra.Command {
	return memberSetupCommand(&member.Options{})
}

// memberSetupCommand is kts member setup, whose flags fill o.
func memberSetupCommand(o *member.Options) *cobra.Command {
	cmd := &cobra.Command{
		Use:   "setup",
		Short: "Install a member's keytrustee.conf and make its PostgreSQL ready (a pod's init container)",
		Long: `setup prepares one member of the pair, as the init container of its pod does.

It installs --config, a complete keytrustee.conf whose ROLE is --member and
whose files are absolute paths on the mounted Secrets, as keytrustee.conf in
--confdir (created 0700), after checking that every file it names can be
read. Then it makes PostgreSQL ready:

  active   creates the cluster on first start; with STANDBY_NAME set, creates
           (or brings up to date) the replication account and slot and makes
           every commit wait for the passive.
  passive  on first start copies the active's cluster (ACTIVE_DB) with
           pg_basebackup, trying again until the active answers and saying
           what it waits for; on later starts it copies the active anew only
           when the copy can no longer follow it (its replication slot is
           gone), keeping the old data directory beside the new one.

With HSM_MODULE set, it opens the token with its PIN before it changes
anything, and then sets up the keys that wrap deposits in it, leaving the
identity files as they are (HSM_SEAL_STATE false: they stay in their Secret)
and keytrustee.conf as given:

  active   adopts the deposit key the database records as current, or else
           creates kts-kek-1 in the token (adopting it if the token has it)
           and records it; then re-wraps every deposit another key wraps
           (the file keyring's, when the HSM is added to a server with
           deposits), as kts keyhsm migrate does.
  passive  checks that the token holds kts-kek-1, the active's: it creates
           no key.

A second run changes nothing. PostgreSQL is left stopped: kts db run runs it.

--created-marker names a file that exists once this server's database was
first created (the operator keeps it in the identity Secret). An active whose
volume holds no cluster but whose marker exists refuses to create an empty
one: its data was lost, and an empty active would be what the passive copies
next. Bring the volume back, or restore from a backup.

A member's role changes only with a switchover, which the operator records
in --active-marker (a file naming the active member, a or b; absent means
a) after it has fenced the old active. With --name, setup then accepts the
new role of a state directory installed for the other one:

  active   promotes its copy of the old active's cluster (pg_ctl promote):
           it holds every write the old active acknowledged.
  passive  moves its cluster, the old active's, aside (nothing is deleted)
           and copies the new active's.

Without the marker agreeing, a standby's cluster is never promoted and a
primary's never replaced.

With --restore-archive (the operator's spec.bootstrap), an active whose
volume holds no cluster yet creates it and loads the archive's database,
decrypted with --restore-key when it is encrypted, before anything else:
the new server starts with the backed-up organizations, clients and
deposits. Until that load has finished, a later run starts it over. An
existing cluster is never touched by it.

With --config-only it installs and checks the configuration as above and
stops there: it neither creates, copies nor looks at a PostgreSQL cluster.
That is the init container of a backup Job's pod, which has no database of
its own: its configuration names the member's PostgreSQL (DB_HOST, DB_PORT),
which kts backup then reads over the network.`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			err := o.Run(cmd.Context(), cmd.OutOrStdout())
			if errors.Is(err, member.ErrVolumeLost) {
				fmt.Fprintln(os.Stderr, "Error:", err)
				return exitError(contract.ExitVolumeLost)
			}
			return err
		},
	}
	f := cmd.Flags()
	f.StringVar(&o.Member, contract.FlagMember, "", "which member this is: active or passive")
	f.StringVar(&o.ConfigFile, contract.FlagConfig, "", "the member's keytrustee.conf, as rendered by the operator")
	f.StringVarP(&o.Dir, contract.FlagConfdir, "c", defaultConfdir(), "server state directory (env KTS_CONFDIR)")
	f.StringVar(&o.RunAs, "run-as", pg.DefaultRunAs, "account that runs PostgreSQL when kts runs as root")
	f.StringVar(&o.CreatedMarker, contract.FlagCreatedMarker, "", "a file that exists once this server's database was created: an active with an empty volume then refuses to start empty")
	f.StringVar(&o.Name, contract.FlagName, "", "this member's name in the pair (a or b), for --active-marker")
	f.StringVar(&o.ActiveMarker, contract.FlagActiveMarker, "", "a file naming the active member (a or b; absent: a): a change of role that agrees with it is carried out")
	f.StringVar(&o.RestoreArchive, contract.FlagRestoreArchive, "", "a backup archive whose database a new active's cluster starts with")
	f.StringVar(&o.RestoreKey, contract.FlagRestoreKey, "", "the secret key file that decrypts --restore-archive")
	f.BoolVar(&o.ConfigOnly, contract.FlagConfigOnly, false, "only install and check the configuration; touch no PostgreSQL (a backup Job's pod)")
	cmd.MarkFlagRequired(contract.FlagMember)
	cmd.MarkFlagRequired(contract.FlagConfig)
	return cmd
}
