package httpapi

import (
	"context"
	"encoding/json"
	"errors"
	"log/slog"
	"net/http"

	"github.com/jackc/pgx/v5/pgconn"

	"trustee.dev/trustee/server/audit"
	"trustee.dev/trustee/server/auth"
	"trustee.dev/trustee/server/deposit"
	"trustee.dev/trustee/server/keyring"
	"trustee.dev/trustee/server/openpgp"
	"trustee.dev/trustee/server/org"
	"trustee.dev/trustee/server/store"
	"trustee.dev/trustee/server/wire"
)

// apiError is an error with the HTTP status, the stable code and the
// message a client sees.
type apiError struct {
	status  int
	code    string
	message string
}

func (e *apiError) Error() string { return e.code + ": " + e.message }

func newError(status int, code, message string) *apiError {
	return &apiError{status: status, code: code, message: message}
}

// errAuditUnavailable answers a request whose audit record could not be
// written: it was not carried out.
var errAuditUnavailable = newError(http.StatusServiceUnavailable, "audit_unavailable",
	"the server could not record this request in its audit log, so it did not carry it out (nothing was changed); retry later, or use the other server of the pair")

// errorBody is the JSON body of every 4xx and 5xx answer.
type errorBody = wire.ErrorBody

// classify maps a domain error to what the client is told. Messages of
// domain errors are safe to show: they never hold secrets.
func classify(err error) *apiError {
	var ae *apiError
	if errors.As(err, &ae) {
		return ae
	}
	msg := err.Error()
	switch {
	case errors.Is(err, audit.ErrUnavailable) && !databaseUnavailable(err) && !errors.Is(err, context.DeadlineExceeded) && !errors.Is(err, context.Canceled):
		return errAuditUnavailable
	case errors.Is(err, auth.ErrNoCredentials):
		return newError(http.StatusUnauthorized, "unauthenticated", "this request needs an Authorization header: sign it (KTS-PGP) or use a session token (KTS-Session); see docs/API.md")
	case errors.Is(err, auth.ErrMalformed):
		return newError(http.StatusBadRequest, "malformed_authorization", msg)
	case errors.Is(err, auth.ErrSkew):
		return newError(http.StatusUnauthorized, "clock_skew", msg)
	case errors.Is(err, auth.ErrReplay):
		return newError(http.StatusUnauthorized, "replayed_request", "this nonce was already used; sign every request with a fresh nonce")
	case errors.Is(err, auth.ErrUnknownClient), errors.Is(err, store.ErrUnknownClient):
		return newError(http.StatusUnauthorized, "unknown_client", "no client is registered with this fingerprint; register first")
	case errors.Is(err, auth.ErrBadSignature):
		return newError(http.StatusUnauthorized, "bad_signature", "the signature does not verify with the client's key over this request's canonical form; see docs/API.md")
	case errors.Is(err, auth.ErrTokenExpired):
		return newError(http.StatusUnauthorized, "token_expired", "the session token expired; open a new session with a signed POST /v1/session")
	case errors.Is(err, auth.ErrBadToken):
		return newError(http.StatusUnauthorized, "bad_token", "the session token is not valid on this server; open a new session")
	case errors.Is(err, auth.ErrOrgExpired):
		return newError(http.StatusForbidden, "organization_expired", msg)
	case errors.Is(err, auth.ErrClientNotActive), errors.Is(err, store.ErrClientNotActive):
		return newError(http.StatusForbidden, "client_not_active", "this client is pending or disabled; ask an administrator of its organization to enable it")
	case errors.Is(err, openpgp.ErrPrivateKey):
		return newError(http.StatusBadRequest, "private_key", msg)
	case errors.Is(err, openpgp.ErrWeakKey):
		return newError(http.StatusBadRequest, "weak_key", msg)
	case errors.Is(err, openpgp.ErrInvalidKey):
		return newError(http.StatusBadRequest, "invalid_key", msg)
	case errors.Is(err, org.ErrBusy):
		return newError(http.StatusServiceUnavailable, "busy", "the server is checking as many auth codes as it can at once; nothing was done; retry after the seconds Retry-After gives")
	case errors.Is(err, org.ErrInvalid):
		return newError(http.StatusBadRequest, "invalid_input", msg)
	case errors.Is(err, deposit.ErrInvalidName):
		return newError(http.StatusBadRequest, "invalid_name", msg)
	case errors.Is(err, deposit.ErrTooLarge):
		return newError(http.StatusRequestEntityTooLarge, "too_large", msg)
	case errors.Is(err, store.ErrNotFound):
		return newError(http.StatusNotFound, "not_found", msg)
	case errors.Is(err, store.ErrExists):
		return newError(http.StatusConflict, "already_exists", msg)
	case errors.Is(err, context.DeadlineExceeded):
		return newError(http.StatusServiceUnavailable, "timeout", "the database did not confirm in time (is the passive server down?); the outcome of a write is unknown: read it back before retrying")
	case errors.Is(err, keyring.ErrUnavailable):
		return newError(http.StatusServiceUnavailable, "hsm_unavailable", "the HSM that holds this server's keys does not answer right now; nothing was written; retry shortly (the other server of the pair may answer reads)")
	case databaseUnavailable(err):
		return newError(http.StatusServiceUnavailable, "database_unavailable", "this server cannot reach its database right now; the other server of the pair can answer, or retry shortly; if this was a write, its outcome is unknown: read it back before retrying")
	case errors.Is(err, store.ErrStopping):
		return newError(http.StatusServiceUnavailable, "stopping", "this server is stopping; nothing was done; the other server of the pair answers, or retry shortly")
	case errors.Is(err, context.Canceled):
		return newError(499, "canceled", "the client went away")
	}
	return newError(http.StatusInternalServerError, "internal", "the server failed to handle the request; its log has the details")
}

// databaseUnavailable reports errors that mean the database could not be
// reached or is restarting, as opposed to a failed statement.
func databaseUnavailable(err error) bool {
	var ce *pgconn.ConnectError // also a connection refused by a check, e.g. a standby catching up
	return errors.Is(err, store.ErrNotReady) || errors.As(err, &ce) || store.ConnectionLost(err)
}

func (s *Server) writeError(w http.ResponseWriter, r *http.Request, err error) {
	ae := classify(err)
	switch {
	case ae.status == http.StatusServiceUnavailable:
		s.log.WarnContext(r.Context(), "request refused", "route", r.Pattern, "err", err)
	case ae.status == http.StatusNotImplemented:
		// What the client asked for is not offered: its error, not the server's.
		s.log.DebugContext(r.Context(), "request refused", "route", r.Pattern, "err", err)
	case ae.status >= 500:
		s.log.ErrorContext(r.Context(), "request failed", "route", r.Pattern, "err", err)
	}
	writeJSON(w, ae.status, errorBody{Error: ae.code, Message: ae.message})
}

func writeJSON(w http.ResponseWriter, status int, v any) {
	w.Header().Set("Content-Type", "application/json")
	w.Header().Set("X-Content-Type-Options", "nosniff")
	w.WriteHeader(status)
	enc := json.NewEncoder(w)
	enc.SetIndent("", "  ")
	if err := enc.Encode(v); err != nil {
		slog.Debug("write response", "err", err)
	}
}
