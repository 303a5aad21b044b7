package gnupg_test

import (
	"bytes"
	"context"
	"encoding/hex"
	"fmt"
	"io"
	"math/rand/v2"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/ProtonMail/go-crypto/openpgp"
	"github.com/ProtonMail/go-crypto/openpgp/packet"

	"trustee.dev/trustee/server/gnupg"
)

// The tests run the real gpg in throw-away GnuPG homes. TestMain makes the
// shared home and points GNUPGHOME at it, as the service account's
// environment would; its keys are made once, on first use (see keyring).

var sharedHome string

// homes are the GnuPG homes to remove, and whose gpg-agent to stop, when the
// tests end.
var (
	homesMu sync.Mutex
	homes   []string
)

func TestMain(m *testing.M) { os.Exit(runTests(m)) }

func runTests(m *testing.M) int {
	home, err := newHome()
	if err != nil {
		fmt.Fprintln(os.Stderr, "making a GnuPG home:", err)
		return 1
	}
	sharedHome = home
	defer removeHomes()
	os.Setenv("GNUPGHOME", home)
	// Never let gpg-agent pop up a passphrase prompt in a developer's
	// terminal: tests that need a passphrase give it explicitly.
	os.Unsetenv("GPG_TTY")
	return m.Run()
}

// newHome makes an empty GnuPG home with a short path (gpg-agent's sockets
// may live there) whose gpg-agent cannot prompt for passphrases.
func newHome() (string, error) {
	dir, err := os.MkdirTemp("", "kts-gnupg-")
	if err != nil {
		return "", err
	}
	homesMu.Lock()
	homes = append(homes, dir)
	homesMu.Unlock()
	if err := os.Chmod(dir, 0o700); err != nil {
		return "", err
	}
	return dir, os.WriteFile(filepath.Join(dir, "gpg-agent.conf"), []byte("pinentry-program /bin/false\n"), 0o600)
}

func removeHomes() {
	homesMu.Lock()
	defer homesMu.Unlock()
	for _, h := range homes {
		killAgent(h)
		os.RemoveAll(h)
	}
	homes = nil
}

func killAgent(home string) {
	cmd := exec.Command("gpgconf", "--kill", "all")
	cmd.Env = append(os.Environ(), "GNUPGHOME="+home)
	cmd.Run()
}

// tempHome returns a new GnuPG home removed when the test ends.
func tempHome(t testing.TB) string {
	t.Helper()
	h, err := newHome()
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { killAgent(h); os.RemoveAll(h) })
	return h
}

// cloneHome returns a copy of the shared home's keys in a new home, with the
// given configuration files (name → content), removed when the test ends.
func cloneHome(t testing.TB, conf map[string]string) string {
	t.Helper()
	keyring(t)
	h := tempHome(t)
	for _, name := range []string{"pubring.kbx", "trustdb.gpg", "private-keys-v1.d"} {
		if out, err := exec.Command("cp", "-a", filepath.Join(sharedHome, name), h).CombinedOutput(); err != nil {
			t.Fatalf("copying %s: %v: %s", name, err, out)
		}
	}
	for name, content := range conf {
		if err := os.WriteFile(filepath.Join(h, name), []byte(content), 0o600); err != nil {
			t.Fatal(err)
		}
	}
	return h
}

// gpgRun runs gpg in home with args, feeding stdin, and returns its standard
// output, or fails the test.
func gpgRun(t testing.TB, home string, stdin []byte, args ...string) []byte {
	t.Helper()
	out, errOut, err := gpgTry(home, stdin, args...)
	if err != nil {
		t.Fatalf("gpg %s: %v\n%s", strings.Join(args, " "), err, errOut)
	}
	return out
}

func gpgTry(home string, stdin []byte, args ...string) (stdout, stderr []byte, err error) {
	cmd := exec.Command("gpg", append([]string{"--homedir", home, "--batch", "--no-tty"}, args...)...)
	cmd.Stdin = bytes.NewReader(stdin)
	var o, e bytes.Buffer
	cmd.Stdout, cmd.Stderr = &o, &e
	err = cmd.Run()
	return o.Bytes(), e.Bytes(), err
}

// loopback are gpg options that take the passphrase from the command line.
func loopback(passphrase string) []string {
	return []string{"--pinentry-mode", "loopback", "--passphrase", passphrase}
}

