package tlsconf

import (
	"crypto/tls"
	"flag"
	"math/rand/v2"
	"os/exec"
	"slices"
	"strings"
	"testing"
)

var (
	opensslLists = flag.Int("openssl.lists", 300, "random cipher lists to compare with openssl")
	opensslSeed  = flag.Int("openssl.seed", 2, "seed for the random cipher lists")
)

var allInOrder = []string{
	"ECDHE-ECDSA-AES256-GCM-SHA384", "ECDHE-RSA-AES256-GCM-SHA384",
	"ECDHE-ECDSA-CHACHA20-POLY1305", "ECDHE-RSA-CHACHA20-POLY1305",
	"ECDHE-ECDSA-AES128-GCM-SHA256", "ECDHE-RSA-AES128-GCM-SHA256",
	"ECDHE-ECDSA-AES256-SHA", "ECDHE-RSA-AES256-SHA",
	"ECDHE-ECDSA-AES128-SHA", "ECDHE-RSA-AES128-SHA",
}

func suiteNames(ids []uint16) []string {
	var names []string
	for _, id := range ids {
		name := "?"
		for _, s := range available {
			if s.id == id {
				name = s.name
			}
		}
		names = append(names, name)
	}
	return names
}

func TestParseCipherList(t *testing.T) {
	gcm := []string{"ECDHE-ECDSA-AES256-GCM-SHA384", "ECDHE-RSA-AES256-GCM-SHA384", "ECDHE-ECDSA-AES128-GCM-SHA256", "ECDHE-RSA-AES128-GCM-SHA256"}
	cbc := []string{"ECDHE-ECDSA-AES256-SHA", "ECDHE-RSA-AES256-SHA", "ECDHE-ECDSA-AES128-SHA", "ECDHE-RSA-AES128-SHA"}
	aes128 := []string{"ECDHE-ECDSA-AES128-GCM-SHA256", "ECDHE-RSA-AES128-GCM-SHA256", "ECDHE-ECDSA-AES128-SHA", "ECDHE-RSA-AES128-SHA"}
	rsa := []string{"ECDHE-RSA-AES256-GCM-SHA384", "ECDHE-RSA-CHACHA20-POLY1305", "ECDHE-RSA-AES128-GCM-SHA256", "ECDHE-RSA-AES256-SHA", "ECDHE-RSA-AES128-SHA"}
	tests := []struct {
		list     string
		want     []string
		warnings []string // substrings, one per expected warning
	}{
		{"", nil, nil},
		{"   ", nil, nil},
		// Exact names.
		{"ECDHE-RSA-AES256-GCM-SHA384", []string{"ECDHE-RSA-AES256-GCM-SHA384"}, nil},
		{"ECDHE-ECDSA-CHACHA20-POLY1305", []string{"ECDHE-ECDSA-CHACHA20-POLY1305"}, nil},
		{"ECDHE-RSA-AES128-SHA:ECDHE-ECDSA-AES256-GCM-SHA384", []string{"ECDHE-RSA-AES128-SHA", "ECDHE-ECDSA-AES256-GCM-SHA384"}, nil},
		{"ECDHE-RSA-AES128-SHA:ECDHE-RSA-AES128-SHA", []string{"ECDHE-RSA-AES128-SHA"}, nil},
		// Keywords.
		{"HIGH", allInOrder, nil},
		{"ALL", allInOrder, nil},
		{"DEFAULT", allInOrder, nil},
		{"kEECDH", allInOrder, nil},
		{"ECDH", allInOrder, nil},
		{"AESGCM", gcm, nil},
		{"AES128", aes128, nil},
		{"CBC", cbc, nil},
		{"SHA1", cbc, nil},
		{"SHA", cbc, nil},
		{"TLSv1", cbc, nil},
		{"TLSv1.0", cbc, nil},
		{"TLSv1.2", allInOrder[:6], nil},
		{"FIPS", append(slices.Clone(gcm), cbc...), nil},
		{"CHACHA20", []string{"ECDHE-ECDSA-CHACHA20-POLY1305", "ECDHE-RSA-CHACHA20-POLY1305"}, nil},
		{"aECDSA+SHA1", []string{"ECDHE-ECDSA-AES256-SHA", "ECDHE-ECDSA-AES128-SHA"}, nil},
		// '+' combinations (intersection).
		{"kECDHE+AESGCM", gcm, nil},
		{"ECDHE+AESGCM", gcm, nil},
		{"AESGCM+AES256", gcm[:2], nil},
		{"AES256+AESGCM+ECDSA", []string{"ECDHE-ECDSA-AES256-GCM-SHA384"}, nil},
		{"ECDHE+aRSA+CHACHA20", []string{"ECDHE-RSA-CHACHA20-POLY1305"}, nil},
		{"TLSv1+ECDSA", []string{"ECDHE-ECDSA-AES256-SHA", "ECDHE-ECDSA-AES128-SHA"}, nil},
		{"ECDHE-RSA-AES128-SHA+SHA", []string{"ECDHE-RSA-AES128-SHA"}, nil},
		{"ECDHE-RSA-AES128-SHA+FIPS", []string{"ECDHE-RSA-AES128-SHA"}, nil},
		{"ALL+ECDHE", allInOrder, nil},
		{"aRSA+AES:ECDSA", []string{
			"ECDHE-RSA-AES256-GCM-SHA384", "ECDHE-RSA-AES128-GCM-SHA256", "ECDHE-RSA-AES256-SHA", "ECDHE-RSA-AES128-SHA",
			"ECDHE-ECDSA-AES256-GCM-SHA384", "ECDHE-ECDSA-CHACHA20-POLY1305", "ECDHE-ECDSA-AES128-GCM-SHA256", "ECDHE-ECDSA-AES256-SHA", "ECDHE-ECDSA-AES128-SHA"}, nil},
		// Separators.
		{"AES128 ECDSA", append(slices.Clone(aes128), "ECDHE-ECDSA-AES256-GCM-SHA384", "ECDHE-ECDSA-CHACHA20-POLY1305", "ECDHE-ECDSA-AES256-SHA"), nil},
		{"AES,ECDSA", append(append(slices.Clone(gcm), cbc...), "ECDHE-ECDSA-CHACHA20-POLY1305"), nil},
		{"AES;CHACHA20", append(append(slices.Clone(gcm), cbc...), "ECDHE-ECDSA-CHACHA20-POLY1305", "ECDHE-RSA-CHACHA20-POLY1305"), nil},
		{"AESGCM!ECDSA", []string{"ECDHE-RSA-AES256-GCM-SHA384", "ECDHE-RSA-AES128-GCM-SHA256"}, nil},
		// Operators.
		{"DEFAULT:!AES256", []string{"ECDHE-ECDSA-CHACHA20-POLY1305", "ECDHE-RSA-CHACHA20-POLY1305", "ECDHE-ECDSA-AES128-GCM-SHA256", "ECDHE-RSA-AES128-GCM-SHA256", "ECDHE-ECDSA-AES128-SHA", "ECDHE-RSA-AES128-SHA"}, nil},
		{"!ECDSA:ECDHE", rsa, nil},
		{"ALL:-ECDSA:+ECDSA", rsa, nil},
		{"ECDSA:-AESGCM:AESGCM", []string{
			"ECDHE-ECDSA-CHACHA20-POLY1305", "ECDHE-ECDSA-AES256-SHA", "ECDHE-ECDSA-AES128-SHA",
			"ECDHE-ECDSA-AES256-GCM-SHA384", "ECDHE-ECDSA-AES128-GCM-SHA256", "ECDHE-RSA-AES256-GCM-SHA384", "ECDHE-RSA-AES128-GCM-SHA256"}, nil},
		{"HIGH:+AESGCM", []string{
			"ECDHE-ECDSA-CHACHA20-POLY1305", "ECDHE-RSA-CHACHA20-POLY1305", "ECDHE-ECDSA-AES256-SHA", "ECDHE-RSA-AES256-SHA", "ECDHE-ECDSA-AES128-SHA", "ECDHE-RSA-AES128-SHA",
			"ECDHE-ECDSA-AES256-GCM-SHA384", "ECDHE-RSA-AES256-GCM-SHA384", "ECDHE-ECDSA-AES128-GCM-SHA256", "ECDHE-RSA-AES128-GCM-SHA256"}, nil},
		{"HIGH:@STRENGTH", []string{
			"ECDHE-ECDSA-AES256-GCM-SHA384", "ECDHE-RSA-AES256-GCM-SHA384", "ECDHE-ECDSA-CHACHA20-POLY1305", "ECDHE-RSA-CHACHA20-POLY1305", "ECDHE-ECDSA-AES256-SHA", "ECDHE-RSA-AES256-SHA",
			"ECDHE-ECDSA-AES128-GCM-SHA256", "ECDHE-RSA-AES128-GCM-SHA256", "ECDHE-ECDSA-AES128-SHA", "ECDHE-RSA-AES128-SHA"}, nil},
		{"AES128:CHACHA20:@STRENGTH", append([]string{"ECDHE-ECDSA-CHACHA20-POLY1305", "ECDHE-RSA-CHACHA20-POLY1305"}, aes128...), nil},
		{"CHACHA20:@STRENGTH:AES128", append([]string{"ECDHE-ECDSA-CHACHA20-POLY1305", "ECDHE-RSA-CHACHA20-POLY1305"}, aes128...), nil},
		{"ECDHE:!CHACHA20:CHACHA20", append(slices.Clone(gcm), cbc...), nil},
		{"HIGH:!aNULL:!MD5:!RC4:!3DES:!CAMELLIA:!PSK", allInOrder, nil},
		// The example from the Key Trustee Server documentation.
		{"AES256:CAMELLIA256-SHA", []string{"ECDHE-ECDSA-AES256-GCM-SHA384", "ECDHE-RSA-AES256-GCM-SHA384", "ECDHE-ECDSA-AES256-SHA", "ECDHE-RSA-AES256-SHA"}, []string{"CAMELLIA256-SHA is not implemented by Go"}},
		// Real OpenSSL names and keywords Go does not implement.
		{"AESGCM:DHE-RSA-AES256-GCM-SHA384", gcm, []string{"DHE-RSA-AES256-GCM-SHA384"}},
		{"AESGCM:EXP-RC4-MD5:IDEA-CBC-SHA", gcm, []string{"EXP-RC4-MD5", "IDEA-CBC-SHA"}},
		{"AES:CAMELLIA:ARIA:SEED", append(slices.Clone(gcm), cbc...), []string{`"CAMELLIA"`, `"ARIA"`, `"SEED"`}},
		{"EECDH+AESGCM:EDH+AESGCM", gcm, []string{`"EDH+AESGCM"`}},
		{"AESGCM:ECDHE+CAMELLIA", gcm, []string{`"ECDHE+CAMELLIA"`}},
		{"AESGCM:PSK:SRP:DSS:kDHE", gcm, []string{`"PSK"`, `"SRP"`, `"DSS"`, `"kDHE"`}},
		{"AESGCM:SHA256:SHA384", gcm, []string{`"SHA256"`, `"SHA384"`}},
		{"AESGCM:ECDHE-RSA-AES128-SHA256", gcm, []string{"considers it insecure (CBC with HMAC-SHA256"}},
		{"AESGCM:AES128-GCM-SHA256", gcm, []string{"no forward secrecy"}},
		{"AESGCM:RC4-SHA:DES-CBC3-SHA", gcm, []string{"RC4 is broken", "Sweet32"}},
		{"AESGCM:TLS_AES_128_GCM_SHA256", gcm, []string{"TLS 1.3 suite"}},
		{"ECDHE-RSA-CHACHA20-POLY1305+FIPS:AES128", aes128, []string{`"ECDHE-RSA-CHACHA20-POLY1305+FIPS"`}},
		{"HIGH+FIPS:AESGCM", gcm, []string{`"HIGH+FIPS"`}},
		{"AES128:DEFAULT", aes128, []string{"DEFAULT has an effect only as the first element"}},
		{"@SECLEVEL=2:HIGH", allInOrder, []string{"@SECLEVEL=2 is ignored"}},
	}
	for _, tt := range tests {
		t.Run(tt.list, func(t *testing.T) {
			suites, warnings, err := ParseCipherList(tt.list)
			if err != nil {
				t.Fatalf("ParseCipherList(%q): %v", tt.list, err)
			}
			if got := suiteNames(suites); !slices.Equal(got, tt.want) {
				t.Errorf("ParseCipherList(%q) =\n  %v\nwant\n  %v", tt.list, got, tt.want)
			}
			if len(warnings) != len(tt.warnings) {
				t.Fatalf("warnings = %q, want %d matching %q", warnings, len(tt.warnings), tt.warnings)
			}
			for i, w := range tt.warnings {
				if !strings.Contains(warnings[i], w) {
					t.Errorf("warning %d = %q, want it to contain %q", i, warnings[i], w)
				}
			}
		})
	}
}

