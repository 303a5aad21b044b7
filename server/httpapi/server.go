// Package httpapi is the HTTPS API of the deposit server: routes, request
// decoding, authentication, and rendering of answers and errors.
//
// Handlers follow one shape: decode → validate → call the domain → render.
// Domain errors are turned into HTTP answers in one place (classify).
package httpapi

import (
	"context"
	"crypto/sha256"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/http"
	"os"
	"runtime"
	"strconv"
	"time"

	"github.com/prometheus/client_golang/prometheus"

	"trustee.dev/trustee/server/apierror"
	"trustee.dev/trustee/server/audit"
	"trustee.dev/trustee/server/auth"
	"trustee.dev/trustee/server/deposit"
	"trustee.dev/trustee/server/openpgp"
	"trustee.dev/trustee/server/org"
	"trustee.dev/trustee/server/registration"
	"trustee.dev/trustee/server/store"
)

// Options configure a Server.
type Options struct {
	Store     *store.Store
	Deposits  *deposit.Service
	ServerKey *openpgp.PublicKey
	Tokens    *auth.Tokens
	// SessionTTL is the lifetime of session tokens (default 5 minutes).
	SessionTTL time.Duration
	// MaxSkew is how far a signed request's timestamp may be from the
	// server's clock (default 5 minutes).
	MaxSkew time.Duration
	// RegisterRate and RegisterBurst limit registration attempts per
	// organization name and source address (default 1 per 6 s, burst 10).
	RegisterRate  float64
	RegisterBurst int
	Log           *slog.Logger
	Registry      prometheus.Registerer // nil: a private registry
	Now           func() time.Time

	// Nonces records the nonces of signed requests (default: Store). A
	// passive, whose database is read-only, keeps them in memory.
	Nonces auth.NonceStore
	// Forward, when set, takes every write: a passive sends writes to the
	// active.
	Forward http.Handler
	// WriteGate, when set, is asked before every write; an error is
	// answered at once with 503 passive_unavailable (the active refuses
	// writes its passive would not confirm).
	WriteGate func() error
	// Health, when set, adds the server's role and replication state to
	// /readyz; an error makes it answer 503.
	Health func(ctx context.Context) (any, error)
	// Collectors are registered with the metrics registry.
	Collectors []prometheus.Collector
	// Journal records what changes nothing in the database: reads,
	// listings, sessions opened, refusals and authentication failures
	// (package audit). Without one, every request that must be recorded
	// is refused with 503 audit_unavailable.
	Journal audit.Recorder
	// BodyGrace and BodyMinRate bound how long a request body may take to
	// arrive: BodyGrace, then one second per BodyMinRate bytes of its
	// Content-Length (defaults DefaultBodyGrace, DefaultBodyMinRate). A
	// body late is answered 408 body_timeout.
	BodyGrace   time.Duration
	BodyMinRate int64
	// CodeChecker checks the auth codes of registrations; nil: one that
	// hashes DefaultCodeHashes() codes at once and admits DefaultCodeChecks
	// registrations to wait for it, refusing more with 503 busy.
	CodeChecker *org.Checker
}

// Server serves the client API.
type Server struct {
	opts     Options
	log      *slog.Logger
	auth     *auth.Authenticator
	keys     *keyCache
	limiter  *limiter
	metrics  *metrics
	gatherer prometheus.Gatherer
	now      func() time.Time
	journal  audit.Recorder
	// registration holds the rules of POST /v1/register.
	registration *registration.Service
}

