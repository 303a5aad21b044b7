package registration

import (
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"strings"
	"testing"
	"time"

	"trustee.dev/trustee/server/auth"
	"trustee.dev/trustee/server/openpgp"
	"trustee.dev/trustee/server/org"
	"trustee.dev/trustee/server/store"
)

func TestValidate(t *testing.T) {
	ok := Registration{Org: "acme", AuthCode: "s3cret", Hostname: "db01.example.com"}
	with := func(mod func(*Registration)) Registration { r := ok; mod(&r); return r }
	for _, c := range []struct {
		name string
		reg  Registration
		is   error  // nil: accepted
		text string // in the error
	}{
		{"all fields", ok, nil, ""},
		{"no auth code, no host name", with(func(r *Registration) { r.AuthCode, r.Hostname = "", "" }), nil, ""},
		{"longest auth code", with(func(r *Registration) { r.AuthCode = strings.Repeat("a", org.MaxAuthCodeLen) }), nil, ""},
		{"longest host name", with(func(r *Registration) { r.Hostname = strings.Repeat("h", MaxHostnameLen) }), nil, ""},
		{"host name of every allowed character", with(func(r *Registration) { r.Hostname = "aZ09.-_" }), nil, ""},
		{"empty organization", with(func(r *Registration) { r.Org = "" }), org.ErrInvalid, "organization name"},
		{"organization with a space", with(func(r *Registration) { r.Org = "ac me" }), org.ErrInvalid, "spaces are not allowed"},
		{"auth code too long", with(func(r *Registration) { r.AuthCode = strings.Repeat("a", org.MaxAuthCodeLen+1) }), ErrInvalid,
			fmt.Sprintf("auth_code is %d bytes, at most %d are allowed", org.MaxAuthCodeLen+1, org.MaxAuthCodeLen)},
		{"host name too long", with(func(r *Registration) { r.Hostname = strings.Repeat("h", MaxHostnameLen+1) }), ErrInvalid,
			fmt.Sprintf("hostname is %d bytes, at most %d are allowed", MaxHostnameLen+1, MaxHostnameLen)},
		{"host name with a space", with(func(r *Registration) { r.Hostname = "db 01" }), ErrInvalid, "hostname may hold only letters"},
		{"host name with a newline", with(func(r *Registration) { r.Hostname = "db01\nBcc: x" }), ErrInvalid, "hostname may hold only letters"},
		{"host name not ASCII", with(func(r *Registration) { r.Hostname = "dé" }), ErrInvalid, "hostname may hold only letters"},
	} {
		t.Run(c.name, func(t *testing.T) {
			err := c.reg.Validate()
			if c.is == nil {
				if err != nil {
					t.Fatalf("refused: %v", err)
				}
				return
			}
			if !errors.Is(err, c.is) || !strings.Contains(err.Error(), c.text) {
				t.Fatalf("error %v; want one wrapping %v saying %q", err, c.is, c.text)
			}
			if c.is == ErrInvalid && strings.HasPrefix(err.Error(), ErrInvalid.Error()) {
				t.Errorf("the text %q is what the client reads: it must not start with the sentinel's", err)
			}
		})
	}
}

func TestCleanHostname(t *testing.T) {
	for _, c := range []struct{ in, want string }{
		{"db01.example.com", "db01.example.com"},
		{"", "(not given)"},
		{"\x00\x1f\x7f", "(not given)"},
		{"db\r\n01\t", "db01"},
		{strings.Repeat("h", MaxHostnameLen+10), strings.Repeat("h", MaxHostnameLen)},
	} {
		if got := cleanHostname(c.in); got != c.want {
			t.Errorf("cleanHostname(%q) = %q, want %q", c.in, got, c.want)
		}
	}
}

// fakeStore holds organizations and records what a registration stores.
type fakeStore struct {
	orgs       map[string]store.Organization
	orgErr     error // Organization's error, when set
	registered []store.Client
	exists     bool  // RegisterClient refuses with ErrExists
	storeErr   error // RegisterClient's error, when set
	mailErr    error
	mail       []string // recipient: body
}

func (f *fakeStore) Organization(_ context.Context, name string) (store.Organization, error) {
	if f.orgErr != nil {
		return store.Organization{}, f.orgErr
	}
	o, ok := f.orgs[name]
	if !ok {
		return o, fmt.Errorf("organization %q: %w", name, store.ErrNotFound)
	}
	return o, nil
}

func (f *fakeStore) RegisterClient(_ context.Context, c store.Client) error {
	switch {
	case f.exists:
		return fmt.Errorf("client %s: %w", c.Fingerprint, store.ErrExists)
	case f.storeErr != nil:
		return f.storeErr
	}
	f.registered = append(f.registered, c)
	return nil
}

func (f *fakeStore) QueueMail(_ context.Context, recipient, subject, body string) error {
	if f.mailErr != nil {
		return f.mailErr
	}
	f.mail = append(f.mail, recipient+": "+subject+": "+body)
	return nil
}

// fakeCodes matches the code "right" against the hash "h(right)"; no hash
// means no code is needed.
type fakeCodes struct{ err error }

func (f fakeCodes) Matches(_ context.Context, stored, presented string) (bool, error) {
	if f.err != nil {
		return false, f.err
	}
	return stored == "" || stored == "h("+presented+")", nil
}