// richardPassphrase protects Richard Doe's secret key.
const richardPassphrase = "correct horse battery staple"

// testKeys are the keys made with gpg in the shared home, once per test
// binary.
type testKeys struct {
	john, johnSub          string // John Doe: RSA 2048 primary key [SC], RSA 2048 subkey [E]
	richard, richardSub    string // Richard Doe: Ed25519 [SC], Cv25519 [E], protected by richardPassphrase
	old, signOnly, revoked string // expired in 2020; RSA without encryption subkey; revoked

	johnSecret       []byte // armored, unprotected
	johnSecretBinary []byte // binary, unprotected
	richardSecret    []byte // armored, protected by richardPassphrase

	johnPublic, richardPublic, bothPublic []byte // armored: John's, Richard's, both in one block
	johnPublicBinary                      []byte
}

var (
	keysOnce sync.Once
	keys     *testKeys
	keysErr  error
)

// keyring returns the keys of the shared home, making them on first use.
func keyring(t testing.TB) *testKeys {
	t.Helper()
	keysOnce.Do(func() { keys, keysErr = makeKeys(sharedHome) })
	if keysErr != nil {
		t.Fatalf("making test keys with gpg (is GnuPG installed?): %v", keysErr)
	}
	return keys
}

func makeKeys(home string) (*testKeys, error) {
	var failed error
	run := func(stdin []byte, args ...string) []byte {
		if failed != nil {
			return nil
		}
		out, errOut, err := gpgTry(home, stdin, args...)
		if err != nil {
			failed = fmt.Errorf("gpg %s: %v: %s", strings.Join(args, " "), err, errOut)
		}
		return out
	}
	noPass := loopback("")
	gen := func(opts []string, uid string, args ...string) {
		run(nil, append(append(opts, "--quick-gen-key", uid), args...)...)
	}

	// The Cloudera documentation's kind of key: RSA, and an RSA encryption
	// subkey (quick-gen-key with an explicit algorithm makes no subkey).
	gen(noPass, "John Doe (Key Trustee Backup) <john.doe@example.com>", "rsa2048", "default", "never")
	gen(loopback(richardPassphrase), "Richard Doe <richard.doe@example.com>", "future-default", "default", "never")
	gen(append([]string{"--faked-system-time", "20200101T000000"}, noPass...), "Old Key <old@example.com>", "future-default", "default", "1d")
	gen(noPass, "Sign Only <sign.only@example.com>", "rsa2048", "default", "never")
	gen(noPass, "Revoked Key <revoked@example.com>", "future-default", "default", "never")
	if failed != nil {
		return nil, failed
	}
	fprs := func(uid string) (primary, sub string) {
		out := run(nil, "--with-colons", "--list-keys", "="+uid)
		inSub := false
		for _, line := range strings.Split(string(out), "\n") {
			f := strings.Split(line, ":")
			switch {
			case f[0] == "sub":
				inSub = true
			case f[0] == "fpr" && len(f) > 9 && !inSub && primary == "":
				primary = f[9]
			case f[0] == "fpr" && len(f) > 9 && inSub && sub == "":
				sub = f[9]
			}
		}
		if primary == "" && failed == nil {
			failed = fmt.Errorf("no fingerprint for %q in:\n%s", uid, out)
		}
		return primary, sub
	}
	k := &testKeys{}
	k.john, k.johnSub = fprs("John Doe (Key Trustee Backup) <john.doe@example.com>")
	run(nil, append(noPass, "--quick-add-key", k.john, "rsa2048", "encr", "never")...)
	_, k.johnSub = fprs("John Doe (Key Trustee Backup) <john.doe@example.com>")
	k.richard, k.richardSub = fprs("Richard Doe <richard.doe@example.com>")
	k.old, _ = fprs("Old Key <old@example.com>")
	k.signOnly, _ = fprs("Sign Only <sign.only@example.com>")
	k.revoked, _ = fprs("Revoked Key <revoked@example.com>")
	if failed != nil {
		return nil, failed
	}
	rev, err := os.ReadFile(filepath.Join(home, "openpgp-revocs.d", k.revoked+".rev"))
	if err != nil {
		return nil, err
	}
	// gpg guards the certificate against accidental import with a colon.
	run(bytes.Replace(rev, []byte(":-----BEGIN"), []byte("-----BEGIN"), 1), "--import")

	k.johnSecret = run(nil, append(noPass, "--armor", "--export-secret-keys", k.john)...)
	k.johnSecretBinary = run(nil, append(noPass, "--export-secret-keys", k.john)...)
	k.richardSecret = run(nil, append(loopback(richardPassphrase), "--armor", "--export-secret-keys", k.richard)...)
	k.johnPublic = run(nil, "--armor", "--export", k.john)
	k.johnPublicBinary = run(nil, "--export", k.john)
	k.bothPublic = run(nil, "--armor", "--export", k.john, k.richard)
	k.richardPublic = run(nil, "--armor", "--export", k.richard)
	if failed != nil {
		return nil, failed
	}
	if k.johnSub == "" || k.richardSub == "" {
		return nil, fmt.Errorf("missing encryption subkeys: John %q, Richard %q", k.johnSub, k.richardSub)
	}
	// Forget the passphrases gpg-agent cached while exporting, so that
	// decrypting with GnuPG must ask for them.
	killAgent(home)
	return k, nil
}

