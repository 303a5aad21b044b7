// Package gnupg is OpenPGP encryption of backup archives for GnuPG users:
// recipient lookup, encryption, decryption.
//
// Backups (`kts backup`) are tar archives encrypted to one recipient's
// OpenPGP key. The key is looked up, as `gpg -r` does, among the keys of the
// service account's GnuPG keyring or of a key file (PublicKeys,
// FindRecipient). Encrypt writes a binary OpenPGP message that plain
// `gpg --decrypt` of GnuPG 2.2 reads: a public-key encrypted session key and
// an integrity-protected data packet (SEIPD version 1 with a modification
// detection code), AES-256, no compression, no signature.
//
// Decrypt reads such messages (and those `gpg --encrypt` writes) either by
// running `gpg --decrypt`, so that the secret key stays in gpg-agent, or with
// the secret key(s) of a file exported with `gpg --export-secret-keys`. Either
// way the plaintext is streamed, and only a nil error from Close vouches that
// it was complete and authentic.
//
// Passphrases and key material are never printed or logged.
package gnupg

import (
	"bytes"
	"encoding/hex"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"

	"github.com/ProtonMail/go-crypto/openpgp"
)

// ErrNoRecipient means that no usable key matches the recipient asked for.
var ErrNoRecipient = errors.New("no usable recipient key")

// importHint tells how to make a recipient's key available.
const importHint = "import the recipient's public key into the GnuPG keyring of this account (gpg --import FILE) or pass the key file"

// Describe names a key for messages: its fingerprint in upper-case hex and
// its primary user ID, quoted.
func Describe(e *openpgp.Entity) string {
	if e == nil || e.PrimaryKey == nil {
		return "(no key)"
	}
	fpr := fingerprint(e.PrimaryKey.Fingerprint)
	if id := e.PrimaryIdentity(); id != nil {
		return fmt.Sprintf("%s %q", fpr, id.Name)
	}
	return fpr + " (no user ID)"
}

// fingerprint formats a fingerprint as GnuPG shows it: upper-case hex.
func fingerprint(b []byte) string { return strings.ToUpper(hex.EncodeToString(b)) }

// keyID formats a key ID as GnuPG's long key ID: 16 upper-case hex digits.
func keyID(id uint64) string { return fmt.Sprintf("%016X", id) }

// gpgPath returns the path of the gpg program, or an error that says how to
// install it and what to do instead.
func gpgPath(instead string) (string, error) {
	for _, name := range []string{"gpg", "gpg2"} {
		if p, err := exec.LookPath(name); err == nil {
			return p, nil
		}
	}
	return "", fmt.Errorf("gnupg: gpg (GnuPG) is not installed or not in PATH; install it (e.g. apt-get install gnupg2 or dnf install gnupg2) or %s", instead)
}

// gnupgHome returns the GnuPG home directory gpg uses for this process: the
// GNUPGHOME environment variable, else ~/.gnupg.
func gnupgHome() string {
	if h := os.Getenv("GNUPGHOME"); h != "" {
		return h
	}
	if home, err := os.UserHomeDir(); err == nil {
		return filepath.Join(home, ".gnupg")
	}
	return "~/.gnupg"
}

// tailBuffer keeps the last max bytes written to it: enough of a program's
// standard error to explain a failure, without unbounded growth.
type tailBuffer struct {
	max int
	buf []byte
}

func (t *tailBuffer) Write(p []byte) (int, error) {
	t.buf = append(t.buf, p...)
	if over := len(t.buf) - t.max; over > 0 {
		t.buf = append(t.buf[:0], t.buf[over:]...)
	}
	return len(p), nil
}

// summary returns the kept text on one line, lines separated by "; ".
func (t *tailBuffer) summary() string {
	var lines []string
	for _, l := range strings.Split(string(bytes.ToValidUTF8(t.buf, []byte("?"))), "\n") {
		if l = strings.TrimSpace(l); l != "" {
			lines = append(lines, l)
		}
	}
	return strings.Join(lines, "; ")
}
