package tlsconf

import (
	"crypto/tls"
	"fmt"
	"slices"
	"strings"
	"unicode/utf8"
)

// The cipher list is interpreted the way OpenSSL 3 interprets
// SSL_CTX_set_cipher_list (see man ciphers), restricted to the TLS 1.2
// suites Go implements and considers secure. Every suite and keyword carries
// the algorithm masks of OpenSSL's tables, and elements are combined and
// applied with OpenSSL's rules, so a list selects the same Go suites, in the
// same order, as OpenSSL would.
//
// Deliberate differences: a name that is not part of OpenSSL's vocabulary is
// an error (OpenSSL silently skips it); an added element that selects no Go
// suite yields a warning; DEFAULT anywhere but first is ignored, as in
// OpenSSL, but with a warning; @SECLEVEL=n is accepted and ignored with a
// warning; an element that OpenSSL would drop must be followed by a
// separator.

// Key exchange bits (OpenSSL's algorithm_mkey).
const (
	kRSA uint32 = 1 << iota
	kDHE
	kECDHE
	kPSK
	kRSAPSK
	kECDHEPSK
	kDHEPSK
	kSRP
	kGOST
	kGOST18

	kAnyPSK = kPSK | kRSAPSK | kECDHEPSK | kDHEPSK
)

// Authentication bits (algorithm_auth).
const (
	aRSA uint32 = 1 << iota
	aDSS
	aNULL
	aECDSA
	aPSK
	aGOST01
	aGOST12
	aSRP
)

// Bulk cipher bits (algorithm_enc).
const (
	eDES uint32 = 1 << iota
	e3DES
	eRC4
	eRC2
	eIDEA
	eNULL
	eAES128
	eAES256
	eCAMELLIA128
	eCAMELLIA256
	eGOST89
	eSEED
	eAES128GCM
	eAES256GCM
	eAES128CCM
	eAES256CCM
	eAES128CCM8
	eAES256CCM8
	eGOST89v12
	eCHACHA20
	eARIA128GCM
	eARIA256GCM
	eMAGMA
	eKUZNYECHIK

	eAESGCM   = eAES128GCM | eAES256GCM
	eAESCCM   = eAES128CCM | eAES256CCM | eAES128CCM8 | eAES256CCM8
	eAES      = eAES128 | eAES256 | eAESGCM | eAESCCM
	eCAMELLIA = eCAMELLIA128 | eCAMELLIA256
	eARIA     = eARIA128GCM | eARIA256GCM
	eCBC      = eDES | e3DES | eRC2 | eIDEA | eAES128 | eAES256 | eCAMELLIA | eSEED
)

// MAC bits (algorithm_mac).
const (
	mMD5 uint32 = 1 << iota
	mSHA1
	mGOST94
	mGOST89MAC
	mSHA256
	mSHA384
	mAEAD
	mGOST12
	mGOST89MAC12
)

// Strength classes (algo_strength).
const (
	sLOW       uint32 = 0x02
	sMEDIUM    uint32 = 0x04
	sHIGH      uint32 = 0x08
	sFIPS      uint32 = 0x10
	strongMask uint32 = 0x1f
	notDefault uint32 = 0x20 // not in DEFAULT
)

// pattern is a selection of cipher suites: a suite matches when its bit is
// in every non-zero mask and, if set, id and minTLS are equal.
type pattern struct {
	id                   uint16
	mkey, auth, enc, mac uint32
	minTLS               uint16
	strength             uint32
}