// keyID returns the long key ID (last 16 hex digits) of a v4 fingerprint.
func keyID(fpr string) string { return fpr[len(fpr)-16:] }

// entity returns the key with fingerprint fpr from the shared keyring, as
// PublicKeys finds it.
func entity(t testing.TB, fpr string) *openpgp.Entity {
	t.Helper()
	e, err := gnupg.FindRecipient(publicKeys(t), fpr, time.Now())
	if err != nil {
		t.Fatal(err)
	}
	return e
}

// publicKeys returns the keys of the shared keyring, as PublicKeys finds them.
func publicKeys(t testing.TB) openpgp.EntityList {
	t.Helper()
	keyring(t)
	el, err := gnupg.PublicKeys(context.Background(), "")
	if err != nil {
		t.Fatal(err)
	}
	return el
}

// findByFingerprint returns the key of el with primary key fingerprint fpr,
// or nil.
func findByFingerprint(el openpgp.EntityList, fpr string) *openpgp.Entity {
	for _, e := range el {
		if strings.EqualFold(hex.EncodeToString(e.PrimaryKey.Fingerprint), fpr) {
			return e
		}
	}
	return nil
}

// encrypt encrypts data to e with Encrypt.
func encrypt(t testing.TB, e *openpgp.Entity, data []byte) []byte {
	t.Helper()
	var buf bytes.Buffer
	w, err := gnupg.Encrypt(&buf, e, "backup.tar")
	if err != nil {
		t.Fatal(err)
	}
	if _, err := w.Write(data); err != nil {
		t.Fatal(err)
	}
	if err := w.Close(); err != nil {
		t.Fatal(err)
	}
	return buf.Bytes()
}

// randomData returns n pseudo-random bytes, the same for the same seed.
func randomData(n int, seed uint64) []byte {
	b := make([]byte, n)
	r := rand.NewChaCha8([32]byte{byte(seed), byte(seed >> 8)})
	r.Read(b)
	return b
}

// bigData is a few MB of data, as a small backup.
var bigData = sync.OnceValue(func() []byte { return randomData(3<<20+12345, 1) })

// writeFile writes content to a new file in the test's temporary directory.
func writeFile(t testing.TB, name string, content []byte) string {
	t.Helper()
	p := filepath.Join(t.TempDir(), name)
	if err := os.WriteFile(p, content, 0o600); err != nil {
		t.Fatal(err)
	}
	return p
}

// strangerKey is a key that no GnuPG home of these tests holds, made with
// go-crypto.
var strangerKey = sync.OnceValues(func() (*openpgp.Entity, error) {
	return openpgp.NewEntity("Stranger", "", "stranger@example.net", &packet.Config{Algorithm: packet.PubKeyAlgoEdDSA})
})

// decryptAll decrypts msg with opts and returns the plaintext, the error of
// reading it and the error of Close. The error of Decrypt itself is
// returned as the read error.
func decryptAll(t testing.TB, msg []byte, opts gnupg.DecryptOptions) (plain []byte, readErr, closeErr error) {
	t.Helper()
	rc, err := gnupg.Decrypt(context.Background(), bytes.NewReader(msg), opts)
	if err != nil {
		return nil, err, err
	}
	plain, readErr = io.ReadAll(rc)
	return plain, readErr, rc.Close()
}
