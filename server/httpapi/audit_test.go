package httpapi_test

import (
	"context"
	"encoding/base64"
	"net/http"
	"os"
	"strings"
	"testing"

	dto "github.com/prometheus/client_model/go"

	"trustee.dev/trustee/server/audit"
	"trustee.dev/trustee/server/auth"
	"trustee.dev/trustee/server/openpgp/openpgptest"
	"trustee.dev/trustee/server/store"
)

// journal reads the server's journal as text.
func (e *env) journalText() string {
	e.t.Helper()
	files, err := audit.JournalFiles(e.journal.Dir())
	if err != nil {
		e.t.Fatal(err)
	}
	var b strings.Builder
	for _, f := range files {
		data, err := os.ReadFile(f)
		if err != nil {
			e.t.Fatal(err)
		}
		b.Write(data)
	}
	return b.String()
}

// journalRecords reads the journal's records.
func (e *env) journalRecords() []audit.Record {
	e.t.Helper()
	var out []audit.Record
	if err := audit.ReadJournal(e.journal.Dir(), func(r audit.Record) error { out = append(out, r); return nil }); err != nil {
		e.t.Fatal(err)
	}
	return out
}

// dbRecords reads the database chain.
func (e *env) dbRecords() []audit.Record {
	e.t.Helper()
	var out []audit.Record
	if err := e.store.AuditRecords(context.Background(), 1, func(r audit.Record) error { out = append(out, r); return nil }); err != nil {
		e.t.Fatal(err)
	}
	return out
}

// find returns the records with action and object (object "" matches any).
func find(rs []audit.Record, action, object string) []audit.Record {
	var out []audit.Record
	for _, r := range rs {
		if r.Action == action && (object == "" || r.Object == object) {
			out = append(out, r)
		}
	}
	return out
}

func counter(c interface{ Write(*dto.Metric) error }) float64 {
	var m dto.Metric
	c.Write(&m)
	return m.GetCounter().GetValue()
}

