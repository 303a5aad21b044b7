package backup

import (
	"bufio"
	"bytes"
	"crypto/sha256"
	"encoding/binary"
	"encoding/hex"
	"fmt"
	"io"
)

// TableSum is what a plain-format dump holds of one table: how many rows,
// and a checksum of them that does not depend on their order (the sum, by
// 64-bit lanes, of each row's SHA-256), so that the same rows loaded and
// dumped again in another order give the same sum.
type TableSum struct {
	Table string `json:"table"`
	Rows  int64  `json:"rows"`
	Sum   string `json:"sum"`
}

// maxDumpLine bounds a line of a dump that SumTables reads (a row of the
// deposits table is far smaller).
const maxDumpLine = 64 << 20

// SumTables reads a plain-format dump (pg_dump --format=plain) and returns
// the TableSum of every table whose data it holds (its COPY ... FROM stdin
// blocks), in the dump's order.
func SumTables(r io.Reader) ([]TableSum, error) {
	br := bufio.NewReaderSize(r, 64<<10)
	var out []TableSum
	var cur *TableSum
	var lanes [4]uint64
	seen := map[string]bool{}
	h := sha256.New()
	line := 0
	for {
		// A line, fed to the hash in pieces when it is a row.
		line++
		var head []byte
		length := 0
		h.Reset()
		for {
			piece, err := br.ReadSlice('\n')
			length += len(piece)
			if length > maxDumpLine {
				return nil, fmt.Errorf("line %d of the dump is longer than %d bytes", line, maxDumpLine)
			}
			if len(head) < 256 {
				head = append(head, piece[:min(len(piece), 256-len(head))]...)
			}
			if cur != nil {
				h.Write(piece)
			}
			if err == bufio.ErrBufferFull {
				continue
			}
			if err == io.EOF {
				if cur != nil {
					return nil, fmt.Errorf("the dump ends inside the data of table %s (after %d rows): it was cut short", cur.Table, cur.Rows)
				}
				if isCopyHeader(head) {
					return nil, fmt.Errorf("the dump ends with the start of the data of a table: it was cut short")
				}
				return out, nil // a last line without its newline is outside any data
			}
			if err != nil {
				return nil, err
			}
			break
		}
		switch {
		case cur != nil && bytes.Equal(head, []byte("\\.\n")):
			cur.Sum = sumString(lanes)
			out = append(out, *cur)
			cur = nil
		case cur != nil:
			cur.Rows++
			var d [sha256.Size]byte
			h.Sum(d[:0])
			for i := range lanes {
				lanes[i] += binary.BigEndian.Uint64(d[8*i:])
			}
		case isCopyHeader(head):
			name, err := copyTable(head)
			if err != nil {
				return nil, fmt.Errorf("line %d of the dump: %w", line, err)
			}
			if seen[name] {
				return nil, fmt.Errorf("line %d of the dump: the data of table %s again", line, name)
			}
			seen[name] = true
			cur, lanes = &TableSum{Table: name}, [4]uint64{}
		}
	}
}

func isCopyHeader(line []byte) bool {
	return bytes.HasPrefix(line, []byte("COPY ")) && bytes.HasSuffix(bytes.TrimRight(line, "\n"), []byte(" FROM stdin;"))
}

// copyTable is the table a COPY line names: "COPY public.t (a, b) FROM
// stdin;" is public.t.
func copyTable(line []byte) (string, error) {
	rest := bytes.TrimPrefix(line, []byte("COPY "))
	end := bytes.IndexAny(rest, " (")
	if end <= 0 {
		return "", fmt.Errorf("a COPY line without a table: %q", line)
	}
	return string(rest[:end]), nil
}

func sumString(lanes [4]uint64) string {
	var b [32]byte
	for i, l := range lanes {
		binary.BigEndian.PutUint64(b[8*i:], l)
	}
	return hex.EncodeToString(b[:])
}

// CompareTables lists how got differs from want, table by table: a table
// missing from either, or with other rows. Nothing listed is a match.
func CompareTables(want, got []TableSum) []string {
	index := func(ts []TableSum) map[string]TableSum {
		m := make(map[string]TableSum, len(ts))
		for _, t := range ts {
			m[t.Table] = t
		}
		return m
	}
	g := index(got)
	var diffs []string
	for _, w := range want {
		x, ok := g[w.Table]
		switch {
		case !ok:
			diffs = append(diffs, fmt.Sprintf("table %s: missing after the restore (%d rows in the backup)", w.Table, w.Rows))
		case x.Rows != w.Rows:
			diffs = append(diffs, fmt.Sprintf("table %s: %d rows after the restore, %d in the backup", w.Table, x.Rows, w.Rows))
		case x.Sum != w.Sum:
			diffs = append(diffs, fmt.Sprintf("table %s: its %d rows differ from the backup's (checksum %.16s…, backup %.16s…)", w.Table, w.Rows, x.Sum, w.Sum))
		}
		delete(g, w.Table)
	}
	for _, x := range got {
		if _, extra := g[x.Table]; extra {
			diffs = append(diffs, fmt.Sprintf("table %s: %d rows after the restore, none in the backup", x.Table, x.Rows))
		}
	}
	return diffs
}
