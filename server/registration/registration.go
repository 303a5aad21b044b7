// Package registration holds the rules of a client's registration with an
// organization (POST /v1/register, docs/API.md): the bounds of its fields,
// the organization's existence and expiry, its auth code (checked through
// a bounded org.Checker), the client stored active (the right code, or
// none needed) or pending, and the mail to the organization's contacts.
//
// The HTTP handler decodes the request, checks Validate, proves that the
// caller holds the key it registers (the request is signed by it), calls
// Service.Register and renders the answer. A registration refused by a
// rule is an error that wraps one of this package's or its dependencies'
// sentinels (ErrInvalid, ErrUnknownOrg, auth.ErrOrgExpired, org.ErrBusy,
// store.ErrExists) and is a *Refusal when Register returns it; any other
// error is the server's failure.
package registration

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"strconv"
	"strings"
	"time"

	"trustee.dev/trustee/server/auth"
	"trustee.dev/trustee/server/mail"
	"trustee.dev/trustee/server/openpgp"
	"trustee.dev/trustee/server/org"
	"trustee.dev/trustee/server/store"
)

// MaxHostnameLen is the longest host name a registration may give (a DNS
// name's limit).
const MaxHostnameLen = 253

// Errors of registrations refused by a rule. Their text says what to do.
var (
	// ErrInvalid marks a field out of bounds.
	ErrInvalid = errors.New("invalid registration")
	// ErrUnknownOrg marks a registration with an organization that does
	// not exist.
	ErrUnknownOrg = errors.New("unknown organization")
)

// ruleError is a refusal whose text is exactly what the client is told.
type ruleError struct {
	kind error
	msg  string
}

func (e *ruleError) Error() string        { return e.msg }
func (e *ruleError) Is(target error) bool { return target == e.kind }

// Refusal is a registration Register refused by one of its rules: the
// caller records it as refused. It wraps the rule's error.
type Refusal struct{ Err error }

func (r *Refusal) Error() string { return r.Err.Error() }
func (r *Refusal) Unwrap() error { return r.Err }

// Registration is a client's request to join an organization.
type Registration struct {
	Org      string
	AuthCode string
	// Hostname is the client's own name for its host: a claim, quoted in
	// the contacts' mail.
	Hostname string
	// Key is the client's public key; the caller has checked that the
	// request was signed by it.
	Key *openpgp.PublicKey
	// Source is the address the request came from.
	Source string
}

// Validate checks the fields of a registration before anything is looked
// up or hashed: the organization's name, an auth code no longer than an
// administrator can set, and a host name of at most MaxHostnameLen
// letters, digits, dots, hyphens and underscores (it is quoted in mail).
// The public key is bounded by the request body's limit and checked when
// parsed. Every error it returns is a refusal.
func (r Registration) Validate() error {
	if err := org.ValidateName(r.Org); err != nil {
		return err
	}
	if len(r.AuthCode) > org.MaxAuthCodeLen {
		return invalid(fmt.Sprintf("auth_code is %d bytes, at most %d are allowed; send the code your administrator gave you", len(r.AuthCode), org.MaxAuthCodeLen))
	}
	if len(r.Hostname) > MaxHostnameLen {
		return invalid(fmt.Sprintf("hostname is %d bytes, at most %d are allowed; send the host's name (hostname -f) or leave it out", len(r.Hostname), MaxHostnameLen))
	}
	for i := 0; i < len(r.Hostname); i++ {
		if c := r.Hostname[i]; !('a' <= c && c <= 'z' || 'A' <= c && c <= 'Z' || '0' <= c && c <= '9' || c == '.' || c == '-' || c == '_') {
			return invalid("hostname may hold only letters, digits, dots, hyphens and underscores; send the host's name (hostname -f) or leave it out")
		}
	}
	return nil
}

func invalid(msg string) error { return &ruleError{kind: ErrInvalid, msg: msg} }

