package mailpittest

import (
	"fmt"
	"os"
	"path/filepath"
	"sync"
	"testing"

	"trustee.dev/trustee/test/toolcache"
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
		if err := toolcache.IsExecutable(p); err != nil {
			return "", fmt.Errorf("$%s: %w", EnvBinary, err)
		}
		return p, nil
	}
	root, err := toolcache.RepoRoot("hack/mailpit/go.mod")
	if err != nil {
		return "", fmt.Errorf("%w (or set $%s to a mailpit binary)", err, EnvBinary)
	}
	version, err := toolcache.WrapperVersion(filepath.Join(root, "hack", "mailpit", "go.mod"), mailpitModule)
	if err != nil {
		return "", err
	}
	if p, err := CachePath(version); err == nil && toolcache.IsExecutable(p) == nil {
		return p, nil
	}
	t.Logf("mailpittest: building mailpit %s with hack/build-mailpit.sh (a few minutes, once; the binary is cached)", version)
	p, err := toolcache.RunScript(root, "build-mailpit.sh")
	if err != nil {
		return "", err
	}
	if err := toolcache.IsExecutable(p); err != nil {
		return "", fmt.Errorf("hack/build-mailpit.sh printed %q: %w", p, err)
	}
	return p, nil
}

// CachePath is where hack/build-mailpit.sh puts mailpit version:
// ${XDG_CACHE_HOME:-$HOME/.cache}/trustee/mailpit-<version>/mailpit.
func CachePath(version string) (string, error) {
	dir, err := toolcache.Dir("mailpit-" + version)
	if err != nil {
		return "", err
	}
	return filepath.Join(dir, "mailpit"), nil
}