// combine narrows p by the next part q of an "A+B" element, with OpenSSL's
// rules; false means the element is dropped.
func (p *pattern) combine(q pattern) bool {
	masks := [][2]*uint32{{&p.mkey, &q.mkey}, {&p.auth, &q.auth}, {&p.enc, &q.enc}, {&p.mac, &q.mac}}
	for _, m := range masks {
		dst, src := m[0], *m[1]
		if src == 0 {
			continue
		}
		if *dst == 0 {
			*dst = src
			continue
		}
		*dst &= src
		if *dst == 0 {
			return false
		}
	}
	if s := q.strength & strongMask; s != 0 {
		if p.strength&strongMask != 0 {
			p.strength &= s | ^strongMask
			if p.strength&strongMask == 0 {
				return false
			}
		} else {
			// OpenSSL replaces the whole strength here, dropping the
			// not-default flag of an earlier part.
			p.strength = s
		}
	}
	p.strength |= q.strength & notDefault
	// Only the last part's suite counts; a suite's protocol version is not
	// part of the pattern.
	p.id = q.id
	if q.id == 0 && q.minTLS != 0 {
		if p.minTLS != 0 && p.minTLS != q.minTLS {
			return false
		}
		p.minTLS = q.minTLS
	}
	return true
}

func (p pattern) matches(s *suite) bool {
	return (p.id == 0 || p.id == s.id) &&
		(p.mkey == 0 || p.mkey&s.mkey != 0) &&
		(p.auth == 0 || p.auth&s.auth != 0) &&
		(p.enc == 0 || p.enc&s.enc != 0) &&
		(p.mac == 0 || p.mac&s.mac != 0) &&
		(p.minTLS == 0 || p.minTLS == s.minTLS) &&
		(p.strength&strongMask == 0 || p.strength&strongMask&s.strength != 0) &&
		(p.strength&notDefault == 0 || s.strength&notDefault != 0)
}

// suite is a TLS 1.2 cipher suite implemented by Go, with OpenSSL's name and
// attributes.
type suite struct {
	name string
	pattern
	bits int // symmetric key size, for @STRENGTH
}

const (
	ssl3  = 0x0300
	tls10 = tls.VersionTLS10
	tls12 = tls.VersionTLS12
)

// opensslOrder lists Go's secure TLS 1.2 suites in OpenSSL's built-in
// preference order (the order in which "ALL" adds them).
var opensslOrder = []suite{
	{"ECDHE-ECDSA-AES256-GCM-SHA384", pattern{tls.TLS_ECDHE_ECDSA_WITH_AES_256_GCM_SHA384, kECDHE, aECDSA, eAES256GCM, mAEAD, tls12, sHIGH | sFIPS}, 256},
	{"ECDHE-RSA-AES256-GCM-SHA384", pattern{tls.TLS_ECDHE_RSA_WITH_AES_256_GCM_SHA384, kECDHE, aRSA, eAES256GCM, mAEAD, tls12, sHIGH | sFIPS}, 256},
	{"ECDHE-ECDSA-CHACHA20-POLY1305", pattern{tls.TLS_ECDHE_ECDSA_WITH_CHACHA20_POLY1305_SHA256, kECDHE, aECDSA, eCHACHA20, mAEAD, tls12, sHIGH}, 256},
	{"ECDHE-RSA-CHACHA20-POLY1305", pattern{tls.TLS_ECDHE_RSA_WITH_CHACHA20_POLY1305_SHA256, kECDHE, aRSA, eCHACHA20, mAEAD, tls12, sHIGH}, 256},
	{"ECDHE-ECDSA-AES128-GCM-SHA256", pattern{tls.TLS_ECDHE_ECDSA_WITH_AES_128_GCM_SHA256, kECDHE, aECDSA, eAES128GCM, mAEAD, tls12, sHIGH | sFIPS}, 128},
	{"ECDHE-RSA-AES128-GCM-SHA256", pattern{tls.TLS_ECDHE_RSA_WITH_AES_128_GCM_SHA256, kECDHE, aRSA, eAES128GCM, mAEAD, tls12, sHIGH | sFIPS}, 128},
	{"ECDHE-ECDSA-AES256-SHA", pattern{tls.TLS_ECDHE_ECDSA_WITH_AES_256_CBC_SHA, kECDHE, aECDSA, eAES256, mSHA1, tls10, sHIGH | sFIPS}, 256},
	{"ECDHE-RSA-AES256-SHA", pattern{tls.TLS_ECDHE_RSA_WITH_AES_256_CBC_SHA, kECDHE, aRSA, eAES256, mSHA1, tls10, sHIGH | sFIPS}, 256},
	{"ECDHE-ECDSA-AES128-SHA", pattern{tls.TLS_ECDHE_ECDSA_WITH_AES_128_CBC_SHA, kECDHE, aECDSA, eAES128, mSHA1, tls10, sHIGH | sFIPS}, 128},
	{"ECDHE-RSA-AES128-SHA", pattern{tls.TLS_ECDHE_RSA_WITH_AES_128_CBC_SHA, kECDHE, aRSA, eAES128, mSHA1, tls10, sHIGH | sFIPS}, 128},
}

