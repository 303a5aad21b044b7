package gnupg_test

import (
	"archive/tar"
	"bytes"
	"compress/gzip"
	"testing"

	"trustee.dev/trustee/server/gnupg"
)

// tarArchive returns a small tar archive, as a backup before encryption.
func tarArchive(t testing.TB, name string) []byte {
	t.Helper()
	var buf bytes.Buffer
	tw := tar.NewWriter(&buf)
	content := []byte("keytrustee database dump\n")
	if err := tw.WriteHeader(&tar.Header{Name: name, Mode: 0o600, Size: int64(len(content))}); err != nil {
		t.Fatal(err)
	}
	tw.Write(content)
	if err := tw.Close(); err != nil {
		t.Fatal(err)
	}
	return buf.Bytes()
}

func TestIsEncryptedTellsOpenPGPMessagesFromOtherFiles(t *testing.T) {
	k := keyring(t)
	archive := tarArchive(t, "keytrustee/db.sql")
	var gz bytes.Buffer
	zw := gzip.NewWriter(&gz)
	zw.Write(archive)
	zw.Close()
	gpgWith := func(args ...string) []byte {
		return gpgRun(t, sharedHome, archive, append(append(loopback("passphrase"), "--trust-model", "always"), args...)...)
	}

	for _, tc := range []struct {
		name string
		data []byte
		want bool
	}{
		{"Encrypt", encrypt(t, entity(t, k.john), archive), true},
		{"Encrypt, Curve25519", encrypt(t, entity(t, k.richard), archive), true},
		{"gpg --encrypt", gpgWith("--encrypt", "--recipient", k.john), true},
		{"gpg --encrypt, two recipients", gpgWith("--encrypt", "--recipient", k.john, "--recipient", k.richard), true},
		{"gpg --encrypt --armor", gpgWith("--encrypt", "--armor", "--recipient", k.john), true},
		{"gpg --symmetric", gpgWith("--symmetric"), true},
		{"gpg --store (literal data)", gpgWith("--store"), true},
		{"gpg --sign (compressed)", gpgWith("--local-user", k.john, "--sign"), true},

		{"tar", archive, false},
		{"tar with a UTF-8 name", tarArchive(t, "sauvegardé/é.sql"), false},
		{"gzip", gz.Bytes(), false},
		{"text", []byte("Key Trustee backup\n"), false},
		{"empty", nil, false},
		{"one byte", []byte{0x85}, false},
		{"binary public key", k.johnPublicBinary, false},
		{"armored public key", k.johnPublic, false},
		{"binary secret key", k.johnSecretBinary, false},
		{"zeros", make([]byte, 1024), false},
	} {
		if got := gnupg.IsEncrypted(tc.data); got != tc.want {
			t.Errorf("IsEncrypted(%s) = %v, want %v (first bytes % x)", tc.name, got, tc.want, tc.data[:min(len(tc.data), 16)])
		}
		if len(tc.data) > 512 && gnupg.IsEncrypted(tc.data[:512]) != tc.want {
			t.Errorf("IsEncrypted(first 512 bytes of %s) != %v", tc.name, tc.want)
		}
	}
}
