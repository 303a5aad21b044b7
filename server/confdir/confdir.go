// Package confdir creates and opens a server's state directory: its
// configuration, OpenPGP identity, TLS certificate, deposit keyring, session
// key and database password. Creation never overwrites a key that exists.
package confdir

import (
	"bytes"
	"crypto/rand"
	"encoding/base64"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"strings"
	"time"

	"trustee.dev/trustee/server/auth"
	"trustee.dev/trustee/server/config"
	"trustee.dev/trustee/server/hsm"
	"trustee.dev/trustee/server/hsmkeys"
	"trustee.dev/trustee/server/keyring"
	"trustee.dev/trustee/server/openpgp"
	"trustee.dev/trustee/server/tlsconf"
)

// InitOptions choose what a new state directory holds.
type InitOptions struct {
	Hostname string
	KeyType  openpgp.KeyType
	// DBPort overrides the configuration's default database port when set.
	DBPort int
	// ListenAddress overrides the default ":11371" when set.
	ListenAddress string
}

// InitResult says what Init created and what it found.
type InitResult struct {
	Created  []string // files created by this call
	Warnings []string
	ServerID string // e.g. 4096R/<fingerprint>
}

// Init creates the state directory dir (0700) and every missing file in it
// (0600). Existing files are left untouched, so running it again is safe.
// An existing dir keeps only the permission to pass through it that the
// PostgreSQL account may have been given (see pg.Instance.PrepareStateDir);
// run by root, Init takes back a dir another account owns.
func Init(dir string, o InitOptions) (InitResult, error) {
	var res InitResult
	if err := os.MkdirAll(dir, 0o700); err != nil {
		return res, err
	}
	note, err := keepDir(dir)
	if err != nil {
		return res, err
	}
	if note != "" {
		res.Warnings = append(res.Warnings, note)
	}
	cfg, err := config.Load(dir)
	if errors.Is(err, fs.ErrNotExist) {
		cfg = config.Default(o.Hostname)
		if o.DBPort != 0 {
			cfg.DBPort = o.DBPort
		}
		if o.ListenAddress != "" {
			cfg.ListenAddress = o.ListenAddress
		}
		if err := cfg.Save(dir); err != nil {
			return res, err
		}
		res.Created = append(res.Created, config.FileName)
	} else if err != nil {
		return res, err
	}

	keyPath := cfg.Path(dir, cfg.ServerKey)
	if !exists(keyPath) {
		if o.KeyType == "" {
			o.KeyType = openpgp.RSA4096
		}
		key, err := openpgp.Generate(o.KeyType, "Trustee server "+cfg.Hostname, "keytrustee@"+cfg.Hostname)
		if err != nil {
			return res, fmt.Errorf("generate server OpenPGP key: %w", err)
		}
		armored, err := key.Armor()
		if err != nil {
			return res, err
		}
		if err := writeNew(keyPath, armored); err != nil {
			return res, err
		}
		res.Created = append(res.Created, cfg.ServerKey)
	}
	key, err := readServerKey(cfg.Path(dir, cfg.ServerKey))
	if err != nil {
		return res, err
	}
	res.ServerID = key.Public().ID()

	certPath, pkPath := cfg.Path(dir, cfg.SSLCertificate), cfg.Path(dir, cfg.SSLPrivateKey)
	if !exists(certPath) && !exists(pkPath) {
		if err := os.MkdirAll(filepath.Dir(certPath), 0o700); err != nil {
			return res, err
		}
		hosts := []string{cfg.Hostname, "localhost", "127.0.0.1", "::1"}
		if err := tlsconf.GenerateSelfSigned(hosts, certPath, pkPath, 365*24*time.Hour); err != nil {
			return res, fmt.Errorf("generate self-signed TLS certificate: %w", err)
		}
		res.Created = append(res.Created, cfg.SSLCertificate, cfg.SSLPrivateKey)
		res.Warnings = append(res.Warnings, fmt.Sprintf(
			"created a self-signed TLS certificate for %s; a certificate signed by a trusted CA is recommended (set SSL_CERTIFICATE and SSL_PRIVATE_KEY in %s); clients register with --ca-file set to this certificate, or with --skip-ssl-check",
			strings.Join(hosts, ", "), config.FileName))
	}

	if p := cfg.Path(dir, cfg.Keyring); !exists(p) {
		if err := keyring.CreateFile(p); err != nil {
			return res, err
		}
		res.Created = append(res.Created, cfg.Keyring)
	}
	for _, secret := range []string{cfg.SessionKey, cfg.DBPasswordFile, cfg.ReplicationPasswordFile} {
		p := cfg.Path(dir, secret)
		if exists(p) {
			continue
		}
		if err := writeNew(p, []byte(randomSecret()+"\n")); err != nil {
			return res, err
		}
		res.Created = append(res.Created, secret)
	}
	return res, nil
}