// insecureSuites are suites Go implements but does not consider secure;
// they are never enabled.
var insecureSuites = []struct {
	id        uint16
	name, why string
}{
	{tls.TLS_RSA_WITH_RC4_128_SHA, "RC4-SHA", "RC4 is broken (RFC 7465)"},
	{tls.TLS_ECDHE_ECDSA_WITH_RC4_128_SHA, "ECDHE-ECDSA-RC4-SHA", "RC4 is broken (RFC 7465)"},
	{tls.TLS_ECDHE_RSA_WITH_RC4_128_SHA, "ECDHE-RSA-RC4-SHA", "RC4 is broken (RFC 7465)"},
	{tls.TLS_RSA_WITH_3DES_EDE_CBC_SHA, "DES-CBC3-SHA", "3DES has a 64-bit block (Sweet32)"},
	{tls.TLS_ECDHE_RSA_WITH_3DES_EDE_CBC_SHA, "ECDHE-RSA-DES-CBC3-SHA", "3DES has a 64-bit block (Sweet32)"},
	{tls.TLS_RSA_WITH_AES_128_CBC_SHA, "AES128-SHA", "RSA key exchange has no forward secrecy"},
	{tls.TLS_RSA_WITH_AES_256_CBC_SHA, "AES256-SHA", "RSA key exchange has no forward secrecy"},
	{tls.TLS_RSA_WITH_AES_128_GCM_SHA256, "AES128-GCM-SHA256", "RSA key exchange has no forward secrecy"},
	{tls.TLS_RSA_WITH_AES_256_GCM_SHA384, "AES256-GCM-SHA384", "RSA key exchange has no forward secrecy"},
	{tls.TLS_RSA_WITH_AES_128_CBC_SHA256, "AES128-SHA256", "RSA key exchange has no forward secrecy, and CBC with HMAC-SHA256 is open to Lucky13 timing attacks"},
	{tls.TLS_ECDHE_ECDSA_WITH_AES_128_CBC_SHA256, "ECDHE-ECDSA-AES128-SHA256", "CBC with HMAC-SHA256 is open to Lucky13 timing attacks"},
	{tls.TLS_ECDHE_RSA_WITH_AES_128_CBC_SHA256, "ECDHE-RSA-AES128-SHA256", "CBC with HMAC-SHA256 is open to Lucky13 timing attacks"},
}

// tls13Suites are the TLS 1.3 suite names OpenSSL knows.
var tls13Suites = []string{
	"TLS_AES_128_GCM_SHA256", "TLS_AES_256_GCM_SHA384", "TLS_CHACHA20_POLY1305_SHA256",
	"TLS_AES_128_CCM_SHA256", "TLS_AES_128_CCM_8_SHA256",
}

