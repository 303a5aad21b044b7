package auditlog

import (
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"trustee.dev/trustee/server/audit"
)

// chain makes records from..to of a chain, linked as a server links them.
func chain(from, to int64) []audit.Record {
	var rs []audit.Record
	var prev audit.Hash
	for seq := int64(1); seq <= to; seq++ {
		r := audit.Record{Seq: seq, Time: t0.Add(time.Duration(seq) * time.Second), Actor: "server", Source: "local",
			Action: audit.ActionDepositRead, Object: "deposit:x", Outcome: audit.OutcomeOK, Details: "{}", PrevHash: prev}
		r.Hash = r.ComputeHash()
		prev = r.Hash
		if seq >= from {
			rs = append(rs, r)
		}
	}
	return rs
}

// line is a line of an exported file: a record and its chain.
type line struct {
	chain string
	r     audit.Record
}

func writeFile(t *testing.T, name string, ls []line) string {
	t.Helper()
	var b []byte
	for _, l := range ls {
		b = audit.AppendLine(b, l.chain, &l.r)
	}
	path := filepath.Join(t.TempDir(), name)
	if err := os.WriteFile(path, b, 0o600); err != nil {
		t.Fatal(err)
	}
	return path
}

func of(chainName string, rs []audit.Record) []line {
	var ls []line
	for _, r := range rs {
		ls = append(ls, line{chainName, r})
	}
	return ls
}

func TestVerifyFiles(t *testing.T) {
	db, j := chain(1, 6), chain(3, 5)
	changed := chain(1, 4)
	changed[2].Object = "deposit:y"
	for _, tc := range []struct {
		name    string
		files   [][]line
		max     int64
		chains  []string // names in the report, in order
		broken  string   // the failure line's start, with the file's line
		wantErr string
	}{
		{name: "chains in the order they first appear", files: [][]line{append(of("journal@a", j), of("db", db)...)},
			max: -1, chains: []string{"journal@a", "db"}},
		{name: "a chain spans files", files: [][]line{of("db", db[:3]), of("db", db[3:])}, max: -1, chains: []string{"db"}},
		{name: "a changed record", files: [][]line{of("db", changed)}, max: -1,
			broken: "BROKEN: audit chain db: FILE line 3: record 3: its hash does not match its contents"},
		{name: "a missing record", files: [][]line{of("db", append(db[:2:2], db[3:]...))}, max: -1,
			broken: "BROKEN: audit chain db: FILE line 3: record 4: it follows record 2: record 3 is missing (deleted)"},
		{name: "too many unsigned stops at the first", files: [][]line{append(of("db", db), of("journal@a", j)...)}, max: 2,
			chains: []string{"db"}, broken: "BROKEN: audit chain db: 6 records follow its last checkpoint (at most 2 allowed)"},
		{name: "no records", files: [][]line{nil}, max: -1, wantErr: "the files hold no audit records"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			var paths []string
			for i, ls := range tc.files {
				paths = append(paths, writeFile(t, "export-"+string(rune('a'+i))+".jsonl", ls))
			}
			r, err := verifyFiles(nil, VerifyOptions{Files: paths, MaxUnsigned: tc.max})
			if tc.wantErr != "" {
				if err == nil || err.Error() != tc.wantErr {
					t.Fatalf("err %v, want %q", err, tc.wantErr)
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			var names []string
			for _, c := range r.Chains {
				names = append(names, c.Name)
			}
			if strings.Join(names, ",") != strings.Join(tc.chains, ",") {
				t.Errorf("chains %v, want %v", names, tc.chains)
			}
			switch {
			case tc.broken == "" && r.Broken != nil:
				t.Errorf("broken: %s", r.Broken)
			case tc.broken != "" && r.Broken == nil:
				t.Errorf("not broken, want %s", tc.broken)
			case tc.broken != "":
				want := strings.Replace(tc.broken, "FILE", paths[len(paths)-1], 1)
				if !strings.HasPrefix(r.Broken.String(), want) {
					t.Errorf("got  %s\nwant %s...", r.Broken, want)
				}
			}
		})
	}
}
