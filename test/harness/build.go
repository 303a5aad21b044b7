package harness

import (
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
)

// BuildKTS builds the kts binary into a new temporary directory named
// after prefix, which the PostgreSQL account can read (kts db runs as it
// when the tests run as root), and returns the binary's path; the caller
// removes its directory when done. The error holds go build's output.
func BuildKTS(prefix string) (string, error) {
	dir, err := os.MkdirTemp("", prefix)
	if err != nil {
		return "", err
	}
	if err := os.Chmod(dir, 0o755); err != nil {
		os.RemoveAll(dir)
		return "", err
	}
	bin := filepath.Join(dir, "kts")
	if out, err := exec.Command("go", "build", "-o", bin, "trustee.dev/trustee").CombinedOutput(); err != nil {
		os.RemoveAll(dir)
		return "", fmt.Errorf("go build trustee.dev/trustee: %v\n%s", err, out)
	}
	return bin, nil
}
