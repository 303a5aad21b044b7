package auditlog

import (
	"errors"
	"fmt"
	"strings"
	"testing"
	"time"

	"trustee.dev/trustee/server/audit"
)

var (
	t0 = time.Date(2026, 11, 27, 10, 0, 0, 0, time.UTC)
	t1 = t0.Add(time.Hour)
)

func TestChainLine(t *testing.T) {
	for _, tc := range []struct {
		name string
		c    Chain
		want string
	}{
		{"not there", Chain{Name: "journal", NoneIn: "/s/audit"}, "journal: none in /s/audit\n"},
		{"empty", Chain{Name: "db"}, "db: no records\n"},
		{"unsigned from the start", Chain{Name: "db", Summary: audit.Summary{Records: 3, First: audit.Head{Seq: 1},
			Last: audit.Head{Seq: 3}, FirstTime: t0, LastTime: t1, Unsigned: 3}},
			"db: 3 records (1 to 3, 2026-11-27T10:00:00Z to 2026-11-27T11:00:00Z), hash-chained; 0 checkpoints; 3 records after the last signed one\n"},
		{"signed", Chain{Name: "db", Summary: audit.Summary{Records: 10, First: audit.Head{Seq: 1}, Last: audit.Head{Seq: 10},
			FirstTime: t0, LastTime: t1, Checkpoints: 2, Signed: audit.Head{Seq: 8}, SignedAt: t1, Unsigned: 2}},
			"db: 10 records (1 to 10, 2026-11-27T10:00:00Z to 2026-11-27T11:00:00Z), hash-chained; 2 checkpoints, signed through record 8 (2026-11-27T11:00:00Z); 2 records after the last signed one\n"},
		{"partial", Chain{Name: "journal@a", Summary: audit.Summary{Records: 2, First: audit.Head{Seq: 5}, Last: audit.Head{Seq: 6},
			FirstTime: t0, LastTime: t0, Unsigned: 2}},
			"journal@a: 2 records (5 to 6, 2026-11-27T10:00:00Z to 2026-11-27T10:00:00Z), hash-chained from record 5 on (the records before it are not here); 0 checkpoints; 2 records after the last signed one\n"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			if got := tc.c.String(); got != tc.want {
				t.Errorf("got  %q\nwant %q", got, tc.want)
			}
		})
	}
}

func TestUnsignedBreak(t *testing.T) {
	for _, tc := range []struct {
		name     string
		records  int64
		unsigned int64
		max      int64
		broken   bool
	}{
		{"no limit", 10, 10, -1, false},
		{"under", 10, 1, 2, false},
		{"at the limit", 10, 2, 2, false},
		{"over", 10, 3, 2, true},
		{"zero allowed, one after", 10, 1, 0, true},
		{"empty chain", 0, 0, 0, false},
	} {
		t.Run(tc.name, func(t *testing.T) {
			b := unsignedBreak("db", audit.Summary{Records: tc.records, Unsigned: tc.unsigned}, tc.max)
			if (b != nil) != tc.broken {
				t.Fatalf("broken = %v, want %v", b, tc.broken)
			}
			if b != nil {
				want := fmt.Sprintf("BROKEN: audit chain db: %d records follow its last checkpoint (at most %d allowed): "+
					"a chain rewritten without the server's key has no valid checkpoint\n", tc.unsigned, tc.max)
				if b.String() != want {
					t.Errorf("got %q, want %q", b.String(), want)
				}
			}
		})
	}
}

func TestReportAddStopsAtFirstFailure(t *testing.T) {
	var r Report
	if !r.add("db", audit.Summary{Records: 5, Unsigned: 1}, 1) {
		t.Fatal("db within its limit failed")
	}
	if r.add("journal", audit.Summary{Records: 5, Unsigned: 2}, 1) {
		t.Fatal("journal over its limit passed")
	}
	if len(r.Chains) != 2 || r.Broken == nil || r.Broken.Chain != "journal" {
		t.Fatalf("report %+v", r)
	}
}

func TestReportBroken(t *testing.T) {
	other := errors.New("connection reset")
	brk := fmt.Errorf("wrapped: %w", &audit.Break{Seq: 4, Reason: "changed"})
	for _, tc := range []struct {
		name    string
		err     error
		broken  bool
		wantErr error
	}{
		{"a break is the report's", brk, true, nil},
		{"anything else is an error", other, false, other},
	} {
		t.Run(tc.name, func(t *testing.T) {
			var r Report
			err := r.broken("db", tc.err)
			if (r.Broken != nil) != tc.broken || err != tc.wantErr {
				t.Fatalf("broken %v, err %v", r.Broken, err)
			}
			if tc.broken && r.Broken.String() != "BROKEN: audit chain db: wrapped: record 4: changed\n" {
				t.Errorf("got %q", r.Broken.String())
			}
		})
	}
}

