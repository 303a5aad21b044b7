package adminapi_test

import (
	"bytes"
	"context"
	"crypto/tls"
	"crypto/x509"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/jackc/pgx/v5/pgxpool"

	"trustee.dev/trustee/server/adminapi"
	"trustee.dev/trustee/server/adminapi/admintest"
	"trustee.dev/trustee/server/audit"
	"trustee.dev/trustee/server/org"
	"trustee.dev/trustee/server/pg/pgtest"
	"trustee.dev/trustee/server/store"
	"trustee.dev/trustee/server/wire/adminv1"
	"trustee.dev/trustee/test/harness"
)

func TestMain(m *testing.M) { pgtest.Main(m) }

// The test's admin identity, the common name of its client certificate.
const operatorCN = "trustee-operator"

// Fingerprints of test clients.
const (
	fprA = "AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA"
	fprB = "BBBBBBBBBBBBBBBBBBBBBBBBBBBBBBBBBBBBBBBB"
	fprC = "CCCCCCCCCCCCCCCCCCCCCCCCCCCCCCCCCCCCCCCC"
)

// env is the admin API's handler on a real database.
type env struct {
	t     *testing.T
	db    *store.Store
	dsn   string        // db's, when the env opened it
	sql   *pgxpool.Pool // the same database below the store, then
	h     *adminapi.Handler
	chain []*x509.Certificate // the verified chain of the admin's certificate
	logs  harness.Buffer
}

var (
	caOnce sync.Once
	chain  []*x509.Certificate
)

func newEnv(t *testing.T, db *store.Store, o adminapi.Options) *env {
	t.Helper()
	caOnce.Do(func() {
		ca := admintest.NewCA(t, "test admin CA")
		chain = []*x509.Certificate{ca.Client(t, operatorCN).Leaf, ca.Cert}
	})
	var dsn string
	if db == nil {
		db, dsn = admintest.Open(t)
	}
	e := &env{t: t, db: db, dsn: dsn, chain: chain}
	if dsn != "" {
		e.sql = pgtest.Pool(t, dsn)
	}
	o.Store = db
	o.LinkBase = "https://kts01.example.com:11371"
	o.Log = slog.New(slog.NewJSONHandler(&e.logs, &slog.HandlerOptions{Level: slog.LevelDebug}))
	e.h = adminapi.New(o)
	return e
}

// answer is a decoded response.
type answer struct {
	status int
	code   string // "error" of a JSON error body
	msg    string
	body   []byte
	header http.Header
}

// do sends a request as the admin, as mutual TLS delivers it.
func (e *env) do(method, path, body string) answer {
	e.t.Helper()
	req := httptest.NewRequest(method, path, strings.NewReader(body))
	req.TLS = &tls.ConnectionState{HandshakeComplete: true, PeerCertificates: e.chain[:1], VerifiedChains: [][]*x509.Certificate{e.chain}}
	return e.serve(req)
}

func (e *env) serve(req *http.Request) answer {
	e.t.Helper()
	rec := httptest.NewRecorder()
	e.h.ServeHTTP(rec, req)
	a := answer{status: rec.Code, body: rec.Body.Bytes(), header: rec.Header()}
	if a.status >= 400 {
		var eb struct{ Error, Message string }
		if err := json.Unmarshal(a.body, &eb); err != nil || eb.Error == "" || eb.Message == "" {
			e.t.Fatalf("%s %s: error answer %d is not {error, message} JSON: %q", req.Method, req.URL.Path, a.status, a.body)
		}
		a.code, a.msg = eb.Error, eb.Message
	}
	return a
}

func (e *env) organization(a answer) adminv1.Organization {
	e.t.Helper()
	if a.status != http.StatusOK {
		e.t.Fatalf("status %d, want 200: %s", a.status, a.body)
	}
	var o adminv1.Organization
	dec := json.NewDecoder(bytes.NewReader(a.body))
	dec.DisallowUnknownFields()
	if err := dec.Decode(&o); err != nil {
		e.t.Fatalf("decode %s: %v", a.body, err)
	}
	return o
}

// put creates or updates an organization and returns it.
func (e *env) put(name string, contacts ...string) adminv1.Organization {
	e.t.Helper()
	b, _ := json.Marshal(map[string][]string{"contacts": contacts})
	return e.organization(e.do("PUT", "/admin/v1/organizations/"+name, string(b)))
}

