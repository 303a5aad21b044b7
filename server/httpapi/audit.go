package httpapi

import (
	"context"
	"errors"
	"net/http"

	"trustee.dev/trustee/server/audit"
	"trustee.dev/trustee/server/auth"
)

// What the client API records (package audit): a change to the database
// is recorded by the store, in the change's transaction, with the actor
// this package puts in the request's context (asClient); everything else
// that matters — reads, listings, sessions opened, refusals, authentication
// failures — is recorded here, in the server's journal, before the answer
// is sent. When a record cannot be written the request is answered 503
// audit_unavailable and, for a change, nothing was changed.

// refusingJournal stands for a missing journal: it records nothing and
// refuses every request that must be recorded.
type refusingJournal struct{}

func (refusingJournal) Record(context.Context, audit.Event) error {
	return audit.Unavailable(errors.New("this server has no audit journal"))
}

// asClient makes client fpr the actor of the changes made with the
// request's context.
func asClient(r *http.Request, fpr string) context.Context {
	return audit.WithActor(r.Context(), audit.Actor{ID: audit.ClientActor(fpr), Source: sourceAddr(r), Details: forwarded(r)})
}

// forwarded is the address a forwarded request (a write a passive sent on
// to the active) says it came from: a claim, recorded as one.
func forwarded(r *http.Request) map[string]any {
	xff := r.Header.Get("X-Forwarded-For")
	if xff == "" {
		return nil
	}
	if len(xff) > 256 {
		xff = xff[:256]
	}
	return map[string]any{"forwarded_for": xff}
}

// record writes e to the journal, with the request's source address.
func (s *Server) record(r *http.Request, e audit.Event) error {
	if audit.IsUnaudited(r.Context()) {
		return nil
	}
	if e.Source == "" {
		e.Source = sourceAddr(r)
	}
	if fw := forwarded(r); fw != nil {
		if e.Details == nil {
			e.Details = fw
		} else {
			e.Details["forwarded_for"] = fw["forwarded_for"]
		}
	}
	return s.journal.Record(r.Context(), e)
}

// outcome is what a record says of err: "ok", or the code the client is
// answered.
func outcome(err error) string {
	if err == nil {
		return audit.OutcomeOK
	}
	return classify(err).Code
}

// recordRefusal records an operation by client fpr that failed with err,
// unless err is itself a failure to record (then there is nothing more to
// write). It returns err, or the error of recording it.
func (s *Server) recordRefusal(r *http.Request, fpr, action, object string, err error) error {
	if errors.Is(err, audit.ErrUnavailable) {
		return err
	}
	if rerr := s.record(r, audit.Event{Actor: audit.ClientActor(fpr), Action: action, Object: object, Outcome: outcome(err)}); rerr != nil {
		return rerr
	}
	return err
}

// recordAuthFailure records credentials that were refused, under the
// fingerprint the request claimed. A failure of the server itself (such
// as its database not answering) is not an authentication failure.
func (s *Server) recordAuthFailure(r *http.Request, err error) error {
	ae := classify(err)
	if ae.Status >= 500 {
		return err
	}
	claimed := ""
	if c, perr := auth.ParseAuthorization(r.Header.Get("Authorization")); perr == nil {
		claimed = c.Fingerprint
	}
	actor := audit.UnverifiedActor(claimed)
	if claimed != "" && (errors.Is(err, auth.ErrClientNotActive) || errors.Is(err, auth.ErrOrgExpired)) {
		actor = audit.ClientActor(claimed) // its signature verified; its standing did not
	}
	details := map[string]any{"method": r.Method}
	if rerr := s.record(r, audit.Event{Actor: actor, Action: audit.ActionAuthFailure,
		Object: "route:" + r.Pattern, Outcome: ae.Code, Details: details}); rerr != nil {
		return rerr
	}
	return err
}
