// Package config reads, checks and writes keytrustee.conf, the JSON
// configuration file in the Key Trustee Server's state directory.
//
// Keys missing from the file take their defaults; unknown keys are an error,
// so that a misspelt setting cannot silently leave a weaker default in
// place. Relative paths in the file are relative to the state directory.
package config

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net"
	"net/mail"
	"net/url"
	"os"
	"path/filepath"
	"reflect"
	"slices"
	"strconv"
	"strings"

	"trustee.dev/trustee/server/tlsconf"
)

// FileName is the name of the configuration file in the state directory.
const FileName = "keytrustee.conf"

// Defaults.
const (
	DefaultListenAddress   = ":11371"
	DefaultSSLCertificate  = ".ssl/ssl-cert-keytrustee.pem"
	DefaultSSLPrivateKey   = ".ssl/ssl-cert-keytrustee-pk.pem"
	DefaultTLSMinVersion   = "tlsv1.2"
	DefaultDBHost          = "127.0.0.1"
	DefaultDBPort          = 11381
	DefaultDBName          = "keytrustee"
	DefaultDBUser          = "keytrustee"
	DefaultDBPasswordFile  = "db.password"
	DefaultMaxDepositBytes = 1 << 20
	DefaultServerKey       = "server-key.asc"
	DefaultKeyring         = "deposit-keyring.json"
	DefaultSessionKey      = "session.key"
	DefaultDBDataDir       = "db"
	DefaultRole            = RoleActive
	DefaultReplPassword    = "replication.password"
	DefaultStandbyName     = ""
)

// MaxDepositBytesLimit is the largest MAX_DEPOSIT_BYTES accepted. Deposits
// are key material; a larger limit only helps exhaust the server's memory.
const MaxDepositBytesLimit = 64 << 20

// maxFileSize bounds how much of keytrustee.conf is read.
const maxFileSize = 1 << 20

