// Package adminapi is the admin API: the Kubernetes operator manages
// organizations and their clients through it. It is served on a listener
// of its own that admits only clients with an admin certificate (mutual
// TLS; see daemon.AdminTLSConfig), never on the client API's port, and it
// trusts the verified certificate as the caller's identity.
//
// Changes go through orgadmin, as `kts org` makes them. Answers with a
// status of 400 or more carry {"error": code, "message": text}, as the
// client API's do, and a request that is refused changes nothing. Auth
// codes are never logged or echoed.
package adminapi

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/http"
	"strings"
	"time"

	"trustee.dev/trustee/server/apierror"
	"trustee.dev/trustee/server/audit"
	"trustee.dev/trustee/server/org"
	"trustee.dev/trustee/server/orgadmin"
	"trustee.dev/trustee/server/store"
	"trustee.dev/trustee/server/wire"
	"trustee.dev/trustee/server/wire/adminv1"
)

// MaxBodyBytes is the largest request body accepted.
const MaxBodyBytes = 64 << 10

// DefaultWriteTimeout bounds a change: in a pair, a commit waits for the
// passive.
const DefaultWriteTimeout = 10 * time.Second

// Options configure the API.
type Options struct {
	Store *store.Store
	// LinkBase is the base URL of links in mail to contacts
	// (config.Config.LinkBase).
	LinkBase string
	Log      *slog.Logger
	// ReadOnly marks a passive, whose database is a read-only standby:
	// every change is refused at once with 503 read_only.
	ReadOnly bool
	// WriteGate, when set, is asked before every change; an error is
	// answered at once with 503 passive_unavailable (the active refuses
	// writes its passive would not confirm).
	WriteGate func() error
	// WriteTimeout bounds a change (default DefaultWriteTimeout).
	WriteTimeout time.Duration
	// Now is the clock (default time.Now).
	Now func() time.Time
	// Journal, when set, records the changes this API refuses (package
	// audit). The changes it makes are recorded by the store, in their
	// transactions, as made by the certificate's common name.
	Journal audit.Recorder
}

// Handler serves the admin API.
type Handler struct {
	opts  Options
	log   *slog.Logger
	admin *orgadmin.Admin
	mux   *http.ServeMux
}

// New builds the admin API's handler.
func New(o Options) *Handler {
	if o.Log == nil {
		o.Log = slog.Default()
	}
	if o.WriteTimeout == 0 {
		o.WriteTimeout = DefaultWriteTimeout
	}
	if o.Now == nil {
		o.Now = time.Now
	}
	h := &Handler{opts: o, log: o.Log, admin: &orgadmin.Admin{Store: o.Store, LinkBase: o.LinkBase, Now: o.Now}, mux: http.NewServeMux()}
	h.mux.HandleFunc("GET /admin/v1/organizations/{name}", h.handle(false, h.getOrganization))
	h.mux.HandleFunc("PUT /admin/v1/organizations/{name}", h.handle(true, h.putOrganization))
	h.mux.HandleFunc("PUT /admin/v1/organizations/{name}/auth-code", h.handle(true, h.putAuthCode))
	h.mux.HandleFunc("PUT /admin/v1/organizations/{name}/clients/{fingerprint}", h.handle(true, h.putClientState))
	h.mux.HandleFunc("POST /admin/v1/organizations/{name}/retire", h.handle(true, h.retire))
	return h
}

// ServeHTTP serves a request, logging it with the admin's identity.
func (h *Handler) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	start := time.Now()
	rec := &statusRecorder{ResponseWriter: w, status: http.StatusOK}
	admin, ok := adminIdentity(r)
	if ok {
		r = r.WithContext(audit.WithActor(r.Context(), audit.Actor{ID: audit.AdminCertActor(admin), Source: remoteHost(r)}))
	}
	switch _, pattern := h.mux.Handler(r); {
	case !ok:
		h.writeError(rec, r, apierror.New(http.StatusForbidden, "admin_certificate_required",
			"the admin API needs a verified admin client certificate (mutual TLS)"))
	case pattern == "":
		h.noRoute(rec, r)
	default:
		h.mux.ServeHTTP(rec, r)
	}
	// The path holds names and fingerprints only; bodies are never logged.
	h.log.LogAttrs(r.Context(), slog.LevelInfo, "admin request",
		slog.String("admin", admin), slog.String("method", r.Method), slog.String("path", r.URL.EscapedPath()),
		slog.Int("status", rec.status), slog.Duration("duration", time.Since(start)), slog.String("remote", r.RemoteAddr))
}

