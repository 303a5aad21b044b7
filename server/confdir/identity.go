package confdir

import (
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"

	"trustee.dev/trustee/server/config"
	"trustee.dev/trustee/server/keyring"
	"trustee.dev/trustee/server/openpgp"
)

// The files of a server's identity, as keys of the Kubernetes Secret
// NAME-identity (and file names in a state directory made by Init).
const (
	IdentityServerKey  = config.DefaultServerKey      // armored OpenPGP private key
	IdentityKeyring    = config.DefaultKeyring        // the file deposit keyring
	IdentitySessionKey = config.DefaultSessionKey     // HMAC key of session tokens
	IdentityDBPassword = config.DefaultDBPasswordFile // password of the database superuser
)

// IdentityKeys lists the keys NewIdentity returns.
var IdentityKeys = []string{IdentityServerKey, IdentityKeyring, IdentitySessionKey, IdentityDBPassword}

// ReplicationPassword is the key of the Kubernetes Secret NAME-replication:
// the password of the pair's PostgreSQL replication account.
const ReplicationPassword = config.DefaultReplPassword

// IdentityOptions choose the server identity NewIdentity makes.
type IdentityOptions struct {
	// Hostname names the server in its OpenPGP user ID when Name and
	// Email are not given, as Init does.
	Hostname string
	// Name and Email make the user ID; defaults "Trustee server
	// HOSTNAME" and "keytrustee@HOSTNAME".
	Name, Email string
	// KeyType is the OpenPGP key type; default openpgp.RSA4096.
	KeyType openpgp.KeyType
}

// NewIdentity makes the identity of a new server: a fresh OpenPGP key pair
// (armored private key), deposit keyring, session key and database
// password, keyed by IdentityKeys. The contents are what Init writes into a
// state directory; nothing is written here.
func NewIdentity(o IdentityOptions) (map[string][]byte, error) {
	if o.Hostname == "" && (o.Name == "" || o.Email == "") {
		return nil, errors.New("new server identity: give the host name, or both the name and the e-mail address of its OpenPGP user ID")
	}
	if o.Name == "" {
		o.Name = "Trustee server " + o.Hostname
	}
	if o.Email == "" {
		o.Email = "keytrustee@" + o.Hostname
	}
	if o.KeyType == "" {
		o.KeyType = openpgp.RSA4096
	}
	key, err := openpgp.Generate(o.KeyType, o.Name, o.Email)
	if err != nil {
		return nil, fmt.Errorf("generate server OpenPGP key: %w", err)
	}
	armored, err := key.Armor()
	if err != nil {
		return nil, err
	}
	kr, err := keyring.NewFileContents()
	if err != nil {
		return nil, err
	}
	return map[string][]byte{
		IdentityServerKey:  armored,
		IdentityKeyring:    kr,
		IdentitySessionKey: []byte(randomSecret() + "\n"),
		IdentityDBPassword: []byte(randomSecret() + "\n"),
	}, nil
}

// NewReplicationSecret returns the contents of the pair's replication
// Secret: a fresh replication password under ReplicationPassword.
func NewReplicationSecret() map[string][]byte {
	return map[string][]byte{ReplicationPassword: []byte(randomSecret() + "\n")}
}

// CheckFiles makes sure every file the configuration names can be read and
// is not empty: the identity, the TLS certificate and key, and the
// replication password, active's certificate, HSM PIN and SMTP files where
// they are used. Relative paths are relative to dir. A file given by an
// absolute path is taken to be a key of a mounted Secret, and a missing one
// is reported as such. Every problem is reported; nothing is changed.
func CheckFiles(dir string, cfg config.Config) error {
	type file struct{ key, path string }
	files := []file{
		{"SERVER_KEY", cfg.ServerKey}, {"KEYRING", cfg.Keyring}, {"SESSION_KEY", cfg.SessionKey},
		{"DB_PASSWORD_FILE", cfg.DBPasswordFile},
		{"SSL_CERTIFICATE", cfg.SSLCertificate}, {"SSL_PRIVATE_KEY", cfg.SSLPrivateKey},
	}
	if cfg.Role == config.RolePassive || cfg.StandbyName != "" {
		files = append(files, file{"REPLICATION_PASSWORD_FILE", cfg.ReplicationPasswordFile})
	}
	if cfg.Role == config.RolePassive {
		files = append(files, file{"ACTIVE_CA", cfg.ActiveCA})
	}
	for _, f := range []file{{"SSL_CERTIFICATE_CHAIN", cfg.SSLCertificateChain}, {"HSM_PIN_FILE", cfg.HSMPINFile},
		{"SMTP_CA_FILE", cfg.SMTPCAFile}, {"SMTP_PASSWORD_FILE", cfg.SMTPPasswordFile}, {"DB_CA_FILE", cfg.DBCAFile}} {
		if f.path != "" {
			files = append(files, f)
		}
	}
	var errs []error
	for _, f := range files {
		if err := checkReadable(cfg.Path(dir, f.path), filepath.IsAbs(f.path)); err != nil {
			errs = append(errs, fmt.Errorf("%s: %w", f.key, err))
		}
	}
	return errors.Join(errs...)
}

// checkReadable reads path; mounted says it should come from a Secret or
// ConfigMap volume.
func checkReadable(path string, mounted bool) error {
	data, err := os.ReadFile(path)
	switch {
	case errors.Is(err, fs.ErrNotExist) && mounted:
		return fmt.Errorf("%s does not exist: the Secret mounted at %s lacks the key %q (or is not mounted)",
			path, filepath.Dir(path), filepath.Base(path))
	case errors.Is(err, fs.ErrNotExist):
		return fmt.Errorf("%s does not exist", path)
	case err != nil:
		return fmt.Errorf("cannot read %s: %w", path, err)
	case len(data) == 0:
		return fmt.Errorf("%s is empty", path)
	}
	clear(data)
	return nil
}