// Config is the content of keytrustee.conf.
type Config struct {
	Hostname                    string `json:"HOSTNAME"`
	ListenAddress               string `json:"LISTEN_ADDRESS"`                  // default ":11371"
	SSLCertificate              string `json:"SSL_CERTIFICATE"`                 // default ".ssl/ssl-cert-keytrustee.pem"
	SSLPrivateKey               string `json:"SSL_PRIVATE_KEY"`                 // default ".ssl/ssl-cert-keytrustee-pk.pem"
	SSLPrivateKeyPasswordScript string `json:"SSL_PRIVATE_KEY_PASSWORD_SCRIPT"` // "" = key not encrypted
	SSLCertificateChain         string `json:"SSL_CERTIFICATE_CHAIN"`           // optional intermediate/CA chain file, "" = none
	TLSMinVersion               string `json:"TLS_MIN_VERSION"`                 // "tlsv1.2" (default) or "tlsv1.3"
	SSLCipherList               string `json:"SSL_CIPHER_LIST"`                 // OpenSSL syntax, "" = Go defaults
	DBHost                      string `json:"DB_HOST"`                         // default "127.0.0.1"
	DBPort                      int    `json:"DB_PORT"`                         // default 11381
	DBName                      string `json:"DB_NAME"`                         // default "keytrustee"
	DBUser                      string `json:"DB_USER"`                         // default "keytrustee"
	DBPasswordFile              string `json:"DB_PASSWORD_FILE"`                // default "db.password"
	MaxDepositBytes             int64  `json:"MAX_DEPOSIT_BYTES"`               // default 1 MiB
	ServerKey                   string `json:"SERVER_KEY"`                      // armored OpenPGP private key, default "server-key.asc"
	Keyring                     string `json:"KEYRING"`                         // file keyring path, default "deposit-keyring.json"
	SessionKey                  string `json:"SESSION_KEY"`                     // default "session.key"
	DBDataDir                   string `json:"DB_DATA_DIR"`                     // default "db"
	Role                        string `json:"ROLE"`                            // "active" (default) or "passive"
	ActiveURL                   string `json:"ACTIVE_URL"`                      // passive: the active's API, where writes are forwarded
	ActiveCA                    string `json:"ACTIVE_CA"`                       // passive: certificate (or CA) that verifies the active's TLS
	ActiveDB                    string `json:"ACTIVE_DB"`                       // passive: the active's PostgreSQL as HOST:PORT, for replication
	ReplicationPasswordFile     string `json:"REPLICATION_PASSWORD_FILE"`       // default "replication.password"
	StandbyName                 string `json:"STANDBY_NAME"`                    // the passive's replication name; "" = a single server, no synchronous standby
	HSMModule                   string `json:"HSM_MODULE"`                      // PKCS#11 library of the HSM; "" = no HSM
	HSMTokenLabel               string `json:"HSM_TOKEN_LABEL"`                 // the HSM token holding Trustee's keys
	HSMPINFile                  string `json:"HSM_PIN_FILE"`                    // the token's user PIN: a file,
	HSMPINEnv                   string `json:"HSM_PIN_ENV"`                     // or an environment variable,
	HSMPINScript                string `json:"HSM_PIN_SCRIPT"`                  // or a command (no shell) that prints it — exactly one
	HSMStateKey                 string `json:"HSM_STATE_KEY"`                   // label of the token key that seals the state directory's secrets
	HSMSealState                bool   `json:"HSM_SEAL_STATE"`                  // true: the HSM seals the secrets; false: they stay as they are (Kubernetes Secrets), the HSM holds deposit keys only
	HSMDataKeyCacheSeconds      int    `json:"HSM_DATA_KEY_CACHE_SECONDS"`      // how long data keys unwrapped by the HSM stay in memory; 0 = call the HSM every time
	ExternalURL                 string `json:"EXTERNAL_URL"`                    // base of links in mail; "" = https://HOSTNAME:11371
	SMTPHost                    string `json:"SMTP_HOST"`                       // the MTA; "" = mail is queued but not sent
	SMTPPort                    int    `json:"SMTP_PORT"`                       // default 25
	SMTPTLS                     string `json:"SMTP_TLS"`                        // "starttls" (default), "tls" (implicit) or "none" (an MTA on this host)
	SMTPCAFile                  string `json:"SMTP_CA_FILE"`                    // CA that verifies the MTA; "" = the system's
	SMTPFrom                    string `json:"SMTP_FROM"`                       // sender address; "" = keytrustee@HOSTNAME
	SMTPUser                    string `json:"SMTP_USER"`                       // "" = no SMTP AUTH
	SMTPPasswordFile            string `json:"SMTP_PASSWORD_FILE"`              // the SMTP password: a file,
	SMTPPasswordScript          string `json:"SMTP_PASSWORD_SCRIPT"`            // or a command (no shell) that prints it

	// Where PostgreSQL listens and what it admits, beyond the defaults of a
	// single host: a pair on separate hosts, or a pod in Kubernetes.
	ReplicationFrom   []string          `json:"REPLICATION_FROM"`    // active: networks (CIDR) the passive replicates from; default loopback
	DBClientsFrom     []string          `json:"DB_CLIENTS_FROM"`     // networks (CIDR) DB_USER connects from over TCP; default loopback
	DBListenAddresses string            `json:"DB_LISTEN_ADDRESSES"` // PostgreSQL's listen_addresses; "" = DB_HOST
	DBSocketDir       string            `json:"DB_SOCKET_DIR"`       // directory of PostgreSQL's Unix socket and its lock file; "" = the data directory
	DBParameters      map[string]string `json:"DB_PARAMETERS"`       // more postgresql.conf settings, name → value; never those Trustee sets
	DBTLS             bool              `json:"DB_TLS"`              // TLS with SSL_CERTIFICATE for PostgreSQL connections beyond loopback
	DBCAFile          string            `json:"DB_CA_FILE"`          // CA that verifies PostgreSQL at a DB_HOST beyond loopback; "" = ACTIVE_CA

	// The admin API (mutual TLS) that the Kubernetes operator uses.
	AdminListenAddress string `json:"ADMIN_LISTEN_ADDRESS"` // its listener; "" = no admin API
	AdminCAFile        string `json:"ADMIN_CA_FILE"`        // PEM CA certificates that sign admin client certificates
}

// Mail defaults.
const (
	DefaultSMTPPort = 25
	DefaultSMTPTLS  = "starttls"
)

// MailFrom is the sender address of the server's mail.
func (c Config) MailFrom() string {
	if c.SMTPFrom != "" {
		return c.SMTPFrom
	}
	return "keytrustee@" + c.Hostname
}