// New builds a Server.
func New(o Options) *Server {
	if o.SessionTTL == 0 {
		o.SessionTTL = 5 * time.Minute
	}
	if o.MaxSkew == 0 {
		o.MaxSkew = 5 * time.Minute
	}
	if o.RegisterRate == 0 {
		o.RegisterRate = 1.0 / 6
	}
	if o.RegisterBurst == 0 {
		o.RegisterBurst = 10
	}
	if o.Log == nil {
		o.Log = slog.Default()
	}
	if o.Now == nil {
		o.Now = time.Now
	}
	if o.CodeChecker == nil {
		o.CodeChecker = org.NewChecker(DefaultCodeHashes(), DefaultCodeChecks)
	}
	if o.BodyGrace == 0 {
		o.BodyGrace = DefaultBodyGrace
	}
	if o.BodyMinRate == 0 {
		o.BodyMinRate = DefaultBodyMinRate
	}
	reg := prometheus.NewRegistry()
	var registerer prometheus.Registerer = reg
	var gatherer prometheus.Gatherer = reg
	if o.Registry != nil {
		registerer = o.Registry
		if g, ok := o.Registry.(prometheus.Gatherer); ok {
			gatherer = g
		}
	}
	keys := &keyCache{store: o.Store, keys: map[string]*openpgp.PublicKey{}}
	registerer.MustRegister(o.Collectors...)
	if o.Nonces == nil {
		o.Nonces = o.Store
	}
	s := &Server{
		opts:     o,
		log:      o.Log,
		keys:     keys,
		limiter:  newLimiter(o.RegisterRate, o.RegisterBurst, o.Now),
		metrics:  newMetrics(registerer),
		gatherer: gatherer,
		now:      o.Now,
		journal:  o.Journal,
	}
	s.registration = &registration.Service{Store: o.Store, Codes: o.CodeChecker, Now: o.Now, Log: o.Log}
	if s.journal == nil {
		s.journal = refusingJournal{}
	}
	s.auth = &auth.Authenticator{Clients: keys, Nonces: o.Nonces, Tokens: o.Tokens, MaxSkew: o.MaxSkew, Now: o.Now}
	return s
}

// Handler returns the routes of the API wrapped in logging and metrics.
func (s *Server) Handler() http.Handler {
	mux := http.NewServeMux()
	mux.HandleFunc("GET /{$}", s.handleRoot)
	mux.HandleFunc("POST /{$}", s.write(s.handleKeyRegistration))
	mux.HandleFunc("GET /pks/lookup", s.handleLookup)
	mux.HandleFunc("POST /v1/register", s.write(s.handleRegister))
	mux.HandleFunc("POST /v1/session", s.handleSession)
	mux.HandleFunc("GET /v1/deposits", s.handleList)
	mux.HandleFunc("PUT /v1/deposits/{name}", s.write(s.handlePut))
	mux.HandleFunc("GET /v1/deposits/{name}", s.handleGet)
	mux.HandleFunc("DELETE /v1/deposits/{name}", s.write(s.handleDelete))
	mux.HandleFunc("GET /healthz", s.handleHealthz)
	mux.HandleFunc("GET /readyz", s.handleReadyz)
	mux.Handle("GET /metrics", s.metricsHandler())
	return s.instrument(s.framed(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		h, pattern := mux.Handler(r)
		if pattern == "" {
			s.noRoute(w, r, h)
			return
		}
		mux.ServeHTTP(w, r)
	})))
}

// noRoute answers a request no route takes with the mux's status (404, or
// 405 with Allow) and a JSON error body.
func (s *Server) noRoute(w http.ResponseWriter, r *http.Request, h http.Handler) {
	probe := &headerProbe{header: http.Header{}}
	h.ServeHTTP(probe, r)
	if allow := probe.header.Get("Allow"); allow != "" {
		w.Header().Set("Allow", allow)
	}
	if probe.status == http.StatusMethodNotAllowed {
		s.writeError(w, r, apierror.New(http.StatusMethodNotAllowed, "method_not_allowed", fmt.Sprintf("%s is not allowed on %s; allowed: %s", r.Method, r.URL.Path, probe.header.Get("Allow"))))
		return
	}
	s.writeError(w, r, apierror.New(http.StatusNotFound, "no_route", fmt.Sprintf("%s %s is not part of the API; see docs/API.md", r.Method, r.URL.Path)))
}

// headerProbe records what the mux's own error handler would answer.
type headerProbe struct {
	header http.Header
	status int
}

func (p *headerProbe) Header() http.Header         { return p.header }
func (p *headerProbe) Write(b []byte) (int, error) { return len(b), nil }
func (p *headerProbe) WriteHeader(status int)      { p.status = status }

// write wraps a handler that changes state: on a passive it forwards the
// request to the active; on an active it refuses at once when the pair
// cannot confirm writes.
func (s *Server) write(h http.HandlerFunc) http.HandlerFunc {
	return func(w http.ResponseWriter, r *http.Request) {
		if s.opts.Forward != nil {
			s.opts.Forward.ServeHTTP(w, r)
			return
		}
		if e := apierror.PassiveUnavailable.Refuse(w.Header(), s.opts.WriteGate, func(err error) string {
			return "writes need both servers of the pair and " + err.Error() + "; reads still work, retry the write later"
		}); e != nil {
			s.writeError(w, r, e)
			return
		}
		h(w, r)
	}
}