// remoteHost is the address a request came from, without its port.
func remoteHost(r *http.Request) string {
	host, _, err := net.SplitHostPort(r.RemoteAddr)
	if err != nil {
		return r.RemoteAddr
	}
	return host
}

// adminIdentity is the common name of the verified client certificate.
func adminIdentity(r *http.Request) (string, bool) {
	if r.TLS == nil || len(r.TLS.VerifiedChains) == 0 || len(r.TLS.VerifiedChains[0]) == 0 {
		return "", false
	}
	return r.TLS.VerifiedChains[0][0].Subject.CommonName, true
}

type statusRecorder struct {
	http.ResponseWriter
	status int
}

func (s *statusRecorder) WriteHeader(status int) {
	s.status = status
	s.ResponseWriter.WriteHeader(status)
}

// handle wraps a route: it checks the organization name and, for a change,
// that this server can make it, and bounds the change's time.
func (h *Handler) handle(change bool, fn func(w http.ResponseWriter, r *http.Request, name string) error) http.HandlerFunc {
	return func(w http.ResponseWriter, r *http.Request) {
		name := r.PathValue("name")
		if err := org.ValidateName(name); err != nil {
			h.writeError(w, r, apierror.New(http.StatusBadRequest, "invalid_name", err.Error()))
			return
		}
		if change {
			if h.opts.ReadOnly {
				h.writeError(w, r, failures.Answer(apierror.ReadOnly))
				return
			}
			if e := apierror.PassiveUnavailable.Refuse(w.Header(), h.opts.WriteGate, func(err error) string {
				return "changes need both servers of the pair and " + err.Error() + "; nothing was changed, retry later"
			}); e != nil {
				h.writeError(w, r, e)
				return
			}
			ctx, cancel := context.WithTimeout(r.Context(), h.opts.WriteTimeout)
			defer cancel()
			r = r.WithContext(ctx)
		}
		if err := fn(w, r, name); err != nil {
			if change {
				err = h.recordRefusal(r, name, err)
			}
			h.writeError(w, r, err)
		}
	}
}

// recordRefusal records a change that was refused or failed, in the
// journal when there is one. It returns err, or the error of recording it.
func (h *Handler) recordRefusal(r *http.Request, name string, err error) error {
	if h.opts.Journal == nil || errors.Is(err, audit.ErrUnavailable) {
		return err
	}
	e := audit.Change(r.Context(), "admin."+strings.ToLower(r.Method), r.URL.EscapedPath(), classify(err).Code, map[string]any{"org": name})
	if rerr := h.opts.Journal.Record(r.Context(), e); rerr != nil {
		return rerr
	}
	return err
}

func (h *Handler) getOrganization(w http.ResponseWriter, r *http.Request, name string) error {
	o, err := h.opts.Store.Organization(r.Context(), name)
	if err != nil {
		return err
	}
	return h.writeOrganization(w, r, o)
}

func (h *Handler) putOrganization(w http.ResponseWriter, r *http.Request, name string) error {
	var req adminv1.OrganizationRequest
	if err := decodeBody(w, r, &req); err != nil {
		return err
	}
	if req.Contacts == nil {
		return apierror.New(http.StatusBadRequest, "invalid_input", `the body must give "contacts": a list of e-mail addresses`)
	}
	res, err := h.admin.Put(r.Context(), name, req.Contacts)
	if err != nil {
		return err
	}
	if res.Created {
		h.log.InfoContext(r.Context(), "organization created", "org", name, "admin", adminOf(r))
	}
	if len(res.Invited) > 0 {
		h.log.InfoContext(r.Context(), "contact registration mail queued", "org", name, "contacts", res.Invited)
	}
	return h.writeOrganization(w, r, res.Org)
}

func (h *Handler) putAuthCode(w http.ResponseWriter, r *http.Request, name string) error {
	var req adminv1.AuthCodeRequest
	if err := decodeBody(w, r, &req); err != nil {
		return err
	}
	if req.AuthCode == nil {
		return apierror.New(http.StatusBadRequest, "invalid_input", `the body must give "auth_code": the new code, or "" for none`)
	}
	if err := h.admin.SetAuthCode(r.Context(), name, *req.AuthCode); err != nil {
		return err
	}
	w.WriteHeader(http.StatusNoContent)
	return nil
}