// aliases are OpenSSL 3's cipher-list keywords with their masks.
var aliases = map[string]pattern{
	"ALL":                 {enc: ^eNULL},
	"COMPLEMENTOFALL":     {enc: eNULL},
	"COMPLEMENTOFDEFAULT": {strength: notDefault},

	"kRSA": {mkey: kRSA}, "kEDH": {mkey: kDHE}, "kDHE": {mkey: kDHE}, "DH": {mkey: kDHE},
	"kEECDH": {mkey: kECDHE}, "kECDHE": {mkey: kECDHE}, "ECDH": {mkey: kECDHE},
	"kPSK": {mkey: kPSK}, "kRSAPSK": {mkey: kRSAPSK}, "kECDHEPSK": {mkey: kECDHEPSK},
	"kDHEPSK": {mkey: kDHEPSK}, "kSRP": {mkey: kSRP}, "kGOST": {mkey: kGOST}, "kGOST18": {mkey: kGOST18},

	"aRSA": {auth: aRSA}, "aDSS": {auth: aDSS}, "DSS": {auth: aDSS}, "aNULL": {auth: aNULL},
	"aECDSA": {auth: aECDSA}, "ECDSA": {auth: aECDSA}, "aPSK": {auth: aPSK},
	"aGOST01": {auth: aGOST01}, "aGOST12": {auth: aGOST12}, "aGOST": {auth: aGOST01 | aGOST12}, "aSRP": {auth: aSRP},

	"EDH": {mkey: kDHE, auth: ^aNULL}, "DHE": {mkey: kDHE, auth: ^aNULL},
	"EECDH": {mkey: kECDHE, auth: ^aNULL}, "ECDHE": {mkey: kECDHE, auth: ^aNULL},
	"NULL": {enc: eNULL}, "RSA": {mkey: kRSA, auth: aRSA},
	"ADH": {mkey: kDHE, auth: aNULL}, "AECDH": {mkey: kECDHE, auth: aNULL},
	"PSK": {mkey: kAnyPSK}, "SRP": {mkey: kSRP},

	"3DES": {enc: e3DES}, "RC4": {enc: eRC4}, "RC2": {enc: eRC2}, "IDEA": {enc: eIDEA},
	"SEED": {enc: eSEED}, "eNULL": {enc: eNULL},
	"GOST89":      {enc: eGOST89 | eGOST89v12 | eMAGMA | eKUZNYECHIK},
	"AES128":      {enc: eAES128 | eAES128GCM | eAES128CCM | eAES128CCM8},
	"AES256":      {enc: eAES256 | eAES256GCM | eAES256CCM | eAES256CCM8},
	"AES":         {enc: eAES},
	"AESGCM":      {enc: eAESGCM},
	"AESCCM":      {enc: eAESCCM},
	"AESCCM8":     {enc: eAES128CCM8 | eAES256CCM8},
	"CAMELLIA128": {enc: eCAMELLIA128}, "CAMELLIA256": {enc: eCAMELLIA256}, "CAMELLIA": {enc: eCAMELLIA},
	"CHACHA20":                   {enc: eCHACHA20},
	"GOST2012-GOST8912-GOST8912": {enc: eGOST89v12},
	"ARIA":                       {enc: eARIA}, "ARIAGCM": {enc: eARIA},
	"ARIA128": {enc: eARIA128GCM}, "ARIA256": {enc: eARIA256GCM},
	"CBC": {enc: eCBC},

	"MD5": {mac: mMD5}, "SHA1": {mac: mSHA1}, "SHA": {mac: mSHA1}, "GOST94": {mac: mGOST94},
	"GOST89MAC": {mac: mGOST89MAC | mGOST89MAC12}, "SHA256": {mac: mSHA256}, "SHA384": {mac: mSHA384},
	"GOST12": {mac: mGOST12},

	"SSLv3": {minTLS: ssl3}, "TLSv1": {minTLS: tls10}, "TLSv1.0": {minTLS: tls10}, "TLSv1.2": {minTLS: tls12},

	"LOW": {strength: sLOW}, "MEDIUM": {strength: sMEDIUM}, "HIGH": {strength: sHIGH},
	"FIPS": {enc: ^eNULL, strength: sFIPS},

	"EDH-DSS-DES-CBC3-SHA": {mkey: kDHE, auth: aDSS, enc: e3DES, mac: mSHA1, strength: sHIGH | sFIPS},
	"EDH-RSA-DES-CBC3-SHA": {mkey: kDHE, auth: aRSA, enc: e3DES, mac: mSHA1, strength: sHIGH | sFIPS},
}

