package backup

import (
	"slices"
	"strings"
	"testing"
)

const sampleDump = `--
-- PostgreSQL database dump
--
CREATE TABLE public.orgs (name text);
COPY public.orgs (name, uuid) FROM stdin;
acme	0b5c
globex	77aa
\.

COPY public.deposits (owner, name, data) FROM stdin;
\.

SELECT pg_catalog.setval('public.audit_seq', 3, true);
`

func TestSumTables(t *testing.T) {
	got, err := SumTables(strings.NewReader(sampleDump))
	if err != nil {
		t.Fatal(err)
	}
	if len(got) != 2 || got[0].Table != "public.orgs" || got[0].Rows != 2 || got[1].Table != "public.deposits" || got[1].Rows != 0 {
		t.Fatalf("got %+v", got)
	}
	// The same rows in another order sum the same; another row does not.
	reordered := strings.Replace(sampleDump, "acme\t0b5c\nglobex\t77aa\n", "globex\t77aa\nacme\t0b5c\n", 1)
	edited := strings.Replace(sampleDump, "acme\t0b5c", "acme\t0b5d", 1)
	again, _ := SumTables(strings.NewReader(reordered))
	other, _ := SumTables(strings.NewReader(edited))
	if d := CompareTables(got, again); len(d) != 0 {
		t.Errorf("reordered rows differ: %v", d)
	}
	if d := CompareTables(got, other); len(d) != 1 || !strings.Contains(d[0], "public.orgs: its 2 rows differ") {
		t.Errorf("an edited row: %v", d)
	}
}

func TestCompareTablesNamesEachDifference(t *testing.T) {
	want := []TableSum{{"a", 2, "x"}, {"b", 1, "y"}, {"c", 0, "z"}}
	got := []TableSum{{"a", 3, "x"}, {"c", 0, "z"}, {"d", 4, "w"}}
	d := CompareTables(want, got)
	wantDiffs := []string{"table a: 3 rows after the restore, 2 in the backup", "table b: missing after the restore (1 rows in the backup)", "table d: 4 rows after the restore, none in the backup"}
	if strings.Join(d, "\n") != strings.Join(wantDiffs, "\n") {
		t.Errorf("got\n%s\nwant\n%s", strings.Join(d, "\n"), strings.Join(wantDiffs, "\n"))
	}
}

func TestSumTablesRefusesACutDump(t *testing.T) {
	for name, dump := range map[string]string{
		"inside a table's data": sampleDump[:strings.Index(sampleDump, "globex")],
		"after a COPY line":     sampleDump[:strings.Index(sampleDump, "acme")-1],
	} {
		if _, err := SumTables(strings.NewReader(dump)); err == nil || !strings.Contains(err.Error(), "cut short") {
			t.Errorf("%s: %v", name, err)
		}
	}
}

func FuzzSumTables(f *testing.F) {
	f.Add(sampleDump)
	f.Add("COPY x FROM stdin;\n\\.\n")
	f.Add("COPY  FROM stdin;\n")
	f.Fuzz(func(t *testing.T, dump string) {
		got, err := SumTables(strings.NewReader(dump))
		if err != nil {
			return
		}
		// A dump that reads compares equal to itself.
		if d := CompareTables(got, got); len(d) != 0 {
			t.Fatalf("%q: %v", dump, d)
		}
	})
}

func TestColumnValuesReadsOneColumnOfOneTable(t *testing.T) {
	dump := "SET x = 1;\n" +
		"COPY public.kek_versions (kek_id, created) FROM stdin;\nhsm:kts-kek-9\t2026\n\\.\n" +
		"COPY public.deposits (id, name, kek_id, data) FROM stdin;\n" +
		"1\ta\thsm:kts-kek-1\tx\n2\tb\tfile:k1\ty\n3\tc\thsm:kts-kek-1\tz\n4\td\t\\N\tw\n5\te\thsm:kts-kek-2\tv\n\\.\n"
	for _, tc := range []struct {
		dump, table, column string
		want                []string
		err                 string
	}{
		{dump, "public.deposits", "kek_id", []string{"hsm:kts-kek-1", "file:k1", "hsm:kts-kek-2"}, ""},
		{dump, "public.kek_versions", "kek_id", []string{"hsm:kts-kek-9"}, ""},
		{dump, "public.organizations", "name", nil, ""},
		{dump, "public.deposits", "missing", nil, "no column missing"},
		{dump[:len(dump)-4], "public.deposits", "kek_id", nil, "cut short"},
	} {
		got, err := ColumnValues(strings.NewReader(tc.dump), tc.table, tc.column)
		if tc.err != "" {
			if err == nil || !strings.Contains(err.Error(), tc.err) {
				t.Errorf("ColumnValues(%s, %s) = %v, %v; want an error naming %q", tc.table, tc.column, got, err, tc.err)
			}
			continue
		}
		if err != nil || !slices.Equal(got, tc.want) {
			t.Errorf("ColumnValues(%s, %s) = %q, %v; want %q", tc.table, tc.column, got, err, tc.want)
		}
	}
}
