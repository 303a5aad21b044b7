// Package hsmtest makes SoftHSM2 tokens for tests: NewToken a fresh token in
// this process's SoftHSM2 token directory, NewRemote a token served by
// `p11-kit server` that a test can stop and start again (an HSM that goes
// away and comes back).
//
// When SoftHSM2 (or, for NewRemote, p11-kit) is not installed, or the binary
// was built without cgo, the test is skipped, unless KTS_REQUIRE_HSM is set:
// then it fails. `make test` installs them (hack/install-test-deps.sh).
//
// SoftHSM2 reads SOFTHSM2_CONF, and looks for tokens, only when the library
// is initialized, and a process initializes it once for as long as any
// hsm.Token on it is open. So all NewToken tokens of a test binary share one
// token directory (its SOFTHSM2_CONF is set for the whole process), and a
// token made while an hsm.Token on SoftHSM2 is open cannot be opened until
// every such Token has been closed: make all the tokens a test needs before
// opening any, and close Tokens at the end of each test.
package hsmtest

import (
	"crypto/rand"
	"encoding/hex"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"sync"
	"testing"

	"trustee.dev/trustee/server/hsm"
)

// SoftHSMModule is the Debian path of SoftHSM2's PKCS#11 library.
const SoftHSMModule = "/usr/lib/softhsm/libsofthsm2.so"

// RequireEnv is the environment variable that turns "skip" into "fail"
// when SoftHSM2 or p11-kit is missing.
const RequireEnv = "KTS_REQUIRE_HSM"

// shared is this process's SoftHSM2 configuration for NewToken.
var shared struct {
	mu       sync.Mutex
	dir      string // holds softhsm2.conf and tokens/
	conf     string
	prevConf *string // SOFTHSM2_CONF before we set it (nil: unset)
	live     int     // tokens not yet cleaned up
	n        int     // tokens made, for labels
}

// envs maps a Config's module and token label to the environment a child
// process needs to reach that token; dirs to the token's SoftHSM2 directory.
var envs, dirs sync.Map

func envKey(c hsm.Config) string { return c.Module + "\x00" + c.TokenLabel }

// Env returns the environment entries ("NAME=value") a child process needs,
// in addition to c, to open the token c names: SOFTHSM2_CONF for NewToken
// tokens, P11_KIT_SERVER_ADDRESS for NewRemote ones. It returns nil for a
// Config this package did not make.
func Env(c hsm.Config) []string {
	v, ok := envs.Load(envKey(c))
	if !ok {
		return nil
	}
	return append([]string(nil), v.([]string)...)
}

// TokenDir returns the directory in which SoftHSM2 keeps the token c names
// (a NewToken or NewRemote one), or "" for a Config this package did not
// make. Moving it away makes the token vanish, as far as SoftHSM2 can tell.
func TokenDir(c hsm.Config) string {
	v, _ := dirs.Load(envKey(c))
	s, _ := v.(string)
	return s
}

// missing skips t (or fails it, if RequireEnv is set) because what is missing.
func missing(t testing.TB, what string) {
	t.Helper()
	if os.Getenv(RequireEnv) != "" {
		t.Fatalf("%s, and %s is set: run hack/install-test-deps.sh (or make deps)", what, RequireEnv)
	}
	t.Skipf("%s: skipping (run hack/install-test-deps.sh, or `make deps`, to install it; set %s=1 to make this a failure)", what, RequireEnv)
}

// needSoftHSM skips or fails t unless PKCS#11 and SoftHSM2 can be used.
func needSoftHSM(t testing.TB) {
	t.Helper()
	if _, err := hsm.Open(hsm.Config{}); errors.Is(err, hsm.ErrNoPKCS11) {
		missing(t, "this test binary was built without cgo, so without PKCS#11")
	}
	if _, err := os.Stat(SoftHSMModule); err != nil {
		missing(t, "SoftHSM2 is not installed (no "+SoftHSMModule+"; Debian package softhsm2)")
	}
	if _, err := exec.LookPath("softhsm2-util"); err != nil {
		missing(t, "softhsm2-util is not installed (Debian package softhsm2)")
	}
}

// secret returns n random bytes in hex.
func secret(n int) string {
	b := make([]byte, n)
	rand.Read(b)
	return hex.EncodeToString(b)
}

