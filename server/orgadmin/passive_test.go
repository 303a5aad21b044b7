package orgadmin_test

import (
	"errors"
	"fmt"
	"testing"

	"github.com/jackc/pgx/v5/pgconn"

	"trustee.dev/trustee/server/orgadmin"
)

func TestOnPassiveSaysWhereToRunIt(t *testing.T) {
	readOnly := &pgconn.PgError{Code: "25006", Message: "cannot execute INSERT in a read-only transaction"}
	other := &pgconn.PgError{Code: "23505", Message: "duplicate key"}
	for _, tc := range []struct {
		err                 error
		activeURL, activeDB string
		want                string
	}{
		{fmt.Errorf("add: %w", readOnly), "https://kts01.example.com:11371", "kts01.example.com:11381",
			"this server is the passive of its pair, whose database is a read-only copy of the active's: run it on the active (kts01.example.com)"},
		{readOnly, "", "10.0.0.1:11381",
			"this server is the passive of its pair, whose database is a read-only copy of the active's: run it on the active (10.0.0.1)"},
		{readOnly, "https://[::1]:11371", "",
			"this server is the passive of its pair, whose database is a read-only copy of the active's: run it on the active (::1)"},
		{readOnly, "", "",
			"this server is the passive of its pair, whose database is a read-only copy of the active's: run it on the active"},
		{other, "https://kts01.example.com:11371", "", other.Error()},
		{errors.New("plain"), "https://kts01.example.com:11371", "", "plain"},
	} {
		got := orgadmin.OnPassive(tc.err, tc.activeURL, tc.activeDB)
		if got.Error() != tc.want {
			t.Errorf("OnPassive(%v, %q, %q) = %q\nwant %q", tc.err, tc.activeURL, tc.activeDB, got, tc.want)
		}
		var pe *orgadmin.PassiveError
		if errors.As(got, &pe) && !errors.Is(got, readOnly) {
			t.Errorf("OnPassive(%v) lost the database's error", tc.err)
		}
	}
	if orgadmin.OnPassive(nil, "https://a:1", "") != nil {
		t.Error("OnPassive(nil) is an error")
	}
}