func (e *env) register(orgName, fpr string, state store.ClientState) {
	e.t.Helper()
	err := e.db.RegisterClient(context.Background(), store.Client{Fingerprint: fpr, OrgName: orgName,
		KeyID: "255E/" + fpr, PublicKey: []byte("key of " + fpr), State: state})
	if err != nil {
		e.t.Fatal(err)
	}
}

func (e *env) stored(name string) store.Organization {
	e.t.Helper()
	o, err := e.db.Organization(context.Background(), name)
	if err != nil {
		e.t.Fatal(err)
	}
	return o
}

func (e *env) clientState(fpr string) store.ClientState {
	e.t.Helper()
	c, err := e.db.Client(context.Background(), fpr)
	if err != nil {
		e.t.Fatal(err)
	}
	return c.State
}

// mailTo lists the recipients of queued mail.
func (e *env) mailTo() []string {
	e.t.Helper()
	pending, err := e.db.PendingMail(context.Background())
	if err != nil {
		e.t.Fatal(err)
	}
	var to []string
	for _, m := range pending {
		to = append(to, m.Recipient)
	}
	slices.Sort(to)
	return to
}

// snapshot is everything a request could change.
func (e *env) snapshot() string {
	e.t.Helper()
	var s string
	err := e.sql.QueryRow(context.Background(), `SELECT concat_ws(' | ',
		(SELECT string_agg(concat_ws(',', name, uuid, contacts::text, auth_hash, expiration::text), ';' ORDER BY name) FROM organizations),
		(SELECT string_agg(fingerprint || '=' || state, ';' ORDER BY fingerprint) FROM clients),
		(SELECT count(*) FROM outbox), (SELECT count(*) FROM contact_links))`).Scan(&s)
	if err != nil {
		e.t.Fatal(err)
	}
	return s
}

func TestGetOrganization(t *testing.T) {
	e := newEnv(t, nil, adminapi.Options{})
	a := e.do("GET", "/admin/v1/organizations/acme", "")
	if a.status != http.StatusNotFound || a.code != "not_found" || !strings.Contains(a.msg, "acme") {
		t.Fatalf("absent organization: %d %s %q", a.status, a.code, a.msg)
	}

	e.put("acme", "finn@example.com", "jake@example.com")
	e.put("other", "bmo@example.com")
	e.register("acme", fprA, store.StateActive)
	e.register("acme", fprB, store.StatePending)
	e.register("acme", fprC, store.StateDisabled)

	a = e.do("GET", "/admin/v1/organizations/acme", "")
	if ct := a.header.Get("Content-Type"); ct != "application/json" {
		t.Errorf("Content-Type %q", ct)
	}
	got := e.organization(a)
	want := adminv1.Organization{Name: "acme", UUID: e.stored("acme").UUID, Contacts: []string{"finn@example.com", "jake@example.com"},
		Clients: adminv1.ClientCounts{Active: 1, Pending: 1, Disabled: 1}}
	if fmt.Sprint(got) != fmt.Sprint(want) || len(got.UUID) != 43 {
		t.Errorf("GET =\n%+v\nwant\n%+v", got, want)
	}
	var raw map[string]any
	json.Unmarshal(a.body, &raw)
	if v, ok := raw["expires"]; !ok || v != nil {
		t.Errorf("expires of an organization that never expires = %v (present %v), want null", v, ok)
	}
	if o := e.organization(e.do("GET", "/admin/v1/organizations/other", "")); o.Clients != (adminv1.ClientCounts{}) {
		t.Errorf("other organization counts %+v", o.Clients)
	}
	for _, k := range []string{"auth", "secret", "hash"} {
		if bytes.Contains(bytes.ToLower(a.body), []byte(k)) {
			t.Errorf("the answer mentions %q: %s", k, a.body)
		}
	}
}

