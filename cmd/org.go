package cmd

import (
	"context"
	"encoding/json"
	"fmt"
	"io"

	"github.com/spf13/cobra"

	"trustee.dev/trustee/server/config"
	"trustee.dev/trustee/server/localdb"
	"trustee.dev/trustee/server/orgadmin"
	"trustee.dev/trustee/server/store"
)

func newOrgCommand() *cobra.Command {
	var dir string
	cmd := &cobra.Command{
		Use:     "org",
		Aliases: []string{"keytrustee-orgtool"},
		Short:   "Administer organizations and their clients (keytrustee-orgtool)",
		Long: `org administers organizations directly in the server's database; it is
also what the binary does when called as keytrustee-orgtool.

Auth codes are stored only as salted hashes: list shows "<hidden>" for a set
code and "" for a blank one. A new organization gets a random code that is
never shown; choose the code you hand to clients with set-auth.`,
	}
	cmd.PersistentFlags().StringVarP(&dir, "confdir", "", defaultConfdir(), "server state directory (env KTS_CONFDIR)")
	var cfg config.Config // the state directory's, while a command runs
	withStore := func(run func(ctx context.Context, cmd *cobra.Command, db *store.Store) error) func(*cobra.Command, []string) error {
		return func(cmd *cobra.Command, _ []string) error {
			return localdb.Change(cmd.Context(), dir, func(ctx context.Context, db *store.Store, c config.Config) error {
				cfg = c
				return run(ctx, cmd, db)
			})
		}
	}

	var name, contacts, secret, fingerprint string
	add := &cobra.Command{
		Use:   "add -n NAME -c CONTACTS",
		Short: "Add an organization, or add administrator contacts to an existing one",
		Args:  cobra.NoArgs,
		RunE: withStore(func(ctx context.Context, cmd *cobra.Command, db *store.Store) error {
			res, err := (&orgadmin.Admin{Store: db, LinkBase: cfg.LinkBase()}).AddListed(ctx, name, contacts)
			for _, l := range res.InvitedLines() {
				fmt.Fprintln(cmd.OutOrStdout(), l)
			}
			if err != nil {
				return err
			}
			fmt.Fprintln(cmd.OutOrStdout(), res.Summary())
			return nil
		}),
	}
	add.Flags().StringVarP(&name, "name", "n", "", "organization name (letters, digits, - and _)")
	add.Flags().StringVarP(&contacts, "contacts", "c", "", "comma-separated administrator e-mail addresses, no spaces")

	list := &cobra.Command{
		Use:   "list",
		Short: "List organizations as JSON",
		Args:  cobra.NoArgs,
		RunE: withStore(func(ctx context.Context, cmd *cobra.Command, db *store.Store) error {
			orgs, err := orgadmin.List(ctx, db)
			if err != nil {
				return err
			}
			return writeJSONOut(cmd.OutOrStdout(), orgs)
		}),
	}

	setAuth := &cobra.Command{
		Use:   "set-auth -n NAME -s SECRET",
		Short: `Set an organization's auth code ("" for none; "-" reads it from standard input)`,
		Args:  cobra.NoArgs,
		RunE: withStore(func(ctx context.Context, cmd *cobra.Command, db *store.Store) error {
			code, err := orgadmin.CodeArg(secret, cmd.Flags().Changed("secret"), cmd.InOrStdin())
			if err != nil {
				return err
			}
			if err := (&orgadmin.Admin{Store: db}).SetAuthCode(ctx, name, code); err != nil {
				return err
			}
			fmt.Fprintln(cmd.OutOrStdout(), orgadmin.AuthCodeLine(name, code))
			return nil
		}),
	}
	setAuth.Flags().StringVarP(&name, "name", "n", "", "organization name")
	setAuth.Flags().StringVarP(&secret, "secret", "s", "", "new auth code")

	stateCommand := func(use, short string, to store.ClientState) *cobra.Command {
		c := &cobra.Command{
			Use:   use + " --fingerprint FINGERPRINT",
			Short: short,
			Args:  cobra.NoArgs,
			RunE: withStore(func(ctx context.Context, cmd *cobra.Command, db *store.Store) error {
				fp, err := orgadmin.FingerprintFlag(fingerprint)
				if err != nil {
					return err
				}
				prev, err := (&orgadmin.Admin{Store: db}).SetClientState(ctx, "", fp, to)
				if err != nil {
					return err
				}
				fmt.Fprintf(cmd.OutOrStdout(), "client %s is %s (was %s)\n", fp, to, prev)
				return nil
			}),
		}
		c.Flags().StringVar(&fingerprint, "fingerprint", "", "the client's OpenPGP fingerprint (40 hex digits)")
		return c
	}

	clients := &cobra.Command{
		Use:   "list-clients",
		Short: "List the clients of every organization, or of one with -n",
		Args:  cobra.NoArgs,
		RunE: withStore(func(ctx context.Context, cmd *cobra.Command, db *store.Store) error {
			cs, err := db.Clients(ctx, name)
			if err != nil {
				return err
			}
			return writeJSONOut(cmd.OutOrStdout(), orgadmin.ClientListing(cs))
		}),
	}
	clients.Flags().StringVarP(&name, "name", "n", "", "only this organization")

	var expiration string
	setExpiration := &cobra.Command{
		Use:   "set-expiration -n NAME -e TIME",
		Short: `Set when an organization expires (RFC 3339, e.g. 2027-06-30T00:00:00Z, or "never"); its clients are refused from then on`,
		Args:  cobra.NoArgs,
		RunE: withStore(func(ctx context.Context, cmd *cobra.Command, db *store.Store) error {
			t, err := orgadmin.ParseExpiration(expiration)
			if err != nil {
				return err
			}
			if err := db.SetExpiration(ctx, name, t); err != nil {
				return err
			}
			fmt.Fprintf(cmd.OutOrStdout(), "organization %s expires %s\n", name, t.UTC().Format(orgadmin.TimeLayout))
			return nil
		}),
	}
	setExpiration.Flags().StringVarP(&name, "name", "n", "", "organization name")
	setExpiration.Flags().StringVarP(&expiration, "expiration", "e", "", `expiration time, RFC 3339 ("2027-06-30T00:00:00Z"), or "never"`)

	outbox := &cobra.Command{
		Use:   "outbox",
		Short: "List the mail waiting to be sent (recipient, subject, attempts, last error) as JSON",
		Args:  cobra.NoArgs,
		RunE: withStore(func(ctx context.Context, cmd *cobra.Command, db *store.Store) error {
			pending, err := db.PendingMail(ctx)
			if err != nil {
				return err
			}
			if pending == nil {
				pending = []store.Mail{}
			}
			return writeJSONOut(cmd.OutOrStdout(), pending)
		}),
	}

	cmd.AddCommand(add, list, setAuth, setExpiration, clients, outbox,
		stateCommand("enable-client", "Enable a client that is pending or disabled", store.StateActive),
		stateCommand("disable-client", "Disable a client; it gets 403 from then on", store.StateDisabled))
	return cmd
}

func writeJSONOut(w io.Writer, v any) error {
	enc := json.NewEncoder(w)
	enc.SetIndent("", "    ")
	return enc.Encode(v)
}
