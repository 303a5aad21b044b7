package httpapi

import (
	"context"
	"fmt"
	"net/http"
	"testing"

	"trustee.dev/trustee/server/auth"
	"trustee.dev/trustee/server/org"
	"trustee.dev/trustee/server/registration"
	"trustee.dev/trustee/server/store"
)

// What a client learns of a request that did not finish: whether it may
// have been carried out is in the code.
func TestUnfinishedRequestsSayWhatHappened(t *testing.T) {
	for _, c := range []struct {
		err    error
		status int
		code   string
	}{
		{fmt.Errorf("put: %w", store.ErrStopping), http.StatusServiceUnavailable, "stopping"},
		{fmt.Errorf("put: %w", context.DeadlineExceeded), http.StatusServiceUnavailable, "timeout"},
		{fmt.Errorf("put: %w", context.Canceled), 499, "canceled"},
	} {
		if got := classify(c.err); got.Status != c.status || got.Code != c.code {
			t.Errorf("%v: %d %s; want %d %s", c.err, got.Status, got.Code, c.status, c.code)
		}
	}
}

// notFound is a registration.Store without organizations.
type notFound struct{ registration.Store }

func (notFound) Organization(_ context.Context, name string) (store.Organization, error) {
	return store.Organization{}, fmt.Errorf("organization %q: %w", name, store.ErrNotFound)
}

// The refusals of the registration service are answered with their codes,
// and with their text as the message (busy: the server's words).
func TestRegistrationRefusalsAnswered(t *testing.T) {
	unknown := func() error {
		_, err := (&registration.Service{Store: notFound{}}).Register(context.Background(), registration.Registration{Org: "nobody"})
		return err
	}()
	for _, c := range []struct {
		name   string
		err    error
		status int
		code   string
		own    bool // the message is the error's text
	}{
		{"organization name", registration.Registration{Org: "ac me"}.Validate(), http.StatusBadRequest, "invalid_input", true},
		{"host name", registration.Registration{Org: "acme", Hostname: "db 01"}.Validate(), http.StatusBadRequest, "invalid_input", true},
		{"unknown organization", unknown, http.StatusNotFound, "unknown_org", true},
		{"busy", &registration.Refusal{Err: org.ErrBusy}, http.StatusServiceUnavailable, "busy", false},
		{"registered already", &registration.Refusal{Err: fmt.Errorf("client: %w", store.ErrExists)}, http.StatusConflict, "already_exists", true},
		{"expired", &registration.Refusal{Err: fmt.Errorf("%w: on 2026-01-01T00:00:00Z", auth.ErrOrgExpired)}, http.StatusForbidden, "organization_expired", true},
	} {
		t.Run(c.name, func(t *testing.T) {
			got := classify(c.err)
			if got.Status != c.status || got.Code != c.code || (got.Message == c.err.Error()) != c.own {
				t.Errorf("%v: %d %s %q; want %d %s, the error's text as the message: %v", c.err, got.Status, got.Code, got.Message, c.status, c.code, c.own)
			}
		})
	}
}