func TestParseCipherListErrors(t *testing.T) {
	tests := []struct {
		list string
		want string // substring of the error
	}{
		{"FOO", `unknown cipher or keyword "FOO"`},
		{"AES:FOO", `unknown cipher or keyword "FOO"`},
		{"!FOO:AES", `unknown cipher or keyword "FOO"`},
		{"AES+GCM", `unknown cipher or keyword "GCM"`},
		{"ECDHE-RSA-AES256-GCM-SHA348", `unknown cipher or keyword "ECDHE-RSA-AES256-GCM-SHA348"`},
		{"aes256", `did you mean "AES256"`},
		{"high", `did you mean "HIGH"`},
		{"ecdhe-rsa-aes128-gcm-sha256", `did you mean "ECDHE-RSA-AES128-GCM-SHA256"`},
		{"TLS_ECDHE_RSA_WITH_AES_128_GCM_SHA256", `IANA suite name; the cipher list uses OpenSSL names, use "ECDHE-RSA-AES128-GCM-SHA256"`},
		{"TLS_RSA_WITH_AES_128_CBC_SHA", `use "AES128-SHA"`},
		{"TLS_FOO", `"TLS_FOO" is not an OpenSSL cipher name`},
		{"AES/256", `unexpected '/' at offset 3`},
		{"AES\tHIGH", `unexpected '\t' at offset 3`},
		{"HIGH:é", `unexpected 'é'`},
		{"AES+", `ends in "+"`},
		{"!", `ends in "!"`},
		{"HIGH:-", `ends in "-"`},
		{"!:AES", `unexpected ':' at offset 1`},
		{"@", `ends in "@"`},
		{"HIGH:@FOO", `unknown command @FOO`},
		{"HIGH:@SECLEVEL=9", `invalid @SECLEVEL=9`},
		{"HIGH:@SECLEVEL=", `invalid @SECLEVEL=`},
		{"HIGH:@STRENGTH+AES", `unexpected "+AES" after @STRENGTH`},
		// Lists that select nothing.
		{"CAMELLIA", "selects no TLS 1.2 cipher suite"},
		{"CAMELLIA256-SHA", "selects no TLS 1.2 cipher suite"},
		{"SHA256", "selects no TLS 1.2 cipher suite"},
		{"MEDIUM", "selects no TLS 1.2 cipher suite"},
		{"HIGH+FIPS", "selects no TLS 1.2 cipher suite"},
		{"kRSA", "selects no TLS 1.2 cipher suite"},
		{"@STRENGTH", "selects no TLS 1.2 cipher suite"},
		{"!HIGH", "selects no TLS 1.2 cipher suite"},
		{"ECDHE:!ECDHE:ECDHE", "selects no TLS 1.2 cipher suite"},
		{"TLS_AES_128_GCM_SHA256", "selects no TLS 1.2 cipher suite"},
		{"AESGCM+CHACHA20", "selects no TLS 1.2 cipher suite"},
		{"ECDHE-RSA-AES128-SHA+TLSv1.2", "selects no TLS 1.2 cipher suite"},
		{"TLSv1.2+TLSv1", "selects no TLS 1.2 cipher suite"},
	}
	for _, tt := range tests {
		t.Run(tt.list, func(t *testing.T) {
			suites, warnings, err := ParseCipherList(tt.list)
			if err == nil {
				t.Fatalf("ParseCipherList(%q) = %v, %q; want error containing %q", tt.list, suiteNames(suites), warnings, tt.want)
			}
			if !strings.Contains(err.Error(), tt.want) {
				t.Errorf("ParseCipherList(%q) error = %q, want it to contain %q", tt.list, err, tt.want)
			}
			if suites != nil || warnings != nil {
				t.Errorf("ParseCipherList(%q) returned suites %v and warnings %q with an error", tt.list, suites, warnings)
			}
		})
	}
}