// LinkBase is the base URL of links in the server's mail.
func (c Config) LinkBase() string {
	if c.ExternalURL != "" {
		return strings.TrimRight(c.ExternalURL, "/")
	}
	return "https://" + net.JoinHostPort(c.Hostname, "11371")
}

// DefaultHSMDataKeyCacheSeconds is how long a data key unwrapped by the HSM
// is kept in memory by default (see docs/SECURITY.md).
const DefaultHSMDataKeyCacheSeconds = 60

// DefaultHSMStateKey is the label of the token key sealing state files.
const DefaultHSMStateKey = "kts-state"

// HasHSM reports whether an HSM holds the server's keys.
func (c Config) HasHSM() bool { return c.HSMModule != "" }

// Server roles in the pair.
const (
	RoleActive  = "active"
	RolePassive = "passive"
)

// Default returns the default configuration for a server called hostname;
// an empty hostname means the system's host name.
func Default(hostname string) Config {
	if hostname == "" {
		hostname, _ = os.Hostname()
	}
	return Config{
		Hostname:                hostname,
		ListenAddress:           DefaultListenAddress,
		SSLCertificate:          DefaultSSLCertificate,
		SSLPrivateKey:           DefaultSSLPrivateKey,
		TLSMinVersion:           DefaultTLSMinVersion,
		DBHost:                  DefaultDBHost,
		DBPort:                  DefaultDBPort,
		DBName:                  DefaultDBName,
		DBUser:                  DefaultDBUser,
		DBPasswordFile:          DefaultDBPasswordFile,
		MaxDepositBytes:         DefaultMaxDepositBytes,
		ServerKey:               DefaultServerKey,
		Keyring:                 DefaultKeyring,
		SessionKey:              DefaultSessionKey,
		DBDataDir:               DefaultDBDataDir,
		HSMStateKey:             DefaultHSMStateKey,
		HSMSealState:            true,
		HSMDataKeyCacheSeconds:  DefaultHSMDataKeyCacheSeconds,
		SMTPPort:                DefaultSMTPPort,
		SMTPTLS:                 DefaultSMTPTLS,
		Role:                    DefaultRole,
		ReplicationPasswordFile: DefaultReplPassword,
		StandbyName:             DefaultStandbyName,
		ReplicationFrom:         DefaultReplicationFrom(),
		DBClientsFrom:           DefaultDBClientsFrom(),
		DBParameters:            map[string]string{},
	}
}

// Load reads confdir/keytrustee.conf, fills in defaults for missing keys and
// validates the result. A missing file yields an error matching
// fs.ErrNotExist.
func Load(confdir string) (Config, error) {
	path := filepath.Join(confdir, FileName)
	f, err := os.Open(path)
	if err != nil {
		return Config{}, err
	}
	defer f.Close()
	fi, err := f.Stat()
	if err != nil {
		return Config{}, err
	}
	if fi.Mode().Perm()&0o002 != 0 {
		return Config{}, fmt.Errorf("%s is writable by every user, who could change how the server runs; run: chmod 600 %s", path, path)
	}
	data, err := io.ReadAll(io.LimitReader(f, maxFileSize+1))
	if err != nil {
		return Config{}, err
	}
	if len(data) > maxFileSize {
		return Config{}, fmt.Errorf("%s is larger than %d bytes; it must be a small JSON object", path, maxFileSize)
	}
	c, err := Parse(data)
	if err != nil {
		return Config{}, fmt.Errorf("%s: %w", path, err)
	}
	return c, nil
}

// fieldIndex maps JSON keys to Config field indexes.
var fieldIndex = func() map[string]int {
	m := map[string]int{}
	t := reflect.TypeFor[Config]()
	for i := range t.NumField() {
		m[t.Field(i).Tag.Get("json")] = i
	}
	return m
}()

// Keys returns the keys keytrustee.conf may contain.
func Keys() []string {
	keys := make([]string, 0, len(fieldIndex))
	for k := range fieldIndex {
		keys = append(keys, k)
	}
	slices.Sort(keys)
	return keys
}

