// Package apierror is how both HTTPS APIs of the server (server/httpapi,
// server/adminapi) turn an error into an answer: a status, a stable code
// (docs/API.md lists them) and a message the caller is shown.
//
// The failures of the server's own infrastructure — the audit log cannot
// record, the database is a read-only standby, does not confirm in time or
// cannot be reached, the server is stopping, the caller went away — are
// recognized here, once, and given their status and code here. Each API
// says which of them it reports and in what words (Messages), and maps
// only the errors of its own domain.
package apierror

import (
	"context"
	"errors"
	"net/http"

	"github.com/jackc/pgx/v5/pgconn"

	"trustee.dev/trustee/server/audit"
	"trustee.dev/trustee/server/store"
)

// Error is an answer to a request that failed: its HTTP status, its stable
// code and the message the caller reads. Messages never hold secrets.
type Error struct {
	Status  int
	Code    string
	Message string
}

// New is an answer with status, code and message.
func New(status int, code, message string) *Error {
	return &Error{Status: status, Code: code, Message: message}
}

func (e *Error) Error() string { return e.Code + ": " + e.Message }

// Failure is a failure of the server's infrastructure rather than of the
// request.
type Failure int

// The failures, in the order Messages.Cause tells them apart. Internal is
// what an API answers for an error it does not know.
const (
	AuditUnavailable Failure = iota + 1
	ReadOnly
	Timeout
	DatabaseUnavailable
	Stopping
	Canceled
	Internal
	// PassiveUnavailable: the active of a pair refuses a change because
	// its passive cannot confirm it (Refuse); no error is recognized as it.
	PassiveUnavailable
)

// StatusCanceled is the status recorded for a request whose caller went
// away (nginx's 499): nobody reads the answer.
const StatusCanceled = 499

// answers gives each failure its status and code, and the message of those
// worded alike by every API.
var answers = map[Failure]struct {
	status  int
	code    string
	message string
}{
	AuditUnavailable:    {http.StatusServiceUnavailable, "audit_unavailable", ""},
	ReadOnly:            {http.StatusServiceUnavailable, "read_only", ""},
	Timeout:             {http.StatusServiceUnavailable, "timeout", ""},
	DatabaseUnavailable: {http.StatusServiceUnavailable, "database_unavailable", ""},
	Stopping:            {http.StatusServiceUnavailable, "stopping", ""},
	Canceled:            {StatusCanceled, "canceled", "the client went away"},
	Internal:            {http.StatusInternalServerError, "internal", "the server failed to handle the request; its log has the details"},
	PassiveUnavailable:  {http.StatusServiceUnavailable, "passive_unavailable", ""},
}

// Status is the HTTP status f is answered with.
func (f Failure) Status() int { return answers[f].status }

// Code is the stable code f is answered with.
func (f Failure) Code() string { return answers[f].code }

// Refuse runs check (nil: nothing to check) and, when it fails, answers f
// in the words say gives its error, asking the caller on h to retry after
// 5 seconds; nil when check passes.
func (f Failure) Refuse(h http.Header, check func() error, say func(error) string) *Error {
	if check == nil {
		return nil
	}
	err := check()
	if err == nil {
		return nil
	}
	h.Set("Retry-After", "5")
	return New(f.Status(), f.Code(), say(err))
}

// readOnlySQLTransaction is PostgreSQL's SQLSTATE for a write on a standby.
const readOnlySQLTransaction = "25006"

// In reports whether err is failure f. An audit record that could not be
// written because the database could not be reached or did not confirm in
// time is that failure, not AuditUnavailable. Internal is no error's.
func (f Failure) In(err error) bool {
	switch f {
	case AuditUnavailable:
		return errors.Is(err, audit.ErrUnavailable) && !DatabaseUnavailable.In(err) && !Timeout.In(err)
	case ReadOnly:
		var pe *pgconn.PgError
		return errors.As(err, &pe) && pe.Code == readOnlySQLTransaction
	case Timeout:
		return errors.Is(err, context.DeadlineExceeded)
	case DatabaseUnavailable:
		// A ConnectError is also a connection refused by a check, e.g. a
		// standby catching up.
		var ce *pgconn.ConnectError
		return errors.Is(err, store.ErrNotReady) || errors.As(err, &ce) || store.ConnectionLost(err)
	case Stopping:
		return errors.Is(err, store.ErrStopping)
	case Canceled:
		return errors.Is(err, context.Canceled)
	}
	return false
}

// Messages words the failures an API reports: a failure it does not list
// is answered as Internal. An empty message is the one every API gives
// (for Canceled and Internal).
type Messages map[Failure]string

// Answer is the answer to failure f.
func (m Messages) Answer(f Failure) *Error {
	msg, ok := m[f]
	if !ok || msg == "" {
		msg = answers[f].message
	}
	return New(f.Status(), f.Code(), msg)
}

// causes are the failures Cause tells apart, first match first.
var causes = []Failure{ReadOnly, Timeout, DatabaseUnavailable, Stopping, Canceled}

// Cause is the answer to err when it is one of the failures m lists
// (AuditUnavailable aside: an API checks it before its domain errors, and
// these after), tried in the order ReadOnly, Timeout, DatabaseUnavailable,
// Stopping, Canceled; nil when it is none of them.
func (m Messages) Cause(err error) *Error {
	for _, f := range causes {
		if _, ok := m[f]; ok && f.In(err) {
			return m.Answer(f)
		}
	}
	return nil
}