func TestPutOrganization(t *testing.T) {
	e := newEnv(t, nil, adminapi.Options{})
	o := e.put("acme", "finn@example.com", "jake@example.com", "Finn@example.com")
	if o.Name != "acme" || !slices.Equal(o.Contacts, []string{"finn@example.com", "jake@example.com"}) || o.Expires != nil {
		t.Fatalf("created %+v", o)
	}
	created := e.stored("acme")
	// A new organization has a random code that nobody knows: clients
	// registering without one wait for an administrator.
	if created.AuthHash == "" || org.CodeMatches(created.AuthHash, "") {
		t.Errorf("a new organization has no auth code: %q", created.AuthHash)
	}
	if got := e.mailTo(); !slices.Equal(got, []string{"finn@example.com", "jake@example.com"}) {
		t.Errorf("contact mail to %v, want each new contact once", got)
	}
	pending, _ := e.db.PendingMail(context.Background())
	if len(pending) == 0 || pending[0].Subject != "KeyTrustee Contact Registration" {
		t.Errorf("queued mail %+v", pending)
	}

	// The same request again changes nothing and mails nobody.
	before := e.snapshot()
	if again := e.put("acme", "finn@example.com", "jake@example.com"); again.UUID != o.UUID {
		t.Errorf("UUID changed: %s → %s", o.UUID, again.UUID)
	}
	if after := e.snapshot(); after != before {
		t.Errorf("repeating the PUT changed\n%s\ninto\n%s", before, after)
	}

	// Contacts become exactly the list; only the new one is mailed; the
	// auth code stays.
	o = e.put("acme", "marceline@example.com", "finn@example.com")
	if !slices.Equal(o.Contacts, []string{"marceline@example.com", "finn@example.com"}) || o.UUID != created.UUID {
		t.Errorf("updated %+v", o)
	}
	if got := e.mailTo(); !slices.Equal(got, []string{"finn@example.com", "jake@example.com", "marceline@example.com"}) {
		t.Errorf("contact mail to %v", got)
	}
	if e.stored("acme").AuthHash != created.AuthHash {
		t.Error("PUT changed the auth code")
	}
}

func TestPutAuthCode(t *testing.T) {
	e := newEnv(t, nil, adminapi.Options{})
	e.put("acme", "finn@example.com")
	const code = "Corr3ct-Horse-Battery"
	a := e.do("PUT", "/admin/v1/organizations/acme/auth-code", `{"auth_code": "`+code+`"}`)
	if a.status != http.StatusNoContent || len(a.body) != 0 {
		t.Fatalf("set auth code: %d %s", a.status, a.body)
	}
	hash := e.stored("acme").AuthHash
	if !strings.HasPrefix(hash, "argon2id$") || !org.CodeMatches(hash, code) || org.CodeMatches(hash, "wrong") {
		t.Errorf("stored %q does not check the code", hash)
	}

	// Blank: clients are active at once.
	if a := e.do("PUT", "/admin/v1/organizations/acme/auth-code", `{"auth_code": ""}`); a.status != http.StatusNoContent {
		t.Fatalf("blank auth code: %d %s", a.status, a.body)
	}
	if hash := e.stored("acme").AuthHash; hash != "" {
		t.Errorf("blank code stored as %q", hash)
	}

	if a := e.do("PUT", "/admin/v1/organizations/nobody/auth-code", `{"auth_code": "`+code+`"}`); a.status != http.StatusNotFound || a.code != "not_found" {
		t.Errorf("unknown organization: %d %s", a.status, a.code)
	}
	// A code the rules refuse is not echoed either.
	bad := strings.Repeat("x", org.MaxAuthCodeLen) + "-Corr3ct"
	a = e.do("PUT", "/admin/v1/organizations/acme/auth-code", `{"auth_code": "`+bad+`"}`)
	if a.status != http.StatusBadRequest || strings.Contains(string(a.body), "Corr3ct") {
		t.Errorf("over-long code: %d %s", a.status, a.body)
	}
	a = e.do("PUT", "/admin/v1/organizations/acme/auth-code", `{"auth_code": 1234567}`)
	if a.status != http.StatusBadRequest || strings.Contains(string(a.body), "1234567") {
		t.Errorf("numeric code: %d %s", a.status, a.body)
	}
	a = e.do("PUT", "/admin/v1/organizations/acme/auth-code", `{"auth_code": "Corr3ct`)
	if a.status != http.StatusBadRequest || strings.Contains(string(a.body), "Corr3ct") {
		t.Errorf("cut body: %d %s", a.status, a.body)
	}
	if logs := e.logs.String(); strings.Contains(logs, "Corr3ct") || strings.Contains(logs, "1234567") {
		t.Errorf("the log holds the auth code:\n%s", logs)
	}
}

