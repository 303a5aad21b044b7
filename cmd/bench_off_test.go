//go:build !benchunaudited

package cmd

import (
	"strings"
	"testing"
)

// kts serves every request audited: the benchmark's audit-off listener and
// the benchmark itself are in the benchmark build only (kts-bench).
func TestKTSHasNoBenchmarkOrUnauditedListener(t *testing.T) {
	root := newRootCommand()
	for _, c := range root.Commands() {
		if c.Name() == "bench" {
			t.Error("kts has a bench command: the benchmark belongs to kts-bench (build tag benchunaudited)")
		}
	}
	server, _, err := root.Find([]string{"server"})
	if err != nil {
		t.Fatal(err)
	}
	if f := server.Flags().Lookup("bench-unaudited-listen"); f != nil {
		t.Errorf("kts server has --%s: a listener that records nothing must not be in kts", f.Name)
	}
	root.SetArgs([]string{"server", "--bench-unaudited-listen", "127.0.0.1:0", "--confdir", t.TempDir()})
	root.SetOut(new(strings.Builder))
	root.SetErr(new(strings.Builder))
	if err := root.Execute(); err == nil || !strings.Contains(err.Error(), "unknown flag: --bench-unaudited-listen") {
		t.Errorf("kts server --bench-unaudited-listen: %v, want unknown flag", err)
	}
}
