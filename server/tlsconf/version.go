package tlsconf

import (
	"crypto/tls"
	"fmt"
	"strings"
)

// ParseMinVersion parses the minimum TLS protocol version the server
// accepts: "tlsv1.2" (also the meaning of "") or "tlsv1.3", in any letter
// case. Older protocols are refused with an explanation.
func ParseMinVersion(s string) (uint16, error) {
	switch strings.ToLower(strings.TrimSpace(s)) {
	case "", "tlsv1.2":
		return tls.VersionTLS12, nil
	case "tlsv1.3":
		return tls.VersionTLS13, nil
	case "tlsv1", "tlsv1.0", "tlsv1.1":
		return 0, fmt.Errorf("TLS version %q is not allowed: TLS 1.0 and 1.1 are deprecated by RFC 8996 because of known weaknesses (SHA-1 and MD5 in the handshake, CBC attacks such as BEAST); use \"tlsv1.2\" (the default) or \"tlsv1.3\"", s)
	case "sslv2", "sslv3", "sslv23", "ssl2", "ssl3":
		return 0, fmt.Errorf("TLS version %q is not allowed: SSL 2.0 and 3.0 are prohibited by RFC 6176 and RFC 7568 (DROWN, POODLE); use \"tlsv1.2\" (the default) or \"tlsv1.3\"", s)
	default:
		return 0, fmt.Errorf("unknown TLS version %q; accepted values are \"tlsv1.2\" (the default) and \"tlsv1.3\"", s)
	}
}
