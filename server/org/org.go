// Package org holds the rules for organizations: valid names and contact
// lists, and how authorization codes are generated, stored and checked.
//
// Auth codes are never stored: only an Argon2id hash with a random salt is
// kept, and a presented code is checked by hashing it with the same salt and
// comparing in constant time.
package org

import (
	"crypto/rand"
	"crypto/subtle"
	"encoding/base64"
	"errors"
	"fmt"
	"net/mail"
	"strconv"
	"strings"
	"unicode"

	"golang.org/x/crypto/argon2"
)

// ErrInvalid marks input that breaks an organization rule.
var ErrInvalid = errors.New("invalid")

// MaxNameLen is the longest organization name accepted.
const MaxNameLen = 64

// ValidateName checks an organization name: letters, digits, hyphens and
// underscores only, starting with a letter or digit.
func ValidateName(name string) error {
	switch {
	case name == "":
		return fmt.Errorf("%w organization name: it is empty; give one with -n NAME", ErrInvalid)
	case len(name) > MaxNameLen:
		return fmt.Errorf("%w organization name: %d characters, at most %d allowed", ErrInvalid, len(name), MaxNameLen)
	}
	for i, r := range name {
		switch {
		case r == ' ' || unicode.IsSpace(r):
			return fmt.Errorf("%w organization name %q: spaces are not allowed; use hyphens or underscores instead", ErrInvalid, name)
		case r == '-' || r == '_':
			if i == 0 {
				return fmt.Errorf("%w organization name %q: it must start with a letter or digit", ErrInvalid, name)
			}
		case r < 0x80 && (unicode.IsLetter(r) || unicode.IsDigit(r)):
		default:
			return fmt.Errorf("%w organization name %q: special character %q is not allowed; use letters, digits, hyphens or underscores", ErrInvalid, name, r)
		}
	}
	return nil
}

// ParseContacts splits a comma-separated contact list ("a@x,b@y") and checks
// each address. Spaces are refused, as the reference tool requires.
func ParseContacts(list string) ([]string, error) {
	if strings.TrimSpace(list) == "" {
		return nil, fmt.Errorf("%w contacts: the list is empty; give e-mail addresses with -c a@example.com,b@example.com", ErrInvalid)
	}
	if strings.ContainsFunc(list, unicode.IsSpace) {
		return nil, fmt.Errorf("%w contacts %q: separate addresses with a comma and no spaces", ErrInvalid, list)
	}
	var out []string
	seen := map[string]bool{}
	for _, c := range strings.Split(list, ",") {
		if err := validateEmail(c); err != nil {
			return nil, err
		}
		if !seen[strings.ToLower(c)] {
			seen[strings.ToLower(c)] = true
			out = append(out, c)
		}
	}
	return out, nil
}

func validateEmail(c string) error {
	if c == "" {
		return fmt.Errorf("%w contacts: empty address between commas", ErrInvalid)
	}
	a, err := mail.ParseAddress(c)
	if err != nil || a.Address != c || a.Name != "" {
		return fmt.Errorf("%w contact %q: not an e-mail address like name@example.com", ErrInvalid, c)
	}
	at := strings.LastIndexByte(c, '@')
	if at <= 0 || at == len(c)-1 || len(c) > 254 {
		return fmt.Errorf("%w contact %q: not an e-mail address like name@example.com", ErrInvalid, c)
	}
	return nil
}

// MaxAuthCodeLen is the longest auth code accepted.
const MaxAuthCodeLen = 256

// ValidateAuthCode checks a code an administrator sets. Blank is allowed and
// means clients of the organization are activated without a code.
func ValidateAuthCode(code string) error {
	if len(code) > MaxAuthCodeLen {
		return fmt.Errorf("%w auth code: %d bytes, at most %d allowed", ErrInvalid, len(code), MaxAuthCodeLen)
	}
	for _, r := range code {
		if !unicode.IsPrint(r) || r == unicode.ReplacementChar {
			return fmt.Errorf("%w auth code: it contains a control or non-printable character", ErrInvalid)
		}
	}
	return nil
}

// GenerateAuthCode returns a fresh random code (128 bits, base64).
func GenerateAuthCode() (string, error) {
	b := make([]byte, 16)
	if _, err := rand.Read(b); err != nil {
		return "", err
	}
	return base64.StdEncoding.EncodeToString(b), nil
}

// Argon2id parameters for auth code hashes (RFC 9106's second recommended
// option scaled down to an interactive budget: 19 MiB, 2 passes).
const (
	argonTime    = 2
	argonMemory  = 19 * 1024
	argonThreads = 1
	argonKeyLen  = 32
)

// HashAuthCode returns the stored form of code: "" for a blank code,
// otherwise "argon2id$v=19$m=..,t=..,p=..$<salt>$<hash>".
func HashAuthCode(code string) (string, error) {
	if code == "" {
		return "", nil
	}
	salt := make([]byte, 16)
	if _, err := rand.Read(salt); err != nil {
		return "", err
	}
	sum := argon2.IDKey([]byte(code), salt, argonTime, argonMemory, argonThreads, argonKeyLen)
	enc := base64.RawStdEncoding
	return fmt.Sprintf("argon2id$v=%d$m=%d,t=%d,p=%d$%s$%s", argon2.Version, argonMemory, argonTime, argonThreads,
		enc.EncodeToString(salt), enc.EncodeToString(sum)), nil
}

// CodeMatches reports whether a presented code matches the stored hash. A
// blank stored hash means the organization requires no code: it matches
// every presented code. A malformed hash never matches.
func CodeMatches(stored, presented string) bool {
	if stored == "" {
		return true
	}
	if presented == "" {
		return false
	}
	parts := strings.Split(stored, "$")
	if len(parts) != 5 || parts[0] != "argon2id" || parts[1] != "v="+strconv.Itoa(argon2.Version) {
		return false
	}
	var m, t uint32
	var p uint8
	if _, err := fmt.Sscanf(parts[2], "m=%d,t=%d,p=%d", &m, &t, &p); err != nil || m > 1<<20 || t > 16 || p == 0 {
		return false
	}
	enc := base64.RawStdEncoding
	salt, err1 := enc.DecodeString(parts[3])
	want, err2 := enc.DecodeString(parts[4])
	if err1 != nil || err2 != nil || len(want) == 0 {
		return false
	}
	got := argon2.IDKey([]byte(presented), salt, t, m, p, uint32(len(want)))
	return subtle.ConstantTimeCompare(got, want) == 1
}
