package audit

import (
	"bufio"
	"bytes"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"strconv"
	"strings"
	"time"
	"unicode/utf8"
)

// TimeLayout is how records' times are written: UTC, microseconds.
const TimeLayout = "2006-01-02T15:04:05.000000Z"

// line is a record as exported: one JSON object a line.
type line struct {
	Chain    string          `json:"chain"`
	Seq      int64           `json:"seq"`
	Time     string          `json:"time"`
	Actor    string          `json:"actor"`
	Source   string          `json:"source"`
	Action   string          `json:"action"`
	Object   string          `json:"object"`
	Outcome  string          `json:"outcome"`
	Details  json.RawMessage `json:"details"`
	PrevHash string          `json:"prev_hash"`
	Hash     string          `json:"hash"`
}

// AppendLine appends r as one line of JSON (with its chain's name), as
// `kts audit export` writes it and journals keep it: details as a JSON
// object, or as a string when the stored details are not one.
func AppendLine(b []byte, chain string, r *Record) []byte {
	b = append(b, `{"chain":`...)
	b = appendString(b, chain)
	b = append(b, `,"seq":`...)
	b = strconv.AppendInt(b, r.Seq, 10)
	b = append(b, `,"time":"`...)
	b = r.Time.UTC().AppendFormat(b, TimeLayout)
	b = append(b, `","actor":`...)
	b = appendString(b, r.Actor)
	b = append(b, `,"source":`...)
	b = appendString(b, r.Source)
	b = append(b, `,"action":`...)
	b = appendString(b, r.Action)
	b = append(b, `,"object":`...)
	b = appendString(b, r.Object)
	b = append(b, `,"outcome":`...)
	b = appendString(b, r.Outcome)
	b = append(b, `,"details":`...)
	if r.Details == "{}" || isObject(r.Details) {
		b = append(b, r.Details...)
	} else {
		b = appendString(b, r.Details)
	}
	b = append(b, `,"prev_hash":"`...)
	b = hex.AppendEncode(b, r.PrevHash[:])
	b = append(b, `","hash":"`...)
	b = hex.AppendEncode(b, r.Hash[:])
	return append(b, "\"}\n"...)
}

// appendString appends s as a JSON string. s is valid UTF-8 (Link makes
// it so); any invalid byte is written as U+FFFD, as encoding/json does.
func appendString(b []byte, s string) []byte {
	const hexDigits = "0123456789abcdef"
	b = append(b, '"')
	for i := 0; i < len(s); {
		c := s[i]
		if c >= 0x20 && c != '"' && c != '\\' && c < utf8.RuneSelf {
			b = append(b, c)
			i++
			continue
		}
		if c < utf8.RuneSelf {
			switch c {
			case '"', '\\':
				b = append(b, '\\', c)
			case '\n':
				b = append(b, '\\', 'n')
			case '\r':
				b = append(b, '\\', 'r')
			case '\t':
				b = append(b, '\\', 't')
			default:
				b = append(b, '\\', 'u', '0', '0', hexDigits[c>>4], hexDigits[c&0xf])
			}
			i++
			continue
		}
		r, size := utf8.DecodeRuneInString(s[i:])
		if r == utf8.RuneError && size == 1 {
			b = append(b, "\ufffd"...)
		} else {
			b = append(b, s[i:i+size]...)
		}
		i += size
	}
	return append(b, '"')
}

// isObject reports whether s is one compact JSON object, as EncodeDetails
// makes it.
func isObject(s string) bool {
	if !strings.HasPrefix(s, "{") || !json.Valid([]byte(s)) {
		return false
	}
	var c bytes.Buffer
	return json.Compact(&c, []byte(s)) == nil && c.String() == s
}

