package audit

import (
	"testing"

	"github.com/prometheus/client_golang/prometheus"
)

// The audit counters are exported for every chain from the start, at 0, so
// that an alert on any increase of kts_audit_failures_total sees the first
// failure.
func TestAuditCountersExportEveryChainFromTheStart(t *testing.T) {
	reg := prometheus.NewRegistry()
	reg.MustRegister(Failures, Appended)
	families, err := reg.Gather()
	if err != nil {
		t.Fatal(err)
	}
	seen := map[string]map[string]bool{}
	for _, f := range families {
		seen[f.GetName()] = map[string]bool{}
		for _, m := range f.GetMetric() {
			for _, l := range m.GetLabel() {
				if l.GetName() == "chain" {
					seen[f.GetName()][l.GetValue()] = true
				}
			}
		}
	}
	for _, name := range []string{"kts_audit_failures_total", "kts_audit_records_total"} {
		for _, chain := range []string{ChainDB, ChainJournal} {
			if !seen[name][chain] {
				t.Errorf("%s{chain=%q} is not exported before anything happened", name, chain)
			}
		}
	}
}