// defaultList is OpenSSL's DEFAULT.
const defaultList = "ALL:!COMPLEMENTOFDEFAULT:!eNULL"

// otherKeywords are keywords of OpenSSL (current or earlier releases) that
// select nothing Go implements.
var otherKeywords = []string{
	"DES", "EXP", "EXPORT", "EXPORT40", "EXPORT56", "SSLv2", "KRB5", "kKRB5", "aKRB5",
	"kDH", "kDHr", "kDHd", "aDH", "kECDH", "kECDHr", "kECDHe", "aECDH", "FZA", "kFZA", "aFZA", "eFZA",
	"SUITEB128", "SUITEB128ONLY", "SUITEB128C2", "SUITEB192",
}

// nameTokens are the words OpenSSL's cipher names are built from.
var nameTokens = tokenSet(`ECDHE ECDH DHE EDH DH ADH AECDH RSA DSS ECDSA PSK SRP KRB5 FZA
	EXP EXP1024 IANA LEGACY AES AES128 AES256 128 256 40 56 64 GCM CCM CCM8 CBC CBC3 EDE DES 3DES
	RC4 RC2 IDEA SEED CAMELLIA CAMELLIA128 CAMELLIA256 ARIA ARIA128 ARIA256 CHACHA20 POLY1305
	NULL SHA SHA1 SHA256 SHA384 MD5 GOST GOST94 GOST89 GOST2001 GOST2012 GOST8912 GOST89MAC
	MAGMA MAGMAOMAC KUZNYECHIK KUZNYECHIKOMAC CFB M1`)

func tokenSet(s string) map[string]bool {
	m := map[string]bool{}
	for _, t := range strings.Fields(s) {
		m[t] = true
	}
	return m
}

// Tables derived from crypto/tls at start-up.
var (
	available  []suite           // opensslOrder minus suites Go no longer considers secure
	byName     map[string]*suite // OpenSSL name -> available suite
	notSecure  map[string]string // OpenSSL name -> why Go does not enable it
	ianaToName map[string]string // Go (IANA) name -> OpenSSL name
	foldNames  map[string]string // lower-case -> canonical spelling of every known name
	secureIDs  map[uint16]bool   // Go's secure suites usable with TLS 1.2
	tls13Names map[string]bool
)

func init() {
	secureIDs = map[uint16]bool{}
	for _, cs := range tls.CipherSuites() {
		if slices.Contains(cs.SupportedVersions, tls.VersionTLS12) {
			secureIDs[cs.ID] = true
		}
	}
	notSecure = map[string]string{}
	opensslNames := map[uint16]string{}
	for _, s := range insecureSuites {
		notSecure[s.name] = s.why
		opensslNames[s.id] = s.name
	}
	byName = map[string]*suite{}
	for _, s := range opensslOrder {
		if !secureIDs[s.id] {
			notSecure[s.name] = "Go no longer considers it secure"
			continue
		}
		available = append(available, s)
	}
	for _, s := range opensslOrder {
		opensslNames[s.id] = s.name
	}
	for i := range available {
		byName[available[i].name] = &available[i]
	}
	ianaToName = map[string]string{}
	for _, cs := range append(tls.CipherSuites(), tls.InsecureCipherSuites()...) {
		if n, ok := opensslNames[cs.ID]; ok {
			ianaToName[cs.Name] = n
		}
	}
	tls13Names = map[string]bool{}
	for _, n := range tls13Suites {
		tls13Names[n] = true
	}
	foldNames = map[string]string{}
	for _, set := range [][]string{
		keysOf(byName), keysOf(aliases), keysOf(notSecure), tls13Suites, otherKeywords, {"DEFAULT"},
	} {
		for _, n := range set {
			foldNames[strings.ToLower(n)] = n
		}
	}
}

