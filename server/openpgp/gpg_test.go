package openpgp

import (
	"bytes"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"testing"
)

// gnupg runs the real gpg binary in a private, throw-away home directory.
type gnupg struct {
	home string
}

var (
	sharedGPGOnce sync.Once
	sharedGPG     *gnupg
	sharedGPGErr  error
)

// TestMain stops the gpg-agent of the shared home and removes it.
func TestMain(m *testing.M) {
	code := m.Run()
	if sharedGPG != nil {
		sharedGPG.close()
	}
	os.Exit(code)
}

// newGnuPG makes a home directory with a short path (gpg-agent's socket
// lives there) and lets gpg run without prompts or passphrases.
func newGnuPG() (*gnupg, error) {
	if _, err := exec.LookPath("gpg"); err != nil {
		return nil, err
	}
	home, err := os.MkdirTemp("", "kts-gpg-")
	if err != nil {
		return nil, err
	}
	if err := os.Chmod(home, 0o700); err != nil {
		return nil, err
	}
	return &gnupg{home: home}, nil
}

// gpgHome returns a gpg home shared by the tests of this binary, so keys that
// are slow to make (RSA) are made once.
func gpgHome(t testing.TB) *gnupg {
	t.Helper()
	sharedGPGOnce.Do(func() { sharedGPG, sharedGPGErr = newGnuPG() })
	if sharedGPGErr != nil {
		t.Fatalf("gpg is not usable: %v (`make test` installs GnuPG)", sharedGPGErr)
	}
	return sharedGPG
}

func (g *gnupg) close() {
	exec.Command("gpgconf", "--homedir", g.home, "--kill", "all").Run()
	os.RemoveAll(g.home)
}

// run runs gpg with args, feeding stdin, and returns its standard output.
func (g *gnupg) run(t testing.TB, stdin []byte, args ...string) []byte {
	t.Helper()
	out, errOut, err := g.try(stdin, args...)
	if err != nil {
		t.Fatalf("gpg %s: %v\n%s", strings.Join(args, " "), err, errOut)
	}
	return out
}

func (g *gnupg) try(stdin []byte, args ...string) (stdout, stderr []byte, err error) {
	base := []string{"--homedir", g.home, "--batch", "--no-tty", "--pinentry-mode", "loopback", "--passphrase", ""}
	cmd := exec.Command("gpg", append(base, args...)...)
	cmd.Stdin = bytes.NewReader(stdin)
	var o, e bytes.Buffer
	cmd.Stdout, cmd.Stderr = &o, &e
	err = cmd.Run()
	return o.Bytes(), e.Bytes(), err
}

// genKey runs gpg --quick-gen-key with uid and the extra arguments (algo,
// usage, expire; and any options before them) and returns the fingerprint.
func (g *gnupg) genKey(t testing.TB, uid string, opts []string, args ...string) string {
	t.Helper()
	g.run(t, nil, append(append(opts, "--quick-gen-key", uid), args...)...)
	return g.fingerprint(t, uid)
}

// fingerprint returns the primary key fingerprint of the key with user ID uid.
func (g *gnupg) fingerprint(t testing.TB, uid string) string {
	t.Helper()
	out := g.run(t, nil, "--with-colons", "--list-keys", "="+uid)
	for _, line := range strings.Split(string(out), "\n") {
		if f := strings.Split(line, ":"); f[0] == "fpr" && len(f) > 9 {
			return f[9]
		}
	}
	t.Fatalf("no fingerprint for %q in:\n%s", uid, out)
	return ""
}

// revoke imports the revocation certificate gpg made with the key.
func (g *gnupg) revoke(t testing.TB, fpr string) {
	t.Helper()
	rev, err := os.ReadFile(filepath.Join(g.home, "openpgp-revocs.d", fpr+".rev"))
	if err != nil {
		t.Fatal(err)
	}
	// gpg guards the certificate against accidental import with a colon.
	rev = bytes.Replace(rev, []byte(":-----BEGIN"), []byte("-----BEGIN"), 1)
	g.run(t, rev, "--import")
}