// PassiveOptions describe the passive member made from an active's state.
type PassiveOptions struct {
	Hostname      string // the passive's host name, for its own certificate
	ListenAddress string // the passive's API address
	DBPort        int    // the passive's PostgreSQL port
	ActiveURL     string // where the passive forwards writes
	ActiveDB      string // the active's PostgreSQL, HOST:PORT
	// AdminListenAddress is the passive's admin API address; "" = none.
	AdminListenAddress string
}

// PassiveConfig is the configuration of a passive made from the active's:
// the same settings, but the passive's own for what belongs to its host.
// Those are never copied, for a pair on one host would collide on them and
// a pair on two would point at the wrong host: the host name, the API's
// and the admin API's listen addresses and the PostgreSQL port come from
// o (no admin API when o has none); DB_HOST and DB_LISTEN_ADDRESSES go
// back to their defaults, and DB_DATA_DIR and DB_SOCKET_DIR too when they
// are absolute paths; the TLS certificate and key are the passive's own.
// The warnings say which of the active's settings were not copied, and
// what to do.
func PassiveConfig(active config.Config, o PassiveOptions) (config.Config, []string) {
	cfg := active
	var warnings []string
	notCopied := func(name, value, what string) {
		warnings = append(warnings, fmt.Sprintf("the active's %s (%q) is not copied, for it belongs to the active's host; %s", name, value, what))
	}
	cfg.Hostname, cfg.Role = o.Hostname, config.RolePassive
	cfg.ListenAddress, cfg.DBPort = o.ListenAddress, o.DBPort
	cfg.AdminListenAddress = o.AdminListenAddress
	if active.AdminListenAddress != "" && o.AdminListenAddress == "" {
		notCopied("ADMIN_LISTEN_ADDRESS", active.AdminListenAddress, "the passive has no admin API: give it one with --admin-listen ADDRESS (a port of its own)")
	}
	if active.DBHost != config.DefaultDBHost {
		cfg.DBHost = config.DefaultDBHost
		notCopied("DB_HOST", active.DBHost, "the passive reaches its own PostgreSQL at "+config.DefaultDBHost+": set DB_HOST in its keytrustee.conf for another address")
	}
	if active.DBListenAddresses != "" {
		cfg.DBListenAddresses = ""
		notCopied("DB_LISTEN_ADDRESSES", active.DBListenAddresses, "the passive's PostgreSQL listens on DB_HOST: set DB_LISTEN_ADDRESSES in its keytrustee.conf for more")
	}
	if filepath.IsAbs(active.DBDataDir) {
		cfg.DBDataDir = config.DefaultDBDataDir
		notCopied("DB_DATA_DIR", active.DBDataDir, "the passive's cluster is "+config.DefaultDBDataDir+" in its state directory")
	}
	if filepath.IsAbs(active.DBSocketDir) {
		cfg.DBSocketDir = ""
		notCopied("DB_SOCKET_DIR", active.DBSocketDir, "the passive's PostgreSQL keeps its socket in its data directory")
	}
	cfg.ActiveURL, cfg.ActiveDB, cfg.ActiveCA = o.ActiveURL, o.ActiveDB, activeCAFile
	cfg.SSLCertificate, cfg.SSLPrivateKey, cfg.SSLCertificateChain = config.DefaultSSLCertificate, config.DefaultSSLPrivateKey, ""
	cfg.SSLPrivateKeyPasswordScript = ""
	return cfg, warnings
}

// activeCAFile is where a passive keeps the active's certificate.
const activeCAFile = "active-ca.pem"