func keysOf[V any](m map[string]V) []string {
	keys := make([]string, 0, len(m))
	for k := range m {
		keys = append(keys, k)
	}
	return keys
}

// SupportedCipherNames returns the OpenSSL names of the TLS 1.2 suites a
// cipher list can select, in OpenSSL's default order.
func SupportedCipherNames() []string {
	names := make([]string, len(available))
	for i, s := range available {
		names[i] = s.name
	}
	return names
}

// ParseCipherList parses an OpenSSL cipher list (see man ciphers) and
// returns the TLS 1.2 suites it selects, in OpenSSL's order, with warnings
// for elements that select nothing Go implements. An empty list returns nil
// suites, meaning Go's defaults.
//
// Elements are separated by colons, commas, semicolons or spaces. An element
// is a suite name (ECDHE-RSA-AES256-GCM-SHA384) or keyword (HIGH, AES256,
// ECDHE, aECDSA, CHACHA20, ...), or several joined with '+' to select their
// intersection (ECDHE+AESGCM). A leading '!' removes suites for good, '-'
// removes them (they may be added again later), '+' moves them to the end,
// and @STRENGTH sorts by key size. DEFAULT is recognised as the first
// element, as in OpenSSL.
//
// Names OpenSSL knows but Go does not implement (CAMELLIA256-SHA, DHE-...,
// ARIA, PSK, ...) select nothing and produce a warning when added; names
// that are not OpenSSL names at all are an error, as is a list that selects
// no suite. Go ignores the order of tls.Config.CipherSuites and applies its
// own preference, so the order only documents what OpenSSL would prefer.
func ParseCipherList(s string) (suites []uint16, warnings []string, err error) {
	s = strings.TrimSpace(s)
	if s == "" {
		return nil, nil, nil
	}
	p := &cipherParser{}
	for i := range available {
		p.list = append(p.list, entry{suite: &available[i]})
	}
	rest := s
	if tail, ok := cutDefault(s); ok {
		if err := p.parse(defaultList, false); err != nil {
			return nil, nil, err // cannot happen: the default list is valid
		}
		rest = tail
	}
	if err := p.parse(rest, true); err != nil {
		return nil, nil, err
	}
	for _, e := range p.list {
		if e.active {
			suites = append(suites, e.suite.id)
		}
	}
	if len(suites) == 0 {
		return nil, nil, fmt.Errorf("cipher list %q selects no TLS 1.2 cipher suite that Go supports; include at least one of %s, or leave it empty for Go's defaults",
			s, strings.Join(SupportedCipherNames(), ", "))
	}
	return suites, p.warnings, nil
}

// cutDefault reports whether s starts with the element DEFAULT and returns
// the rest of the list.
func cutDefault(s string) (rest string, ok bool) {
	rest, found := strings.CutPrefix(s, "DEFAULT")
	if !found || (rest != "" && !isSep(rest[0])) {
		return s, false
	}
	return rest, true
}

type entry struct {
	suite  *suite
	active bool
}

type cipherParser struct {
	list     []entry // every suite not yet killed, in OpenSSL's list order
	warnings []string
}

type rule int

const (
	ruleAdd  rule = iota // NAME
	ruleDel              // -NAME
	ruleOrd              // +NAME
	ruleKill             // !NAME
)

func isSep(c byte) bool { return c == ':' || c == ',' || c == ';' || c == ' ' }

func isNameChar(c byte) bool {
	return 'A' <= c && c <= 'Z' || 'a' <= c && c <= 'z' || '0' <= c && c <= '9' ||
		c == '-' || c == '_' || c == '.' || c == '='
}