// Parse parses the content of keytrustee.conf: a JSON object whose keys are
// those of Config. Missing keys take the defaults of Default(""); unknown or
// repeated keys are errors. The result is validated.
func Parse(data []byte) (Config, error) {
	c := Default("")
	dec := json.NewDecoder(bytes.NewReader(data))
	dec.UseNumber()
	tok, err := dec.Token()
	if err == io.EOF {
		return Config{}, errors.New("the file is empty; it must hold a JSON object such as {\"HOSTNAME\": \"kts.example.com\"}")
	}
	if err != nil {
		return Config{}, syntaxError(data, err)
	}
	if tok != json.Delim('{') {
		return Config{}, errors.New("the file must hold a JSON object ({ \"KEY\": value, ... })")
	}
	v := reflect.ValueOf(&c).Elem()
	seen := map[string]bool{}
	for dec.More() {
		tok, err := dec.Token()
		if err != nil {
			return Config{}, syntaxError(data, err)
		}
		key := tok.(string) // object keys are always strings
		var raw json.RawMessage
		if err := dec.Decode(&raw); err != nil {
			return Config{}, syntaxError(data, err)
		}
		i, ok := fieldIndex[key]
		if !ok {
			return Config{}, unknownKey(key)
		}
		if seen[key] {
			return Config{}, fmt.Errorf("%s is set more than once; keep only one", key)
		}
		seen[key] = true
		if err := json.Unmarshal(raw, v.Field(i).Addr().Interface()); err != nil {
			return Config{}, fmt.Errorf("%s: must be %s, not %s", key, kindName(v.Field(i).Kind()), describeJSON(raw))
		}
	}
	if _, err := dec.Token(); err != nil { // the closing brace
		return Config{}, syntaxError(data, err)
	}
	if _, err := dec.Token(); err != io.EOF {
		return Config{}, errors.New("unexpected content after the JSON object; the file must hold a single object")
	}
	if err := c.Validate(); err != nil {
		return Config{}, err
	}
	return c, nil
}

func kindName(k reflect.Kind) string {
	switch k {
	case reflect.String:
		return "a string"
	case reflect.Slice:
		return "a list of strings"
	case reflect.Map:
		return "an object whose values are strings"
	case reflect.Bool:
		return "true or false"
	}
	return "an integer"
}

// describeJSON names the type of a JSON value without quoting strings, which
// may be secrets.
func describeJSON(raw json.RawMessage) string {
	switch raw[0] {
	case '"':
		return "a string"
	case '{':
		return "an object"
	case '[':
		return "an array"
	case 't', 'f':
		return "a boolean"
	default:
		if len(raw) > 32 {
			return "a number of " + strconv.Itoa(len(raw)) + " characters"
		}
		return string(raw)
	}
}

func syntaxError(data []byte, err error) error {
	var se *json.SyntaxError
	if errors.As(err, &se) {
		off := min(int(se.Offset), len(data))
		line := 1 + bytes.Count(data[:off], []byte("\n"))
		return fmt.Errorf("invalid JSON on line %d: %v", line, se)
	}
	if err == io.ErrUnexpectedEOF || err == io.EOF {
		return errors.New("invalid JSON: the file ends before the object is closed")
	}
	return fmt.Errorf("invalid JSON: %v", err)
}

func unknownKey(key string) error {
	keys := strings.Join(Keys(), ", ")
	if k := similarKey(key); k != "" {
		return fmt.Errorf("unknown key %q; did you mean %q? (keys are: %s)", key, k, keys)
	}
	return fmt.Errorf("unknown key %q; remove it or correct its name (keys are: %s)", key, keys)
}

// similarKey returns the known key that key is probably a misspelling of,
// or "".
func similarKey(key string) string {
	upper := strings.ToUpper(key)
	best, bestDist := "", 3
	for _, k := range Keys() {
		if d := editDistance(upper, k); d < bestDist {
			best, bestDist = k, d
		}
	}
	if best != "" {
		return best
	}
	// A key cut short or with a different ending, like SSL_CIPHERS.
	for _, k := range Keys() {
		n := commonPrefix(upper, k)
		if n >= 7 && n >= len(upper)-2 {
			return k
		}
	}
	return ""
}

func commonPrefix(a, b string) int {
	n := 0
	for n < len(a) && n < len(b) && a[n] == b[n] {
		n++
	}
	return n
}

