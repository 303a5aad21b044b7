// Package toolcache finds the test tools that hack/build-*.sh build from the
// Go module proxy into ${XDG_CACHE_HOME:-$HOME/.cache}/trustee, and runs
// those scripts when a tool is missing. Each tool's version is the one its
// wrapper module under hack/ requires.
package toolcache

import (
	"bytes"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
)

// RepoRoot finds the repository, from the working directory (go test runs
// a test in its package's directory) up, as the directory holding marker
// (a slash-separated path such as hack/build-helm.sh).
func RepoRoot(marker string) (string, error) {
	dir, err := os.Getwd()
	if err != nil {
		return "", err
	}
	for {
		if _, err := os.Stat(filepath.Join(dir, filepath.FromSlash(marker))); err == nil {
			return dir, nil
		}
		parent := filepath.Dir(dir)
		if parent == dir {
			return "", fmt.Errorf("%s not found above the working directory", marker)
		}
		dir = parent
	}
}

// WrapperVersion reads the version of module that the wrapper module's
// go.mod requires, as the hack/build-*.sh scripts do.
func WrapperVersion(gomod, module string) (string, error) {
	b, err := os.ReadFile(gomod)
	if err != nil {
		return "", err
	}
	for _, line := range strings.Split(string(b), "\n") {
		f := strings.Fields(line)
		for i := 0; i+1 < len(f); i++ {
			if f[i] == module && strings.HasPrefix(f[i+1], "v") {
				return f[i+1], nil
			}
		}
	}
	return "", fmt.Errorf("%s requires no version of %s", gomod, module)
}

// Dir is the cache directory of a tool build, such as "helm-v3.22.0".
func Dir(name string) (string, error) {
	cache, err := os.UserCacheDir()
	if err != nil {
		return "", err
	}
	return filepath.Join(cache, "trustee", name), nil
}

// IsExecutable checks that p is an executable file.
func IsExecutable(p string) error {
	fi, err := os.Stat(p)
	if err != nil {
		return err
	}
	if fi.IsDir() || fi.Mode()&0o111 == 0 {
		return fmt.Errorf("%s is not an executable file", p)
	}
	return nil
}

// RunScript runs hack/<name> in root and returns the last line it printed
// (the path the build scripts print).
func RunScript(root, name string) (string, error) {
	script := filepath.Join(root, "hack", name)
	cmd := exec.Command("bash", script)
	cmd.Dir = root
	var stdout, stderr bytes.Buffer
	cmd.Stdout, cmd.Stderr = &stdout, &stderr
	if err := cmd.Run(); err != nil {
		return "", fmt.Errorf("%s: %v\n%s", script, err, Tail(stderr.String(), 40))
	}
	lines := strings.Split(strings.TrimSpace(stdout.String()), "\n")
	if len(lines) == 0 || lines[len(lines)-1] == "" {
		return "", errors.New(script + " printed nothing")
	}
	return strings.TrimSpace(lines[len(lines)-1]), nil
}

// Tail returns the last n lines of s.
func Tail(s string, n int) string {
	lines := strings.Split(strings.TrimRight(s, "\n"), "\n")
	if len(lines) > n {
		lines = lines[len(lines)-n:]
	}
	return strings.Join(lines, "\n")
}
