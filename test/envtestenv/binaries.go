package envtestenv

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

// EnvAssets names envtest's own environment variable: when set, it is the
// directory holding etcd and kube-apiserver, and nothing is built.
const EnvAssets = "KUBEBUILDER_ASSETS"

// EnvHelm names the environment variable that, when set, is the path of
// the helm binary to run; nothing is built then.
const EnvHelm = "KTS_HELM"

const (
	etcdModule       = "go.etcd.io/etcd/server/v3"
	kubernetesModule = "k8s.io/kubernetes"
	helmModule       = "helm.sh/helm/v3"
)

var (
	assetsOnce sync.Once
	assetsDir  string
	assetsErr  error

	helmOnce sync.Once
	helmPath string
	helmErr  error
)

// AssetsDir returns the directory holding the etcd and kube-apiserver
// binaries: $KUBEBUILDER_ASSETS when set, else the cache of
// hack/build-k8s-test-binaries.sh, which it runs when the cache has not got
// them (many minutes, once). Start and Main call it.
func AssetsDir() (string, error) {
	assetsOnce.Do(func() { assetsDir, assetsErr = findAssets() })
	return assetsDir, assetsErr
}

func findAssets() (string, error) {
	if dir := os.Getenv(EnvAssets); dir != "" {
		for _, name := range []string{"etcd", "kube-apiserver"} {
			if err := isExecutable(filepath.Join(dir, name)); err != nil {
				return "", fmt.Errorf("$%s: %w", EnvAssets, err)
			}
		}
		return dir, nil
	}
	root, err := repoRoot()
	if err != nil {
		return "", fmt.Errorf("%w (or set $%s to a directory with etcd and kube-apiserver)", err, EnvAssets)
	}
	etcdVersion, err := wrapperVersion(filepath.Join(root, "hack", "k8s", "etcd", "go.mod"), etcdModule)
	if err != nil {
		return "", err
	}
	kubeVersion, err := wrapperVersion(filepath.Join(root, "hack", "k8s", "kube-apiserver", "go.mod"), kubernetesModule)
	if err != nil {
		return "", err
	}
	if cache, err := os.UserCacheDir(); err == nil {
		dir := filepath.Join(cache, "trustee", "envtest-"+kubeVersion+"-etcd-"+etcdVersion)
		if isExecutable(filepath.Join(dir, "etcd")) == nil && isExecutable(filepath.Join(dir, "kube-apiserver")) == nil {
			return dir, nil
		}
	}
	fmt.Fprintf(os.Stderr, "envtestenv: building etcd %s and kube-apiserver %s with hack/build-k8s-test-binaries.sh"+
		" (about 20 minutes on two cores, once; they are cached)\n", etcdVersion, kubeVersion)
	dir, err := runScript(root, "build-k8s-test-binaries.sh")
	if err != nil {
		return "", err
	}
	for _, name := range []string{"etcd", "kube-apiserver"} {
		if err := isExecutable(filepath.Join(dir, name)); err != nil {
			return "", fmt.Errorf("hack/build-k8s-test-binaries.sh printed %q: %w", dir, err)
		}
	}
	return dir, nil
}

// HelmBinary returns the path of the helm binary: $KTS_HELM when set, else
// the cache of hack/build-helm.sh, which it runs when the cache has not got
// it (minutes, once). It fails t when there is none to be had.
func HelmBinary(t testing.TB) string {
	t.Helper()
	helmOnce.Do(func() { helmPath, helmErr = findHelm(t) })
	if helmErr != nil {
		t.Fatalf("envtestenv: no helm binary: %v", helmErr)
	}
	return helmPath
}

func findHelm(t testing.TB) (string, error) {
	if p := os.Getenv(EnvHelm); p != "" {
		if err := isExecutable(p); err != nil {
			return "", fmt.Errorf("$%s: %w", EnvHelm, err)
		}
		return p, nil
	}
	root, err := repoRoot()
	if err != nil {
		return "", fmt.Errorf("%w (or set $%s to a helm binary)", err, EnvHelm)
	}
	version, err := wrapperVersion(filepath.Join(root, "hack", "helm", "go.mod"), helmModule)
	if err != nil {
		return "", err
	}
	if cache, err := os.UserCacheDir(); err == nil {
		p := filepath.Join(cache, "trustee", "helm-"+version, "helm")
		if isExecutable(p) == nil {
			return p, nil
		}
	}
	t.Logf("envtestenv: building helm %s with hack/build-helm.sh (a few minutes, once; it is cached)", version)
	p, err := runScript(root, "build-helm.sh")
	if err != nil {
		return "", err
	}
	if err := isExecutable(p); err != nil {
		return "", fmt.Errorf("hack/build-helm.sh printed %q: %w", p, err)
	}
	return p, nil
}

// runScript runs hack/<name> in root and returns the last line it printed.
func runScript(root, name string) (string, error) {
	script := filepath.Join(root, "hack", name)
	cmd := exec.Command("bash", script)
	cmd.Dir = root
	var stdout, stderr bytes.Buffer
	cmd.Stdout, cmd.Stderr = &stdout, &stderr
	if err := cmd.Run(); err != nil {
		return "", fmt.Errorf("%s: %v\n%s", script, err, tail(stderr.String(), 40))
	}
	lines := strings.Split(strings.TrimSpace(stdout.String()), "\n")
	return strings.TrimSpace(lines[len(lines)-1]), nil
}

// repoRoot finds the repository holding hack/build-k8s-test-binaries.sh,
// from the working directory (go test runs a test in its package's
// directory) up.
func repoRoot() (string, error) {
	dir, err := os.Getwd()
	if err != nil {
		return "", err
	}
	for {
		if _, err := os.Stat(filepath.Join(dir, "hack", "build-k8s-test-binaries.sh")); err == nil {
			return dir, nil
		}
		parent := filepath.Dir(dir)
		if parent == dir {
			return "", errors.New("hack/build-k8s-test-binaries.sh not found above the working directory")
		}
		dir = parent
	}
}

// wrapperVersion reads the version of module that the wrapper module's
// go.mod requires, as the hack/build-*.sh scripts do.
func wrapperVersion(gomod, module string) (string, error) {
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