func TestSetClientState(t *testing.T) {
	e := newEnv(t, nil, adminapi.Options{})
	e.put("acme", "finn@example.com")
	e.put("other", "bmo@example.com")
	e.register("acme", fprA, store.StatePending)
	e.register("other", fprB, store.StateActive)

	path := "/admin/v1/organizations/acme/clients/" + fprA
	for _, step := range []struct {
		body string
		want store.ClientState
	}{
		{`{"state": "active"}`, store.StateActive},
		{`{"state": "disabled"}`, store.StateDisabled},
		{`{"state": "disabled"}`, store.StateDisabled},
		{`{"state": "active"}`, store.StateActive},
	} {
		if a := e.do("PUT", path, step.body); a.status != http.StatusNoContent {
			t.Fatalf("%s: %d %s", step.body, a.status, a.body)
		}
		if got := e.clientState(fprA); got != step.want {
			t.Errorf("after %s the client is %s", step.body, got)
		}
	}
	// gpg prints fingerprints in lower case too.
	if a := e.do("PUT", "/admin/v1/organizations/acme/clients/"+strings.ToLower(fprA), `{"state": "disabled"}`); a.status != http.StatusNoContent || e.clientState(fprA) != store.StateDisabled {
		t.Errorf("lower-case fingerprint: %d %s", a.status, a.body)
	}

	before := e.snapshot()
	for _, tt := range []struct{ path, why string }{
		{"/admin/v1/organizations/acme/clients/" + fprB, "a client of another organization"},
		{"/admin/v1/organizations/acme/clients/" + fprC, "an unknown client"},
		{"/admin/v1/organizations/nobody/clients/" + fprA, "an unknown organization"},
	} {
		a := e.do("PUT", tt.path, `{"state": "disabled"}`)
		if a.status != http.StatusNotFound || a.code != "not_found" {
			t.Errorf("%s: %d %s", tt.why, a.status, a.body)
		}
	}
	if after := e.snapshot(); after != before {
		t.Errorf("refused requests changed\n%s\ninto\n%s", before, after)
	}
}

func TestRetire(t *testing.T) {
	now := time.Date(2026, 11, 27, 13, 44, 54, 0, time.UTC)
	clock := func() time.Time { return now }
	e := newEnv(t, nil, adminapi.Options{Now: clock})
	e.put("acme", "finn@example.com")
	e.register("acme", fprA, store.StateActive)

	if a := e.do("POST", "/admin/v1/organizations/acme/retire", ""); a.status != http.StatusNoContent {
		t.Fatalf("retire: %d %s", a.status, a.body)
	}
	o := e.organization(e.do("GET", "/admin/v1/organizations/acme", ""))
	if o.Expires == nil || !o.Expires.Equal(now) {
		t.Errorf("retired organization expires %v, want %v", o.Expires, now)
	}
	// Its clients are refused from now on (organization_expired); they and
	// their state are kept.
	c, err := e.db.Client(context.Background(), fprA)
	if err != nil || c.State != store.StateActive || c.OrgExpires.After(now) {
		t.Errorf("client after retire: %+v, %v", c, err)
	}

	// Retiring again keeps the first expiration.
	now = now.Add(time.Hour)
	if a := e.do("POST", "/admin/v1/organizations/acme/retire", "{}"); a.status != http.StatusNoContent {
		t.Fatalf("retire again: %d %s", a.status, a.body)
	}
	if o := e.organization(e.do("GET", "/admin/v1/organizations/acme", "")); !o.Expires.Equal(now.Add(-time.Hour)) {
		t.Errorf("second retire moved the expiration to %v", o.Expires)
	}

	// Creating it again takes it back into use, with its clients.
	o = e.put("acme", "finn@example.com")
	if o.Expires != nil || o.Clients.Active != 1 {
		t.Errorf("re-created organization %+v", o)
	}
	if c, _ := e.db.Client(context.Background(), fprA); !c.OrgExpires.Equal(store.NeverExpires) {
		t.Errorf("client's organization expires %v", c.OrgExpires)
	}

	// A later expiration set with `kts org set-expiration` stays.
	later := now.Add(30 * 24 * time.Hour)
	if err := e.db.SetExpiration(context.Background(), "acme", later); err != nil {
		t.Fatal(err)
	}
	if o := e.put("acme", "finn@example.com"); o.Expires == nil || !o.Expires.Equal(later) {
		t.Errorf("PUT changed a future expiration to %v", o.Expires)
	}

	if a := e.do("POST", "/admin/v1/organizations/nobody/retire", ""); a.status != http.StatusNotFound || a.code != "not_found" {
		t.Errorf("retire unknown: %d %s", a.status, a.code)
	}
}