// Every kind of request that matters is recorded, with its actor, source
// and outcome, before it is answered; never its secrets.
func TestRequestsAreAudited(t *testing.T) {
	e := newEnv(t)
	owner, pending, stranger := openpgptest.Key(t, 0), openpgptest.Key(t, 1), openpgptest.Key(t, 2)
	fp, fpPending := owner.Public().Fingerprint(), pending.Public().Fingerprint()

	// Registration: accepted, pending, refused.
	if a := e.register(0, "acme", acmeCode); a.status != http.StatusCreated {
		t.Fatalf("register: %d %s", a.status, a.body)
	}
	if a := e.register(1, "acme", "wrong code"); a.status != http.StatusCreated {
		t.Fatalf("register pending: %d %s", a.status, a.body)
	}
	if a := e.register(2, "nosuch", acmeCode); a.code != "unknown_org" {
		t.Fatalf("register in an unknown org: %d %s", a.status, a.body)
	}
	if a := e.register(0, "acme", acmeCode); a.code != "already_exists" {
		t.Fatalf("register twice: %d %s", a.status, a.body)
	}

	// Deposits: created, read, listed, refused, deleted; a session opened.
	const contents = "DEPOSIT-CONTENTS-0xC0FFEE"
	token := e.session(owner)
	bearer := "KTS-Session " + token
	if a := e.do("PUT", "/v1/deposits/k1", []byte(contents), nil, bearer); a.status != http.StatusCreated {
		t.Fatalf("put: %d %s", a.status, a.body)
	}
	if a := e.do("PUT", "/v1/deposits/k1", []byte(contents), nil, bearer); a.code != "already_exists" {
		t.Fatalf("put again: %d %s", a.status, a.body)
	}
	if a := e.do("GET", "/v1/deposits/k1", nil, owner, ""); a.status != http.StatusOK || string(a.body) != contents {
		t.Fatalf("get: %d %s", a.status, a.body)
	}
	if a := e.do("GET", "/v1/deposits/nothing", nil, nil, bearer); a.code != "not_found" {
		t.Fatalf("get missing: %d %s", a.status, a.body)
	}
	if a := e.do("GET", "/v1/deposits", nil, nil, bearer); a.status != http.StatusOK {
		t.Fatalf("list: %d %s", a.status, a.body)
	}
	if a := e.do("PUT", "/v1/deposits/p", []byte("x"), pending, ""); a.code != "client_not_active" {
		t.Fatalf("pending put: %d %s", a.status, a.body)
	}
	if a := e.do("DELETE", "/v1/deposits/k1", nil, nil, bearer); a.status != http.StatusNoContent {
		t.Fatalf("delete: %d %s", a.status, a.body)
	}
	if a := e.do("DELETE", "/v1/deposits/k1", nil, nil, bearer); a.code != "not_found" {
		t.Fatalf("delete again: %d %s", a.status, a.body)
	}

	// Authentication failures: an unknown key, a bad token, no credentials.
	if a := e.do("GET", "/v1/deposits/k1", nil, stranger, ""); a.code != "unknown_client" {
		t.Fatalf("stranger: %d %s", a.status, a.body)
	}
	raw, err := base64.RawURLEncoding.DecodeString(token)
	if err != nil {
		t.Fatal(err)
	}
	raw[len(raw)-1] ^= 1 // another MAC
	forged := base64.RawURLEncoding.EncodeToString(raw)
	if a := e.do("GET", "/v1/deposits/k1", nil, nil, "KTS-Session "+forged); a.status != http.StatusUnauthorized {
		t.Fatalf("bad token: %d %s", a.status, a.body)
	}
	if a := e.do("GET", "/v1/deposits", nil, nil, ""); a.code != "unauthenticated" {
		t.Fatalf("no credentials: %d %s", a.status, a.body)
	}

	// An administrator enables the pending client (as kts org does).
	admin := audit.WithActor(context.Background(), audit.Actor{ID: "os:root", Source: "local:test"})
	if _, err := e.store.SetClientState(admin, fpPending, store.StateActive); err != nil {
		t.Fatal(err)
	}

	db, journal := e.dbRecords(), e.journalRecords()
	client := audit.ClientActor(fp)
	source := "127.0.0.1"
	check := func(rs []audit.Record, action, object, actor, outcome string) audit.Record {
		t.Helper()
		got := find(rs, action, object)
		for _, r := range got {
			if r.Actor == actor && r.Outcome == outcome {
				if r.Source != source && !strings.HasPrefix(actor, "os:") {
					t.Errorf("%s %s: source %q", action, object, r.Source)
				}
				return r
			}
		}
		t.Fatalf("no %s of %s by %s with outcome %s in %+v", action, object, actor, outcome, got)
		return audit.Record{}
	}
	// Changes: in the database chain.
	if r := check(db, audit.ActionClientRegister, "client:"+fp, client, "active"); !strings.Contains(r.Details, `"org":"acme"`) {
		t.Errorf("registration details: %s", r.Details)
	}
	check(db, audit.ActionClientRegister, "client:"+fpPending, audit.ClientActor(fpPending), "pending")
	check(db, audit.ActionDepositCreate, "deposit:"+fp+"/k1", client, "ok")
	check(db, audit.ActionDepositDelete, "deposit:"+fp+"/k1", client, "ok")
	check(db, audit.ActionClientState, "client:"+fpPending, "os:root", "ok")
	// The rest: in the journal.
	if r := check(journal, audit.ActionClientRegister, "client:"+stranger.Public().Fingerprint(), audit.UnverifiedActor(stranger.Public().Fingerprint()), "refused"); !strings.Contains(r.Details, `"reason":"unknown_org"`) {
		t.Errorf("refused registration details: %s", r.Details)
	}
	check(journal, audit.ActionClientRegister, "client:"+fp, audit.UnverifiedActor(fp), "refused")
	check(journal, audit.ActionSessionOpen, "client:"+fp, client, "ok")
	check(journal, audit.ActionDepositCreate, "deposit:"+fp+"/k1", client, "already_exists")
	check(journal, audit.ActionDepositRead, "deposit:"+fp+"/k1", client, "ok")
	check(journal, audit.ActionDepositRead, "deposit:"+fp+"/nothing", client, "not_found")
	check(journal, audit.ActionDepositList, "deposits:"+fp, client, "ok")
	check(journal, audit.ActionAuthFailure, "route:PUT /v1/deposits/{name}", audit.ClientActor(fpPending), "client_not_active")
	check(journal, audit.ActionDepositDelete, "deposit:"+fp+"/k1", client, "not_found")
	check(journal, audit.ActionAuthFailure, "route:GET /v1/deposits/{name}", audit.UnverifiedActor(stranger.Public().Fingerprint()), "unknown_client")
	check(journal, audit.ActionAuthFailure, "route:GET /v1/deposits/{name}", "anonymous", "bad_token")
	check(journal, audit.ActionAuthFailure, "route:GET /v1/deposits", "anonymous", "unauthenticated")
	if n := len(find(db, audit.ActionDepositRead, "")); n != 0 {
		t.Errorf("%d reads in the database chain", n)
	}

	// Both chains hold together; neither holds a secret.
	for name, rs := range map[string][]audit.Record{"db": db, "journal": journal} {
		v := &audit.Verifier{Key: e.key.Public()}
		for _, r := range rs {
			if err := v.Add(r); err != nil {
				t.Fatalf("%s: %v", name, err)
			}
		}
	}
	var all strings.Builder
	for _, r := range db {
		all.Write(audit.AppendLine(nil, "db", &r))
	}
	all.WriteString(e.journalText())
	for what, secret := range map[string]string{
		"auth code": acmeCode, "deposit contents": contents, "deposit contents (base64)": base64.StdEncoding.EncodeToString([]byte(contents)),
		"session token": token, "argon2 hash": "argon2id",
	} {
		if strings.Contains(all.String(), secret) {
			t.Errorf("the audit log holds the %s", what)
		}
	}
	// Nor a request's signature or nonce.
	req, _ := http.NewRequest("GET", e.srv.URL+"/v1/deposits/k1", nil)
	auth.SignRequest(owner, req, nil, e.clock())
	c, _ := auth.ParseAuthorization(req.Header.Get("Authorization"))
	e.send(req)
	text := e.journalText()
	if strings.Contains(text, c.Nonce) || strings.Contains(text, base64.StdEncoding.EncodeToString(c.Signature)) {
		t.Error("the journal holds a request's nonce or signature")
	}
}

