package httpapi

import (
	"encoding/json"
	"errors"
	"log/slog"
	"net/http"

	"trustee.dev/trustee/server/apierror"
	"trustee.dev/trustee/server/auth"
	"trustee.dev/trustee/server/deposit"
	"trustee.dev/trustee/server/keyring"
	"trustee.dev/trustee/server/openpgp"
	"trustee.dev/trustee/server/org"
	"trustee.dev/trustee/server/registration"
	"trustee.dev/trustee/server/store"
	"trustee.dev/trustee/server/wire"
)

// failures words the infrastructure failures the client API reports.
var failures = apierror.Messages{
	// A request whose audit record could not be written was not carried out.
	apierror.AuditUnavailable:    "the server could not record this request in its audit log, so it did not carry it out (nothing was changed); retry later, or use the other server of the pair",
	apierror.Timeout:             "the database did not confirm in time (is the passive server down?); the outcome of a write is unknown: read it back before retrying",
	apierror.DatabaseUnavailable: "this server cannot reach its database right now; the other server of the pair can answer, or retry shortly; if this was a write, its outcome is unknown: read it back before retrying",
	apierror.Stopping:            "this server is stopping; nothing was done; the other server of the pair answers, or retry shortly",
	apierror.Canceled:            "",
}

// errorBody is the JSON body of every 4xx and 5xx answer.
type errorBody = wire.ErrorBody

// classify maps a domain error to what the client is told. Messages of
// domain errors are safe to show: they never hold secrets.
func classify(err error) *apierror.Error {
	var ae *apierror.Error
	if errors.As(err, &ae) {
		return ae
	}
	msg := err.Error()
	switch {
	case apierror.AuditUnavailable.In(err) && !apierror.Canceled.In(err): // a client that went away is told so
		return failures.Answer(apierror.AuditUnavailable)
	case errors.Is(err, auth.ErrNoCredentials):
		return apierror.New(http.StatusUnauthorized, "unauthenticated", "this request needs an Authorization header: sign it (KTS-PGP) or use a session token (KTS-Session); see docs/API.md")
	case errors.Is(err, auth.ErrMalformed):
		return apierror.New(http.StatusBadRequest, "malformed_authorization", msg)
	case errors.Is(err, auth.ErrSkew):
		return apierror.New(http.StatusUnauthorized, "clock_skew", msg)
	case errors.Is(err, auth.ErrReplay):
		return apierror.New(http.StatusUnauthorized, "replayed_request", "this nonce was already used; sign every request with a fresh nonce")
	case errors.Is(err, auth.ErrUnknownClient), errors.Is(err, store.ErrUnknownClient):
		return apierror.New(http.StatusUnauthorized, "unknown_client", "no client is registered with this fingerprint; register first")
	case errors.Is(err, auth.ErrBadSignature):
		return apierror.New(http.StatusUnauthorized, "bad_signature", "the signature does not verify with the client's key over this request's canonical form; see docs/API.md")
	case errors.Is(err, auth.ErrTokenExpired):
		return apierror.New(http.StatusUnauthorized, "token_expired", "the session token expired; open a new session with a signed POST /v1/session")
	case errors.Is(err, auth.ErrBadToken):
		return apierror.New(http.StatusUnauthorized, "bad_token", "the session token is not valid on this server; open a new session")
	case errors.Is(err, auth.ErrOrgExpired):
		return apierror.New(http.StatusForbidden, "organization_expired", msg)
	case errors.Is(err, auth.ErrClientNotActive), errors.Is(err, store.ErrClientNotActive):
		return apierror.New(http.StatusForbidden, "client_not_active", "this client is pending or disabled; ask an administrator of its organization to enable it")
	case errors.Is(err, openpgp.ErrPrivateKey):
		return apierror.New(http.StatusBadRequest, "private_key", msg)
	case errors.Is(err, openpgp.ErrWeakKey):
		return apierror.New(http.StatusBadRequest, "weak_key", msg)
	case errors.Is(err, openpgp.ErrInvalidKey):
		return apierror.New(http.StatusBadRequest, "invalid_key", msg)
	case errors.Is(err, org.ErrBusy):
		return apierror.New(http.StatusServiceUnavailable, "busy", "the server is checking as many auth codes as it can at once; nothing was done; retry after the seconds Retry-After gives")
	case errors.Is(err, org.ErrInvalid), errors.Is(err, registration.ErrInvalid):
		return apierror.New(http.StatusBadRequest, "invalid_input", msg)
	case errors.Is(err, registration.ErrUnknownOrg):
		return apierror.New(http.StatusNotFound, "unknown_org", msg)
	case errors.Is(err, deposit.ErrInvalidName):
		return apierror.New(http.StatusBadRequest, "invalid_name", msg)
	case errors.Is(err, deposit.ErrTooLarge):
		return apierror.New(http.StatusRequestEntityTooLarge, "too_large", msg)
	case errors.Is(err, store.ErrNotFound):
		return apierror.New(http.StatusNotFound, "not_found", msg)
	case errors.Is(err, store.ErrExists):
		return apierror.New(http.StatusConflict, "already_exists", msg)
	case errors.Is(err, keyring.ErrUnavailable):
		return apierror.New(http.StatusServiceUnavailable, "hsm_unavailable", "the HSM that holds this server's keys does not answer right now; nothing was written; retry shortly (the other server of the pair may answer reads)")
	}
	if ae := failures.Cause(err); ae != nil {
		return ae
	}
	return failures.Answer(apierror.Internal)
}

func (s *Server) writeError(w http.ResponseWriter, r *http.Request, err error) {
	ae := classify(err)
	switch {
	case ae.Status == http.StatusServiceUnavailable:
		s.log.WarnContext(r.Context(), "request refused", "route", r.Pattern, "err", err)
	case ae.Status == http.StatusNotImplemented:
		// What the client asked for is not offered: its error, not the server's.
		s.log.DebugContext(r.Context(), "request refused", "route", r.Pattern, "err", err)
	case ae.Status >= 500:
		s.log.ErrorContext(r.Context(), "request failed", "route", r.Pattern, "err", err)
	}
	writeJSON(w, ae.Status, errorBody{Error: ae.Code, Message: ae.Message})
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
