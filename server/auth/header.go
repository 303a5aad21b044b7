package auth

import (
	"encoding/base64"
	"fmt"
	"slices"
	"strconv"
	"strings"
)

const (
	schemeSignature = "KTS-PGP"
	schemeSession   = "KTS-Session"

	maxHeaderLen    = 8 << 10
	maxSignatureLen = 4 << 10 // decoded; an RSA 8192 signature is about 1.1 KiB
	minNonceLen     = 16
	maxNonceLen     = 64
	maxTokenLen     = 512
	maxTimestampLen = 18 // digits; keeps the value far from int64 overflow

	headerHint = "expected: KTS-PGP fingerprint=<40 upper-case hex>, timestamp=<unix seconds>, nonce=<16-64 of A-Z a-z 0-9 _ ->, signature=<base64 of gpg --detach-sign>"
)

// Credentials are the parsed contents of an Authorization header. Scheme
// tells which fields are set: Fingerprint, Timestamp, Nonce and Signature for
// SchemeSignature, Token for SchemeSession. Printing Credentials with the fmt
// package hides the nonce, signature and token.
type Credentials struct {
	Scheme      Scheme
	Fingerprint string // 40 upper-case hex digits
	Timestamp   int64  // unix seconds
	Nonce       string
	Signature   []byte // binary OpenPGP signature
	Token       string
}

// String describes c without its secrets.
func (c Credentials) String() string {
	if c.Scheme == SchemeSession {
		return schemeSession + " <token>"
	}
	return fmt.Sprintf("%s fingerprint=%s, timestamp=%d, nonce=<hidden>, signature=<%d bytes>", c.Scheme, c.Fingerprint, c.Timestamp, len(c.Signature))
}

// GoString is like String, so that %#v hides secrets too.
func (c Credentials) GoString() string { return "auth.Credentials{" + c.String() + "}" }

// header renders c as an Authorization header value that ParseAuthorization
// reads back to c.
func (c Credentials) header() string {
	if c.Scheme == SchemeSession {
		return schemeSession + " " + c.Token
	}
	return fmt.Sprintf("%s fingerprint=%s, timestamp=%d, nonce=%s, signature=%s",
		schemeSignature, c.Fingerprint, c.Timestamp, c.Nonce, base64.StdEncoding.EncodeToString(c.Signature))
}

func malformed(format string, args ...any) error {
	return fmt.Errorf("%w: "+format, append([]any{ErrMalformed}, args...)...)
}

// ParseAuthorization parses an Authorization header value. It returns
// ErrNoCredentials when the header is empty and an error wrapping
// ErrMalformed, saying what is wrong, when it cannot be parsed. It checks
// syntax only: nothing is verified.
func ParseAuthorization(header string) (Credentials, error) {
	header = strings.Trim(header, " \t")
	if header == "" {
		return Credentials{}, ErrNoCredentials
	}
	if len(header) > maxHeaderLen {
		return Credentials{}, malformed("the header is longer than %d bytes", maxHeaderLen)
	}
	scheme, rest := header, ""
	if i := strings.IndexAny(header, " \t"); i >= 0 {
		scheme, rest = header[:i], strings.Trim(header[i:], " \t")
	}
	switch {
	case strings.EqualFold(scheme, schemeSignature):
		return parseSignature(rest)
	case strings.EqualFold(scheme, schemeSession):
		return parseSession(rest)
	}
	return Credentials{}, malformed("unsupported scheme; use %s (a signed request) or %s (a session token)", schemeSignature, schemeSession)
}

func parseSession(token string) (Credentials, error) {
	if token == "" {
		return Credentials{}, malformed("%s needs a token: %s <token>", schemeSession, schemeSession)
	}
	if len(token) > maxTokenLen || !isTokenChars(token) {
		return Credentials{}, malformed("the session token is not a token this server issued; send it exactly as received")
	}
	return Credentials{Scheme: SchemeSession, Token: token}, nil
}

// paramNames are the parameters of a KTS-PGP header, all required.
var paramNames = []string{"fingerprint", "timestamp", "nonce", "signature"}

func parseSignature(params string) (Credentials, error) {
	c := Credentials{Scheme: SchemeSignature}
	if params == "" {
		return c, malformed("%s has no parameters; %s", schemeSignature, headerHint)
	}
	seen := map[string]bool{}
	for _, param := range strings.Split(params, ",") {
		param = strings.Trim(param, " \t")
		if param == "" {
			return c, malformed("empty parameter (a stray comma?); %s", headerHint)
		}
		name, value, ok := strings.Cut(param, "=")
		if !ok {
			return c, malformed("a parameter has no '='; write name=value; %s", headerHint)
		}
		name = strings.ToLower(strings.Trim(name, " \t"))
		value = unquote(strings.Trim(value, " \t"))
		if !slices.Contains(paramNames, name) {
			return c, malformed("unknown parameter %s; %s", safeName(name), headerHint)
		}
		if seen[name] {
			return c, malformed("parameter %s given more than once", name)
		}
		seen[name] = true
		var err error
		switch name {
		case "fingerprint":
			c.Fingerprint, err = parseFingerprint(value)
		case "timestamp":
			c.Timestamp, err = parseTimestamp(value)
		case "nonce":
			c.Nonce, err = parseNonce(value)
		case "signature":
			c.Signature, err = parseSignatureValue(value)
		}
		if err != nil {
			return c, err
		}
	}
	for _, name := range paramNames {
		if !seen[name] {
			return c, malformed("missing parameter %s; %s", name, headerHint)
		}
	}
	return c, nil
}

