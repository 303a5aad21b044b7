package gnupg_test

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"strconv"
	"strings"
	"testing"
	"time"

	"trustee.dev/trustee/server/gnupg"
)

// A decryption path: GnuPG, or a secret key file.
type decryptPath struct {
	name string
	opts func(t *testing.T) gnupg.DecryptOptions
}

// johnPaths decrypt messages to John Doe's key.
func johnPaths(t *testing.T) []decryptPath {
	k := keyring(t)
	return []decryptPath{
		{"GnuPG", func(*testing.T) gnupg.DecryptOptions { return gnupg.DecryptOptions{} }},
		{"armored secret key file", func(t *testing.T) gnupg.DecryptOptions {
			return gnupg.DecryptOptions{SecretKeyFile: writeFile(t, "secret.asc", k.johnSecret)}
		}},
		{"binary secret key file", func(t *testing.T) gnupg.DecryptOptions {
			return gnupg.DecryptOptions{SecretKeyFile: writeFile(t, "secret.gpg", k.johnSecretBinary)}
		}},
	}
}

// johnMessages are messages to John Doe made here and by gpg, which
// compresses.
func johnMessages(t *testing.T) map[string][]byte {
	k := keyring(t)
	gpgEncrypt := func(extra ...string) []byte {
		return gpgRun(t, sharedHome, bigData(), append(extra, "--trust-model", "always", "--encrypt", "--recipient", k.john)...)
	}
	return map[string][]byte{
		"Encrypt":          encrypt(t, entity(t, k.john), bigData()),
		"gpg":              gpgEncrypt(),
		"gpg --armor":      gpgEncrypt("--armor"),
		"gpg uncompressed": gpgEncrypt("--compress-algo", "none"),
	}
}

func TestDecryptGivesThePlaintext(t *testing.T) {
	msgs := johnMessages(t)
	for _, path := range johnPaths(t) {
		for name, msg := range msgs {
			t.Run(path.name+"/"+name, func(t *testing.T) {
				plain, readErr, closeErr := decryptAll(t, msg, path.opts(t))
				if readErr != nil || closeErr != nil {
					t.Fatalf("read: %v, close: %v", readErr, closeErr)
				}
				if !bytes.Equal(plain, bigData()) {
					t.Fatalf("got %d bytes that differ from the %d encrypted", len(plain), len(bigData()))
				}
			})
		}
	}
}

func TestDecryptWithAProtectedSecretKeyFile(t *testing.T) {
	k := keyring(t)
	msg := encrypt(t, entity(t, k.richard), []byte("backup"))
	keyFile := writeFile(t, "richard.asc", k.richardSecret)
	for _, tc := range []struct {
		name, passphraseFile, want string
	}{
		{"passphrase with newline", richardPassphrase + "\n", ""},
		{"passphrase with CRLF and more lines", richardPassphrase + "\r\nsecond line\n", ""},
		{"passphrase without newline", richardPassphrase, ""},
		{"wrong passphrase", "Tr0ub4dor&3\n", "wrong passphrase"},
		{"empty passphrase file", "", "empty"},
		{"no passphrase file", "-", "protected by a passphrase"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			opts := gnupg.DecryptOptions{SecretKeyFile: keyFile}
			if tc.passphraseFile != "-" {
				opts.PassphraseFile = writeFile(t, "passphrase", []byte(tc.passphraseFile))
			}
			plain, readErr, closeErr := decryptAll(t, msg, opts)
			if tc.want == "" {
				if readErr != nil || closeErr != nil || string(plain) != "backup" {
					t.Fatalf("got %q, read: %v, close: %v", plain, readErr, closeErr)
				}
				return
			}
			if closeErr == nil || !strings.Contains(closeErr.Error(), tc.want) {
				t.Fatalf("error %v does not say %q", closeErr, tc.want)
			}
			t.Logf("error: %v", closeErr)
			if strings.Contains(closeErr.Error(), richardPassphrase) || strings.Contains(closeErr.Error(), "Tr0ub4dor") {
				t.Errorf("error shows the passphrase: %v", closeErr)
			}
		})
	}
}

