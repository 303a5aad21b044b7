package httpapi_test

import (
	"bytes"
	"context"
	"encoding/json"
	"io"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"path/filepath"
	"sync"
	"testing"
	"time"

	"github.com/jackc/pgx/v5/pgxpool"

	"trustee.dev/trustee/server/audit"
	"trustee.dev/trustee/server/auth"
	"trustee.dev/trustee/server/deposit"
	"trustee.dev/trustee/server/httpapi"
	"trustee.dev/trustee/server/keyring"
	"trustee.dev/trustee/server/openpgp"
	"trustee.dev/trustee/server/openpgp/openpgptest"
	"trustee.dev/trustee/server/org"
	"trustee.dev/trustee/server/pg/pgtest"
	"trustee.dev/trustee/server/store"
	"trustee.dev/trustee/test/harness"
)

// The auth code of the "acme" test organization; "open" has none.
const acmeCode = "ThisISAs3cr3t!"

// env is a server on real PostgreSQL, served over TLS by httptest.
type env struct {
	t       testing.TB
	store   *store.Store
	sql     *pgxpool.Pool // the store's database, below the store
	srv     *httptest.Server
	journal *audit.Journal      // the server's audit journal
	key     *openpgp.PrivateKey // the server's
	now     time.Time
	mu      sync.Mutex
	logs    harness.Buffer // the server's JSON log
}

func (e *env) clock() time.Time {
	e.mu.Lock()
	defer e.mu.Unlock()
	return e.now
}

func (e *env) advance(d time.Duration) {
	e.mu.Lock()
	e.now = e.now.Add(d)
	e.mu.Unlock()
}

// newEnv serves deposits as the daemon does: through the read cache and the
// batcher.
func newEnv(t testing.TB) *env { return newEnvWith(t, true) }

func newEnvWith(t testing.TB, cached bool) *env { return newEnvOpts(t, cached, nil) }

// newEnvOpts is newEnvWith whose server options are changed by opts first.
func newEnvOpts(t testing.TB, cached bool, opts func(*httpapi.Options)) *env {
	t.Helper()
	ctx, cancel := context.WithCancel(context.Background())
	t.Cleanup(cancel)
	dsn := pgtest.DSN(t)
	db, err := store.Open(ctx, dsn, 4)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(db.Close)
	if err := db.Migrate(ctx); err != nil {
		t.Fatal(err)
	}
	krPath := filepath.Join(t.TempDir(), "keyring.json")
	if err := keyring.CreateFile(krPath); err != nil {
		t.Fatal(err)
	}
	kr, err := keyring.LoadFile(krPath)
	if err != nil {
		t.Fatal(err)
	}
	tokens, err := auth.NewTokens(bytes.Repeat([]byte("k"), 32))
	if err != nil {
		t.Fatal(err)
	}
	e := &env{t: t, store: db, sql: pgtest.Pool(t, dsn), key: openpgptest.Key(t, 0), now: time.Now()}
	var deposits deposit.Store = db
	if cached {
		deposits = store.NewCache(ctx, db, store.NewBatcher(ctx, db, 1, 64), 1<<20, slog.New(slog.NewTextHandler(io.Discard, nil)))
	}
	journal, err := audit.OpenJournal(filepath.Join(t.TempDir(), "audit"), audit.JournalOptions{})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { journal.Close() })
	e.journal = journal
	o := httpapi.Options{
		Journal:   journal,
		Store:     db,
		Deposits:  &deposit.Service{Store: deposits, Keyring: kr, MaxBytes: 1024},
		ServerKey: e.key.Public(),
		Tokens:    tokens,
		Now:       e.clock,
		Log:       slog.New(slog.NewJSONHandler(&e.logs, &slog.HandlerOptions{Level: slog.LevelDebug})),
	}
	if opts != nil {
		opts(&o)
	}
	api := httpapi.New(o)
	e.srv = httptest.NewTLSServer(api.Handler())
	t.Cleanup(e.srv.Close)
	for name, code := range map[string]string{"acme": acmeCode, "open": ""} {
		hash, err := org.HashAuthCode(code)
		if err != nil {
			t.Fatal(err)
		}
		if _, _, err := db.AddOrganization(ctx, name, []string{"admin@example.com"}, hash); err != nil {
			t.Fatal(err)
		}
	}
	return e
}

// answer is a decoded response.
type answer struct {
	status int
	code   string // "error" field of a JSON error body
	body   []byte
	header http.Header
}

// do sends a request. sign: nil sends it unauthenticated; otherwise the
// request is signed by sign at the env's clock, unless authz is set, in
// which case it is sent as the Authorization header.
func (e *env) do(method, path string, body []byte, sign *openpgp.PrivateKey, authz string) answer {
	e.t.Helper()
	req, err := http.NewRequest(method, e.srv.URL+path, bytes.NewReader(body))
	if err != nil {
		e.t.Fatal(err)
	}
	if sign != nil {
		if err := auth.SignRequest(sign, req, body, e.clock()); err != nil {
			e.t.Fatal(err)
		}
	}
	if authz != "" {
		req.Header.Set("Authorization", authz)
	}
	return e.send(req)
}

func (e *env) send(req *http.Request) answer {
	e.t.Helper()
	resp, err := e.srv.Client().Do(req)
	if err != nil {
		e.t.Fatal(err)
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	a := answer{status: resp.StatusCode, body: b, header: resp.Header}
	if resp.StatusCode >= 400 {
		var eb struct {
			Error   string `json:"error"`
			Message string `json:"message"`
		}
		if err := json.Unmarshal(b, &eb); err != nil || eb.Error == "" || eb.Message == "" {
			e.t.Fatalf("%s %s: error answer %d is not {error, message} JSON: %q", req.Method, req.URL.Path, resp.StatusCode, b)
		}
		a.code = eb.Error
	}
	return a
}

// registerBody is a registration request body for key.
func registerBody(orgName, code string, armored []byte) []byte {
	b, _ := json.Marshal(map[string]string{"org": orgName, "auth_code": code, "public_key": string(armored)})
	return b
}

// register registers key i with an organization and returns the answer.
func (e *env) register(i int, orgName, code string) answer {
	e.t.Helper()
	k := openpgptest.Key(e.t, i)
	return e.do("POST", "/v1/register", registerBody(orgName, code, k.Public().Armor()), k, "")
}

// session opens a session for key and returns the token.
func (e *env) session(k *openpgp.PrivateKey) string {
	e.t.Helper()
	a := e.do("POST", "/v1/session", nil, k, "")
	if a.status != http.StatusCreated {
		e.t.Fatalf("open session: %d %s", a.status, a.body)
	}
	var s struct{ Token string }
	if err := json.Unmarshal(a.body, &s); err != nil {
		e.t.Fatal(err)
	}
	return s.Token
}

// counts is a snapshot of what requests could change.
type counts struct{ orgs, clients, active, deposits, nonces int }

func (e *env) counts() counts {
	e.t.Helper()
	var c counts
	err := e.sql.QueryRow(context.Background(), `SELECT
		(SELECT count(*) FROM organizations), (SELECT count(*) FROM clients),
		(SELECT count(*) FROM clients WHERE state = 'active'), (SELECT count(*) FROM deposits),
		(SELECT count(*) FROM used_nonces)`).Scan(&c.orgs, &c.clients, &c.active, &c.deposits, &c.nonces)
	if err != nil {
		e.t.Fatal(err)
	}
	return c
}