// Store is what a registration reads and writes: *store.Store.
type Store interface {
	Organization(ctx context.Context, name string) (store.Organization, error)
	// RegisterClient stores the client with the audit record of its
	// registration, made by the actor in ctx.
	RegisterClient(ctx context.Context, c store.Client) error
	QueueMail(ctx context.Context, recipient, subject, body string) error
}

// CodeChecker tells whether a presented auth code matches the stored hash
// (*org.Checker); org.ErrBusy when too many are being checked at once.
type CodeChecker interface {
	Matches(ctx context.Context, stored, presented string) (bool, error)
}

// Service registers clients. Every field is needed.
type Service struct {
	Store Store
	Codes CodeChecker
	Now   func() time.Time // the clock an organization's expiry is read by
	Log   *slog.Logger     // registrations made, mail that could not be queued
}

// Result is a registration made.
type Result struct {
	// Client is the client as stored: active or pending.
	Client store.Client
	// Message tells the client what its state means.
	Message string
}

// Messages of Result.
const (
	MessagePending = "registered; an administrator of the organization must enable this client before it can use deposits"
	MessageActive  = "registered and active"
)

// Register stores the client of reg, whose fields have passed Validate and
// whose key the caller has proven, with its organization: active when its
// auth code matches (or none is needed), else pending. Each contact of the
// organization is then mailed about it; mail that cannot be queued is
// logged, and does not undo the registration. ctx carries the actor the
// store records the registration under. A refusal is a *Refusal.
func (s *Service) Register(ctx context.Context, reg Registration) (Result, error) {
	o, err := s.Store.Organization(ctx, reg.Org)
	if errors.Is(err, store.ErrNotFound) {
		return Result{}, &Refusal{&ruleError{kind: ErrUnknownOrg,
			msg: "organization " + strconv.Quote(reg.Org) + " does not exist; check the name with your Key Trustee administrator"}}
	} else if err != nil {
		return Result{}, err
	}
	if !s.Now().Before(o.Expiration) {
		return Result{}, &Refusal{fmt.Errorf("%w: on %s; no new client can register", auth.ErrOrgExpired, o.Expiration.UTC().Format(time.RFC3339))}
	}
	state, msg := store.StatePending, MessagePending
	matches, err := s.Codes.Matches(ctx, o.AuthHash, reg.AuthCode)
	if errors.Is(err, org.ErrBusy) {
		return Result{}, &Refusal{err}
	} else if err != nil {
		return Result{}, err
	}
	if matches {
		state, msg = store.StateActive, MessageActive
	}
	c := store.Client{
		Fingerprint: reg.Key.Fingerprint(), OrgName: o.Name, KeyID: reg.Key.ID(),
		PublicKey: reg.Key.Armor(), State: state, SourceAddr: reg.Source,
	}
	if err := s.Store.RegisterClient(ctx, c); err != nil {
		if errors.Is(err, store.ErrExists) {
			return Result{}, &Refusal{err}
		}
		return Result{}, err
	}
	s.Log.InfoContext(ctx, "client registered", "fingerprint", c.Fingerprint, "org", o.Name, "state", string(state), "source", reg.Source)
	for _, contact := range o.Contacts {
		text := mail.ClientRegistrationText(mail.ClientRegistration{Org: o.Name, Fingerprint: c.Fingerprint, KeyID: c.KeyID,
			Hostname: cleanHostname(reg.Hostname), Source: reg.Source, Active: state == store.StateActive})
		if err := s.Store.QueueMail(ctx, contact, mail.ClientRegistrationSubject, text); err != nil {
			s.Log.ErrorContext(ctx, "queueing the client registration mail", "contact", contact, "err", err)
		}
	}
	return Result{Client: c, Message: msg}, nil
}

// cleanHostname keeps a client's claimed host name printable and short: it
// is quoted in mail, not trusted.
func cleanHostname(h string) string {
	h = strings.Map(func(r rune) rune {
		if r < 0x20 || r == 0x7f {
			return -1
		}
		return r
	}, h)
	if len(h) > MaxHostnameLen {
		h = h[:MaxHostnameLen]
	}
	if h == "" {
		return "(not given)"
	}
	return h
}