func TestDecryptWithGnuPGUsesGPGAgentForThePassphrase(t *testing.T) {
	k := keyring(t)
	msg := encrypt(t, entity(t, k.richard), []byte("backup"))
	for _, tc := range []struct {
		name string
		conf map[string]string
		want []string
	}{
		{"right passphrase", map[string]string{"gpg.conf": "pinentry-mode loopback\npassphrase " + richardPassphrase + "\n"}, nil},
		{"wrong passphrase", map[string]string{"gpg.conf": "pinentry-mode loopback\npassphrase Tr0ub4dor&3\n"},
			[]string{"wrong passphrase", keyID(k.richardSub)}},
		{"no pinentry", map[string]string{"gpg-agent.conf": "pinentry-program /bin/false\n"},
			[]string{"could not ask for the passphrase", "GPG_TTY", keyID(k.richardSub), "secret key file"}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			t.Setenv("GNUPGHOME", cloneHome(t, tc.conf))
			plain, readErr, closeErr := decryptAll(t, msg, gnupg.DecryptOptions{})
			if tc.want == nil {
				if readErr != nil || closeErr != nil || string(plain) != "backup" {
					t.Fatalf("got %q, read: %v, close: %v", plain, readErr, closeErr)
				}
				return
			}
			if closeErr == nil {
				t.Fatal("no error")
			}
			t.Logf("error: %v", closeErr)
			for _, want := range tc.want {
				if !strings.Contains(closeErr.Error(), want) {
					t.Errorf("error %q does not say %q", closeErr, want)
				}
			}
		})
	}
}

// checkFails checks that decrypting msg fails: Close, at least, must return
// an error, which must say want.
func checkFails(t *testing.T, msg []byte, opts gnupg.DecryptOptions, want string) {
	t.Helper()
	_, readErr, closeErr := decryptAll(t, msg, opts)
	if closeErr == nil {
		t.Fatalf("Close returned nil (read error: %v)", readErr)
	}
	if !strings.Contains(closeErr.Error(), want) {
		t.Errorf("error %q does not say %q", closeErr, want)
	}
	t.Logf("error: %v", closeErr)
}

func TestDecryptFailsOnATamperedMessage(t *testing.T) {
	for name, msg := range johnMessages(t) {
		if strings.Contains(name, "armor") {
			continue // the armor checksum would catch it first
		}
		tampered := bytes.Clone(msg)
		tampered[len(tampered)/2] ^= 0x01
		for _, path := range johnPaths(t) {
			t.Run(path.name+"/"+name, func(t *testing.T) {
				checkFails(t, tampered, path.opts(t), "corrupt, truncated or was tampered with")
			})
		}
	}
}

func TestDecryptFailsOnATruncatedMessage(t *testing.T) {
	k := keyring(t)
	msg := encrypt(t, entity(t, k.john), bigData())
	for _, cut := range []int{len(msg) - 1, len(msg) - 22, len(msg) - 600, len(msg) / 2, 300} {
		for _, path := range johnPaths(t) {
			t.Run(path.name+"/"+strconv.Itoa(cut), func(t *testing.T) {
				checkFails(t, msg[:cut], path.opts(t), "")
			})
		}
	}
	// Cut inside the session key packet: not a message at all.
	for _, path := range johnPaths(t) {
		checkFails(t, msg[:100], path.opts(t), "")
	}
}

func TestDecryptStoppedEarlyFailsAtClose(t *testing.T) {
	k := keyring(t)
	msg := encrypt(t, entity(t, k.john), bigData())
	for _, path := range johnPaths(t) {
		t.Run(path.name, func(t *testing.T) {
			rc, err := gnupg.Decrypt(context.Background(), bytes.NewReader(msg), path.opts(t))
			if err != nil {
				t.Fatal(err)
			}
			if _, err := io.ReadFull(rc, make([]byte, 64<<10)); err != nil {
				t.Fatal(err)
			}
			start := time.Now()
			err = rc.Close()
			if err == nil || !strings.Contains(err.Error(), "stopped before the end") {
				t.Errorf("Close after an early stop: %v", err)
			}
			if d := time.Since(start); d > 5*time.Second {
				t.Errorf("Close took %v", d)
			}
			if err2 := rc.Close(); err2 == nil {
				t.Error("second Close returned nil")
			}
		})
	}
}