// TestCipherTableMatchesGo checks that every selectable suite is one Go
// considers secure for TLS 1.2, and that OpenSSL's names of the secure Go
// suites are all known.
func TestCipherTableMatchesGo(t *testing.T) {
	secure := map[uint16]string{}
	for _, cs := range tls.CipherSuites() {
		if slices.Contains(cs.SupportedVersions, tls.VersionTLS12) {
			secure[cs.ID] = cs.Name
		}
	}
	for _, s := range available {
		if _, ok := secure[s.id]; !ok {
			t.Errorf("%s (%#04x) is selectable but not a secure Go TLS 1.2 suite", s.name, s.id)
		}
	}
	for id, name := range secure {
		if !slices.ContainsFunc(available, func(s suite) bool { return s.id == id }) {
			t.Errorf("Go suite %s has no OpenSSL name in the table", name)
		}
	}
	for _, s := range insecureSuites {
		if secure[s.id] != "" {
			t.Errorf("%s is listed as insecure but Go considers it secure", s.name)
		}
	}
	if got := SupportedCipherNames(); !slices.Equal(got, allInOrder) {
		t.Errorf("SupportedCipherNames() = %v", got)
	}
}

// TestParseCipherListAgreesWithOpenSSL compares the selection and order with
// the installed openssl for fixed and randomly generated lists.
func TestParseCipherListAgreesWithOpenSSL(t *testing.T) {
	opensslBin, err := exec.LookPath("openssl")
	if err != nil {
		t.Fatal("openssl is not installed (`make test` installs it)")
	}
	lists := []string{
		"HIGH", "DEFAULT", "ALL", "AES256:CAMELLIA256-SHA", "ECDSA:-AESGCM:AESGCM", "HIGH:+AESGCM",
		"HIGH:@STRENGTH", "CHACHA20:@STRENGTH:AES128", "DEFAULT:!AES256", "ALL:-ECDSA:+ECDSA",
		"aRSA+AES:ECDSA", "EECDH+AESGCM:EDH+AESGCM", "TLSv1+ECDSA", "ECDHE-RSA-AES128-SHA+FIPS",
		"AES128:DEFAULT", "FIPS", "CBC", "ECDHE:!ECDHE:ECDHE", "HIGH+FIPS", "SHA256",
		"DEFAULT:-ECDHE-RSA-AES256-SHA:ECDHE-RSA-AES256-SHA:@STRENGTH",
	}
	words := []string{
		"ALL", "HIGH", "AES", "AES128", "AES256", "AESGCM", "CHACHA20", "ECDHE", "EECDH", "kECDHE",
		"aRSA", "aECDSA", "ECDSA", "RSA", "SHA1", "SHA", "SHA256", "CBC", "TLSv1", "TLSv1.2", "FIPS",
		"CAMELLIA", "DHE", "COMPLEMENTOFDEFAULT", "COMPLEMENTOFALL", "eNULL", "aNULL", "NULL", "MEDIUM",
		"kRSA", "SSLv3", "TLSv1.0", "ADH", "AECDH", "CAMELLIA256-SHA", "DHE-RSA-AES256-GCM-SHA384",
		"ECDHE-RSA-AES128-SHA256", "AES128-GCM-SHA256",
	}
	words = append(words, allInOrder...)
	rng := rand.New(rand.NewPCG(1, uint64(*opensslSeed)))
	for range *opensslLists {
		var elems []string
		for range 1 + rng.IntN(5) {
			if rng.IntN(8) == 0 {
				elems = append(elems, "@STRENGTH")
				continue
			}
			var parts []string
			for range 1 + rng.IntN(2) {
				parts = append(parts, words[rng.IntN(len(words))])
			}
			elems = append(elems, []string{"", "", "", "!", "-", "+"}[rng.IntN(6)]+strings.Join(parts, "+"))
		}
		if rng.IntN(4) == 0 {
			elems = append([]string{"DEFAULT"}, elems...)
		}
		lists = append(lists, strings.Join(elems, []string{":", ",", " ", ";"}[rng.IntN(4)]))
	}
	for _, list := range lists {
		out, err := exec.Command(opensslBin, "ciphers", "--", list).Output()
		var want []string
		if err == nil {
			for _, name := range strings.Split(strings.TrimSpace(string(out)), ":") {
				if byName[name] != nil {
					want = append(want, name)
				}
			}
		}
		suites, _, err := ParseCipherList(list)
		if err != nil && len(want) > 0 {
			t.Errorf("%q: error %v; openssl selects %v", list, err, want)
			continue
		}
		if got := suiteNames(suites); !slices.Equal(got, want) {
			t.Errorf("%q:\n  got     %v\n  openssl %v", list, got, want)
		}
	}
}
