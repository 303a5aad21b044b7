package httpapi_test

import (
	"context"
	"io"
	"net/http"
	"net/url"
	"strings"
	"testing"
	"time"

	"trustee.dev/trustee/server/openpgp/openpgptest"
)

// page fetches or posts the key registration page.
func (e *env) page(method, token string, form url.Values) (int, http.Header, string) {
	e.t.Helper()
	var resp *http.Response
	var err error
	if method == http.MethodGet {
		resp, err = e.srv.Client().Get(e.srv.URL + "/?q=" + url.QueryEscape(token))
	} else {
		resp, err = e.srv.Client().PostForm(e.srv.URL+"/", form)
	}
	if err != nil {
		e.t.Fatal(err)
	}
	defer resp.Body.Close()
	body, _ := io.ReadAll(resp.Body)
	return resp.StatusCode, resp.Header, string(body)
}

func TestKeyRegistrationPage(t *testing.T) {
	e := newEnv(t)
	ctx := context.Background()
	if err := e.store.AddContactLink(ctx, "acme", "admin@example.com", "link-1", time.Now().Add(12*time.Hour)); err != nil {
		t.Fatal(err)
	}
	if err := e.store.AddContactLink(ctx, "acme", "admin@example.com", "link-old", time.Now().Add(-time.Second)); err != nil {
		t.Fatal(err)
	}
	status, h, body := e.page(http.MethodGet, "link-1", nil)
	if status != 200 || !strings.Contains(body, `<textarea id="key" name="key"`) || !strings.Contains(body, "acme") || !strings.Contains(body, e.key.Public().ID()) {
		t.Fatalf("GET /?q=link-1: %d\n%s", status, body)
	}
	if csp := h.Get("Content-Security-Policy"); !strings.HasPrefix(csp, "default-src 'none'") || h.Get("Referrer-Policy") != "no-referrer" || h.Get("Cache-Control") != "no-store" {
		t.Fatalf("headers: %v", h)
	}
	if !strings.Contains(body, "-----BEGIN PGP PUBLIC KEY BLOCK-----") {
		t.Fatal("the page does not offer the server's public key")
	}

	contact := openpgptest.Key(t, 3).Public()
	private, _ := openpgptest.Key(t, 4).Armor()
	for name, tc := range map[string]struct{ key, want string }{
		"empty":            {"", "Paste your public key"},
		"garbage":          {"hello", "whole block"},
		"cut short":        {strings.Split(string(contact.Armor()), "\n=")[0], "whole block"},
		"private key":      {string(private), "This is a private key"},
		"the server's key": {string(e.key.Public().Armor()), "own key; paste yours"},
		"not a key at all": {"-----BEGIN PGP PUBLIC KEY BLOCK-----\n\nAAAA\n-----END PGP PUBLIC KEY BLOCK-----", "not accepted"},
	} {
		status, _, body := e.page(http.MethodPost, "", url.Values{"q": {"link-1"}, "key": {tc.key}})
		if status != 400 || !strings.Contains(body, tc.want) || !strings.Contains(body, `<textarea`) {
			t.Errorf("%s: %d, want 400 with %q and the form again:\n%s", name, status, tc.want, body)
		}
	}
	if strings.Contains(e.logs.String(), "PRIVATE KEY") {
		t.Fatal("the pasted private key reached the log")
	}
	if keys, _ := e.store.ContactKeys(ctx, "acme"); len(keys) != 0 {
		t.Fatalf("refused keys were stored: %v", keys)
	}

	status, _, body = e.page(http.MethodPost, "", url.Values{"q": {"link-1"}, "key": {"\n" + string(contact.Armor()) + "\n"}})
	if status != 200 || !strings.Contains(body, contact.ID()) || !strings.Contains(body, `id="registered"`) {
		t.Fatalf("registering a key: %d\n%s", status, body)
	}
	if keys, _ := e.store.ContactKeys(ctx, "acme"); keys["admin@example.com"] != contact.Fingerprint() {
		t.Fatalf("stored contact keys %v", keys)
	}

	for _, tc := range []struct {
		method, token string
		status        int
		want          string
	}{
		{http.MethodGet, "link-1", 410, "was used"},
		{http.MethodPost, "link-1", 410, "was used"},
		{http.MethodGet, "link-old", 410, "expired"},
		{http.MethodGet, "no-such-link", 404, "not known"},
	} {
		status, _, body := e.page(tc.method, tc.token, url.Values{"q": {tc.token}, "key": {string(contact.Armor())}})
		if status != tc.status || !strings.Contains(body, tc.want) || !strings.Contains(body, "keytrustee-orgtool add") || strings.Contains(body, "<textarea") {
			t.Errorf("%s %s: %d, want %d with %q:\n%s", tc.method, tc.token, status, tc.status, tc.want, body)
		}
	}
}

func TestClientRegistrationMailsTheContacts(t *testing.T) {
	e := newEnv(t)
	if a := e.register(1, "acme", "wrong code"); a.status != http.StatusCreated {
		t.Fatalf("register: %d %s", a.status, a.body)
	}
	if a := e.register(2, "open", ""); a.status != http.StatusCreated {
		t.Fatalf("register: %d %s", a.status, a.body)
	}
	pending, err := e.store.PendingMail(context.Background())
	if err != nil || len(pending) != 2 {
		t.Fatalf("queued mail: %+v, %v", pending, err)
	}
	var bodies []string
	e.sql.QueryRow(context.Background(), `SELECT array_agg(body ORDER BY id) FROM outbox`).Scan(&bodies)
	waiting, active := openpgptest.Key(t, 1).Public().Fingerprint(), openpgptest.Key(t, 2).Public().Fingerprint()
	if pending[0].Recipient != "admin@example.com" || pending[0].Subject != "KeyTrustee Client Registration" ||
		!strings.Contains(bodies[0], "WAITING FOR APPROVAL") || !strings.Contains(bodies[0], "keytrustee-orgtool enable-client --fingerprint "+waiting) {
		t.Fatalf("mail for a waiting client: %+v\n%s", pending[0], bodies[0])
	}
	if !strings.Contains(bodies[1], "is ACTIVE") || !strings.Contains(bodies[1], "disable-client --fingerprint "+active) {
		t.Fatalf("mail for an active client:\n%s", bodies[1])
	}
}

func TestExpiredOrganizationsClientsAreRefused(t *testing.T) {
	e := newEnv(t)
	ctx := context.Background()
	if a := e.register(1, "open", ""); a.status != http.StatusCreated {
		t.Fatalf("register: %d %s", a.status, a.body)
	}
	if err := e.store.SetExpiration(ctx, "open", time.Now().Add(-time.Minute)); err != nil {
		t.Fatal(err)
	}
	k := openpgptest.Key(t, 1)
	for name, a := range map[string]answer{
		"a new registration": e.register(2, "open", ""),
		"a signed request":   e.do("GET", "/v1/deposits", nil, k, ""),
		"a new session":      e.do("POST", "/v1/session", nil, k, ""),
	} {
		if a.status != http.StatusForbidden || !strings.Contains(string(a.body), "organization_expired") {
			t.Errorf("%s after the organization expired: %d %s", name, a.status, a.body)
		}
	}
	if err := e.store.SetExpiration(ctx, "open", time.Now().Add(time.Hour)); err != nil {
		t.Fatal(err)
	}
	if a := e.do("GET", "/v1/deposits", nil, k, ""); a.status != http.StatusOK {
		t.Fatalf("after the expiration was extended: %d %s", a.status, a.body)
	}
}
