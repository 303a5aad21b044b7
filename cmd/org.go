package cmd

import (
	"bufio"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"strings"

	"github.com/spf13/cobra"

	"trustee.dev/trustee/server/config"
	"trustee.dev/trustee/server/localdb"
	"trustee.dev/trustee/server/org"
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
	withStore := func(run func(ctx context.Context, cmd *cobra.Command, db *store.Store) error) func(*cobra.Command, []string) error {
		return func(cmd *cobra.Command, _ []string) error {
			return localdb.Change(cmd.Context(), dir, func(ctx context.Context, db *store.Store) error { return run(ctx, cmd, db) })
		}
	}

	var name, contacts, secret, fingerprint string
	add := &cobra.Command{
		Use:   "add -n NAME -c CONTACTS",
		Short: "Add an organization, or add administrator contacts to an existing one",
		Args:  cobra.NoArgs,
		RunE: withStore(func(ctx context.Context, cmd *cobra.Command, db *store.Store) error {
			if err := org.ValidateName(name); err != nil {
				return err
			}
			list, err := org.ParseContacts(contacts)
			if err != nil {
				return err
			}
			cfg, err := config.Load(dir)
			if err != nil {
				return err
			}
			res, err := (&orgadmin.Admin{Store: db, LinkBase: cfg.LinkBase()}).Add(ctx, name, list)
			for _, c := range res.Invited {
				fmt.Fprintf(cmd.OutOrStdout(), "queued the contact registration mail to %s\n", c)
			}
			if err != nil {
				return err
			}
			o, created := res.Org, res.Created
			if created {
				fmt.Fprintf(cmd.OutOrStdout(), "organization %s created with contacts %s; set the auth code clients will use with: set-auth -n %s -s CODE\n",
					o.Name, strings.Join(o.Contacts, ","), o.Name)
			} else {
				fmt.Fprintf(cmd.OutOrStdout(), "organization %s now has contacts %s\n", o.Name, strings.Join(o.Contacts, ","))
			}
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
			orgs, err := db.Organizations(ctx)
			if err != nil {
				return err
			}
			keys := map[string]map[string]string{}
			for _, o := range orgs {
				if keys[o.Name], err = db.ContactKeys(ctx, o.Name); err != nil {
					return err
				}
			}
			return writeJSONOut(cmd.OutOrStdout(), orgadmin.OrgListing(orgs, keys))
		}),
	}

	setAuth := &cobra.Command{
		Use:   "set-auth -n NAME -s SECRET",
		Short: `Set an organization's auth code ("" for none; "-" reads it from standard input)`,
		Args:  cobra.NoArgs,
		RunE: withStore(func(ctx context.Context, cmd *cobra.Command, db *store.Store) error {
			if !cmd.Flags().Changed("secret") {
				return fmt.Errorf(`give the new code with -s SECRET, -s "" for none, or -s - to read it from standard input`)
			}
			if secret == "-" {
				line, err := bufio.NewReader(cmd.InOrStdin()).ReadString('\n')
				if err != nil && err != io.EOF {
					return err
				}
				secret = strings.TrimRight(line, "\r\n")
			}
			if err := (&orgadmin.Admin{Store: db}).SetAuthCode(ctx, name, secret); err != nil {
				return err
			}
			if secret == "" {
				fmt.Fprintf(cmd.OutOrStdout(), "organization %s now requires no auth code: new clients are activated at once\n", name)
			} else {
				fmt.Fprintf(cmd.OutOrStdout(), "auth code of organization %s updated\n", name)
			}
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
