package apierror

import (
	"context"
	"errors"
	"fmt"
	"net/http"
	"testing"

	"github.com/jackc/pgx/v5/pgconn"

	"trustee.dev/trustee/server/audit"
	"trustee.dev/trustee/server/store"
)

// Each error is the failures it is, and no other.
func TestFailureIn(t *testing.T) {
	readOnly := &pgconn.PgError{Code: "25006", Message: "cannot execute INSERT in a read-only transaction"}
	for _, c := range []struct {
		name string
		err  error
		is   []Failure
	}{
		{"audit", audit.Unavailable(errors.New("disk full")), []Failure{AuditUnavailable}},
		{"audit, database not ready", audit.Unavailable(fmt.Errorf("lock: %w", store.ErrNotReady)), []Failure{DatabaseUnavailable}},
		// A deadline is a net.Error too: Cause tells it a Timeout first.
		{"audit, deadline", audit.Unavailable(fmt.Errorf("lock: %w", context.DeadlineExceeded)), []Failure{Timeout, DatabaseUnavailable}},
		{"audit, canceled", audit.Unavailable(fmt.Errorf("lock: %w", context.Canceled)), []Failure{AuditUnavailable, Canceled}},
		{"read-only standby", fmt.Errorf("put: %w", readOnly), []Failure{ReadOnly}},
		{"other SQL error", &pgconn.PgError{Code: "23505"}, nil},
		{"deadline", fmt.Errorf("put: %w", context.DeadlineExceeded), []Failure{Timeout, DatabaseUnavailable}},
		{"not ready", fmt.Errorf("get: %w", store.ErrNotReady), []Failure{DatabaseUnavailable}},
		{"connect", &pgconn.ConnectError{}, []Failure{DatabaseUnavailable}},
		{"stopping", fmt.Errorf("put: %w", store.ErrStopping), []Failure{Stopping}},
		{"canceled", fmt.Errorf("put: %w", context.Canceled), []Failure{Canceled}},
		{"anything else", errors.New("boom"), nil},
	} {
		t.Run(c.name, func(t *testing.T) {
			want := map[Failure]bool{}
			for _, f := range c.is {
				want[f] = true
			}
			for f := AuditUnavailable; f <= Internal; f++ {
				if got := f.In(c.err); got != want[f] {
					t.Errorf("%s.In = %v, want %v", f.Code(), got, want[f])
				}
			}
		})
	}
}

// Cause answers only the failures an API lists, the first in its order, in
// the API's words; the rest is left to the API (nil).
func TestMessagesCause(t *testing.T) {
	client := Messages{Timeout: "client timeout", DatabaseUnavailable: "client db", Stopping: "client stopping", Canceled: ""}
	admin := Messages{ReadOnly: "admin read-only", Timeout: "admin timeout", DatabaseUnavailable: "admin db", Canceled: ""}
	readOnly := &pgconn.PgError{Code: "25006"}
	for _, c := range []struct {
		name    string
		m       Messages
		err     error
		status  int
		code    string
		message string
	}{
		{"client, timeout", client, context.DeadlineExceeded, http.StatusServiceUnavailable, "timeout", "client timeout"},
		{"admin, timeout", admin, context.DeadlineExceeded, http.StatusServiceUnavailable, "timeout", "admin timeout"},
		{"client, stopping", client, store.ErrStopping, http.StatusServiceUnavailable, "stopping", "client stopping"},
		{"admin does not report stopping", admin, store.ErrStopping, 0, "", ""},
		{"client does not report read-only", client, readOnly, 0, "", ""},
		{"admin, read-only", admin, readOnly, http.StatusServiceUnavailable, "read_only", "admin read-only"},
		{"read-only before timeout", admin, errors.Join(context.DeadlineExceeded, readOnly), http.StatusServiceUnavailable, "read_only", "admin read-only"},
		{"timeout before database", client, errors.Join(store.ErrNotReady, context.DeadlineExceeded), http.StatusServiceUnavailable, "timeout", "client timeout"},
		{"database before canceled", client, errors.Join(context.Canceled, store.ErrNotReady), http.StatusServiceUnavailable, "database_unavailable", "client db"},
		{"canceled, the common words", admin, context.Canceled, StatusCanceled, "canceled", "the client went away"},
		{"audit is the API's to check", client, audit.Unavailable(errors.New("disk full")), 0, "", ""},
		{"none", client, errors.New("boom"), 0, "", ""},
	} {
		t.Run(c.name, func(t *testing.T) {
			got := c.m.Cause(c.err)
			if c.code == "" {
				if got != nil {
					t.Fatalf("Cause = %v, want nil", got)
				}
				return
			}
			if got == nil || got.Status != c.status || got.Code != c.code || got.Message != c.message {
				t.Fatalf("Cause = %+v, want %d %s %q", got, c.status, c.code, c.message)
			}
		})
	}
}

func TestAnswerInternal(t *testing.T) {
	got := Messages{}.Answer(Internal)
	if got.Status != http.StatusInternalServerError || got.Code != "internal" || got.Message != "the server failed to handle the request; its log has the details" {
		t.Errorf("Answer(Internal) = %+v", got)
	}
	if got.Error() != "internal: "+got.Message {
		t.Errorf("Error() = %q", got.Error())
	}
}

func TestRefuse(t *testing.T) {
	say := func(err error) string { return "writes need both servers and " + err.Error() }
	tests := []struct {
		name      string
		check     func() error
		wantRetry string
		wantErr   *Error
	}{
		{"no check (a single server)", nil, "", nil},
		{"the check passes", func() error { return nil }, "", nil},
		{"the check refuses", func() error { return errors.New("the passive is away") }, "5",
			New(http.StatusServiceUnavailable, "passive_unavailable", "writes need both servers and the passive is away")},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			h := http.Header{}
			got := PassiveUnavailable.Refuse(h, tt.check, say)
			if (got == nil) != (tt.wantErr == nil) || got != nil && *got != *tt.wantErr {
				t.Errorf("Refuse = %v, want %v", got, tt.wantErr)
			}
			if h.Get("Retry-After") != tt.wantRetry {
				t.Errorf("Retry-After %q, want %q", h.Get("Retry-After"), tt.wantRetry)
			}
		})
	}
	if PassiveUnavailable.In(errors.New("the passive is away")) {
		t.Error("an error was recognized as PassiveUnavailable: only Refuse answers it")
	}
}