func (h *Handler) putClientState(w http.ResponseWriter, r *http.Request, name string) error {
	fp, err := orgadmin.ParseFingerprint(r.PathValue("fingerprint"))
	if err != nil {
		return apierror.New(http.StatusBadRequest, "invalid_fingerprint", err.Error())
	}
	var req adminv1.ClientStateRequest
	if err := decodeBody(w, r, &req); err != nil {
		return err
	}
	var state store.ClientState
	switch {
	case req.State == nil:
		return apierror.New(http.StatusBadRequest, "invalid_state", `the body must give "state": "active" or "disabled"`)
	case *req.State == string(store.StateActive), *req.State == string(store.StateDisabled):
		state = store.ClientState(*req.State)
	default:
		return apierror.New(http.StatusBadRequest, "invalid_state", fmt.Sprintf(`state %q: a client is set "active" or "disabled"`, *req.State))
	}
	prev, err := h.admin.SetClientState(r.Context(), name, fp, state)
	if err != nil {
		return err
	}
	if prev != state {
		h.log.InfoContext(r.Context(), "client state changed", "org", name, "fingerprint", fp, "state", state, "was", prev, "admin", adminOf(r))
	}
	w.WriteHeader(http.StatusNoContent)
	return nil
}

func (h *Handler) retire(w http.ResponseWriter, r *http.Request, name string) error {
	if err := decodeEmptyBody(w, r); err != nil {
		return err
	}
	if err := h.admin.Retire(r.Context(), name); err != nil {
		return err
	}
	h.log.InfoContext(r.Context(), "organization retired", "org", name, "admin", adminOf(r))
	w.WriteHeader(http.StatusNoContent)
	return nil
}

func adminOf(r *http.Request) string {
	admin, _ := adminIdentity(r)
	return admin
}

// writeOrganization answers with o and its clients counted by state.
func (h *Handler) writeOrganization(w http.ResponseWriter, r *http.Request, o store.Organization) error {
	counts, err := h.opts.Store.ClientCounts(r.Context(), o.Name)
	if err != nil {
		return err
	}
	out := adminv1.Organization{Name: o.Name, UUID: o.UUID, Contacts: o.Contacts,
		Clients: adminv1.ClientCounts{Active: counts[store.StateActive], Pending: counts[store.StatePending], Disabled: counts[store.StateDisabled]}}
	if out.Contacts == nil {
		out.Contacts = []string{}
	}
	if o.Expiration.Before(store.NeverExpires) {
		t := o.Expiration.UTC()
		out.Expires = &t
	}
	writeJSON(w, http.StatusOK, out)
	return nil
}

// decodeBody reads a JSON object of at most MaxBodyBytes into v, refusing
// unknown fields and anything after the object. Its errors never quote the
// body: it may hold an auth code.
func decodeBody(w http.ResponseWriter, r *http.Request, v any) error {
	if r.ContentLength > MaxBodyBytes {
		return errTooLarge
	}
	dec := json.NewDecoder(http.MaxBytesReader(w, r.Body, MaxBodyBytes))
	dec.DisallowUnknownFields()
	if err := dec.Decode(v); err != nil {
		return bodyError(err)
	}
	if _, err := dec.Token(); err != io.EOF {
		if err != nil {
			return bodyError(err)
		}
		return apierror.New(http.StatusBadRequest, "invalid_json", "the body must hold one JSON object and nothing after it")
	}
	return nil
}

// decodeEmptyBody accepts no body, or an empty JSON object.
func decodeEmptyBody(w http.ResponseWriter, r *http.Request) error {
	if r.ContentLength == 0 {
		return nil
	}
	if r.ContentLength > MaxBodyBytes {
		return errTooLarge
	}
	b, err := io.ReadAll(http.MaxBytesReader(w, r.Body, MaxBodyBytes))
	if err != nil {
		return bodyError(err)
	}
	if len(strings.TrimSpace(string(b))) == 0 {
		return nil
	}
	var empty struct{}
	dec := json.NewDecoder(strings.NewReader(string(b)))
	dec.DisallowUnknownFields()
	if err := dec.Decode(&empty); err != nil {
		return bodyError(err)
	}
	if _, err := dec.Token(); err != io.EOF {
		return apierror.New(http.StatusBadRequest, "invalid_json", "the body must be empty or {}")
	}
	return nil
}

var errTooLarge = apierror.New(http.StatusBadRequest, "body_too_large", fmt.Sprintf("the body is larger than %d bytes", MaxBodyBytes))