// PublicHandler serves what may travel without TLS on the same port: the
// HKP key lookup and the server fingerprint, both public. Anything else is
// refused with a pointer to HTTPS.
func (s *Server) PublicHandler() http.Handler {
	mux := http.NewServeMux()
	mux.HandleFunc("GET /pks/lookup", s.handleLookup)
	mux.HandleFunc("GET /{$}", func(w http.ResponseWriter, r *http.Request) {
		if r.URL.Query().Has("q") {
			s.writeError(w, r, apierror.New(http.StatusBadRequest, "https_required", "the key registration page is served over https:// only"))
			return
		}
		s.handleRoot(w, r)
	})
	mux.HandleFunc("/", func(w http.ResponseWriter, r *http.Request) {
		s.writeError(w, r, apierror.New(http.StatusBadRequest, "https_required",
			"only the HKP key lookup and the fingerprint are served over plain HTTP; use https:// on this port"))
	})
	return s.instrument(s.framed(mux))
}

// readBody reads at most limit bytes of the request body and its SHA-256.
// what names the body in the refusal of one too large: "deposit" (an
// error wrapping deposit.ErrTooLarge), or another request's name. The body
// must arrive within bodyTimeout of its length.
func (s *Server) readBody(w http.ResponseWriter, r *http.Request, limit int64, what string) ([]byte, [32]byte, error) {
	tooLarge := func(detail string) error {
		if what == "deposit" {
			return fmt.Errorf("%w: %s", deposit.ErrTooLarge, detail)
		}
		return apierror.New(http.StatusRequestEntityTooLarge, "too_large", fmt.Sprintf("the %s body is too large: %s", what, detail))
	}
	if r.ContentLength > limit {
		return nil, [32]byte{}, tooLarge(fmt.Sprintf("%d bytes, the limit is %d", r.ContentLength, limit))
	}
	timeout := bodyTimeout(r.ContentLength, s.opts.BodyGrace, s.opts.BodyMinRate)
	rc := http.NewResponseController(w)
	if err := rc.SetReadDeadline(time.Now().Add(timeout)); err != nil && !errors.Is(err, http.ErrNotSupported) {
		s.log.DebugContext(r.Context(), "setting the body's read deadline", "err", err)
	}
	body, err := io.ReadAll(http.MaxBytesReader(w, r.Body, limit))
	if err != nil {
		var mbe *http.MaxBytesError
		var ne net.Error
		switch {
		case errors.As(err, &mbe):
			return nil, [32]byte{}, tooLarge(fmt.Sprintf("the limit is %d bytes", limit))
		case errors.Is(err, os.ErrDeadlineExceeded) || errors.As(err, &ne) && ne.Timeout():
			w.Header().Set("Connection", "close")
			return nil, [32]byte{}, apierror.New(http.StatusRequestTimeout, "body_timeout", fmt.Sprintf(
				"%d of the %d bytes of the body arrived within %v (the server waits %v, then for at least %d bytes a second); nothing was done; send the whole body that Content-Length announces",
				len(body), r.ContentLength, timeout, s.opts.BodyGrace, s.opts.BodyMinRate))
		}
		return nil, [32]byte{}, apierror.New(http.StatusBadRequest, "unreadable_body", "could not read the request body: "+err.Error())
	}
	// The body is in: from now on the connection waits for the client's
	// next request, which the server times on its own.
	rc.SetReadDeadline(time.Time{})
	return body, sha256.Sum256(body), nil
}

// DefaultCodeHashes is how many auth codes the server hashes at once: half
// its CPUs, at least 1 and at most 4. Each hash takes 19 MiB while it runs
// (and, as garbage, until the next collection: with the server's GOGC of
// 400, the heap may grow to five times what is live), so the bound keeps
// the memory a flood of registrations takes small and independent of the
// flood's size, and leaves CPUs for the other requests.
func DefaultCodeHashes() int { return min(max(runtime.GOMAXPROCS(0)/2, 1), 4) }

// DefaultCodeChecks is how many registrations may wait for their auth code
// to be hashed (those hashing included); more are answered 503 busy. A
// waiting registration holds no more than its body.
const DefaultCodeChecks = 64

