package tlsconf

import (
	"crypto/tls"
	"strings"
	"testing"
)

func TestParseMinVersion(t *testing.T) {
	tests := []struct {
		in      string
		want    uint16
		wantErr []string // substrings of the error
	}{
		{"", tls.VersionTLS12, nil},
		{"tlsv1.2", tls.VersionTLS12, nil},
		{"TLSv1.2", tls.VersionTLS12, nil},
		{" tlsv1.2 ", tls.VersionTLS12, nil},
		{"tlsv1.3", tls.VersionTLS13, nil},
		{"TLSV1.3", tls.VersionTLS13, nil},
		{"tlsv1", 0, []string{"RFC 8996", "known weaknesses", `use "tlsv1.2"`}},
		{"tlsv1.0", 0, []string{"RFC 8996", `use "tlsv1.2"`}},
		{"TLSv1.1", 0, []string{"RFC 8996", `"tlsv1.3"`}},
		{"sslv3", 0, []string{"RFC 7568", "POODLE", `use "tlsv1.2"`}},
		{"SSLv2", 0, []string{"RFC 6176", `use "tlsv1.2"`}},
		{"sslv23", 0, []string{"not allowed"}},
		{"tlsv1.4", 0, []string{`unknown TLS version "tlsv1.4"`, `"tlsv1.2" (the default) and "tlsv1.3"`}},
		{"1.2", 0, []string{`unknown TLS version "1.2"`}},
		{"tls1.2", 0, []string{"accepted values"}},
	}
	for _, tt := range tests {
		t.Run(tt.in, func(t *testing.T) {
			got, err := ParseMinVersion(tt.in)
			if tt.wantErr == nil {
				if err != nil || got != tt.want {
					t.Fatalf("ParseMinVersion(%q) = %#x, %v; want %#x", tt.in, got, err, tt.want)
				}
				return
			}
			if err == nil {
				t.Fatalf("ParseMinVersion(%q) = %#x; want an error", tt.in, got)
			}
			for _, w := range tt.wantErr {
				if !strings.Contains(err.Error(), w) {
					t.Errorf("ParseMinVersion(%q) error %q does not contain %q", tt.in, err, w)
				}
			}
		})
	}
}