// gpgKeys are the keys made with gpg, once per test binary.
type gpgKeys struct {
	g                                              *gnupg
	rsaDefault, ed, subSign, rsa1024, dsa, expired string
	revoked, noSign                                string
}

var (
	gpgKeysOnce sync.Once
	gpgKeysVal  *gpgKeys
)

func gpgMadeKeys(t testing.TB) *gpgKeys {
	t.Helper()
	g := gpgHome(t)
	gpgKeysOnce.Do(func() {
		k := &gpgKeys{g: g}
		k.rsaDefault = g.genKey(t, "Default <default@example.org>", nil)
		k.ed = g.genKey(t, "Ed <ed@example.org>", nil, "ed25519", "sign", "never")
		k.subSign = g.genKey(t, "Sub <sub@example.org>", nil, "ed25519", "cert", "never")
		g.run(t, nil, "--quick-add-key", k.subSign, "ed25519", "sign", "never")
		g.run(t, nil, "--quick-add-key", k.subSign, "cv25519", "encr", "never")
		k.rsa1024 = g.genKey(t, "Weak <weak@example.org>", nil, "rsa1024", "sign", "never")
		k.dsa = g.genKey(t, "DSA <dsa@example.org>", nil, "dsa2048", "sign", "never")
		k.expired = g.genKey(t, "Old <old@example.org>", []string{"--faked-system-time", "20200101T000000!"}, "ed25519", "sign", "1d")
		k.revoked = g.genKey(t, "Revoked <revoked@example.org>", nil, "ed25519", "sign", "never")
		g.revoke(t, k.revoked)
		k.noSign = g.genKey(t, "NoSign <nosign@example.org>", nil, "ed25519", "cert", "never")
		g.run(t, nil, "--quick-add-key", k.noSign, "cv25519", "encr", "never")
		gpgKeysVal = k
	})
	if gpgKeysVal == nil {
		t.Fatal("making gpg keys failed earlier")
	}
	return gpgKeysVal
}

func (k *gpgKeys) export(t testing.TB, armored bool, fprs ...string) []byte {
	args := []string{"--export"}
	if armored {
		args = []string{"--armor", "--export"}
	}
	out := k.g.run(t, nil, append(args, fprs...)...)
	if len(out) == 0 {
		t.Fatalf("gpg exported nothing for %v", fprs)
	}
	return out
}

func TestGPGKeysParse(t *testing.T) {
	k := gpgMadeKeys(t)
	for _, tc := range []struct {
		name, fpr, idPrefix string
	}{
		{"default rsa3072", k.rsaDefault, "3072R/"},
		{"ed25519 sign", k.ed, "255E/"},
		{"signing subkey", k.subSign, "255E/"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			for _, armored := range []bool{true, false} {
				p, err := ParsePublic(k.export(t, armored, tc.fpr))
				if err != nil {
					t.Fatalf("armored=%v: %v", armored, err)
				}
				if p.Fingerprint() != tc.fpr {
					t.Errorf("fingerprint %s, want %s", p.Fingerprint(), tc.fpr)
				}
				if want := tc.idPrefix + tc.fpr; p.ID() != want {
					t.Errorf("ID %s, want %s", p.ID(), want)
				}
			}
		})
	}
}

