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

	"trustee.dev/trustee/test/harness"
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

// Tool is a binary that a hack/build-*.sh script builds from its wrapper
// module into the cache: ${XDG_CACHE_HOME:-$HOME/.cache}/trustee/
// <Name>-<version>/<Binary>, the version being the one of Module that
// hack/<Wrapper>/go.mod requires.
type Tool struct {
	Name    string // the cache directory's prefix, such as "helm"
	Binary  string // the binary's file name in it, such as "helm"
	Wrapper string // the wrapper module's directory under hack/
	Module  string // the module whose version the wrapper requires
	Script  string // the script under hack/ that builds it
	Env     string // an environment variable that, when set, is the binary to use
}

// Find returns the path of the tool's binary: $Env when set, else the one
// in the cache, else the one Script builds (minutes, once), saying so
// through logf (when not nil) first.
func (t Tool) Find(logf func(format string, args ...any)) (string, error) {
	if p := os.Getenv(t.Env); p != "" {
		if err := IsExecutable(p); err != nil {
			return "", fmt.Errorf("$%s: %w", t.Env, err)
		}
		return p, nil
	}
	gomod := filepath.Join("hack", t.Wrapper, "go.mod")
	root, err := RepoRoot(filepath.ToSlash(gomod))
	if err != nil {
		return "", fmt.Errorf("%w (or set $%s to a %s binary)", err, t.Env, t.Binary)
	}
	version, err := WrapperVersion(filepath.Join(root, gomod), t.Module)
	if err != nil {
		return "", err
	}
	if dir, err := Dir(t.Name + "-" + version); err == nil {
		if p := filepath.Join(dir, t.Binary); IsExecutable(p) == nil {
			return p, nil
		}
	}
	if logf != nil {
		logf("building %s %s with hack/%s (minutes, once; it is cached)", t.Binary, version, t.Script)
	}
	p, err := RunScript(root, t.Script)
	if err != nil {
		return "", err
	}
	if err := IsExecutable(p); err != nil {
		return "", fmt.Errorf("hack/%s printed %q: %w", t.Script, p, err)
	}
	return p, nil
}

// Helm is helm (hack/helm), which the chart tests run against the envtest
// API server.
var Helm = Tool{
	Name:    "helm",
	Binary:  "helm",
	Wrapper: "helm",
	Module:  "helm.sh/helm/v3",
	Script:  "build-helm.sh",
	Env:     "KTS_HELM",
}

// CertManager is cert-manager's controller (hack/cert-manager), which the
// operator's tests run against the envtest API server.
var CertManager = Tool{
	Name:    "cert-manager",
	Binary:  "cert-manager-controller",
	Wrapper: "cert-manager",
	Module:  "github.com/cert-manager/cert-manager",
	Script:  "build-cert-manager.sh",
	Env:     "KTS_CERT_MANAGER",
}

// Promtool is Prometheus' promtool (hack/promtool), with which the
// monitoring tests check and unit-test the alerting rules and check the
// dashboard's queries.
var Promtool = Tool{
	Name:    "promtool",
	Binary:  "promtool",
	Wrapper: "promtool",
	Module:  "github.com/prometheus/prometheus",
	Script:  "build-promtool.sh",
	Env:     "KTS_PROMTOOL",
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
		return "", fmt.Errorf("%s: %v\n%s", script, err, harness.Tail(stderr.String(), 40))
	}
	lines := strings.Split(strings.TrimSpace(stdout.String()), "\n")
	if len(lines) == 0 || lines[len(lines)-1] == "" {
		return "", errors.New(script + " printed nothing")
	}
	return strings.TrimSpace(lines[len(lines)-1]), nil
}