// editDistance is the Levenshtein distance between a and b.
func editDistance(a, b string) int {
	if len(a) > 64 || len(b) > 64 {
		return 64
	}
	prev := make([]int, len(b)+1)
	cur := make([]int, len(b)+1)
	for j := range prev {
		prev[j] = j
	}
	for i := 1; i <= len(a); i++ {
		cur[0] = i
		for j := 1; j <= len(b); j++ {
			cost := 1
			if a[i-1] == b[j-1] {
				cost = 0
			}
			cur[j] = min(prev[j]+1, cur[j-1]+1, prev[j-1]+cost)
		}
		prev, cur = cur, prev
	}
	return prev[len(b)]
}

// Validate reports every problem of c, each naming its key and saying what
// to do. It does not look at the file system.
func (c Config) Validate() error {
	var errs []error
	add := func(key, format string, args ...any) {
		errs = append(errs, fmt.Errorf("%s: %s", key, fmt.Sprintf(format, args...)))
	}

	if msg := checkHostname(c.Hostname); msg != "" {
		add("HOSTNAME", "%s; set it to the server's fully qualified domain name, e.g. \"kts01.example.com\"", msg)
	}
	if msg := checkListenAddress(c.ListenAddress); msg != "" {
		add("LISTEN_ADDRESS", "%s; use HOST:PORT or :PORT, e.g. %q", msg, DefaultListenAddress)
	}
	required := []struct{ key, value string }{
		{"SSL_CERTIFICATE", c.SSLCertificate},
		{"SSL_PRIVATE_KEY", c.SSLPrivateKey},
		{"DB_PASSWORD_FILE", c.DBPasswordFile},
		{"SERVER_KEY", c.ServerKey},
		{"KEYRING", c.Keyring},
		{"SESSION_KEY", c.SessionKey},
		{"DB_DATA_DIR", c.DBDataDir},
	}
	for _, r := range required {
		if msg := checkPath(r.value, true); msg != "" {
			add(r.key, "%s", msg)
		}
	}
	if msg := checkPath(c.SSLCertificateChain, false); msg != "" {
		add("SSL_CERTIFICATE_CHAIN", "%s", msg)
	}
	if msg := checkPasswordScript(c.SSLPrivateKeyPasswordScript); msg != "" {
		add("SSL_PRIVATE_KEY_PASSWORD_SCRIPT", "%s", msg)
	}
	if _, err := tlsconf.ParseMinVersion(c.TLSMinVersion); err != nil {
		add("TLS_MIN_VERSION", "%v", err)
	}
	if _, _, err := tlsconf.ParseCipherList(c.SSLCipherList); err != nil {
		add("SSL_CIPHER_LIST", "%v", err)
	}
	if c.DBHost == "" || strings.ContainsFunc(c.DBHost, isSpaceOrControl) {
		add("DB_HOST", "%q is not a host name, IP address or socket directory; remove the key to use %q", c.DBHost, DefaultDBHost)
	}
	if c.DBPort < 1 || c.DBPort > 65535 {
		add("DB_PORT", "%d is not a TCP port; use a number from 1 to 65535 (default %d)", c.DBPort, DefaultDBPort)
	}
	for _, id := range []struct{ key, value, def string }{{"DB_NAME", c.DBName, DefaultDBName}, {"DB_USER", c.DBUser, DefaultDBUser}} {
		if id.value == "" || len(id.value) > 63 || strings.ContainsFunc(id.value, isSpaceOrControl) {
			add(id.key, "%q is not a valid PostgreSQL name (1 to 63 bytes, no spaces); remove the key to use %q", id.value, id.def)
		}
	}
	switch c.Role {
	case RoleActive:
	case RolePassive:
		if u, err := url.Parse(c.ActiveURL); err != nil || u.Scheme != "https" || u.Host == "" {
			add("ACTIVE_URL", "%q is not the active server's https:// URL; a passive forwards writes there, e.g. \"https://kts01.example.com:11371\"", c.ActiveURL)
		}
		if msg := checkPath(c.ActiveCA, true); msg != "" {
			add("ACTIVE_CA", "%s (the certificate that verifies the active's TLS)", msg)
		}
		if _, port, err := net.SplitHostPort(c.ActiveDB); err != nil || port == "" {
			add("ACTIVE_DB", "%q is not HOST:PORT of the active's PostgreSQL, e.g. \"kts01.example.com:11381\"", c.ActiveDB)
		}
	default:
		add("ROLE", "%q is not a role; use %q or %q", c.Role, RoleActive, RolePassive)
	}
	if msg := checkPath(c.ReplicationPasswordFile, true); msg != "" {
		add("REPLICATION_PASSWORD_FILE", "%s", msg)
	}
	if len(c.StandbyName) > 63 || strings.Trim(c.StandbyName, "abcdefghijklmnopqrstuvwxyz0123456789_") != "" {
		add("STANDBY_NAME", "%q must be up to 63 lower-case letters, digits or _ (\"\" for a single server)", c.StandbyName)
	}
	if c.Role == RolePassive && c.StandbyName == "" {
		add("STANDBY_NAME", "a passive needs the replication name the active waits for, e.g. \"kts_passive\"")
	}
	errs = append(errs, c.validatePostgreSQL()...)
	errs = append(errs, c.validateHSM()...)
	errs = append(errs, c.validateMail()...)
	errs = append(errs, c.validateAdmin()...)
	if c.MaxDepositBytes < 1 || c.MaxDepositBytes > MaxDepositBytesLimit {
		add("MAX_DEPOSIT_BYTES", "%d is out of range; use a number of bytes from 1 to %d (default %d)", c.MaxDepositBytes, MaxDepositBytesLimit, DefaultMaxDepositBytes)
	}
	return errors.Join(errs...)
}