// Defaults of Options.BodyGrace and Options.BodyMinRate.
const (
	DefaultBodyGrace   = 10 * time.Second
	DefaultBodyMinRate = 16 << 10 // bytes a second: a 1 MiB deposit may take 74 s
)

// bodyTimeout is how long a body of n bytes may take to arrive: grace, and
// then n/minRate seconds, so a large deposit on a slow link has the time it
// needs and a short body that stops half-way holds nothing for long.
func bodyTimeout(n int64, grace time.Duration, minRate int64) time.Duration {
	if n <= 0 || minRate <= 0 {
		return grace
	}
	return grace + time.Duration(float64(n)/float64(minRate)*float64(time.Second))
}

// errTransferEncoding refuses a request with a Transfer-Encoding: its
// framing depends on who reads it (with a Content-Length as well, a proxy in
// front may read another body than this server, and smuggle a request).
var errTransferEncoding = apierror.New(http.StatusLengthRequired, "length_required",
	"a request with Transfer-Encoding (chunked) is refused, with or without Content-Length; nothing was done; send the body with a Content-Length header only")

// framed refuses requests whose body is not framed by a Content-Length
// alone, and closes their connection: what follows on it cannot be trusted
// to start a new request.
func (s *Server) framed(h http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		withTLSState(r)
		if len(r.TransferEncoding) > 0 {
			w.Header().Set("Connection", "close")
			s.writeError(w, r, errTransferEncoding)
			return
		}
		h.ServeHTTP(w, r)
	})
}

// authenticate checks the request's credentials over its body digest. A
// refusal is recorded in the journal (see recordAuthFailure).
func (s *Server) authenticate(r *http.Request, digest [32]byte) (auth.Identity, error) {
	header, err := auth.OneHeader(r.Header.Values("Authorization"))
	if err != nil {
		return auth.Identity{}, s.recordAuthFailure(r, err)
	}
	id, err := s.auth.Authenticate(r.Context(), auth.Request{
		Method:        r.Method,
		EscapedPath:   r.URL.EscapedPath(),
		RawQuery:      r.URL.RawQuery,
		Authorization: header,
		BodySHA256:    digest,
	})
	if err != nil {
		return id, s.recordAuthFailure(r, err)
	}
	return id, nil
}

func (s *Server) handleRoot(w http.ResponseWriter, r *http.Request) {
	if token := r.URL.Query().Get("q"); token != "" {
		s.handleKeyPage(w, r, token)
		return
	}
	action, asked := r.URL.Query()["a"]
	if !asked {
		writeText(w, http.StatusOK, "Trustee key trustee server. Fingerprint: GET /?a=fingerprint. API: docs/API.md\n")
		return
	}
	if len(action) != 1 || action[0] != "fingerprint" {
		s.writeError(w, r, apierror.New(http.StatusBadRequest, "unknown_action", "the only action is a=fingerprint (GET /?a=fingerprint); see docs/API.md"))
		return
	}
	writeText(w, http.StatusOK, s.opts.ServerKey.ID())
}

func (s *Server) handleHealthz(w http.ResponseWriter, _ *http.Request) {
	writeText(w, http.StatusOK, "ok\n")
}

func (s *Server) handleReadyz(w http.ResponseWriter, r *http.Request) {
	ctx, cancel := context.WithTimeout(r.Context(), 2*time.Second)
	defer cancel()
	if err := s.opts.Store.Ping(ctx); err != nil {
		s.log.Warn("not ready: database does not answer", "err", err)
		writeJSON(w, http.StatusServiceUnavailable, errorBody{Error: "database_unavailable", Message: "the server cannot reach its PostgreSQL database"})
		return
	}
	if s.opts.Health == nil {
		writeText(w, http.StatusOK, "ready\n")
		return
	}
	state, err := s.opts.Health(ctx)
	if err != nil {
		writeJSON(w, http.StatusServiceUnavailable, errorBody{Error: "not_ready", Message: err.Error()})
		return
	}
	writeJSON(w, http.StatusOK, state)
}

func writeText(w http.ResponseWriter, status int, s string) {
	w.Header().Set("Content-Type", "text/plain; charset=utf-8")
	w.Header().Set("Content-Length", strconv.Itoa(len(s)))
	w.WriteHeader(status)
	io.WriteString(w, s)
}
