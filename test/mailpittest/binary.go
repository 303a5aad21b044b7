package mailpittest

import (
	"bytes"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"testing"
)

// EnvBinary names the environment variable that, when set, is the path of
// the mailpit binary to run; nothing is built then.
const EnvBinary = "KTS_MAILPIT"

const mailpitModule = "github.com/axllent/mailpit"

var (
	binaryOnce sync.Once
	binaryPath string
	binaryErr  error
)

// Binary returns the path of the mailpit binary, building it with
// hack/build-mailpit.sh when the cache has not got it (that takes minutes
// once; later calls are quick). It fails the test when there is none to be
// had: mail tests never skip silently.
func Binary(t testing.TB) string {
	t.Helper()
	binaryOnce.Do(func() { binaryPath, binaryErr = findBinary(t) })
	if binaryErr != nil {
		t.Fatalf("mailpittest: no mailpit binary: %v", binaryErr)
	}
	return binaryPath
}

// findBinary looks at $KTS_MAILPIT, then at the cache that
// hack/build-mailpit.sh fills, and last runs that script.
func findBinary(t testing.TB) (string, error) {
	if p := os.Getenv(EnvBinary); p != "" {
		if err := isExecutable(p); err != nil {
			return "", fmt.Errorf("$%s: %w", EnvBinary, err)
		}
		return p, nil
	}
	root, err := repoRoot()
	if err != nil {
		return "", fmt.Errorf("%w (or set $%s to a mailpit binary)", err, EnvBinary)
	}
	version, err := wrapperVersion(filepath.Join(root, "hack", "mailpit", "go.mod"))
	if err != nil {
		return "", err
	}
	if p, err := CachePath(version); err == nil && isExecutable(p) == nil {
		return p, nil
	}
	script := filepath.Join(root, "hack", "build-mailpit.sh")
	t.Logf("mailpittest: building mailpit %s with %s (a few minutes, once; the binary is cached)", version, script)
	cmd := exec.Command("bash", script)
	cmd.Dir = root
	var stdout, stderr bytes.Buffer
	cmd.Stdout, cmd.Stderr = &stdout, &stderr
	if err := cmd.Run(); err != nil {
		return "", fmt.Errorf("%s: %v\n%s", script, err, tail(stderr.String(), 40))
	}
	lines := strings.Split(strings.TrimSpace(stdout.String()), "\n")
	p := strings.TrimSpace(lines[len(lines)-1])
	if err := isExecutable(p); err != nil {
		return "", fmt.Errorf("%s printed %q: %w", script, p, err)
	}
	return p, nil
}

// CachePath is where hack/build-mailpit.sh puts mailpit version:
// ${XDG_CACHE_HOME:-$HOME/.cache}/trustee/mailpit-<version>/mailpit.
func CachePath(version string) (string, error) {
	dir, err := os.UserCacheDir()
	if err != nil {
		return "", err
	}
	return filepath.Join(dir, "trustee", "mailpit-"+version, "mailpit"), nil
}

// repoRoot finds the repository holding hack/mailpit/go.mod, from the
// working directory (go test runs a test in its package's directory) up.
func repoRoot() (string, error) {
	dir, err := os.Getwd()
	if err != nil {
		return "", err
	}
	for {
		if _, err := os.Stat(filepath.Join(dir, "hack", "mailpit", "go.mod")); err == nil {
			return dir, nil
		}
		parent := filepath.Dir(dir)
		if parent == dir {
			return "", errors.New("hack/mailpit/go.mod not found above the working directory")
		}
		dir = parent
	}
}

// wrapperVersion reads the mailpit version that the wrapper module requires,
// as hack/build-mailpit.sh does.
func wrapperVersion(gomod string) (string, error) {
	b, err := os.ReadFile(gomod)
	if err != nil {
		return "", err
	}
	for _, line := range strings.Split(string(b), "\n") {
		f := strings.Fields(line)
		for i := 0; i+1 < len(f); i++ {
			if f[i] == mailpitModule && strings.HasPrefix(f[i+1], "v") {
				return f[i+1], nil
			}
		}
	}
	return "", fmt.Errorf("%s requires no version of %s", gomod, mailpitModule)
}

func isExecutable(p string) error {
	fi, err := os.Stat(p)
	if err != nil {
		return err
	}
	if fi.IsDir() || fi.Mode()&0o111 == 0 {
		return fmt.Errorf("%s is not an executable file", p)
	}
	return nil
}

// tail returns the last n lines of s.
func tail(s string, n int) string {
	lines := strings.Split(strings.TrimRight(s, "\n"), "\n")
	if len(lines) > n {
		lines = lines[len(lines)-n:]
	}
	return strings.Join(lines, "\n")
}