// validateMail checks the SMTP_* keys and EXTERNAL_URL.
func (c Config) validateMail() []error {
	var errs []error
	add := func(key, format string, args ...any) {
		errs = append(errs, fmt.Errorf("%s: %s", key, fmt.Sprintf(format, args...)))
	}
	if c.ExternalURL != "" {
		if u, err := url.Parse(c.ExternalURL); err != nil || u.Scheme != "https" || u.Host == "" || u.RawQuery != "" {
			add("EXTERNAL_URL", "%q is not an https:// URL of this server, e.g. \"https://kts01.example.com:11371\"", c.ExternalURL)
		}
	}
	if c.SMTPHost != "" && strings.ContainsFunc(c.SMTPHost, isSpaceOrControl) {
		add("SMTP_HOST", "%q is not a host name", c.SMTPHost)
	}
	if c.SMTPPort < 1 || c.SMTPPort > 65535 {
		add("SMTP_PORT", "%d is not a TCP port (default %d)", c.SMTPPort, DefaultSMTPPort)
	}
	switch c.SMTPTLS {
	case "starttls", "tls", "none":
	default:
		add("SMTP_TLS", "%q: use \"starttls\" (default), \"tls\" (implicit TLS, port 465) or \"none\" (an MTA on this host only)", c.SMTPTLS)
	}
	if msg := checkPath(c.SMTPCAFile, false); msg != "" {
		add("SMTP_CA_FILE", "%s", msg)
	}
	if c.SMTPFrom != "" {
		if _, err := mail.ParseAddress(c.SMTPFrom); err != nil {
			add("SMTP_FROM", "%q is not a mail address", c.SMTPFrom)
		}
	}
	if c.SMTPPasswordFile != "" && c.SMTPPasswordScript != "" {
		add("SMTP_PASSWORD_FILE", "give the SMTP password in one way: SMTP_PASSWORD_FILE or SMTP_PASSWORD_SCRIPT")
	}
	if (c.SMTPPasswordFile != "" || c.SMTPPasswordScript != "") && c.SMTPUser == "" {
		add("SMTP_USER", "an SMTP password is set but no user")
	}
	if msg := checkPath(c.SMTPPasswordFile, false); msg != "" {
		add("SMTP_PASSWORD_FILE", "%s", msg)
	}
	if msg := checkPasswordScript(c.SMTPPasswordScript); msg != "" {
		add("SMTP_PASSWORD_SCRIPT", "%s", msg)
	}
	return errs
}

