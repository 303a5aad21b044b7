package orgadmin_test

import (
	"context"
	"errors"
	"slices"
	"strings"
	"testing"

	"trustee.dev/trustee/server/adminapi/admintest"
	"trustee.dev/trustee/server/org"
	"trustee.dev/trustee/server/orgadmin"
	"trustee.dev/trustee/server/pg/pgtest"
	"trustee.dev/trustee/server/store"
)

func TestMain(m *testing.M) { pgtest.Main(m) }

// TestAdd checks what `kts org add` does: create, then add contacts, each
// new contact mailed once.
func TestAdd(t *testing.T) {
	ctx := context.Background()
	db := admintest.Store(t)
	a := &orgadmin.Admin{Store: db, LinkBase: "https://kts01.example.com:11371"}
	res, err := a.Add(ctx, "acme", []string{"finn@example.com", "jake@example.com"})
	if err != nil || !res.Created || !slices.Equal(res.Invited, []string{"finn@example.com", "jake@example.com"}) {
		t.Fatalf("create: %+v, %v", res, err)
	}
	if res.Org.AuthHash == "" || org.CodeMatches(res.Org.AuthHash, "") {
		t.Error("a new organization has no random auth code")
	}
	res, err = a.Add(ctx, "acme", []string{"finn@example.com", "marceline@example.com"})
	if err != nil || res.Created || !slices.Equal(res.Invited, []string{"marceline@example.com"}) ||
		!slices.Equal(res.Org.Contacts, []string{"finn@example.com", "jake@example.com", "marceline@example.com"}) {
		t.Errorf("add contacts: %+v, %v", res, err)
	}
	pending, err := db.PendingMail(ctx)
	if err != nil || len(pending) != 3 {
		t.Errorf("queued %d mails, want 3: %v", len(pending), err)
	}
	if _, err := a.Add(ctx, "a b", []string{"finn@example.com"}); !errors.Is(err, org.ErrInvalid) {
		t.Errorf("bad name: %v", err)
	}
}

func TestSetClientState(t *testing.T) {
	ctx := context.Background()
	db := admintest.Store(t)
	a := &orgadmin.Admin{Store: db}
	for _, name := range []string{"acme", "other"} {
		if _, err := a.Put(ctx, name, []string{"finn@example.com"}); err != nil {
			t.Fatal(err)
		}
	}
	fpr := strings.Repeat("A", 40)
	if err := db.RegisterClient(ctx, store.Client{Fingerprint: fpr, OrgName: "acme", KeyID: "k", PublicKey: []byte("k"), State: store.StatePending}); err != nil {
		t.Fatal(err)
	}
	if _, err := a.SetClientState(ctx, "other", fpr, store.StateActive); !errors.Is(err, store.ErrNotFound) {
		t.Errorf("client of another organization: %v", err)
	}
	if _, err := a.SetClientState(ctx, "acme", fpr, store.StatePending); !errors.Is(err, org.ErrInvalid) {
		t.Errorf("set pending: %v", err)
	}
	for _, orgName := range []string{"acme", ""} {
		if prev, err := a.SetClientState(ctx, orgName, fpr, store.StateDisabled); err != nil || (orgName == "acme") != (prev == store.StatePending) {
			t.Errorf("disable in %q: was %s, %v", orgName, prev, err)
		}
	}
}

func TestParseFingerprint(t *testing.T) {
	want := "4EDC46882386C827E20DEEA2D850ACA33BEDB0D1"
	for _, in := range []string{want, strings.ToLower(want), "0x" + want, " 4EDC 4688 2386 C827 E20D  EEA2 D850 ACA3 3BED B0D1 "} {
		if got, err := orgadmin.ParseFingerprint(in); err != nil || got != want {
			t.Errorf("ParseFingerprint(%q) = %q, %v", in, got, err)
		}
	}
	for _, in := range []string{"", want[1:], want + "0", strings.Repeat("G", 40)} {
		if _, err := orgadmin.ParseFingerprint(in); !errors.Is(err, org.ErrInvalid) {
			t.Errorf("ParseFingerprint(%q): %v", in, err)
		}
	}
}

func TestContactList(t *testing.T) {
	if got, err := orgadmin.ContactList([]string{"a@example.com", "A@example.com", "b@example.com"}); err != nil || !slices.Equal(got, []string{"a@example.com", "b@example.com"}) {
		t.Errorf("ContactList = %v, %v", got, err)
	}
	for _, bad := range [][]string{nil, {}, {""}, {"a@example.com,b@example.com"}, {"a @example.com"}, {"Finn <finn@example.com>"}, {"finn"}} {
		if _, err := orgadmin.ContactList(bad); !errors.Is(err, org.ErrInvalid) {
			t.Errorf("ContactList(%q): %v", bad, err)
		}
	}
}
