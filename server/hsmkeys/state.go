package hsmkeys

import (
	"bytes"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strings"

	"trustee.dev/trustee/server/config"
	"trustee.dev/trustee/server/hsm"
	"trustee.dev/trustee/server/tlsconf"
)

// Describe names the HSM of a configuration in messages.
func Describe(cfg config.Config) string {
	return fmt.Sprintf("(module %s, token %q)", cfg.HSMModule, cfg.HSMTokenLabel)
}

// PIN reads the token's user PIN from where the configuration says: a file
// in or beside the state directory dir, an environment variable, or the
// output of a command. It is never taken from a command line.
func PIN(dir string, cfg config.Config) (string, error) {
	switch {
	case cfg.HSMPINFile != "":
		data, err := os.ReadFile(cfg.Path(dir, cfg.HSMPINFile))
		if err != nil {
			return "", fmt.Errorf("HSM_PIN_FILE: %w", err)
		}
		pin := strings.TrimRight(string(data), "\r\n")
		if pin == "" {
			return "", fmt.Errorf("HSM_PIN_FILE %s is empty", cfg.HSMPINFile)
		}
		return pin, nil
	case cfg.HSMPINEnv != "":
		pin := os.Getenv(cfg.HSMPINEnv)
		if pin == "" {
			return "", fmt.Errorf("HSM_PIN_ENV: the environment variable %s is not set or empty; export the token's PIN in it", cfg.HSMPINEnv)
		}
		return pin, nil
	case cfg.HSMPINScript != "":
		out, err := tlsconf.RunSecretScript("HSM_PIN_SCRIPT", "the token PIN", cfg.HSMPINScript)
		return string(out), err
	}
	return "", errors.New("no HSM PIN source: set HSM_PIN_FILE, HSM_PIN_ENV or HSM_PIN_SCRIPT in keytrustee.conf")
}

// OpenToken opens the configuration's token.
func OpenToken(dir string, cfg config.Config) (*hsm.Token, error) {
	pin, err := PIN(dir, cfg)
	if err != nil {
		return nil, err
	}
	return hsm.Open(hsm.Config{Module: cfg.HSMModule, TokenLabel: cfg.HSMTokenLabel, PIN: pin})
}

// sealedMagic begins a state file sealed by a token key; the key's label
// follows on the same line.
const sealedMagic = "KTS-HSM-SEALED-1 "

// IsSealed reports whether data is a sealed state file.
func IsSealed(data []byte) bool { return bytes.HasPrefix(data, []byte(sealedMagic)) }

// sealAAD binds a sealed file to its name: a sealed session key does not
// open as the server key.
func sealAAD(name string) []byte { return []byte("kts-state-file\x00" + filepath.Base(name)) }

// Seal seals the contents of the state file name under key.
func Seal(key *hsm.Key, name string, plaintext []byte) ([]byte, error) {
	ct, err := key.Seal(plaintext, sealAAD(name))
	if err != nil {
		return nil, err
	}
	return append([]byte(sealedMagic+key.Label()+"\n"), ct...), nil
}

// Unseal opens a state file sealed by Seal with the token's key.
func Unseal(tok *hsm.Token, name string, data []byte) ([]byte, error) {
	rest, ok := bytes.CutPrefix(data, []byte(sealedMagic))
	label, ct, found := bytes.Cut(rest, []byte("\n"))
	if !ok || !found || len(label) == 0 {
		return nil, fmt.Errorf("%s is not a sealed state file", name)
	}
	key, err := tok.Key(string(label))
	if err != nil {
		return nil, fmt.Errorf("%s is sealed by HSM key %q: %w", name, label, err)
	}
	pt, err := key.Open(ct, sealAAD(name))
	if err != nil {
		return nil, fmt.Errorf("%s: %w", name, err)
	}
	return pt, nil
}

// SealedFiles are the state directory's secrets that an HSM seals: the
// server's OpenPGP key, the session key and the file keyring. (The
// database passwords stay readable to PostgreSQL's tools: they grant
// nothing that a copy of the database does not hold.)
func SealedFiles(cfg config.Config) []string {
	return []string{cfg.ServerKey, cfg.SessionKey, cfg.Keyring}
}

// ReadStateFile reads a state file, unsealing it when it is sealed (tok may
// be nil when no HSM is configured: a sealed file is then an error that says
// so).
func ReadStateFile(tok *hsm.Token, path string) ([]byte, error) {
	data, err := os.ReadFile(path)
	if err != nil || !IsSealed(data) {
		return data, err
	}
	if tok == nil {
		return nil, fmt.Errorf("%s is sealed by an HSM, and keytrustee.conf names none (HSM_MODULE)", filepath.Base(path))
	}
	return Unseal(tok, path, data)
}