// InitFromActive makes the state directory of a passive from the active's:
// the same server identity, deposit keyring, session key and database
// passwords (as the reference procedure copies them, without .ssl and the
// database), its own self-signed certificate, the active's certificate to
// verify it by, and ROLE passive. An existing passive directory is left as
// it is.
func InitFromActive(activeDir, dir string, o PassiveOptions) (InitResult, error) {
	var res InitResult
	if exists(filepath.Join(dir, config.FileName)) {
		return Init(dir, InitOptions{Hostname: o.Hostname})
	}
	active, err := config.Load(activeDir)
	if err != nil {
		return res, fmt.Errorf("the active's state directory: %w", err)
	}
	if active.Role != config.RoleActive {
		return res, fmt.Errorf("%s is a %s's state directory; give the active's", activeDir, active.Role)
	}
	if active.StandbyName == "" {
		return res, fmt.Errorf("the active in %s is not set up for a pair yet; run `kts db init --role active --confdir %s` first", activeDir, activeDir)
	}
	cfg, warnings := PassiveConfig(active, o)
	res.Warnings = warnings
	if err := cfg.Validate(); err != nil {
		return res, err
	}
	if err := os.MkdirAll(dir, 0o700); err != nil {
		return res, err
	}
	copies := map[string]string{ // from the active → into the passive
		active.ServerKey: cfg.ServerKey, active.Keyring: cfg.Keyring, active.SessionKey: cfg.SessionKey,
		active.DBPasswordFile: cfg.DBPasswordFile, active.ReplicationPasswordFile: cfg.ReplicationPasswordFile,
		active.SSLCertificate: activeCAFile,
	}
	for from, to := range copies {
		data, err := os.ReadFile(active.Path(activeDir, from))
		if err != nil {
			return res, fmt.Errorf("copy from the active: %w", err)
		}
		if err := writeNew(cfg.Path(dir, to), data); err != nil {
			return res, err
		}
		res.Created = append(res.Created, to)
	}
	// The pair's admin clients are signed by one CA: the passive's admin
	// API takes the active's ADMIN_CA_FILE, copied when it is not there.
	if ca := cfg.Path(dir, cfg.AdminCAFile); cfg.AdminListenAddress != "" && ca != "" && !exists(ca) {
		data, err := os.ReadFile(active.Path(activeDir, active.AdminCAFile))
		if err != nil {
			return res, fmt.Errorf("copy ADMIN_CA_FILE from the active: %w", err)
		}
		if err := writeNew(ca, data); err != nil {
			return res, err
		}
		res.Created = append(res.Created, cfg.AdminCAFile)
	}
	if err := cfg.Save(dir); err != nil {
		return res, err
	}
	res.Created = append(res.Created, config.FileName)
	more, err := Init(dir, InitOptions{Hostname: o.Hostname})
	more.Created = append(res.Created, more.Created...)
	more.Warnings = append(res.Warnings, more.Warnings...)
	return more, err
}

// State is an opened state directory: what a server needs to run.
type State struct {
	Dir        string
	Config     config.Config
	ServerKey  *openpgp.PrivateKey
	Keyring    *keyring.Set
	Tokens     *auth.Tokens
	DBPassword string
	// HSM is the open token when the configuration names one; Close it
	// when done.
	HSM *hsm.Token
}

// dataKeyCacheEntries bounds the HSM keyring's data key cache (about 100
// bytes an entry).
const dataKeyCacheEntries = 100_000

// Open reads a state directory made by Init. It refuses one where another
// account can change what the server trusts (CheckTrusted). When it names an HSM, Open
// opens the token (an unreachable token is an error that names it),
// unseals the secrets sealed by it and adds its keys to the keyring.
func Open(dir string) (_ *State, err error) {
	cfg, err := config.Load(dir)
	if err != nil {
		if errors.Is(err, fs.ErrNotExist) {
			return nil, fmt.Errorf("%s has no %s; create the state directory with `kts init --confdir %s`", dir, config.FileName, dir)
		}
		return nil, err
	}
	if err := CheckTrusted(dir, cfg); err != nil {
		return nil, err
	}
	st := &State{Dir: dir, Config: cfg}
	if cfg.HasHSM() {
		if st.HSM, err = hsmkeys.OpenToken(dir, cfg); err != nil {
			return nil, fmt.Errorf("the HSM %s: %w", hsmkeys.Describe(cfg), err)
		}
		defer func() {
			if err != nil {
				st.HSM.Close()
			}
		}()
	}
	read := func(name string) ([]byte, error) {
		data, err := hsmkeys.ReadStateFile(st.HSM, cfg.Path(dir, name))
		if err != nil {
			return nil, fmt.Errorf("read %s: %w (run `kts init` to create it)", name, err)
		}
		return data, nil
	}
	data, err := read(cfg.ServerKey)
	if err != nil {
		return nil, err
	}
	if st.ServerKey, err = openpgp.ReadPrivate(data); err != nil {
		return nil, fmt.Errorf("server OpenPGP key %s: %w", cfg.ServerKey, err)
	}
	if data, err = read(cfg.Keyring); err != nil {
		return nil, err
	}
	file, err := keyring.ParseFile(data, cfg.Keyring)
	if err != nil {
		return nil, err
	}
	var inHSM keyring.Keyring
	if st.HSM != nil {
		kr := hsmkeys.NewKeyring(st.HSM, hsmkeys.Describe(cfg))
		kr.CacheDataKeys(time.Duration(cfg.HSMDataKeyCacheSeconds)*time.Second, dataKeyCacheEntries)
		inHSM = kr
	}
	st.Keyring = keyring.NewSet(file, inHSM)
	if data, err = read(cfg.SessionKey); err != nil {
		return nil, err
	}
	if st.Tokens, err = auth.NewTokens(bytes.TrimSpace(data)); err != nil {
		return nil, fmt.Errorf("%s: %w", cfg.SessionKey, err)
	}
	if st.DBPassword, err = ReadDBPassword(dir, cfg); err != nil {
		return nil, err
	}
	return st, nil
}