func TestGPGSignaturesVerify(t *testing.T) {
	k := gpgMadeKeys(t)
	msg := []byte("KTS-PGP-V1\nGET\n/v1/deposits\n\n1700000000\nnonce-nonce-nonce-1\ne3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855")
	for _, tc := range []struct {
		name, fpr string
		args      []string
	}{
		{"default rsa3072", k.rsaDefault, nil},
		{"ed25519", k.ed, nil},
		{"signing subkey", k.subSign, nil},
		{"armored", k.ed, []string{"--armor"}},
		{"textmode", k.ed, []string{"--textmode"}},
		{"sha512", k.rsaDefault, []string{"--digest-algo", "SHA512"}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			p, err := ParsePublic(k.export(t, true, tc.fpr))
			if err != nil {
				t.Fatal(err)
			}
			sig := k.g.run(t, msg, append(tc.args, "--local-user", tc.fpr, "--detach-sign")...)
			if err := p.VerifyDetached(msg, sig); err != nil {
				t.Fatalf("gpg signature rejected: %v", err)
			}
			if err := p.VerifyDetached(append(msg, 'x'), sig); !errorsIs(err, ErrBadSignature) {
				t.Fatalf("signature over other data: got %v, want ErrBadSignature", err)
			}
		})
	}

	t.Run("sha1 refused", func(t *testing.T) {
		p, err := ParsePublic(k.export(t, true, k.ed))
		if err != nil {
			t.Fatal(err)
		}
		sig := k.g.run(t, msg, "--local-user", k.ed, "--digest-algo", "SHA1", "--detach-sign")
		if err := p.VerifyDetached(msg, sig); !errorsIs(err, ErrBadSignature) {
			t.Fatalf("SHA-1 signature: got %v, want ErrBadSignature", err)
		}
	})

	t.Run("other key", func(t *testing.T) {
		p, err := ParsePublic(k.export(t, true, k.ed))
		if err != nil {
			t.Fatal(err)
		}
		sig := k.g.run(t, msg, "--local-user", k.subSign, "--detach-sign")
		if err := p.VerifyDetached(msg, sig); !errorsIs(err, ErrBadSignature) {
			t.Fatalf("signature by another key: got %v, want ErrBadSignature", err)
		}
	})
}

func TestGPGKeysRefused(t *testing.T) {
	k := gpgMadeKeys(t)
	for _, tc := range []struct {
		name string
		data func(t *testing.T) []byte
		want error
		text string
	}{
		{"rsa1024", func(t *testing.T) []byte { return k.export(t, true, k.rsa1024) }, ErrWeakKey, "RSA 1024 bits"},
		{"dsa", func(t *testing.T) []byte { return k.export(t, true, k.dsa) }, ErrWeakKey, "DSA"},
		{"expired", func(t *testing.T) []byte { return k.export(t, true, k.expired) }, ErrInvalidKey, "expired"},
		{"revoked", func(t *testing.T) []byte { return k.export(t, true, k.revoked) }, ErrInvalidKey, "revoked"},
		{"cannot sign", func(t *testing.T) []byte { return k.export(t, true, k.noSign) }, ErrInvalidKey, "cannot sign"},
		{"two keys", func(t *testing.T) []byte { return k.export(t, true, k.ed, k.subSign) }, ErrInvalidKey, "more than one key"},
		{"two keys binary", func(t *testing.T) []byte { return k.export(t, false, k.ed, k.subSign) }, ErrInvalidKey, "more than one key"},
		{"two armored blocks", func(t *testing.T) []byte {
			return append(k.export(t, true, k.ed), k.export(t, true, k.subSign)...)
		}, ErrInvalidKey, "more than one armored block"},
		{"private armored", func(t *testing.T) []byte { return k.g.run(t, nil, "--armor", "--export-secret-keys", k.ed) }, ErrPrivateKey, ""},
		{"private binary", func(t *testing.T) []byte { return k.g.run(t, nil, "--export-secret-keys", k.ed) }, ErrPrivateKey, ""},
		{"truncated armor", func(t *testing.T) []byte {
			a := k.export(t, true, k.rsaDefault)
			return a[:len(a)/2]
		}, ErrInvalidKey, "truncated"},
		{"truncated binary", func(t *testing.T) []byte {
			b := k.export(t, false, k.rsaDefault)
			return b[:len(b)/2]
		}, ErrInvalidKey, ""},
	} {
		t.Run(tc.name, func(t *testing.T) {
			_, err := ParsePublic(tc.data(t))
			t.Log(err)
			if !errorsIs(err, tc.want) {
				t.Fatalf("got %v, want %v", err, tc.want)
			}
			if !strings.Contains(err.Error(), tc.text) {
				t.Errorf("error %q does not mention %q", err, tc.text)
			}
		})
	}
}

