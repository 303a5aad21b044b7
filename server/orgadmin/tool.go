package orgadmin

import (
	"bufio"
	"context"
	"errors"
	"fmt"
	"io"
	"strings"

	"trustee.dev/trustee/server/org"
	"trustee.dev/trustee/server/store"
)

// AddListed is keytrustee-orgtool's add: the name checked first, then the
// comma-separated contacts, then Add.
func (a *Admin) AddListed(ctx context.Context, name, contacts string) (Result, error) {
	if err := org.ValidateName(name); err != nil {
		return Result{}, err
	}
	list, err := org.ParseContacts(contacts)
	if err != nil {
		return Result{}, err
	}
	return a.Add(ctx, name, list)
}

// InvitedLines say which contacts were queued a registration mail.
func (r Result) InvitedLines() []string {
	lines := make([]string, len(r.Invited))
	for i, c := range r.Invited {
		lines[i] = "queued the contact registration mail to " + c
	}
	return lines
}

// Summary says what add did to the organization.
func (r Result) Summary() string {
	o := r.Org
	if r.Created {
		return fmt.Sprintf("organization %s created with contacts %s; set the auth code clients will use with: set-auth -n %s -s CODE",
			o.Name, strings.Join(o.Contacts, ","), o.Name)
	}
	return fmt.Sprintf("organization %s now has contacts %s", o.Name, strings.Join(o.Contacts, ","))
}

// List is `list`'s answer: every organization with the keys its contacts
// registered (OrgListing).
func List(ctx context.Context, db *store.Store) (map[string]any, error) {
	orgs, err := db.Organizations(ctx)
	if err != nil {
		return nil, err
	}
	keys := map[string]map[string]string{}
	for _, o := range orgs {
		if keys[o.Name], err = db.ContactKeys(ctx, o.Name); err != nil {
			return nil, err
		}
	}
	return OrgListing(orgs, keys), nil
}

// CodeArg is set-auth's code: the -s value, or with "-" the first line of
// in. given is false when -s was not given at all.
func CodeArg(value string, given bool, in io.Reader) (string, error) {
	if !given {
		return "", errors.New(`give the new code with -s SECRET, -s "" for none, or -s - to read it from standard input`)
	}
	if value != "-" {
		return value, nil
	}
	line, err := bufio.NewReader(in).ReadString('\n')
	if err != nil && err != io.EOF {
		return "", err
	}
	return strings.TrimRight(line, "\r\n"), nil
}

// AuthCodeLine says what set-auth did to the organization name.
func AuthCodeLine(name, code string) string {
	if code == "" {
		return fmt.Sprintf("organization %s now requires no auth code: new clients are activated at once", name)
	}
	return fmt.Sprintf("auth code of organization %s updated", name)
}
