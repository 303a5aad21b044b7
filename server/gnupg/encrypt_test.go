package gnupg_test

import (
	"bytes"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"trustee.dev/trustee/server/gnupg"
)

// gpgDecrypt decrypts msg with `gpg --decrypt` in the shared home and returns
// the plaintext and the status lines.
func gpgDecrypt(t *testing.T, msg []byte, passphrase string) (plain []byte, status string) {
	t.Helper()
	statusFile := filepath.Join(t.TempDir(), "status")
	plain = gpgRun(t, sharedHome, msg, append(loopback(passphrase), "--status-file", statusFile, "--decrypt")...)
	st, err := os.ReadFile(statusFile)
	if err != nil {
		t.Fatal(err)
	}
	return plain, string(st)
}

func TestEncryptedBackupsDecryptWithPlainGPG(t *testing.T) {
	k := keyring(t)
	for _, rc := range []struct {
		name, fpr, passphrase string
	}{
		{"RSA", k.john, ""},
		{"Curve25519", k.richard, richardPassphrase},
	} {
		to := entity(t, rc.fpr)
		for _, data := range [][]byte{nil, []byte("a small backup\n"), bigData()} {
			msg := encrypt(t, to, data)
			plain, status := gpgDecrypt(t, msg, rc.passphrase)
			if !bytes.Equal(plain, data) {
				t.Errorf("%s, %d bytes: gpg --decrypt gave %d different bytes", rc.name, len(data), len(plain))
			}
			// SEIPD v1 with a SHA-1 MDC (method 2), AES-256 (9), checked.
			for _, want := range []string{"DECRYPTION_INFO 2 9", "DECRYPTION_OKAY", "GOODMDC", "PLAINTEXT 62 ", " backup.tar"} {
				if !strings.Contains(status, want) {
					t.Errorf("%s, %d bytes: gpg status lacks %q:\n%s", rc.name, len(data), want, status)
				}
			}
		}
	}
}

func TestEncryptWritesOnlyAnEncryptedLiteralPacket(t *testing.T) {
	k := keyring(t)
	msg := encrypt(t, entity(t, k.john), []byte("tar archive"))
	packets := string(gpgRun(t, sharedHome, msg, append(loopback(""), "--list-packets")...))
	for _, want := range []string{
		":pubkey enc packet: version 3, algo 1, keyid " + keyID(k.johnSub),
		":encrypted data packet:",
		"mdc_method: 2",
		`:literal data packet:`,
		`name="backup.tar"`,
	} {
		if !strings.Contains(packets, want) {
			t.Errorf("gpg --list-packets lacks %q:\n%s", want, packets)
		}
	}
	for _, unwanted := range []string{"compressed packet", "signature packet", "aead"} {
		if strings.Contains(strings.ToLower(packets), unwanted) {
			t.Errorf("gpg --list-packets shows a %s:\n%s", unwanted, packets)
		}
	}
}

// closeTracker records whether it was closed.
type closeTracker struct {
	bytes.Buffer
	closed bool
}

func (c *closeTracker) Close() error { c.closed = true; return nil }

func TestEncryptCloseFinishesTheMessageButNotTheWriter(t *testing.T) {
	k := keyring(t)
	var out closeTracker
	w, err := gnupg.Encrypt(&out, entity(t, k.john), "backup.tar")
	if err != nil {
		t.Fatal(err)
	}
	w.Write([]byte("data"))
	if err := w.Close(); err != nil {
		t.Fatal(err)
	}
	if out.closed {
		t.Error("Close closed the underlying writer")
	}
	n := out.Len()
	if err := w.Close(); err != nil || out.Len() != n {
		t.Errorf("second Close: %v, wrote %d more bytes", err, out.Len()-n)
	}
	if _, err := w.Write([]byte("more")); err == nil {
		t.Error("Write after Close succeeded")
	}
	if plain, _ := gpgDecrypt(t, out.Bytes(), ""); string(plain) != "data" {
		t.Errorf("gpg --decrypt = %q", plain)
	}
}

func TestEncryptRefusesAKeyThatCannotEncrypt(t *testing.T) {
	k := keyring(t)
	el := publicKeys(t)
	for _, fpr := range []string{k.signOnly, k.old, k.revoked} {
		e := findByFingerprint(el, fpr)
		if e == nil {
			t.Fatalf("key %s not in the keyring", fpr)
		}
		var out bytes.Buffer
		if _, err := gnupg.Encrypt(&out, e, "backup.tar"); err == nil || !strings.Contains(err.Error(), fpr) {
			t.Errorf("Encrypt to %s: error %v, want one naming the key", gnupg.Describe(e), err)
		}
		if out.Len() != 0 {
			t.Errorf("Encrypt to %s wrote %d bytes", gnupg.Describe(e), out.Len())
		}
	}
	if _, err := gnupg.Encrypt(&bytes.Buffer{}, nil, "backup.tar"); err == nil {
		t.Error("Encrypt to no key succeeded")
	}
}