// TestGPGAcceptsOurKeys checks that gpg imports our public keys and verifies
// our signatures, and that we read gpg's re-export of them.
func TestGPGAcceptsOurKeys(t *testing.T) {
	g := gpgHome(t)
	msg := []byte("a canonical request\nwith two lines")
	for _, kt := range []KeyType{Ed25519, RSA4096} {
		t.Run(string(kt), func(t *testing.T) {
			k := testKey(t, kt)
			fpr := k.Public().Fingerprint()
			g.run(t, k.Public().Armor(), "--import")
			sig, err := k.SignDetached(msg)
			if err != nil {
				t.Fatal(err)
			}
			dir := t.TempDir()
			msgFile, sigFile := filepath.Join(dir, "msg"), filepath.Join(dir, "msg.sig")
			os.WriteFile(msgFile, msg, 0o600)
			os.WriteFile(sigFile, sig, 0o600)
			status := string(g.run(t, nil, "--status-fd", "1", "--verify", sigFile, msgFile))
			// VALIDSIG <signing key fpr> <date> <ts> <expire> <ver> <rsvd> <pk algo> <hash algo> <class> <primary fpr>
			if !strings.Contains(status, "[GNUPG:] GOODSIG ") {
				t.Fatalf("gpg did not report a good signature:\n%s", status)
			}
			var valid []string
			for _, line := range strings.Split(status, "\n") {
				if f := strings.Fields(line); len(f) > 2 && f[1] == "VALIDSIG" {
					valid = f
				}
			}
			if len(valid) < 12 || valid[len(valid)-1] != fpr || valid[9] != "8" || valid[10] != "00" {
				t.Fatalf("want VALIDSIG by %s with hash 8 (SHA-256) and class 00, got %v", fpr, valid)
			}
			// gpg refuses a signature over other data.
			os.WriteFile(msgFile, append(msg, '!'), 0o600)
			if _, _, err := g.try(nil, "--verify", sigFile, msgFile); err == nil {
				t.Fatal("gpg accepted a signature over other data")
			}
			// What gpg exports back parses to the same key.
			p, err := ParsePublic(g.run(t, nil, "--armor", "--export", fpr))
			if err != nil {
				t.Fatal(err)
			}
			if p.ID() != k.Public().ID() {
				t.Fatalf("re-exported key %s, want %s", p.ID(), k.Public().ID())
			}
		})
	}
}

// TestGPGPrivateKeyReads checks that ReadPrivate takes a key exported by gpg
// and that gpg verifies what it signs.
func TestGPGPrivateKeyReads(t *testing.T) {
	k := gpgMadeKeys(t)
	priv, err := ReadPrivate(k.g.run(t, nil, "--armor", "--export-secret-keys", k.subSign))
	if err != nil {
		t.Fatal(err)
	}
	if priv.Public().Fingerprint() != k.subSign {
		t.Fatalf("fingerprint %s, want %s", priv.Public().Fingerprint(), k.subSign)
	}
	msg := []byte("signed with the signing subkey")
	sig, err := priv.SignDetached(msg)
	if err != nil {
		t.Fatal(err)
	}
	if err := priv.Public().VerifyDetached(msg, sig); err != nil {
		t.Fatal(err)
	}
	dir := t.TempDir()
	os.WriteFile(filepath.Join(dir, "m"), msg, 0o600)
	os.WriteFile(filepath.Join(dir, "m.sig"), sig, 0o600)
	k.g.run(t, nil, "--verify", filepath.Join(dir, "m.sig"), filepath.Join(dir, "m"))
}

func TestGPGPassphraseProtectedKey(t *testing.T) {
	g := gpgHome(t)
	uid := "Protected <protected@example.org>"
	g.run(t, nil, "--passphrase", "secret", "--quick-gen-key", uid, "ed25519", "sign", "never")
	fpr := g.fingerprint(t, uid)
	armored := g.run(t, nil, "--passphrase", "secret", "--armor", "--export-secret-keys", fpr)
	_, err := ReadPrivate(armored)
	if !errorsIs(err, ErrInvalidKey) || !strings.Contains(err.Error(), "passphrase") {
		t.Fatalf("got %v, want ErrInvalidKey about the passphrase", err)
	}
}