// validateAdmin checks ADMIN_LISTEN_ADDRESS and ADMIN_CA_FILE: a listener
// needs the CA that signs admin client certificates, and a port of its own.
func (c Config) validateAdmin() []error {
	if c.AdminListenAddress == "" {
		if msg := checkPath(c.AdminCAFile, false); msg != "" {
			return []error{fmt.Errorf("ADMIN_CA_FILE: %s", msg)}
		}
		return nil
	}
	var errs []error
	if msg := checkListenAddress(c.AdminListenAddress); msg != "" {
		errs = append(errs, fmt.Errorf("ADMIN_LISTEN_ADDRESS: %s; use HOST:PORT or :PORT, e.g. \":11373\", or \"\" for no admin API", msg))
	} else if samePort(c.AdminListenAddress, c.ListenAddress) {
		errs = append(errs, fmt.Errorf("ADMIN_LISTEN_ADDRESS: %q takes the port of LISTEN_ADDRESS %q; the admin API needs a port of its own, e.g. \":11373\"", c.AdminListenAddress, c.ListenAddress))
	}
	if c.AdminCAFile == "" {
		errs = append(errs, errors.New("ADMIN_CA_FILE: is empty, but ADMIN_LISTEN_ADDRESS turns the admin API on; set it to the PEM file of the CA certificates that sign admin client certificates (or set ADMIN_LISTEN_ADDRESS to \"\")"))
	} else if msg := checkPath(c.AdminCAFile, true); msg != "" {
		errs = append(errs, fmt.Errorf("ADMIN_CA_FILE: %s", msg))
	}
	return errs
}

// samePort reports whether two listen addresses would take the same port:
// the same port number on the same host, or on all addresses.
func samePort(a, b string) bool {
	ha, pa, err1 := net.SplitHostPort(a)
	hb, pb, err2 := net.SplitHostPort(b)
	if err1 != nil || err2 != nil || pa != pb {
		return false
	}
	all := func(h string) bool { return h == "" || h == "0.0.0.0" || h == "::" }
	return ha == hb || all(ha) || all(hb)
}

// validateHSM checks the HSM_* keys: all or none, one PIN source.
func (c Config) validateHSM() []error {
	var errs []error
	add := func(key, format string, args ...any) {
		errs = append(errs, fmt.Errorf("%s: %s", key, fmt.Sprintf(format, args...)))
	}
	pinSources := 0
	for _, v := range []string{c.HSMPINFile, c.HSMPINEnv, c.HSMPINScript} {
		if v != "" {
			pinSources++
		}
	}
	if !c.HasHSM() {
		if c.HSMTokenLabel != "" || pinSources > 0 {
			add("HSM_MODULE", "HSM_TOKEN_LABEL or a PIN source is set but no module; set HSM_MODULE to the PKCS#11 library (kts keyhsm init does)")
		}
		return errs
	}
	if !filepath.IsAbs(c.HSMModule) {
		add("HSM_MODULE", "%q must be the absolute path of the PKCS#11 library, e.g. \"/usr/lib/softhsm/libsofthsm2.so\"", c.HSMModule)
	}
	if c.HSMTokenLabel == "" || len(c.HSMTokenLabel) > 32 {
		add("HSM_TOKEN_LABEL", "%q is not a token label (1 to 32 bytes)", c.HSMTokenLabel)
	}
	if pinSources != 1 {
		add("HSM_PIN_FILE", "give the token PIN in exactly one way: HSM_PIN_FILE, HSM_PIN_ENV or HSM_PIN_SCRIPT (%d are set)", pinSources)
	}
	if msg := checkPath(c.HSMPINFile, false); msg != "" {
		add("HSM_PIN_FILE", "%s", msg)
	}
	if c.HSMPINEnv != "" && strings.ContainsAny(c.HSMPINEnv, "= \t\x00") {
		add("HSM_PIN_ENV", "%q is not an environment variable name", c.HSMPINEnv)
	}
	if msg := checkPasswordScript(c.HSMPINScript); msg != "" {
		add("HSM_PIN_SCRIPT", "%s", msg)
	}
	if c.HSMDataKeyCacheSeconds < 0 || c.HSMDataKeyCacheSeconds > 3600 {
		add("HSM_DATA_KEY_CACHE_SECONDS", "%d is out of range; use 0 (no cache) to 3600 (default %d)", c.HSMDataKeyCacheSeconds, DefaultHSMDataKeyCacheSeconds)
	}
	if c.HSMStateKey == "" || len(c.HSMStateKey) > 64 {
		add("HSM_STATE_KEY", "%q is not a key label (1 to 64 bytes; default %q)", c.HSMStateKey, DefaultHSMStateKey)
	}
	return errs
}