// initToken makes a token labelled label in the token directory conf
// names, and returns the token's own directory in it.
func initToken(t testing.TB, conf, label, pin string) string {
	t.Helper()
	tokens := filepath.Join(filepath.Dir(conf), "tokens")
	before, _ := os.ReadDir(tokens)
	had := map[string]bool{}
	for _, e := range before {
		had[e.Name()] = true
	}
	cmd := exec.Command("softhsm2-util", "--init-token", "--free", "--label", label,
		"--so-pin", secret(8), "--pin", pin)
	cmd.Env = append(os.Environ(), "SOFTHSM2_CONF="+conf)
	if out, err := cmd.CombinedOutput(); err != nil {
		t.Fatalf("softhsm2-util --init-token --label %s: %v\n%s", label, err, out)
	}
	after, _ := os.ReadDir(tokens)
	for _, e := range after {
		if !had[e.Name()] {
			return filepath.Join(tokens, e.Name())
		}
	}
	t.Fatalf("softhsm2-util --init-token --label %s made no directory in %s", label, tokens)
	return ""
}

// writeConf writes a SoftHSM2 configuration with its token directory in dir.
func writeConf(t testing.TB, dir string) string {
	t.Helper()
	tokens := filepath.Join(dir, "tokens")
	if err := os.MkdirAll(tokens, 0o700); err != nil {
		t.Fatal(err)
	}
	conf := filepath.Join(dir, "softhsm2.conf")
	text := "directories.tokendir = " + tokens + "\nobjectstore.backend = file\nlog.level = ERROR\nslots.removable = false\n"
	if err := os.WriteFile(conf, []byte(text), 0o600); err != nil {
		t.Fatal(err)
	}
	return conf
}

// NewToken makes a fresh SoftHSM2 token with a new label and a random PIN
// and returns its Config. The first call in a process creates the shared
// token directory and points SOFTHSM2_CONF at it (os.Setenv, for the whole
// process); the token is deleted when t ends, and the directory when no
// token is left. Env(c) gives the SOFTHSM2_CONF entry a child process needs.
func NewToken(t testing.TB) hsm.Config {
	t.Helper()
	needSoftHSM(t)

	shared.mu.Lock()
	defer shared.mu.Unlock()
	if shared.dir == "" {
		dir, err := os.MkdirTemp("", "kts-softhsm-")
		if err != nil {
			t.Fatal(err)
		}
		shared.dir = dir
		shared.conf = writeConf(t, dir)
		if prev, ok := os.LookupEnv("SOFTHSM2_CONF"); ok {
			shared.prevConf = &prev
		} else {
			shared.prevConf = nil
		}
		os.Setenv("SOFTHSM2_CONF", shared.conf)
	}
	shared.n++
	c := hsm.Config{
		Module:     SoftHSMModule,
		TokenLabel: fmt.Sprintf("kts-test-%d", shared.n),
		PIN:        secret(8),
	}
	conf := shared.conf
	shared.live++
	made := false
	// Registered first, so that it also runs if making the token fails.
	t.Cleanup(func() {
		envs.Delete(envKey(c))
		dirs.Delete(envKey(c))
		var out []byte
		var err error
		if made {
			cmd := exec.Command("softhsm2-util", "--delete-token", "--token", c.TokenLabel)
			cmd.Env = append(os.Environ(), "SOFTHSM2_CONF="+conf)
			out, err = cmd.CombinedOutput()
		}

		shared.mu.Lock()
		defer shared.mu.Unlock()
		shared.live--
		if shared.live == 0 && shared.conf == conf {
			os.RemoveAll(shared.dir)
			if shared.prevConf != nil {
				os.Setenv("SOFTHSM2_CONF", *shared.prevConf)
			} else {
				os.Unsetenv("SOFTHSM2_CONF")
			}
			shared.dir, shared.conf = "", ""
			return
		}
		if err != nil {
			t.Errorf("softhsm2-util --delete-token --token %s: %v\n%s", c.TokenLabel, err, out)
		}
	})
	dirs.Store(envKey(c), initToken(t, conf, c.TokenLabel, c.PIN))
	made = true
	envs.Store(envKey(c), []string{"SOFTHSM2_CONF=" + conf})
	return c
}