// ParseLine reads one exported line into its chain's name and the record.
// The record is taken as written: verifying it is the Verifier's job.
func ParseLine(b []byte) (string, Record, error) {
	var l line
	dec := json.NewDecoder(bytes.NewReader(b))
	dec.DisallowUnknownFields()
	if err := dec.Decode(&l); err != nil {
		return "", Record{}, fmt.Errorf("not an audit record: %w", err)
	}
	if dec.More() {
		return "", Record{}, errors.New("not an audit record: more after the JSON object")
	}
	r := Record{Seq: l.Seq, Actor: l.Actor, Source: l.Source, Action: l.Action, Object: l.Object, Outcome: l.Outcome}
	if l.Chain == "" {
		return "", r, errors.New("no chain")
	}
	t, err := time.Parse(TimeLayout, l.Time)
	if err != nil {
		return "", r, fmt.Errorf("time %q: want %s", l.Time, TimeLayout)
	}
	r.Time = t
	switch d := bytes.TrimSpace(l.Details); {
	case len(d) == 0:
		return "", r, errors.New("no details")
	case d[0] == '{':
		var c bytes.Buffer
		if err := json.Compact(&c, d); err != nil {
			return "", r, fmt.Errorf("details: %w", err)
		}
		r.Details = c.String()
	case d[0] == '"':
		if err := json.Unmarshal(d, &r.Details); err != nil {
			return "", r, fmt.Errorf("details: %w", err)
		}
	default:
		return "", r, errors.New("details must be a JSON object or string")
	}
	if r.PrevHash, err = ParseHash(l.PrevHash); err != nil {
		return "", r, fmt.Errorf("prev_hash: %w", err)
	}
	if r.Hash, err = ParseHash(l.Hash); err != nil {
		return "", r, fmt.Errorf("hash: %w", err)
	}
	return l.Chain, r, nil
}

// maxLine bounds a line read back: a record holds identifiers and short
// reasons.
const maxLine = 1 << 20

// Scanner reads exported lines one record at a time.
type Scanner struct {
	// CompleteLines skips a last line without a newline: one a writer
	// has not finished.
	CompleteLines bool

	sc   *bufio.Scanner
	line int
	// Chain and Record are the last record read.
	Chain  string
	Record Record
	err    error
}

// NewScanner reads records from r, up to its end or its first NUL byte
// (no record holds one; a journal file still in use ends with them).
func NewScanner(r io.Reader) *Scanner {
	s := &Scanner{}
	s.sc = bufio.NewScanner(&untilNUL{r: r})
	s.sc.Buffer(make([]byte, 64<<10), maxLine)
	s.sc.Split(func(data []byte, atEOF bool) (int, []byte, error) {
		if atEOF && s.CompleteLines && len(data) > 0 && bytes.IndexByte(data, '\n') < 0 {
			return len(data), nil, nil // a last line still being written
		}
		return bufio.ScanLines(data, atEOF)
	})
	return s
}

// Scan reads the next record; it returns false at the end or on an error
// (see Err). Empty lines are skipped.
func (s *Scanner) Scan() bool {
	for s.err == nil && s.sc.Scan() {
		s.line++
		b := s.sc.Bytes()
		if len(bytes.TrimSpace(b)) == 0 {
			continue
		}
		chain, r, err := ParseLine(b)
		if err != nil {
			s.err = fmt.Errorf("line %d: %w", s.line, err)
			return false
		}
		s.Chain, s.Record = chain, r
		return true
	}
	if s.err == nil {
		if err := s.sc.Err(); err != nil {
			s.err = fmt.Errorf("line %d: %w", s.line+1, err)
		}
	}
	return false
}

// untilNUL reads r up to its first NUL byte.
type untilNUL struct {
	r    io.Reader
	done bool
}

func (u *untilNUL) Read(p []byte) (int, error) {
	if u.done {
		return 0, io.EOF
	}
	n, err := u.r.Read(p)
	if i := bytes.IndexByte(p[:n], 0); i >= 0 {
		u.done = true
		return i, nil
	}
	return n, err
}

// Line is the number of the line last read.
func (s *Scanner) Line() int { return s.line }

// Err returns the first error met.
func (s *Scanner) Err() error { return s.err }