// unquote removes one pair of surrounding double quotes, as in an HTTP
// quoted-string; none of the values may contain quotes or backslashes.
func unquote(v string) string {
	if len(v) >= 2 && v[0] == '"' && v[len(v)-1] == '"' {
		return v[1 : len(v)-1]
	}
	return v
}

// safeName quotes an unknown parameter name when it is short enough that it
// cannot be a nonce or a signature someone mislabelled.
func safeName(name string) string {
	if len(name) > 0 && len(name) < minNonceLen && isTokenChars(name) {
		return strconv.Quote(name)
	}
	return "(name not shown)"
}

func parseFingerprint(v string) (string, error) {
	if len(v) != 40 || !isUpperHex(v) {
		return "", malformed("fingerprint must be the key's 40 hex digits in upper case, as gpg --list-keys --with-colons shows it")
	}
	return v, nil
}

// OneHeader returns the value of a request's one Authorization header
// (values are all the request's Authorization headers): "" when there is
// none, and an error wrapping ErrMalformed when there are several, as a
// proxy in front may have read another one than the server would.
func OneHeader(values []string) (string, error) {
	switch len(values) {
	case 0:
		return "", nil
	case 1:
		return values[0], nil
	}
	return "", malformed("the request has %d Authorization headers; send exactly one", len(values))
}

func parseTimestamp(v string) (int64, error) {
	if v == "" || len(v) > maxTimestampLen || !isDigits(v) || (len(v) > 1 && v[0] == '0') {
		return 0, malformed("timestamp must be the current unix time in decimal seconds without leading zeros (date +%%s)")
	}
	ts, err := strconv.ParseInt(v, 10, 64)
	if err != nil {
		return 0, malformed("timestamp is out of range")
	}
	return ts, nil
}

func parseNonce(v string) (string, error) {
	if len(v) < minNonceLen || len(v) > maxNonceLen || !isTokenChars(v) {
		return "", malformed("nonce must be %d to %d characters of A-Z a-z 0-9 _ -, random and new for every request", minNonceLen, maxNonceLen)
	}
	return v, nil
}

func parseSignatureValue(v string) ([]byte, error) {
	const hint = "signature must be the standard base64 of a binary detached signature (gpg --detach-sign | base64 -w0)"
	if v == "" || len(v) > base64.StdEncoding.EncodedLen(maxSignatureLen) {
		return nil, malformed("%s, at most %d bytes", hint, maxSignatureLen)
	}
	body := strings.TrimRight(v, "=")
	if len(v)-len(body) > 2 || !isBase64Chars(body) {
		return nil, malformed("%s", hint)
	}
	enc := base64.RawStdEncoding
	if len(body) != len(v) {
		enc = base64.StdEncoding
	}
	sig, err := enc.Strict().DecodeString(v)
	if err != nil || len(sig) == 0 {
		return nil, malformed("%s", hint)
	}
	return sig, nil
}

func isHex(s string) bool {
	for i := 0; i < len(s); i++ {
		if c := s[i]; !('0' <= c && c <= '9' || 'a' <= c && c <= 'f' || 'A' <= c && c <= 'F') {
			return false
		}
	}
	return true
}

// isUpperHex reports whether s is made of 0-9 A-F only.
func isUpperHex(s string) bool {
	for i := 0; i < len(s); i++ {
		if c := s[i]; !('0' <= c && c <= '9' || 'A' <= c && c <= 'F') {
			return false
		}
	}
	return true
}

func isDigits(s string) bool {
	for i := 0; i < len(s); i++ {
		if s[i] < '0' || s[i] > '9' {
			return false
		}
	}
	return true
}

// isTokenChars reports whether s is made of A-Z a-z 0-9 _ - only (the
// base64url alphabet).
func isTokenChars(s string) bool {
	for i := 0; i < len(s); i++ {
		if c := s[i]; !('0' <= c && c <= '9' || 'a' <= c && c <= 'z' || 'A' <= c && c <= 'Z' || c == '_' || c == '-') {
			return false
		}
	}
	return true
}

func isBase64Chars(s string) bool {
	for i := 0; i < len(s); i++ {
		if c := s[i]; !('0' <= c && c <= '9' || 'a' <= c && c <= 'z' || 'A' <= c && c <= 'Z' || c == '+' || c == '/') {
			return false
		}
	}
	return true
}
