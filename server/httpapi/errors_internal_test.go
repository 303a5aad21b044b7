package httpapi

import (
	"context"
	"fmt"
	"net/http"
	"testing"

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