func (p *cipherParser) parse(s string, user bool) error {
	i := 0
	for i < len(s) {
		c := s[i]
		if isSep(c) {
			i++
			continue
		}
		start := i
		r := ruleAdd
		switch c {
		case '-':
			r = ruleDel
			i++
		case '+':
			r = ruleOrd
			i++
		case '!':
			r = ruleKill
			i++
		case '@':
			var err error
			if i, err = p.command(s, i+1); err != nil {
				return err
			}
			continue
		}

		sel := pattern{}
		ok, isDefault := true, false
		var reasons []string
		for {
			j := i
			for j < len(s) && isNameChar(s[j]) {
				j++
			}
			if j == i {
				return badChar(s, i)
			}
			name := s[i:j]
			i = j
			multi := i < len(s) && s[i] == '+'
			if multi {
				i++
			}
			if name == "DEFAULT" {
				// A leading DEFAULT was consumed by ParseCipherList.
				if user {
					p.warnings = append(p.warnings, "cipher list: DEFAULT has an effect only as the first element of the list (as in OpenSSL); ignored here")
				}
				ok, isDefault = false, true
			} else {
				pat, found, reason, err := lookupName(name)
				if err != nil {
					return err
				}
				switch {
				case !found:
					ok = false
					reasons = append(reasons, reason)
				case ok:
					ok = sel.combine(pat)
				}
			}
			if !multi {
				break
			}
		}
		elem := s[start:i]
		if !ok && i < len(s) && !isSep(s[i]) {
			// OpenSSL skips the rest of a dropped element up to the next
			// separator; insist on one rather than guess.
			return fmt.Errorf("cipher list %q: unexpected %q after %q; separate elements with ':'", s, s[i:i+1], elem)
		}
		if r == ruleAdd && user && len(reasons) > 0 {
			p.warnings = append(p.warnings, fmt.Sprintf("cipher list element %q selects nothing: %s", elem, strings.Join(reasons, "; ")))
		} else if r == ruleAdd && user && !isDefault && (!ok || !p.matchesAny(sel)) {
			p.warnings = append(p.warnings, fmt.Sprintf("cipher list element %q matches no TLS 1.2 cipher suite Go implements; it selects nothing", elem))
		}
		if ok {
			p.apply(r, sel)
		}
	}
	return nil
}

// command handles "@STRENGTH" and "@SECLEVEL=n" starting after the '@' at
// s[i]; it returns the index after the command.
func (p *cipherParser) command(s string, i int) (int, error) {
	j := i
	for j < len(s) && isNameChar(s[j]) {
		j++
	}
	if j == i {
		return 0, badChar(s, i)
	}
	cmd := s[i:j]
	if j < len(s) && !isSep(s[j]) {
		return 0, fmt.Errorf("cipher list: unexpected %q after @%s; a command stands alone between separators", s[j:], cmd)
	}
	switch {
	case cmd == "STRENGTH":
		p.sortByStrength()
	case strings.HasPrefix(cmd, "SECLEVEL="):
		level := cmd[len("SECLEVEL="):]
		if len(level) != 1 || level[0] < '0' || level[0] > '5' {
			return 0, fmt.Errorf("cipher list: invalid @%s; the security level is a digit from 0 to 5", cmd)
		}
		p.warnings = append(p.warnings, fmt.Sprintf("cipher list: @%s is ignored: Go does not implement OpenSSL security levels (every suite Go enables is considered secure)", cmd))
	default:
		return 0, fmt.Errorf("cipher list: unknown command @%s; the commands are @STRENGTH and @SECLEVEL=n", cmd)
	}
	return j, nil
}

func badChar(s string, i int) error {
	if i >= len(s) {
		return fmt.Errorf("cipher list %q ends in %q; a cipher name or keyword must follow", s, s[len(s)-1:])
	}
	r, _ := utf8.DecodeRuneInString(s[i:])
	return fmt.Errorf("cipher list %q: unexpected %q at offset %d; separate elements with ':', ',' or spaces and prefix them only with '!', '-', '+' or '@'", s, r, i)
}

