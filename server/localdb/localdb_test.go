package localdb

import (
	"errors"
	"maps"
	"strings"
	"testing"

	"trustee.dev/trustee/server/audit"
)

func TestOutcome(t *testing.T) {
	long := strings.Repeat("x", 600)
	tests := []struct {
		name        string
		err         error
		wantOutcome string
		wantError   string
	}{
		{"done", nil, audit.OutcomeOK, ""},
		{"failed", errors.New("pg_dump: connection refused"), audit.OutcomeFailed, "pg_dump: connection refused"},
		{"a long error is cut to 512 bytes", errors.New(long), audit.OutcomeFailed, long[:512]},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			outcome, details := Outcome(tt.err)
			if outcome != tt.wantOutcome {
				t.Errorf("outcome %q, want %q", outcome, tt.wantOutcome)
			}
			if got, _ := details["error"].(string); got != tt.wantError {
				t.Errorf("error detail %q, want %q", got, tt.wantError)
			}
			if tt.err == nil && details != nil {
				t.Errorf("details of a success: %v", details)
			}
		})
	}
}

func TestJoinDetailsLaterWins(t *testing.T) {
	got := JoinDetails(map[string]any{"module": "a", "token": "t"}, nil, map[string]any{"module": "b", "error": "e"})
	want := map[string]any{"module": "b", "token": "t", "error": "e"}
	if !maps.Equal(got, want) {
		t.Errorf("JoinDetails = %v, want %v", got, want)
	}
}
