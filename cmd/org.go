package cmd

import (
	"bufio"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"strings"
	"time"

	"github.com/spf13/cobra"

	"trustee.dev/trustee/server/config"
	"trustee.dev/trustee/server/localdb"
	"trustee.dev/trustee/server/org"
	"trustee.dev/trustee/server/orgadmin"
	"trustee.dev/trustee/server/store"
)

// hiddenSecret stands where the reference tool prints the auth code: codes
// are stored only as hashes and can't be shown.
const hiddenSecret = "<hidden>"

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
			// In a pair a change commits only once the passive confirms it.
			ctx, cancel := context.WithTimeout(cmd.Context(), adminTimeout)
			defer cancel()
			db, err := localdb.Open(ctx, dir)
			if err != nil {
				return err
			}
			defer db.Close()
			err = run(ctx, cmd, db)
			if cfg, cerr := config.Load(dir); cerr == nil {
				err = orgadmin.OnPassive(err, cfg.ActiveURL, cfg.ActiveDB)
			}
			if errors.Is(err, context.DeadlineExceeded) {
				return fmt.Errorf("the database did not confirm within %v; if this server is the active of a pair, is the passive running? The change may or may not have been applied: check with list", adminTimeout)
			}
			return err
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
			return writeOrgList(cmd.OutOrStdout(), orgs, keys)
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
				fp, err := normalizeFingerprint(fingerprint)
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
			out := make([]map[string]any, len(cs))
			for i, c := range cs {
				out[i] = map[string]any{"fingerprint": c.Fingerprint, "key_id": c.KeyID, "org": c.OrgName,
					"state": c.State, "registered": c.Registered.UTC().Format(orgTimeLayout), "source": c.SourceAddr}
			}
			return writeJSONOut(cmd.OutOrStdout(), out)
		}),
	}
	clients.Flags().StringVarP(&name, "name", "n", "", "only this organization")

	var expiration string
	setExpiration := &cobra.Command{
		Use:   "set-expiration -n NAME -e TIME",
		Short: `Set when an organization expires (RFC 3339, e.g. 2027-06-30T00:00:00Z, or "never"); its clients are refused from then on`,
		Args:  cobra.NoArgs,
		RunE: withStore(func(ctx context.Context, cmd *cobra.Command, db *store.Store) error {
			t, err := parseExpiration(expiration)
			if err != nil {
				return err
			}
			if err := db.SetExpiration(ctx, name, t); err != nil {
				return err
			}
			fmt.Fprintf(cmd.OutOrStdout(), "organization %s expires %s\n", name, t.UTC().Format(orgTimeLayout))
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

// adminTimeout bounds an administration command.
const adminTimeout = 30 * time.Second

const orgTimeLayout = "2006-01-02T15:04:05"

// writeOrgList prints organizations keyed by name, in the reference tool's shape.
// writeOrgList prints organizations as the reference tool does; key_info
// maps the contacts who registered an OpenPGP key to its fingerprint (null
// when none did).
func writeOrgList(w io.Writer, orgs []store.Organization, contactKeys map[string]map[string]string) error {
	out := make(map[string]any, len(orgs))
	for _, o := range orgs {
		secret := hiddenSecret
		if o.AuthHash == "" {
			secret = ""
		}
		var keyInfo any
		if len(contactKeys[o.Name]) > 0 {
			keyInfo = contactKeys[o.Name]
		}
		contacts := o.Contacts
		if contacts == nil {
			contacts = []string{}
		}
		out[o.Name] = map[string]any{
			"auth_secret": secret,
			"contacts":    contacts,
			"creation":    o.Creation.UTC().Format(orgTimeLayout),
			"expiration":  o.Expiration.UTC().Format(orgTimeLayout),
			"key_info":    keyInfo,
			"name":        o.Name,
			"state":       o.State,
			"uuid":        o.UUID,
		}
	}
	return writeJSONOut(w, out)
}

func writeJSONOut(w io.Writer, v any) error {
	enc := json.NewEncoder(w)
	enc.SetIndent("", "    ")
	return enc.Encode(v)
}

// normalizeFingerprint accepts a fingerprint with spaces or lower case, as
// gpg prints it, and returns 40 upper-case hex digits.
func normalizeFingerprint(s string) (string, error) {
	fp, err := orgadmin.ParseFingerprint(s)
	if err != nil {
		return "", fmt.Errorf("--fingerprint %q: want the client's 40-hex-digit OpenPGP fingerprint (see list-clients)", s)
	}
	return fp, nil
}

// openAdminStore connects to the database of a state directory, as the
// administrator tools do: directly, never through the client API.
// neverExpires is the expiration of an organization that does not expire.
var neverExpires = store.NeverExpires

// parseExpiration reads set-expiration's time.
func parseExpiration(s string) (time.Time, error) {
	if s == "never" {
		return neverExpires, nil
	}
	t, err := time.Parse(time.RFC3339, s)
	if err != nil {
		return time.Time{}, fmt.Errorf("--expiration %q: give a time as 2027-06-30T00:00:00Z (RFC 3339), or \"never\"", s)
	}
	return t, nil
}
