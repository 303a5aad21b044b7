package tlsconf

import (
	"crypto/tls"
	"slices"
	"strings"
	"testing"
)

func FuzzParseCipherList(f *testing.F) {
	for _, s := range []string{
		"", "HIGH", "DEFAULT", "ALL:!aNULL", "AES256:CAMELLIA256-SHA", "ECDHE+AESGCM:ECDHE+CHACHA20",
		"ECDSA:-AESGCM:AESGCM", "HIGH:+AESGCM:@STRENGTH", "DEFAULT:!AES256", "@SECLEVEL=2:HIGH",
		"ECDHE-RSA-AES256-GCM-SHA384,ECDHE-ECDSA-CHACHA20-POLY1305", "AES128 ECDSA", "aes256",
		"AES+", "!", "@", "HIGH:@STRENGTH+AES", "TLS_AES_128_GCM_SHA256", "DEFAULTAES", "A+B+C:D!E-F",
		"kECDHE+aRSA+TLSv1.2+HIGH+FIPS", "COMPLEMENTOFDEFAULT+ECDHE-ECDSA-AES128-SHA",
	} {
		f.Add(s)
	}
	secure := map[uint16]bool{}
	for _, cs := range tls.CipherSuites() {
		if slices.Contains(cs.SupportedVersions, tls.VersionTLS12) {
			secure[cs.ID] = true
		}
	}
	f.Fuzz(func(t *testing.T, s string) {
		suites, warnings, err := ParseCipherList(s)
		if err != nil {
			if suites != nil || warnings != nil {
				t.Fatalf("%q: results with an error: %v %q", s, suites, warnings)
			}
			return
		}
		if strings.TrimSpace(s) == "" {
			if suites != nil {
				t.Fatalf("%q: suites %v, want nil", s, suites)
			}
			return
		}
		if len(suites) == 0 {
			t.Fatalf("%q: no suites and no error", s)
		}
		seen := map[uint16]bool{}
		for _, id := range suites {
			if !secure[id] {
				t.Fatalf("%q: selected %s, not a secure TLS 1.2 suite", s, tls.CipherSuiteName(id))
			}
			if seen[id] {
				t.Fatalf("%q: %s selected twice", s, tls.CipherSuiteName(id))
			}
			seen[id] = true
		}
	})
}