// TestBadInput checks that each kind of bad request is refused with 400 and
// changes nothing.
func TestBadInput(t *testing.T) {
	e := newEnv(t, nil, adminapi.Options{})
	e.put("acme", "finn@example.com")
	e.register("acme", fprA, store.StatePending)
	const org, client = "/admin/v1/organizations/acme", "/admin/v1/organizations/acme/clients/" + fprA
	huge := `{"contacts": ["` + strings.Repeat("a", adminapi.MaxBodyBytes) + `@example.com"]}`
	tests := []struct {
		name, method, path, body, code string
	}{
		{"bad JSON", "PUT", org, `{"contacts": [`, "invalid_json"},
		{"not JSON", "PUT", org, `contacts=a@example.com`, "invalid_json"},
		{"empty body", "PUT", org, ``, "invalid_json"},
		{"JSON array", "PUT", org, `["a@example.com"]`, "invalid_json"},
		{"two objects", "PUT", org, `{"contacts": ["a@example.com"]} {}`, "invalid_json"},
		{"contacts not a list", "PUT", org, `{"contacts": "a@example.com"}`, "invalid_json"},
		{"unknown field", "PUT", org, `{"contacts": ["a@example.com"], "auth_code": "x"}`, "unknown_field"},
		{"oversized body", "PUT", org, huge, "body_too_large"},
		{"no contacts", "PUT", org, `{}`, "invalid_input"},
		{"empty contacts", "PUT", org, `{"contacts": []}`, "invalid_input"},
		{"bad contact", "PUT", org, `{"contacts": ["not an address"]}`, "invalid_input"},
		{"contact with comma", "PUT", org, `{"contacts": ["a@example.com,b@example.com"]}`, "invalid_input"},
		{"empty contact", "PUT", org, `{"contacts": ["a@example.com", ""]}`, "invalid_input"},
		{"bad name", "PUT", "/admin/v1/organizations/-acme", `{"contacts": ["a@example.com"]}`, "invalid_name"},
		{"name with space", "PUT", "/admin/v1/organizations/ac%20me", `{"contacts": ["a@example.com"]}`, "invalid_name"},
		{"long name", "PUT", "/admin/v1/organizations/" + strings.Repeat("a", 65), `{"contacts": ["a@example.com"]}`, "invalid_name"},
		{"bad name on GET", "GET", "/admin/v1/organizations/a.b", ``, "invalid_name"},
		{"bad name on retire", "POST", "/admin/v1/organizations/a$b/retire", ``, "invalid_name"},
		{"auth code missing", "PUT", org + "/auth-code", `{}`, "invalid_input"},
		{"auth code null", "PUT", org + "/auth-code", `{"auth_code": null}`, "invalid_input"},
		{"auth code with control character", "PUT", org + "/auth-code", `{"auth_code": "a\u0007b"}`, "invalid_input"},
		{"auth code unknown field", "PUT", org + "/auth-code", `{"auth_code": "x", "code": "y"}`, "unknown_field"},
		{"auth code oversized", "PUT", org + "/auth-code", `{"auth_code": "` + strings.Repeat("x", adminapi.MaxBodyBytes) + `"}`, "body_too_large"},
		{"short fingerprint", "PUT", "/admin/v1/organizations/acme/clients/" + fprA[1:], `{"state": "active"}`, "invalid_fingerprint"},
		{"non-hex fingerprint", "PUT", "/admin/v1/organizations/acme/clients/" + strings.Repeat("G", 40), `{"state": "active"}`, "invalid_fingerprint"},
		{"bad state", "PUT", client, `{"state": "enabled"}`, "invalid_state"},
		{"pending state", "PUT", client, `{"state": "pending"}`, "invalid_state"},
		{"no state", "PUT", client, `{}`, "invalid_state"},
		{"state not a string", "PUT", client, `{"state": true}`, "invalid_json"},
		{"state unknown field", "PUT", client, `{"state": "active", "org": "other"}`, "unknown_field"},
		{"retire with a body", "POST", org + "/retire", `{"now": true}`, "unknown_field"},
		{"retire with bad JSON", "POST", org + "/retire", `now`, "invalid_json"},
	}
	before := e.snapshot()
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			a := e.do(tt.method, tt.path, tt.body)
			if a.status != http.StatusBadRequest || a.code != tt.code {
				t.Errorf("%s %s: %d %s (%s), want 400 %s", tt.method, tt.path, a.status, a.code, a.msg, tt.code)
			}
			if after := e.snapshot(); after != before {
				t.Errorf("the refused request changed\n%s\ninto\n%s", before, after)
			}
		})
	}
}

