package bench

import (
	"context"
	"strings"
	"testing"
	"time"

	"trustee.dev/trustee/bench/loadgen"
)

func TestRoundOrder(t *testing.T) {
	nop := func(context.Context, int, int) error { return nil }
	runs := func(names ...string) []run {
		var rs []run
		for _, n := range names {
			rs = append(rs, run{n, nop})
		}
		return rs
	}
	withAudit := runs("bare-tls-get", "kts-get", "kts-get-noaudit", "kts-put", "kts-put-noaudit", "raw-insert")
	for _, tc := range []struct {
		name  string
		runs  []run
		round int
		want  string
	}{
		{"odd round: as listed", withAudit, 1, "bare-tls-get kts-get kts-get-noaudit kts-put kts-put-noaudit raw-insert"},
		{"even round: audit-off first", withAudit, 2, "bare-tls-get kts-get-noaudit kts-get kts-put-noaudit kts-put raw-insert"},
		{"without the audit-off runs", runs("bare-tls-get", "kts-get", "raw-select"), 2, "bare-tls-get kts-get raw-select"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			var got []string
			for _, r := range roundOrder(tc.runs, tc.round) {
				got = append(got, r.name)
			}
			if g := strings.Join(got, " "); g != tc.want {
				t.Errorf("got  %s\nwant %s", g, tc.want)
			}
		})
	}
	if withAudit[1].name != "kts-get" {
		t.Error("roundOrder changed the runs it was given")
	}
}

func TestParseCounts(t *testing.T) {
	for _, tc := range []struct {
		in      string
		want    []int
		wantErr string
	}{
		{in: "100000,1000000", want: []int{100000, 1000000}},
		{in: " 5 , 7", want: []int{5, 7}},
		{in: "3", want: []int{3}},
		{in: "10,10", wantErr: `--deposits "10,10": counts must increase`},
		{in: "10,5", wantErr: `--deposits "10,5": counts must increase`},
		{in: "0", wantErr: `--deposits "0": a comma-separated list of positive counts`},
		{in: "1e6", wantErr: `--deposits "1e6": a comma-separated list of positive counts`},
		{in: "", wantErr: `--deposits "": a comma-separated list of positive counts`},
	} {
		t.Run(tc.in, func(t *testing.T) {
			got, err := ParseCounts(tc.in)
			if tc.wantErr != "" {
				if err == nil || err.Error() != tc.wantErr {
					t.Fatalf("err %v, want %q", err, tc.wantErr)
				}
				return
			}
			if err != nil || len(got) != len(tc.want) {
				t.Fatalf("got %v, %v, want %v", got, err, tc.want)
			}
			for i := range got {
				if got[i] != tc.want[i] {
					t.Fatalf("got %v, want %v", got, tc.want)
				}
			}
		})
	}
}

// result is a run of ops operations in one second.
func result(name string, ops, errs int) loadgen.Result {
	return loadgen.Result{Name: name, Ops: ops, Errors: errs, Elapsed: time.Second}
}

func TestReport(t *testing.T) {
	base := func() map[string][]loadgen.Result {
		return map[string][]loadgen.Result{
			"bare-tls-get": {result("bare-tls-get", 1000, 0)},
			"kts-get":      {result("kts-get", 600, 0)},
			"kts-put":      {result("kts-put", 50, 0)},
			"raw-insert":   {result("raw-insert", 100, 0)},
		}
	}
	o := Options{Rounds: 1, Workers: 16, Size: 256, Window: 10 * time.Second, RateFraction: 0.5}
	for _, tc := range []struct {
		name    string
		change  func(map[string][]loadgen.Result)
		want    []string
		wantErr string
	}{
		{name: "targets", want: []string{
			"get / bare TLS handler   0.60 (0.60–0.60)   target ≥ 0.50  met",
			"put / raw pgx INSERT     0.50 (0.50–0.50)   target ≥ 0.60  MISSED",
		}},
		{name: "audit on / off", change: func(rs map[string][]loadgen.Result) {
			rs["kts-get-noaudit"] = []loadgen.Result{result("kts-get-noaudit", 650, 0)}
			rs["kts-put-noaudit"] = []loadgen.Result{result("kts-put-noaudit", 100, 0)}
		}, want: []string{
			"get, audit on / off      0.92 (0.92–0.92)   target ≥ 0.85  met",
			"put, audit on / off      0.50 (0.50–0.50)   target ≥ 0.85  MISSED",
		}},
		{name: "a failed operation voids the run", change: func(rs map[string][]loadgen.Result) {
			rs["kts-put"] = []loadgen.Result{result("kts-put", 50, 1)}
		}, wantErr: "1 operations failed: the run is void"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			rs := base()
			if tc.change != nil {
				tc.change(rs)
			}
			var out strings.Builder
			err := report(&out, o, rs, []loadgen.Result{result("kts-get@300/s", 3000, 0)}, []loadgen.Result{result("bare-tls@300/s", 3000, 0)})
			if tc.wantErr != "" {
				if err == nil || err.Error() != tc.wantErr {
					t.Fatalf("err %v, want %q", err, tc.wantErr)
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			for _, w := range tc.want {
				if !strings.Contains(out.String(), w) {
					t.Errorf("the report lacks %q:\n%s", w, out.String())
				}
			}
		})
	}
}
