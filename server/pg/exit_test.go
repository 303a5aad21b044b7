package pg

import (
	"errors"
	"fmt"
	"os/exec"
	"testing"
)

func TestExitStatus(t *testing.T) {
	exited := func(script string) error {
		err := exec.Command("sh", "-c", script).Run()
		if err == nil {
			t.Fatalf("%q succeeded", script)
		}
		return err
	}
	tests := []struct {
		name       string
		err        error
		wantCode   int
		wantFailed bool
	}{
		{"no error", nil, 0, false},
		{"an error of its own", errors.New("no data directory"), 0, false},
		{"exit code", exited("exit 7"), 7, true},
		{"wrapped exit code", fmt.Errorf("postgres: %w", exited("exit 2")), 2, true},
		{"killed by a signal", exited("kill -KILL $$"), 128 + 9, true},
		{"terminated", exited("kill -TERM $$"), 128 + 15, true},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			code, failed := ExitStatus(tt.err)
			if code != tt.wantCode || failed != tt.wantFailed {
				t.Errorf("ExitStatus(%v) = %d, %v; want %d, %v", tt.err, code, failed, tt.wantCode, tt.wantFailed)
			}
		})
	}
}