func TestRoutes(t *testing.T) {
	e := newEnv(t, nil, adminapi.Options{})
	a := e.do("DELETE", "/admin/v1/organizations/acme", "")
	if a.status != http.StatusMethodNotAllowed || a.code != "method_not_allowed" || a.header.Get("Allow") != "GET, PUT" {
		t.Errorf("DELETE: %d %s Allow %q", a.status, a.code, a.header.Get("Allow"))
	}
	for _, p := range []string{"/", "/v1/deposits", "/admin/v1/organizations", "/admin/v2/organizations/acme"} {
		if a := e.do("GET", p, ""); a.status != http.StatusNotFound || a.code != "no_route" {
			t.Errorf("GET %s: %d %s", p, a.status, a.code)
		}
	}
}

func TestRefusedWithoutCertificate(t *testing.T) {
	e := newEnv(t, nil, adminapi.Options{})
	for _, state := range []*tls.ConnectionState{nil, {HandshakeComplete: true}} {
		req := httptest.NewRequest("PUT", "/admin/v1/organizations/acme", strings.NewReader(`{"contacts": ["a@example.com"]}`))
		req.TLS = state
		if a := e.serve(req); a.status != http.StatusForbidden || a.code != "admin_certificate_required" {
			t.Errorf("TLS %v: %d %s", state, a.status, a.code)
		}
	}
	if _, err := e.db.Organization(context.Background(), "acme"); !errors.Is(err, store.ErrNotFound) {
		t.Errorf("an unauthenticated request created the organization: %v", err)
	}
}

// TestPassive checks that a passive answers reads and refuses changes with
// 503, whether it knows its role or only its database does.
func TestPassive(t *testing.T) {
	setup := newEnv(t, nil, adminapi.Options{})
	setup.put("acme", "finn@example.com")
	setup.register("acme", fprA, store.StatePending)
	readOnly := admintest.ReadOnly(t, setup.dsn)
	for _, tt := range []struct {
		name string
		db   *store.Store
		o    adminapi.Options
	}{
		{"role passive", setup.db, adminapi.Options{ReadOnly: true}},
		{"read-only database", readOnly, adminapi.Options{}},
	} {
		t.Run(tt.name, func(t *testing.T) {
			e := newEnv(t, tt.db, tt.o)
			before := setup.snapshot()
			for _, w := range []struct{ method, path, body string }{
				{"PUT", "/admin/v1/organizations/acme", `{"contacts": ["jake@example.com"]}`},
				{"PUT", "/admin/v1/organizations/newco", `{"contacts": ["jake@example.com"]}`},
				{"PUT", "/admin/v1/organizations/acme/auth-code", `{"auth_code": "code"}`},
				{"PUT", "/admin/v1/organizations/acme/clients/" + fprA, `{"state": "active"}`},
				{"POST", "/admin/v1/organizations/acme/retire", ``},
			} {
				a := e.do(w.method, w.path, w.body)
				if a.status != http.StatusServiceUnavailable || a.code != "read_only" || !strings.Contains(a.msg, "active") {
					t.Errorf("%s %s: %d %s %q", w.method, w.path, a.status, a.code, a.msg)
				}
			}
			if after := setup.snapshot(); after != before {
				t.Errorf("a passive changed\n%s\ninto\n%s", before, after)
			}
			if o := e.organization(e.do("GET", "/admin/v1/organizations/acme", "")); o.Clients.Pending != 1 {
				t.Errorf("GET on a passive: %+v", o)
			}
		})
	}
}