// lookupName resolves one cipher name or keyword. found is false for OpenSSL
// names that select nothing in Go, with reason saying why.
func lookupName(name string) (pat pattern, found bool, reason string, err error) {
	if s, ok := byName[name]; ok {
		return s.pattern, true, "", nil
	}
	if a, ok := aliases[name]; ok {
		return a, true, "", nil
	}
	if why, ok := notSecure[name]; ok {
		return pattern{}, false, fmt.Sprintf("%s is not enabled because Go considers it insecure (%s)", name, why), nil
	}
	if tls13Names[name] {
		return pattern{}, false, fmt.Sprintf("%s is a TLS 1.3 suite; TLS 1.3 suites are fixed by Go and always enabled with TLS 1.3", name), nil
	}
	if slices.Contains(otherKeywords, name) || isCipherName(name) {
		return pattern{}, false, fmt.Sprintf("%s is not implemented by Go", name), nil
	}
	return pattern{}, false, "", unknownName(name)
}

// isCipherName reports whether name is built only from the words of
// OpenSSL's cipher names, like CAMELLIA256-SHA or DHE-RSA-AES256-GCM-SHA384.
func isCipherName(name string) bool {
	words := strings.Split(name, "-")
	if len(words) < 2 {
		return false
	}
	for _, w := range words {
		if !nameTokens[w] {
			return false
		}
	}
	return true
}

func unknownName(name string) error {
	if canon, ok := foldNames[strings.ToLower(name)]; ok {
		return fmt.Errorf("cipher list: unknown cipher or keyword %q; names are case-sensitive, did you mean %q?", name, canon)
	}
	if isCipherName(strings.ToUpper(name)) {
		return fmt.Errorf("cipher list: unknown cipher or keyword %q; names are case-sensitive, did you mean %q?", name, strings.ToUpper(name))
	}
	if n, ok := ianaToName[name]; ok {
		return fmt.Errorf("cipher list: %q is an IANA suite name; the cipher list uses OpenSSL names, use %q", name, n)
	}
	if strings.HasPrefix(name, "TLS_") {
		return fmt.Errorf("cipher list: %q is not an OpenSSL cipher name; the cipher list uses OpenSSL names such as %q (see man ciphers)", name, available[0].name)
	}
	return fmt.Errorf("cipher list: unknown cipher or keyword %q; use OpenSSL cipher names such as %q or keywords such as HIGH, ECDHE, AESGCM (see man ciphers)", name, available[0].name)
}

// matchesAny reports whether sel matches any suite Go implements, whether or
// not it is still in the list.
func (p *cipherParser) matchesAny(sel pattern) bool {
	for i := range available {
		if sel.matches(&available[i]) {
			return true
		}
	}
	return false
}

// apply runs one rule over the list with OpenSSL's semantics.
func (p *cipherParser) apply(r rule, sel pattern) {
	var moved, kept []entry
	for _, e := range p.list {
		m := sel.matches(e.suite)
		switch {
		case r == ruleAdd && m && !e.active:
			e.active = true
			moved = append(moved, e)
		case r == ruleOrd && m && e.active:
			moved = append(moved, e)
		case r == ruleDel && m && e.active:
			e.active = false
			moved = append(moved, e)
		case r == ruleKill && m:
			// dropped for good
		default:
			kept = append(kept, e)
		}
	}
	if r == ruleDel {
		// Deleted suites move to the front, keeping their order, so that
		// they are the first to come back on a later add.
		p.list = append(moved, kept...)
	} else {
		p.list = append(kept, moved...)
	}
}

// sortByStrength moves the active suites to the end, strongest first, in a
// stable way, as @STRENGTH does.
func (p *cipherParser) sortByStrength() {
	var bits []int
	for _, e := range p.list {
		if e.active && !slices.Contains(bits, e.suite.bits) {
			bits = append(bits, e.suite.bits)
		}
	}
	slices.Sort(bits)
	slices.Reverse(bits)
	for _, b := range bits {
		var moved, kept []entry
		for _, e := range p.list {
			if e.active && e.suite.bits == b {
				moved = append(moved, e)
			} else {
				kept = append(kept, e)
			}
		}
		p.list = append(kept, moved...)
	}
}