func TestDecryptCanBeCancelled(t *testing.T) {
	k := keyring(t)
	msg := encrypt(t, entity(t, k.john), bigData())
	for _, path := range johnPaths(t) {
		t.Run(path.name, func(t *testing.T) {
			ctx, cancel := context.WithCancel(context.Background())
			defer cancel()
			rc, err := gnupg.Decrypt(ctx, bytes.NewReader(msg), path.opts(t))
			if err != nil {
				t.Fatal(err)
			}
			if _, err := io.ReadFull(rc, make([]byte, 1024)); err != nil {
				t.Fatal(err)
			}
			cancel()
			_, readErr := io.ReadAll(rc)
			closeErr := rc.Close()
			if readErr == nil || closeErr == nil {
				t.Fatalf("after cancel: read %v, close %v", readErr, closeErr)
			}
			if !errors.Is(readErr, context.Canceled) {
				t.Errorf("read error %v does not wrap context.Canceled", readErr)
			}
		})
	}
}

func TestDecryptAMessageForAnotherKeyNamesItsKeyID(t *testing.T) {
	keyring(t)
	stranger, err := strangerKey()
	if err != nil {
		t.Fatal(err)
	}
	msg := encrypt(t, stranger, []byte("not for us"))
	subkeyID := fmt.Sprintf("%016X", stranger.Subkeys[0].PublicKey.KeyId)
	for _, path := range johnPaths(t) {
		t.Run(path.name, func(t *testing.T) {
			_, _, err := decryptAll(t, msg, path.opts(t))
			if err == nil {
				t.Fatal("no error")
			}
			t.Logf("error: %v", err)
			for _, want := range []string{subkeyID, "can decrypt this message", "--export-secret-keys"} {
				if !strings.Contains(err.Error(), want) {
					t.Errorf("error %q does not say %q", err, want)
				}
			}
			if path.name == "GnuPG" && !strings.Contains(err.Error(), "gpg --import") {
				t.Errorf("error %q does not say how to import the secret key", err)
			}
		})
	}
}

func TestDecryptRefusesWhatIsNotAnEncryptedMessage(t *testing.T) {
	plainMessage := gpgRun(t, sharedHome, []byte("not encrypted"), "--store")
	for _, tc := range []struct {
		name string
		in   []byte
		want string
	}{
		{"unencrypted OpenPGP message", plainMessage, "not encrypted"},
		{"text", []byte("hello, world\n"), "not"},
		{"empty", nil, "not"},
	} {
		for _, path := range johnPaths(t) {
			t.Run(path.name+"/"+tc.name, func(t *testing.T) {
				checkFails(t, tc.in, path.opts(t), tc.want)
			})
		}
	}
}

func TestDecryptWithABadSecretKeyFileSaysWhatToExport(t *testing.T) {
	k := keyring(t)
	msg := encrypt(t, entity(t, k.john), []byte("backup"))
	for _, tc := range []struct {
		name    string
		content []byte
		want    string
	}{
		{"public key", k.johnPublic, "holds no secret key"},
		{"text", []byte("secret\n"), "gpg --export-secret-keys"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			checkFails(t, msg, gnupg.DecryptOptions{SecretKeyFile: writeFile(t, "key", tc.content)}, tc.want)
		})
	}
	checkFails(t, msg, gnupg.DecryptOptions{SecretKeyFile: "/nonexistent/secret.asc"}, "no such file")
}

func TestDecryptWithoutGPGSaysHowToInstallIt(t *testing.T) {
	t.Setenv("PATH", t.TempDir())
	_, err := gnupg.Decrypt(context.Background(), strings.NewReader("x"), gnupg.DecryptOptions{})
	if err == nil || !strings.Contains(err.Error(), "not installed") || !strings.Contains(err.Error(), "secret key file") {
		t.Fatalf("error %v does not say that gpg is missing and a secret key file would do", err)
	}
}
