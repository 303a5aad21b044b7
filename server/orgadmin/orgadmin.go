// Package orgadmin carries out an administrator's changes to organizations
// and their clients, as `kts org` (keytrustee-orgtool) makes them on the
// command line and the admin API over mutual TLS: both check input, hash
// auth codes and queue contact mail here, the same way.
package orgadmin

import (
	"context"
	"crypto/rand"
	"encoding/base64"
	"errors"
	"fmt"
	"strings"
	"time"
	"unicode"

	"trustee.dev/trustee/server/mail"
	"trustee.dev/trustee/server/org"
	"trustee.dev/trustee/server/store"
)

// Admin changes the organizations in Store.
type Admin struct {
	Store *store.Store
	// LinkBase is the base URL of links in mail to contacts
	// (config.Config.LinkBase).
	LinkBase string
	// Now is the clock (default time.Now).
	Now func() time.Time
}

func (a *Admin) now() time.Time {
	if a.Now != nil {
		return a.Now()
	}
	return time.Now()
}

// Result is what a change to an organization's contacts did.
type Result struct {
	Org     store.Organization
	Created bool
	// Invited are the contacts new to the organization, each of whom was
	// queued a contact registration mail.
	Invited []string
}

// Add creates an organization with contacts, or adds contacts to an
// existing one, as `keytrustee-orgtool add` does. A new organization gets a
// random auth code that is never shown. Every contact new to the
// organization is queued a contact registration mail; when queueing fails,
// the error says so and Result holds what was done.
func (a *Admin) Add(ctx context.Context, name string, contacts []string) (Result, error) {
	if err := org.ValidateName(name); err != nil {
		return Result{}, err
	}
	hash, err := randomAuthHash()
	if err != nil {
		return Result{}, err
	}
	var before []string
	if existing, err := a.Store.Organization(ctx, name); err == nil {
		before = existing.Contacts
	} else if !errors.Is(err, store.ErrNotFound) {
		return Result{}, err
	}
	o, created, err := a.Store.AddOrganization(ctx, name, contacts, hash)
	if err != nil {
		return Result{}, err
	}
	return a.invite(ctx, Result{Org: o, Created: created}, before)
}

// Put creates an organization with contacts, or sets an existing one's
// contacts to exactly contacts (checked by ContactList), as the admin
// API's PUT does. A new
// organization gets a random auth code that is never shown; an existing
// one keeps its code and, if it has expired (see Retire), is taken back
// into use. Contacts new to the organization are queued a contact
// registration mail, as with Add.
func (a *Admin) Put(ctx context.Context, name string, contacts []string) (Result, error) {
	if err := org.ValidateName(name); err != nil {
		return Result{}, err
	}
	contacts, err := ContactList(contacts)
	if err != nil {
		return Result{}, err
	}
	hash, err := randomAuthHash()
	if err != nil {
		return Result{}, err
	}
	o, created, before, err := a.Store.PutOrganization(ctx, name, contacts, hash, a.now())
	if err != nil {
		return Result{}, err
	}
	return a.invite(ctx, Result{Org: o, Created: created}, before)
}

// invite queues the contact registration mail to the contacts of res.Org
// that are not in before.
func (a *Admin) invite(ctx context.Context, res Result, before []string) (Result, error) {
	known := map[string]bool{}
	for _, c := range before {
		known[strings.ToLower(c)] = true
	}
	for _, c := range res.Org.Contacts {
		if known[strings.ToLower(c)] {
			continue
		}
		if err := QueueContactMail(ctx, a.Store, a.LinkBase, res.Org.Name, c); err != nil {
			return res, fmt.Errorf("organization %s has contact %s, but queueing the registration mail failed: %w", res.Org.Name, c, err)
		}
		res.Invited = append(res.Invited, c)
	}
	return res, nil
}

// randomAuthHash is the stored form of a new organization's auth code: a
// random code that nobody is shown.
func randomAuthHash() (string, error) {
	code, err := org.GenerateAuthCode()
	if err != nil {
		return "", err
	}
	return org.HashAuthCode(code)
}