// bodyError describes a body that could not be decoded, without its content.
func bodyError(err error) error {
	var mbe *http.MaxBytesError
	var syn *json.SyntaxError
	var typ *json.UnmarshalTypeError
	switch {
	case errors.As(err, &mbe):
		return errTooLarge
	case errors.Is(err, io.EOF):
		return apierror.New(http.StatusBadRequest, "invalid_json", "the body is empty; it must hold a JSON object")
	case errors.Is(err, io.ErrUnexpectedEOF):
		return apierror.New(http.StatusBadRequest, "invalid_json", "the body ends inside its JSON object")
	case errors.As(err, &syn):
		return apierror.New(http.StatusBadRequest, "invalid_json", fmt.Sprintf("the body is not valid JSON (at byte %d)", syn.Offset))
	case errors.As(err, &typ):
		if typ.Field == "" {
			return apierror.New(http.StatusBadRequest, "invalid_json", "the body must be a JSON object")
		}
		// Value may hold the literal ("number 1234"): name its type only.
		kind, _, _ := strings.Cut(typ.Value, " ")
		return apierror.New(http.StatusBadRequest, "invalid_json", fmt.Sprintf("field %q must not be a JSON %s", typ.Field, kind))
	case strings.HasPrefix(err.Error(), "json: unknown field "):
		return apierror.New(http.StatusBadRequest, "unknown_field", "the body has "+strings.TrimPrefix(err.Error(), "json: ")+"; see docs/API.md#admin-api")
	}
	return apierror.New(http.StatusBadRequest, "invalid_json", "the body could not be read as a JSON object")
}

// failures words the infrastructure failures the admin API reports.
var failures = apierror.Messages{
	apierror.AuditUnavailable:    "the change could not be recorded in the audit log, so it was not made; retry later",
	apierror.ReadOnly:            "this server is the passive of its pair and its database is a read-only standby; send changes to the active's admin API",
	apierror.Timeout:             "the database did not confirm in time (is the passive server down?); the outcome is unknown: read the organization back before retrying",
	apierror.DatabaseUnavailable: "this server cannot reach its database right now; retry shortly; if this was a change, its outcome is unknown: read it back before retrying",
	apierror.Canceled:            "",
}

// classify maps an error to the answer. Messages of domain errors are safe
// to show: they never hold auth codes.
func classify(err error) *apierror.Error {
	var ae *apierror.Error
	switch {
	case errors.As(err, &ae):
		return ae
	case apierror.AuditUnavailable.In(err):
		return failures.Answer(apierror.AuditUnavailable)
	case errors.Is(err, org.ErrInvalid):
		return apierror.New(http.StatusBadRequest, "invalid_input", err.Error())
	case errors.Is(err, store.ErrNotFound):
		return apierror.New(http.StatusNotFound, "not_found", err.Error())
	}
	if ae := failures.Cause(err); ae != nil {
		return ae
	}
	return failures.Answer(apierror.Internal)
}

func (h *Handler) writeError(w http.ResponseWriter, r *http.Request, err error) {
	ae := classify(err)
	switch {
	case ae.Status == http.StatusServiceUnavailable:
		h.log.WarnContext(r.Context(), "admin request refused", "path", r.URL.Path, "err", err)
	case ae.Status >= 500:
		h.log.ErrorContext(r.Context(), "admin request failed", "path", r.URL.Path, "err", err)
	}
	writeJSON(w, ae.Status, wire.ErrorBody{Error: ae.Code, Message: ae.Message})
}

// noRoute answers a request no route takes: 405 with Allow when the path
// exists for other methods, else 404.
func (h *Handler) noRoute(w http.ResponseWriter, r *http.Request) {
	var allow []string
	for _, m := range []string{http.MethodGet, http.MethodPut, http.MethodPost} {
		probe := r.Clone(r.Context())
		probe.Method = m
		if _, pattern := h.mux.Handler(probe); pattern != "" {
			allow = append(allow, m)
		}
	}
	if len(allow) > 0 {
		w.Header().Set("Allow", strings.Join(allow, ", "))
		h.writeError(w, r, apierror.New(http.StatusMethodNotAllowed, "method_not_allowed",
			fmt.Sprintf("%s is not allowed on %s; allowed: %s", r.Method, r.URL.Path, strings.Join(allow, ", "))))
		return
	}
	h.writeError(w, r, apierror.New(http.StatusNotFound, "no_route", fmt.Sprintf("%s %s is not part of the admin API; see docs/API.md#admin-api", r.Method, r.URL.Path)))
}

func writeJSON(w http.ResponseWriter, status int, v any) {
	w.Header().Set("Content-Type", "application/json")
	w.Header().Set("X-Content-Type-Options", "nosniff")
	w.Header().Set("Cache-Control", "no-store")
	w.WriteHeader(status)
	enc := json.NewEncoder(w)
	enc.SetIndent("", "  ")
	enc.Encode(v)
}
