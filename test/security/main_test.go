// Package security plays the attackers of the threat model in
// docs/SECURITY.md against Trustee as it runs: the kts binary built for the
// test run, its PostgreSQL, and outside tools (openssl s_client, pg_dump,
// gpg) on 127.0.0.1. Each test names the threat it checks; the table in
// docs/SECURITY.md names the test.
//
// Most tests share one server (shared), each with organizations and clients
// of its own; tests that need a server configured otherwise start their own.
// Every secret a test hands the server (auth codes, deposits, session
// tokens, nonces, signatures, PINs) is remembered, and when the tests end the
// shared server's log, its PostgreSQL's log and its metrics are searched for
// all of them (see sweepShared).
package security

import (
	"bytes"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"testing"

	"trustee.dev/trustee/test/harness"
)

func TestMain(m *testing.M) {
	code := m.Run()
	if err := sweepShared(); err != nil {
		fmt.Fprintln(os.Stderr, "FAIL:", err)
		if code == 0 {
			code = 1
		}
	}
	if binDir != "" {
		os.RemoveAll(binDir)
	}
	os.Exit(code)
}

// The kts binary is built once per test run, when a test first needs it.
var (
	buildOnce sync.Once
	binDir    string
	buildErr  error
)

// ktsBinary returns the path of the kts binary built for this run.
func ktsBinary(t testing.TB) string {
	t.Helper()
	buildOnce.Do(func() {
		var kts string
		if kts, buildErr = harness.BuildKTS("kts-security-bin-"); buildErr == nil {
			binDir = filepath.Dir(kts)
		}
	})
	if buildErr != nil {
		t.Fatal(buildErr)
	}
	return filepath.Join(binDir, "kts")
}

// result is a finished command.
type result struct {
	stdout, stderr string
	err            error
}

func (r result) String() string {
	return fmt.Sprintf("%v\nstdout: %s\nstderr: %s", r.err, r.stdout, r.stderr)
}

// runCommand runs a command with extra environment entries and stdin.
func runCommand(env []string, stdin string, name string, args ...string) result {
	cmd := exec.Command(name, args...)
	cmd.Env = append(os.Environ(), env...)
	cmd.Stdin = strings.NewReader(stdin)
	var out, errb bytes.Buffer
	cmd.Stdout, cmd.Stderr = &out, &errb
	err := cmd.Run()
	return result{out.String(), errb.String(), err}
}

// repoFile returns the path of a file of the repository, from this package's
// directory.
func repoFile(rel string) string { return filepath.Join("..", "..", filepath.FromSlash(rel)) }