// QueueContactMail queues the mail that invites a contact of an
// organization to register an OpenPGP key, with a link under linkBase that
// works once within mail.ContactLinkLifetime.
func QueueContactMail(ctx context.Context, db *store.Store, linkBase, orgName, contact string) error {
	token := make([]byte, 32)
	if _, err := rand.Read(token); err != nil {
		return err
	}
	secret := base64.RawURLEncoding.EncodeToString(token)
	expires := time.Now().Add(mail.ContactLinkLifetime)
	if err := db.AddContactLink(ctx, orgName, contact, secret, expires); err != nil {
		return err
	}
	link := linkBase + "/?q=" + secret
	return db.QueueMail(ctx, contact, mail.ContactRegistrationSubject, mail.ContactRegistrationText(orgName, link, expires))
}

// ContactList checks a list of contacts as org.ParseContacts checks a
// comma-separated one, and returns it without duplicates.
func ContactList(contacts []string) ([]string, error) {
	if len(contacts) == 0 {
		return nil, fmt.Errorf("%w contacts: the list is empty; give at least one e-mail address", org.ErrInvalid)
	}
	for _, c := range contacts {
		if c == "" {
			return nil, fmt.Errorf("%w contacts: an address is empty", org.ErrInvalid)
		}
		if strings.ContainsRune(c, ',') || strings.ContainsFunc(c, unicode.IsSpace) {
			return nil, fmt.Errorf("%w contact %q: not an e-mail address like name@example.com", org.ErrInvalid, c)
		}
	}
	return org.ParseContacts(strings.Join(contacts, ","))
}

// SetAuthCode sets the code clients of an organization register with; ""
// means none is needed (clients are active at once). Only its Argon2id
// hash is stored, and errors never hold the code.
func (a *Admin) SetAuthCode(ctx context.Context, name, code string) error {
	if err := org.ValidateAuthCode(code); err != nil {
		return err
	}
	hash, err := org.HashAuthCode(code)
	if err != nil {
		return err
	}
	return a.Store.SetAuthHash(ctx, name, hash)
}

// SetClientState enables (store.StateActive) or disables
// (store.StateDisabled) a client and returns its previous state. With
// orgName set, a client of another organization is store.ErrNotFound.
func (a *Admin) SetClientState(ctx context.Context, orgName, fingerprint string, state store.ClientState) (store.ClientState, error) {
	if state != store.StateActive && state != store.StateDisabled {
		return "", fmt.Errorf("%w client state %q: a client is enabled (%q) or disabled (%q)", org.ErrInvalid, state, store.StateActive, store.StateDisabled)
	}
	if orgName != "" {
		c, err := a.Store.Client(ctx, fingerprint)
		if err != nil {
			return "", err
		}
		// A client never moves to another organization: the check stays true.
		if c.OrgName != orgName {
			return "", fmt.Errorf("client %s of organization %q: %w", fingerprint, orgName, store.ErrNotFound)
		}
	}
	return a.Store.SetClientState(ctx, fingerprint, state)
}

// Retire makes an organization expire now, unless it expired already: its
// clients can no longer register or authenticate (organization_expired),
// and its clients and deposits are kept. Put takes it back into use.
func (a *Admin) Retire(ctx context.Context, name string) error {
	return a.Store.ExpireOrganization(ctx, name, a.now())
}

// ParseFingerprint reads a client's OpenPGP fingerprint as gpg prints it
// (spaces, lower case or a 0x prefix allowed) and returns 40 upper-case hex
// digits.
func ParseFingerprint(s string) (string, error) {
	fp := strings.ToUpper(strings.ReplaceAll(strings.TrimPrefix(strings.TrimSpace(s), "0x"), " ", ""))
	if len(fp) != 40 || strings.Trim(fp, "0123456789ABCDEF") != "" {
		return "", fmt.Errorf("%w fingerprint %q: want the client's 40-hex-digit OpenPGP fingerprint", org.ErrInvalid, s)
	}
	return fp, nil
}
