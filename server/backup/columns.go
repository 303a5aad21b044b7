package backup

import (
	"bufio"
	"bytes"
	"fmt"
	"io"
	"strings"
)

// ColumnValues reads a plain-format dump and returns the distinct values
// of one column of one table (its COPY ... FROM stdin block), in the order
// first seen, NULLs left out. It reads the dump as text and loads nothing,
// so a restore can check what the data needs before it creates anything.
func ColumnValues(r io.Reader, table, column string) ([]string, error) {
	br := bufio.NewReaderSize(r, 64<<10)
	col := -1
	in := false
	seen := map[string]bool{}
	var out []string
	for line := 1; ; line++ {
		text, err := br.ReadString('\n')
		if len(text) > maxDumpLine {
			return nil, fmt.Errorf("line %d of the dump is longer than %d bytes", line, maxDumpLine)
		}
		if err == io.EOF {
			if in {
				return nil, fmt.Errorf("the dump ends inside the data of table %s: it was cut short", table)
			}
			return out, nil
		}
		if err != nil {
			return nil, err
		}
		switch {
		case in && text == "\\.\n":
			in = false
		case in:
			fields := strings.Split(strings.TrimSuffix(text, "\n"), "\t")
			if col >= len(fields) {
				return nil, fmt.Errorf("line %d of the dump: a row of %s without column %s", line, table, column)
			}
			v := fields[col]
			if v == `\N` || seen[v] {
				continue
			}
			seen[v] = true
			out = append(out, unescapeCopy(v))
		case isCopyHeader([]byte(text)):
			name, err := copyTable([]byte(text))
			if err != nil {
				return nil, fmt.Errorf("line %d of the dump: %w", line, err)
			}
			if name != table {
				continue
			}
			if col = copyColumn(text, column); col < 0 {
				return nil, fmt.Errorf("line %d of the dump: the data of %s has no column %s", line, table, column)
			}
			in = true
		}
	}
}

// copyColumn is the position of column in a COPY line's column list, or -1.
func copyColumn(line, column string) int {
	open, end := strings.IndexByte(line, '('), strings.LastIndexByte(line, ')')
	if open < 0 || end < open {
		return -1
	}
	for i, c := range strings.Split(line[open+1:end], ",") {
		if strings.Trim(strings.TrimSpace(c), `"`) == column {
			return i
		}
	}
	return -1
}

// unescapeCopy undoes COPY's text escapes (a backslash before a character
// or \t, \n, \r).
func unescapeCopy(v string) string {
	if !strings.Contains(v, `\`) {
		return v
	}
	var b bytes.Buffer
	for i := 0; i < len(v); i++ {
		if v[i] != '\\' || i+1 == len(v) {
			b.WriteByte(v[i])
			continue
		}
		i++
		switch v[i] {
		case 't':
			b.WriteByte('\t')
		case 'n':
			b.WriteByte('\n')
		case 'r':
			b.WriteByte('\r')
		default:
			b.WriteByte(v[i])
		}
	}
	return b.String()
}