func TestPickAnchor(t *testing.T) {
	a := audit.Anchor{Time: t0.Format(time.RFC3339)}
	for _, tc := range []struct {
		name    string
		named   string
		found   bool
		want    bool
		wantErr string
	}{
		{"the state directory's, found", "", true, true, ""},
		{"the state directory's, not yet written", "", false, false, ""},
		{"named, found", "/x/anchor.json", true, true, ""},
		{"named, not found", "/x/anchor.json", false, false, "--anchor /x/anchor.json: not found"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			got, err := pickAnchor(tc.named, a, tc.found)
			if tc.wantErr != "" {
				if err == nil || err.Error() != tc.wantErr {
					t.Fatalf("err %v, want %q", err, tc.wantErr)
				}
				return
			}
			if err != nil || (got != nil) != tc.want {
				t.Fatalf("got %v, %v", got, err)
			}
		})
	}
}

func TestJournalPartial(t *testing.T) {
	for _, tc := range []struct {
		first string
		want  bool
	}{
		{"/s/audit/journal-00000000000000000001.jsonl", false},
		{"/s/audit/journal-00000000000000004097.jsonl", true},
	} {
		t.Run(tc.first, func(t *testing.T) {
			if got := journalPartial([]string{tc.first, "later"}); got != tc.want {
				t.Errorf("got %v, want %v", got, tc.want)
			}
		})
	}
}

func TestExportFilter(t *testing.T) {
	rec := func(seq int64, at time.Time) audit.Record { return audit.Record{Seq: seq, Time: at} }
	for _, tc := range []struct {
		name    string
		o       ExportOptions
		wantErr string
		keep    []audit.Record
		drop    []audit.Record
	}{
		{name: "everything", keep: []audit.Record{rec(1, t0), rec(9, t1)}},
		{name: "since", o: ExportOptions{Since: "2026-11-27T10:30:00Z"}, keep: []audit.Record{rec(2, t1)}, drop: []audit.Record{rec(1, t0)}},
		{name: "since is inclusive", o: ExportOptions{Since: "2026-11-27T10:00:00Z"}, keep: []audit.Record{rec(1, t0)}},
		{name: "after seq of one chain", o: ExportOptions{Chain: "db", AfterSeq: 5}, keep: []audit.Record{rec(6, t0)}, drop: []audit.Record{rec(5, t1)}},
		{name: "journal only", o: ExportOptions{Chain: "journal"}, keep: []audit.Record{rec(1, t0)}},
		{name: "bad time", o: ExportOptions{Since: "yesterday"}, wantErr: `--since "yesterday": give a time as 2026-11-27T00:00:00Z (RFC 3339)`},
		{name: "bad chain", o: ExportOptions{Chain: "journal@a"}, wantErr: `--chain "journal@a": "db" or "journal"`},
		{name: "after seq without chain", o: ExportOptions{AfterSeq: 3}, wantErr: "--after-seq needs --chain: sequence numbers belong to one chain"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			f, err := exportFilter(tc.o)
			if tc.wantErr != "" {
				if err == nil || err.Error() != tc.wantErr {
					t.Fatalf("err %v, want %q", err, tc.wantErr)
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			for _, r := range tc.keep {
				if !f.keep(r) {
					t.Errorf("dropped %d at %s", r.Seq, r.Time)
				}
			}
			for _, r := range tc.drop {
				if f.keep(r) {
					t.Errorf("kept %d at %s", r.Seq, r.Time)
				}
			}
		})
	}
}

func TestMerge(t *testing.T) {
	at := func(min int) time.Time { return t0.Add(time.Duration(min) * time.Minute) }
	type in struct {
		chain string
		mins  []int
	}
	for _, tc := range []struct {
		name   string
		chains []in
		want   string
	}{
		{"one chain", []in{{"db", []int{1, 2, 3}}}, "db1 db2 db3"},
		{"interleaved by time", []in{{"db", []int{1, 4, 6}}, {"j", []int{2, 3, 7}}}, "db1 j2 j3 db4 db6 j7"},
		{"a tie goes to the first chain", []in{{"db", []int{5}}, {"j", []int{5}}}, "db5 j5"},
		{"each chain in its own order, even when its times go back", []in{{"db", []int{5, 1}}, {"j", []int{3}}}, "j3 db5 db1"},
		{"an empty chain", []in{{"db", nil}, {"j", []int{1}}}, "j1"},
		{"none", nil, ""},
	} {
		t.Run(tc.name, func(t *testing.T) {
			var sources []<-chan exported
			for _, c := range tc.chains {
				ch := make(chan exported, len(c.mins))
				for _, m := range c.mins {
					ch <- exported{chain: c.chain, r: audit.Record{Seq: int64(m), Time: at(m)}}
				}
				close(ch)
				sources = append(sources, ch)
			}
			var got []string
			if err := merge(sources, func(e exported) error {
				got = append(got, fmt.Sprintf("%s%d", e.chain, e.r.Seq))
				return nil
			}); err != nil {
				t.Fatal(err)
			}
			if g := strings.Join(got, " "); g != tc.want {
				t.Errorf("got %q, want %q", g, tc.want)
			}
		})
	}
}