// Close releases the HSM, if any.
func (s *State) Close() error {
	if s.HSM == nil {
		return nil
	}
	return s.HSM.Close()
}

// ReadDBPassword reads the database password named by the configuration.
func ReadDBPassword(dir string, cfg config.Config) (string, error) {
	return readSecret(cfg.Path(dir, cfg.DBPasswordFile))
}

// DSN is the connection string of the state directory's database.
func (s *State) DSN() string {
	return dsn(s.Dir, s.Config, s.DBPassword)
}

// DSN builds the connection string for cfg's database; a relative
// DB_CA_FILE is taken from the current directory.
func DSN(cfg config.Config, password string) string {
	return dsn("", cfg, password)
}

// dsn builds the connection string for cfg's database, with TLS as
// Config.DBSSLQuery has it for the state directory dir.
func dsn(dir string, cfg config.Config, password string) string {
	return fmt.Sprintf("postgres://%s:%s@%s/%s?%s",
		cfg.DBUser, urlEscape(password), hostPort(cfg.DBHost, cfg.DBPort), cfg.DBName, cfg.DBSSLQuery(dir))
}

func hostPort(host string, port int) string {
	if strings.Contains(host, ":") {
		return fmt.Sprintf("[%s]:%d", host, port)
	}
	return fmt.Sprintf("%s:%d", host, port)
}

func urlEscape(s string) string {
	var b strings.Builder
	for i := 0; i < len(s); i++ {
		c := s[i]
		if 'a' <= c && c <= 'z' || 'A' <= c && c <= 'Z' || '0' <= c && c <= '9' || c == '-' || c == '_' || c == '.' || c == '~' {
			b.WriteByte(c)
		} else {
			fmt.Fprintf(&b, "%%%02X", c)
		}
	}
	return b.String()
}

func readServerKey(path string) (*openpgp.PrivateKey, error) {
	data, err := os.ReadFile(path)
	if err != nil {
		return nil, fmt.Errorf("read server OpenPGP key: %w (run `kts init` to create it)", err)
	}
	key, err := openpgp.ReadPrivate(data)
	if err != nil {
		return nil, fmt.Errorf("server OpenPGP key %s: %w", filepath.Base(path), err)
	}
	return key, nil
}

func readSecret(path string) (string, error) {
	data, err := os.ReadFile(path)
	if err != nil {
		return "", fmt.Errorf("read %s: %w (run `kts init` to create it)", filepath.Base(path), err)
	}
	s := strings.TrimSpace(string(data))
	if len(s) < 32 {
		return "", fmt.Errorf("%s holds fewer than 32 characters; delete it and run `kts init` to create a new one", filepath.Base(path))
	}
	return s, nil
}

func randomSecret() string {
	b := make([]byte, 32)
	if _, err := rand.Read(b); err != nil {
		panic(err) // crypto/rand never fails on supported platforms
	}
	return base64.RawURLEncoding.EncodeToString(b)
}

func exists(path string) bool {
	_, err := os.Lstat(path)
	return err == nil
}

// writeNew creates path with mode 0600; it never replaces an existing file.
func writeNew(path string, data []byte) error {
	if err := os.MkdirAll(filepath.Dir(path), 0o700); err != nil {
		return err
	}
	f, err := os.OpenFile(path, os.O_WRONLY|os.O_CREATE|os.O_EXCL, 0o600)
	if err != nil {
		return err
	}
	if _, err := f.Write(data); err != nil {
		f.Close()
		return err
	}
	if err := f.Sync(); err != nil {
		f.Close()
		return err
	}
	return f.Close()
}