var clientKey = func() *openpgp.PublicKey {
	k, err := openpgp.Generate(openpgp.Ed25519, "test client", "")
	if err != nil {
		panic(err)
	}
	return k.Public()
}()

func TestRegister(t *testing.T) {
	now := time.Date(2026, 3, 4, 5, 6, 7, 0, time.UTC)
	orgs := map[string]store.Organization{
		"acme":    {Name: "acme", AuthHash: "h(right)", Contacts: []string{"finn@example.com", "jake@example.com"}, Expiration: store.NeverExpires},
		"open":    {Name: "open", Expiration: store.NeverExpires},
		"retired": {Name: "retired", Expiration: now},
	}
	dbDown := fmt.Errorf("query: %w", store.ErrNotReady)
	for _, c := range []struct {
		name    string
		org     string
		code    string
		store   fakeStore
		codes   fakeCodes
		state   store.ClientState // "": refused or failed
		refused error             // the rule a refusal wraps; nil: a failure (when state is "")
		text    string            // in the refusal
		mails   int
	}{
		{"right code: active", "acme", "right", fakeStore{}, fakeCodes{}, store.StateActive, nil, "", 2},
		{"wrong code: pending", "acme", "wrong", fakeStore{}, fakeCodes{}, store.StatePending, nil, "", 2},
		{"no code given: pending", "acme", "", fakeStore{}, fakeCodes{}, store.StatePending, nil, "", 2},
		{"none needed: active", "open", "anything", fakeStore{}, fakeCodes{}, store.StateActive, nil, "", 0},
		{"mail that cannot be queued does not undo it", "acme", "right", fakeStore{mailErr: dbDown}, fakeCodes{}, store.StateActive, nil, "", 0},
		{"unknown organization", "nobody", "right", fakeStore{}, fakeCodes{}, "", ErrUnknownOrg,
			`organization "nobody" does not exist; check the name with your Key Trustee administrator`, 0},
		{"expired organization", "retired", "right", fakeStore{}, fakeCodes{}, "", auth.ErrOrgExpired, "on 2026-03-04T05:06:07Z; no new client can register", 0},
		{"checker busy", "acme", "right", fakeStore{}, fakeCodes{err: org.ErrBusy}, "", org.ErrBusy, "", 0},
		{"key registered already", "acme", "right", fakeStore{exists: true}, fakeCodes{}, "", store.ErrExists, "", 0},
		{"database down reading the organization", "acme", "right", fakeStore{orgErr: dbDown}, fakeCodes{}, "", nil, "", 0},
		{"checker gave up waiting", "acme", "right", fakeStore{}, fakeCodes{err: context.Canceled}, "", nil, "", 0},
		{"database down storing the client", "acme", "right", fakeStore{storeErr: dbDown}, fakeCodes{}, "", nil, "", 0},
	} {
		t.Run(c.name, func(t *testing.T) {
			st := c.store
			st.orgs = orgs
			svc := &Service{Store: &st, Codes: c.codes, Now: func() time.Time { return now }, Log: slog.New(slog.NewTextHandler(io.Discard, nil))}
			reg := Registration{Org: c.org, AuthCode: c.code, Hostname: "db\n01", Key: clientKey, Source: "192.0.2.7"}
			res, err := svc.Register(context.Background(), reg)
			var refusal *Refusal
			switch {
			case c.state != "":
				if err != nil {
					t.Fatalf("refused: %v", err)
				}
				want := store.Client{Fingerprint: clientKey.Fingerprint(), OrgName: c.org, KeyID: clientKey.ID(),
					PublicKey: clientKey.Armor(), State: c.state, SourceAddr: "192.0.2.7"}
				if len(st.registered) != 1 || fmt.Sprint(st.registered[0]) != fmt.Sprint(want) || fmt.Sprint(res.Client) != fmt.Sprint(want) {
					t.Errorf("stored %+v, answered %+v; want %+v", st.registered, res.Client, want)
				}
				if wantMsg := map[store.ClientState]string{store.StateActive: MessageActive, store.StatePending: MessagePending}[c.state]; res.Message != wantMsg {
					t.Errorf("message %q, want %q", res.Message, wantMsg)
				}
			case c.refused != nil:
				if !errors.As(err, &refusal) || !errors.Is(err, c.refused) || !strings.Contains(err.Error(), c.text) {
					t.Fatalf("error %v (%T); want a *Refusal wrapping %v saying %q", err, err, c.refused, c.text)
				}
			default:
				if err == nil || errors.As(err, &refusal) {
					t.Fatalf("error %v (%T); want a failure, not a refusal", err, err)
				}
			}
			if c.state == "" && len(st.registered) != 0 {
				t.Errorf("stored %+v after %v", st.registered, err)
			}
			if len(st.mail) != c.mails {
				t.Fatalf("queued %d mails, want %d: %q", len(st.mail), c.mails, st.mail)
			}
			for _, m := range st.mail {
				if !strings.Contains(m, clientKey.Fingerprint()) || !strings.Contains(m, "db01") || strings.Contains(m, "db\n01") {
					t.Errorf("mail does not name the client and its cleaned host name: %q", m)
				}
			}
		})
	}
}