// A change whose record cannot be written is refused with 503
// audit_unavailable, changes nothing, and is counted.
func TestChangesFailClosed(t *testing.T) {
	e := newEnv(t)
	owner := openpgptest.Key(t, 0)
	if a := e.register(0, "acme", acmeCode); a.status != http.StatusCreated {
		t.Fatal(a.status)
	}
	token := "KTS-Session " + e.session(owner)
	if a := e.do("PUT", "/v1/deposits/kept", []byte("x"), nil, token); a.status != http.StatusCreated {
		t.Fatal(a.status)
	}
	for _, sql := range []string{
		`CREATE FUNCTION kts_test_refuse() RETURNS trigger LANGUAGE plpgsql AS $$ BEGIN RAISE EXCEPTION 'refused (test)'; END $$`,
		`CREATE TRIGGER kts_test_refuse BEFORE INSERT ON audit_log FOR EACH ROW EXECUTE FUNCTION kts_test_refuse()`,
	} {
		if _, err := e.sql.Exec(context.Background(), sql); err != nil {
			t.Fatal(err)
		}
	}
	before, failures := e.counts(), counter(audit.Failures.WithLabelValues(audit.ChainDB))
	for _, req := range []struct{ method, path, body string }{
		{"PUT", "/v1/deposits/new", "x"}, {"DELETE", "/v1/deposits/kept", ""},
	} {
		a := e.do(req.method, req.path, []byte(req.body), nil, token)
		if a.status != http.StatusServiceUnavailable || a.code != "audit_unavailable" || !strings.Contains(string(a.body), "nothing was changed") {
			t.Errorf("%s %s: %d %s", req.method, req.path, a.status, a.body)
		}
	}
	if a := e.register(1, "acme", acmeCode); a.code != "audit_unavailable" {
		t.Errorf("register: %d %s", a.status, a.body)
	}
	if after := e.counts(); after.deposits != before.deposits || after.clients != before.clients {
		t.Fatalf("changed without records: %+v → %+v", before, after)
	}
	if a := e.do("GET", "/v1/deposits/kept", nil, nil, token); a.status != http.StatusOK {
		t.Fatalf("a read (journal) still works: %d %s", a.status, a.body)
	}
	if got := counter(audit.Failures.WithLabelValues(audit.ChainDB)) - failures; got < 3 {
		t.Fatalf("kts_audit_failures_total{chain=db} grew by %v", got)
	}
	if !strings.Contains(e.metrics(), `kts_http_requests_total{method="PUT",route="PUT /v1/deposits/{name}",status="503"}`) {
		t.Error("the refusal is not in the request metrics")
	}
}

// A read whose record cannot be written is not answered with the deposit.
func TestReadsFailClosed(t *testing.T) {
	e := newEnv(t)
	owner := openpgptest.Key(t, 0)
	if a := e.register(0, "acme", acmeCode); a.status != http.StatusCreated {
		t.Fatal(a.status)
	}
	token := "KTS-Session " + e.session(owner)
	if a := e.do("PUT", "/v1/deposits/k", []byte("SECRET-BYTES"), nil, token); a.status != http.StatusCreated {
		t.Fatal(a.status)
	}
	failures := counter(audit.Failures.WithLabelValues(audit.ChainJournal))
	e.journal.Close() // the journal's disk is gone
	for _, path := range []string{"/v1/deposits/k", "/v1/deposits"} {
		a := e.do("GET", path, nil, nil, token)
		if a.status != http.StatusServiceUnavailable || a.code != "audit_unavailable" || strings.Contains(string(a.body), "SECRET-BYTES") {
			t.Errorf("GET %s: %d %s", path, a.status, a.body)
		}
	}
	if a := e.do("POST", "/v1/session", nil, owner, ""); a.code != "audit_unavailable" || strings.Contains(string(a.body), "token") && a.status == 201 {
		t.Errorf("session: %d %s", a.status, a.body)
	}
	if got := counter(audit.Failures.WithLabelValues(audit.ChainJournal)) - failures; got < 3 {
		t.Fatalf("kts_audit_failures_total{chain=journal} grew by %v", got)
	}
}

// metrics returns the server's /metrics text.
func (e *env) metrics() string {
	e.t.Helper()
	a := e.do("GET", "/metrics", nil, nil, "")
	return string(a.body)
}
