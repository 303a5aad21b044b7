// Package hkp answers the parts of the OpenPGP HTTP Keyserver Protocol
// (draft-shaw-openpgp-hkp) that GnuPG's dirmngr uses: it parses a lookup's
// search and writes the machine-readable index of op=index.
package hkp

import (
	"bytes"
	"errors"
	"fmt"
	"strconv"
	"strings"

	"trustee.dev/trustee/server/openpgp"
)

// Operations served on /pks/lookup.
const (
	OpGet   = "get"
	OpIndex = "index"
)

// ErrBadSearch means a lookup's search is empty or malformed.
var ErrBadSearch = errors.New("invalid search")

// Search is what a lookup asks for: a key ID (the last 8 or 16 hex digits
// of a fingerprint), a full fingerprint, or text to find in user IDs.
type Search struct {
	Fingerprint string // 40 upper-case hex digits: this key
	KeyID       string // 8 or 16 upper-case hex digits: the key whose fingerprint ends so
	Text        string // otherwise: user IDs that contain it, in any case
}

// ParseSearch parses the search parameter. A "0x" prefix marks hex: a key
// ID or a fingerprint (in either case); without it, 40 hex digits are a
// fingerprint too, and anything else is text.
func ParseSearch(s string) (Search, error) {
	s = strings.TrimSpace(s)
	if s == "" {
		return Search{}, fmt.Errorf("%w: search is empty; give a full fingerprint, e.g. search=0x4EDC46882386C827E20DEEA2D850ACA33BEDB0D1", ErrBadSearch)
	}
	hex, prefixed := strings.CutPrefix(s, "0x")
	if !prefixed {
		hex, prefixed = strings.CutPrefix(s, "0X")
	}
	upper := strings.ToUpper(hex)
	switch {
	case isHex(upper) && len(upper) == 40:
		return Search{Fingerprint: upper}, nil
	case prefixed && isHex(upper) && (len(upper) == 8 || len(upper) == 16):
		return Search{KeyID: upper}, nil
	case prefixed:
		return Search{}, fmt.Errorf("%w: 0x must be followed by a key ID (8 or 16 hex digits) or a full fingerprint (40)", ErrBadSearch)
	}
	return Search{Text: s}, nil
}

// Matches reports whether the key s summarizes answers the search.
func (q Search) Matches(s openpgp.Summary) bool {
	switch {
	case q.Fingerprint != "":
		return s.Fingerprint == q.Fingerprint
	case q.KeyID != "":
		return strings.HasSuffix(s.Fingerprint, q.KeyID)
	}
	text := strings.ToLower(q.Text)
	for _, uid := range s.UserIDs {
		if strings.Contains(strings.ToLower(uid), text) {
			return true
		}
	}
	return false
}

// Index returns the machine-readable index of keys (draft-shaw-openpgp-hkp
// section 5.2): an "info:1:N" line, then for each key a "pub" line and its
// "uid" lines.
func Index(keys []openpgp.Summary) []byte {
	var b bytes.Buffer
	fmt.Fprintf(&b, "info:1:%d\n", len(keys))
	for _, k := range keys {
		fmt.Fprintf(&b, "pub:%s:%d:%d:%d:%s:%s\n", k.Fingerprint, k.Algorithm, k.Bits, k.Created.Unix(), unixOrEmpty(k), flags(k))
		for _, uid := range k.UserIDs {
			fmt.Fprintf(&b, "uid:%s:%d:%s:%s\n", escape(uid), k.Created.Unix(), unixOrEmpty(k), flags(k))
		}
	}
	return b.Bytes()
}

func unixOrEmpty(k openpgp.Summary) string {
	if k.Expires.IsZero() {
		return ""
	}
	return strconv.FormatInt(k.Expires.Unix(), 10)
}

func flags(k openpgp.Summary) string {
	f := ""
	if k.Revoked {
		f += "r"
	}
	if k.Expired {
		f += "e"
	}
	return f
}

// escape %-encodes what may not appear in an index field: the colon, the
// percent sign and every byte outside printable US-ASCII.
func escape(s string) string {
	var b strings.Builder
	for i := 0; i < len(s); i++ {
		c := s[i]
		if c == ':' || c == '%' || c < 0x20 || c > 0x7e {
			fmt.Fprintf(&b, "%%%02X", c)
			continue
		}
		b.WriteByte(c)
	}
	return b.String()
}

func isHex(s string) bool {
	if s == "" {
		return false
	}
	for i := 0; i < len(s); i++ {
		c := s[i]
		if !('0' <= c && c <= '9' || 'A' <= c && c <= 'F') {
			return false
		}
	}
	return true
}