func TestWriteGate(t *testing.T) {
	e := newEnv(t, nil, adminapi.Options{WriteGate: func() error { return errors.New("the passive server's database is not connected") }})
	a := e.do("PUT", "/admin/v1/organizations/acme", `{"contacts": ["a@example.com"]}`)
	if a.status != http.StatusServiceUnavailable || a.code != "passive_unavailable" || a.header.Get("Retry-After") == "" {
		t.Errorf("write with the passive away: %d %s", a.status, a.code)
	}
	if a := e.do("GET", "/admin/v1/organizations/acme", ""); a.status != http.StatusNotFound {
		t.Errorf("read with the passive away: %d %s", a.status, a.code)
	}
}

func TestLogCarriesAdminIdentity(t *testing.T) {
	e := newEnv(t, nil, adminapi.Options{})
	e.put("acme", "finn@example.com")
	e.do("PUT", "/admin/v1/organizations/acme/auth-code", `{"auth_code": "hunter2-Secret"}`)
	var requests int
	for _, line := range strings.Split(strings.TrimSpace(e.logs.String()), "\n") {
		var rec map[string]any
		if err := json.Unmarshal([]byte(line), &rec); err != nil {
			t.Fatalf("log line %q: %v", line, err)
		}
		if rec["msg"] == "admin request" {
			requests++
			if rec["admin"] != operatorCN || rec["status"] == nil || rec["path"] == nil {
				t.Errorf("request log line without the admin or outcome: %s", line)
			}
		}
	}
	if requests != 2 {
		t.Errorf("%d request log lines, want 2:\n%s", requests, e.logs.String())
	}
	if strings.Contains(e.logs.String(), "hunter2") {
		t.Errorf("the log holds the auth code:\n%s", e.logs.String())
	}
}

// Changes are recorded in the database chain as made by the certificate's
// common name, from its address; refusals in the journal; never the code.
func TestChangesAreAuditedWithTheAdminIdentity(t *testing.T) {
	journal, err := audit.OpenJournal(t.TempDir(), audit.JournalOptions{})
	if err != nil {
		t.Fatal(err)
	}
	defer journal.Close()
	e := newEnv(t, nil, adminapi.Options{Journal: journal})
	const code = "Admin-S3cret-Code"
	if a := e.do("PUT", "/admin/v1/organizations/acme", `{"contacts": ["finn@example.com"]}`); a.status != http.StatusOK {
		t.Fatalf("put: %d %s", a.status, a.body)
	}
	if a := e.do("PUT", "/admin/v1/organizations/acme/auth-code", `{"auth_code": "`+code+`"}`); a.status != http.StatusNoContent {
		t.Fatalf("auth code: %d %s", a.status, a.body)
	}
	if a := e.do("PUT", "/admin/v1/organizations/acme/clients/"+fprA, `{"state": "disabled"}`); a.code != "not_found" {
		t.Fatalf("unknown client: %d %s", a.status, a.body)
	}
	if a := e.do("POST", "/admin/v1/organizations/acme/retire", ``); a.status != http.StatusNoContent {
		t.Fatalf("retire: %d %s", a.status, a.body)
	}
	var got []string
	err = e.db.AuditRecords(context.Background(), 1, func(r audit.Record) error {
		got = append(got, r.Action+" "+r.Object+" "+r.Actor+" "+r.Outcome)
		if r.Source != "192.0.2.1" || strings.Contains(r.Details, code) {
			t.Errorf("record %+v", r)
		}
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	want := []string{"org.create org:acme admin-cert:" + operatorCN + " ok", "org.auth_code org:acme admin-cert:" + operatorCN + " ok",
		"org.retire org:acme admin-cert:" + operatorCN + " ok"}
	if !slices.Equal(got, want) {
		t.Fatalf("records %q, want %q", got, want)
	}
	var refused []audit.Record
	audit.ReadJournal(journal.Dir(), func(r audit.Record) error {
		if r.Action != audit.ActionJournalOpened {
			refused = append(refused, r)
		}
		return nil
	})
	if len(refused) != 1 || refused[0].Actor != "admin-cert:"+operatorCN || refused[0].Outcome != "not_found" || refused[0].Action != "admin.put" {
		t.Fatalf("refusals: %+v", refused)
	}
}