func isSpaceOrControl(r rune) bool {
	return r <= ' ' || r == 0x7f
}

func checkHostname(h string) string {
	switch {
	case h == "":
		return "is empty"
	case len(h) > 253:
		return "is longer than 253 characters"
	case net.ParseIP(h) != nil:
		return ""
	}
	for _, label := range strings.Split(strings.TrimSuffix(h, "."), ".") {
		if label == "" || len(label) > 63 || label[0] == '-' || label[len(label)-1] == '-' {
			return fmt.Sprintf("%q is not a valid host name", h)
		}
		for _, r := range label {
			if !('a' <= r && r <= 'z' || 'A' <= r && r <= 'Z' || '0' <= r && r <= '9' || r == '-' || r == '_') {
				return fmt.Sprintf("%q is not a valid host name", h)
			}
		}
	}
	return ""
}

func checkListenAddress(addr string) string {
	host, port, err := net.SplitHostPort(addr)
	if err != nil {
		return fmt.Sprintf("%q is not a valid address", addr)
	}
	if strings.ContainsFunc(host, isSpaceOrControl) {
		return fmt.Sprintf("%q has an invalid host", addr)
	}
	n, err := strconv.Atoi(port)
	if err != nil || n < 1 || n > 65535 {
		return fmt.Sprintf("%q has an invalid port (1 to 65535)", addr)
	}
	return ""
}

func checkPath(p string, required bool) string {
	switch {
	case p == "" && required:
		return "is empty; set it to a file path (relative paths are relative to the configuration directory) or remove the key to use the default"
	case strings.ContainsRune(p, 0):
		return "contains a NUL byte; correct the path"
	}
	return ""
}

// checkPasswordScript checks the script setting without ever quoting it:
// its arguments may hold the password.
func checkPasswordScript(script string) string {
	if script == "" {
		return ""
	}
	args := strings.Fields(script)
	switch {
	case len(args) == 0:
		return "holds only spaces; remove it if the key is not encrypted, or set it to a program that prints the key password"
	case strings.ContainsRune(script, 0):
		return "contains a NUL byte"
	case strings.ContainsAny(script, `"'\`):
		return "contains quotes or backslashes, but the command is split on spaces and run without a shell; put the command in a script file and set the script's path"
	case !filepath.IsAbs(args[0]):
		return fmt.Sprintf("the program %q must be an absolute path (e.g. \"/bin/echo -n PASSWORD\"), so that it does not depend on $PATH", args[0])
	}
	return ""
}

// Save writes c to confdir/keytrustee.conf with mode 0600, atomically: a
// crash leaves either the old or the new file. An invalid c is not written.
func (c Config) Save(confdir string) error {
	if err := c.Validate(); err != nil {
		return fmt.Errorf("not saving an invalid configuration: %w", err)
	}
	var buf bytes.Buffer
	enc := json.NewEncoder(&buf)
	enc.SetEscapeHTML(false)
	enc.SetIndent("", "  ")
	if err := enc.Encode(c); err != nil { // Encode ends with a newline
		return err
	}
	path := filepath.Join(confdir, FileName)
	tmp, err := os.CreateTemp(confdir, "."+FileName+".*.tmp")
	if err != nil {
		return err
	}
	defer os.Remove(tmp.Name()) // fails harmlessly once renamed
	err = tmp.Chmod(0o600)
	if err == nil {
		_, err = tmp.Write(buf.Bytes())
	}
	if err == nil {
		err = tmp.Sync()
	}
	if cerr := tmp.Close(); err == nil {
		err = cerr
	}
	if err != nil {
		return fmt.Errorf("write %s: %w", path, err)
	}
	if err := os.Rename(tmp.Name(), path); err != nil {
		return fmt.Errorf("write %s: %w", path, err)
	}
	// Make the rename itself durable.
	if d, err := os.Open(confdir); err == nil {
		d.Sync()
		d.Close()
	}
	return nil
}

// Path resolves a path from the configuration: absolute paths are returned
// as they are, relative ones are joined to confdir, and "" stays "" (an
// unset optional file).
func (c Config) Path(confdir, p string) string {
	if p == "" || filepath.IsAbs(p) {
		return p
	}
	return filepath.Join(confdir, p)
}
