package audit

import (
	"crypto/sha256"
	"encoding/binary"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"strconv"
	"strings"
	"time"
	"unicode/utf8"
)

// Hash is a record's SHA-256.
type Hash [32]byte

// String is the hash in lower-case hex.
func (h Hash) String() string { return hex.EncodeToString(h[:]) }

// ParseHash reads 64 hex digits.
func ParseHash(s string) (Hash, error) {
	var h Hash
	if len(s) != 2*len(h) {
		return h, fmt.Errorf("a hash is %d hex digits, not %d", 2*len(h), len(s))
	}
	if _, err := hex.Decode(h[:], []byte(s)); err != nil {
		return h, fmt.Errorf("a hash is hex digits: %w", err)
	}
	return h, nil
}

// Record is one entry of a chain.
type Record struct {
	Seq      int64
	Time     time.Time // UTC, whole microseconds
	Actor    string
	Source   string
	Action   string
	Object   string
	Outcome  string
	Details  string // a compact JSON object
	PrevHash Hash
	Hash     Hash
}

// hashDomain starts every hashed encoding, so that no other structure
// hashed by this program can be taken for a record.
const hashDomain = "kts-audit-v1\n"

// ComputeHash is SHA-256 over, in order: "kts-audit-v1\n"; PrevHash (32
// bytes); Seq and Time as Unix microseconds, each 8 bytes big-endian
// (two's complement); and Actor, Source, Action, Object, Outcome and
// Details, each as its length in bytes (4 bytes big-endian) followed by
// its UTF-8 bytes. The length prefixes make the encoding unambiguous.
func (r *Record) ComputeHash() Hash {
	var buf [512]byte
	return sha256.Sum256(r.appendCanonical(buf[:0]))
}

func (r *Record) appendCanonical(b []byte) []byte {
	b = append(b, hashDomain...)
	b = append(b, r.PrevHash[:]...)
	b = binary.BigEndian.AppendUint64(b, uint64(r.Seq))
	b = binary.BigEndian.AppendUint64(b, uint64(r.Time.UnixMicro()))
	for _, s := range [...]string{r.Actor, r.Source, r.Action, r.Object, r.Outcome, r.Details} {
		b = binary.BigEndian.AppendUint32(b, uint32(len(s)))
		b = append(b, s...)
	}
	return b
}

// Head is where a chain ends: its last record's sequence number and hash;
// Seq 0 and the zero hash for an empty chain.
type Head struct {
	Seq  int64
	Hash Hash
}

// Link makes the records that extend head with events, in order, and
// returns them and the new head. An event without a time gets now.
// Strings are made valid UTF-8 without NUL bytes (a database text value
// holds neither), so that the stored record is the hashed one.
func Link(head Head, events []Event, now time.Time) ([]Record, Head, error) {
	out := make([]Record, len(events))
	for i, e := range events {
		r, err := linkOne(head, e, now)
		if err != nil {
			return nil, head, err
		}
		out[i] = r
		head = Head{Seq: r.Seq, Hash: r.Hash}
	}
	return out, head, nil
}

// linkOne is Link of one event.
func linkOne(head Head, e Event, now time.Time) (Record, error) {
	details, err := EncodeDetails(e.Details)
	if err != nil {
		return Record{}, fmt.Errorf("audit event %s: %w", e.Action, err)
	}
	t := e.Time
	if t.IsZero() {
		t = now
	}
	r := Record{
		Seq: head.Seq + 1, Time: t.UTC().Truncate(time.Microsecond),
		Actor: clean(e.Actor), Source: clean(e.Source), Action: clean(e.Action),
		Object: clean(e.Object), Outcome: clean(e.Outcome), Details: details,
		PrevHash: head.Hash,
	}
	r.Hash = r.ComputeHash()
	return r, nil
}

// EncodeDetails is the compact JSON object a record stores, as
// json.Marshal writes it (keys sorted: the same details encode the same);
// nil is {}.
func EncodeDetails(d map[string]any) (string, error) {
	if len(d) == 0 {
		return "{}", nil
	}
	if s, ok := encodeSimple(d); ok {
		return s, nil
	}
	b, err := json.Marshal(d)
	if err != nil {
		return "", err
	}
	return clean(string(b)), nil
}

// encodeSimple encodes one key with an integer value, or a plain string
// (letters, digits and a few marks), as json.Marshal would, without its
// cost; ok is false for anything else.
func encodeSimple(d map[string]any) (string, bool) {
	if len(d) != 1 {
		return "", false
	}
	for k, v := range d {
		if !plain(k) {
			return "", false
		}
		var b []byte
		b = append(b, `{"`...)
		b = append(b, k...)
		b = append(b, `":`...)
		switch v := v.(type) {
		case int:
			b = strconv.AppendInt(b, int64(v), 10)
		case int64:
			b = strconv.AppendInt(b, v, 10)
		case string:
			if !plain(v) {
				return "", false
			}
			b = append(append(append(b, '"'), v...), '"')
		default:
			return "", false
		}
		return string(append(b, '}')), true
	}
	return "", false
}

// plain reports whether s needs no escaping in JSON, even as
// json.Marshal escapes for HTML.
func plain(s string) bool {
	for i := 0; i < len(s); i++ {
		c := s[i]
		if !('a' <= c && c <= 'z' || 'A' <= c && c <= 'Z' || '0' <= c && c <= '9' || c == '_' || c == '-' || c == '.' || c == ':' || c == '/' || c == ' ') {
			return false
		}
	}
	return true
}

// clean makes s valid UTF-8 without NUL bytes.
func clean(s string) string {
	if utf8.ValidString(s) && strings.IndexByte(s, 0) < 0 {
		return s
	}
	return strings.ReplaceAll(strings.ToValidUTF8(s, "\uFFFD"), "\x00", "\uFFFD")
}
