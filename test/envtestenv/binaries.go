package envtestenv

import (
	"fmt"
	"os"
	"path/filepath"
	"sync"
	"testing"

	"trustee.dev/trustee/test/toolcache"
)

// EnvAssets names envtest's own environment variable: when set, it is the
// directory holding etcd and kube-apiserver, and nothing is built.
const EnvAssets = "KUBEBUILDER_ASSETS"

// EnvHelm names the environment variable that, when set, is the path of
// the helm binary to run; nothing is built then.
const EnvHelm = "KTS_HELM"

// EnvCertManager names the environment variable that, when set, is the
// path of the cert-manager controller binary to run (see
// hack/cert-manager); nothing is built then.
const EnvCertManager = "KTS_CERT_MANAGER"

const (
	etcdModule       = "go.etcd.io/etcd/server/v3"
	kubernetesModule = "k8s.io/kubernetes"
)

var (
	assetsOnce sync.Once
	assetsDir  string
	assetsErr  error

	helmOnce sync.Once
	helmPath string
	helmErr  error

	certManagerOnce sync.Once
	certManagerPath string
	certManagerErr  error
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
			if err := toolcache.IsExecutable(filepath.Join(dir, name)); err != nil {
				return "", fmt.Errorf("$%s: %w", EnvAssets, err)
			}
		}
		return dir, nil
	}
	root, err := toolcache.RepoRoot("hack/build-k8s-test-binaries.sh")
	if err != nil {
		return "", fmt.Errorf("%w (or set $%s to a directory with etcd and kube-apiserver)", err, EnvAssets)
	}
	etcdVersion, err := toolcache.WrapperVersion(filepath.Join(root, "hack", "k8s", "etcd", "go.mod"), etcdModule)
	if err != nil {
		return "", err
	}
	kubeVersion, err := toolcache.WrapperVersion(filepath.Join(root, "hack", "k8s", "kube-apiserver", "go.mod"), kubernetesModule)
	if err != nil {
		return "", err
	}
	if dir, err := toolcache.Dir("envtest-" + kubeVersion + "-etcd-" + etcdVersion); err == nil {
		if toolcache.IsExecutable(filepath.Join(dir, "etcd")) == nil && toolcache.IsExecutable(filepath.Join(dir, "kube-apiserver")) == nil {
			return dir, nil
		}
	}
	fmt.Fprintf(os.Stderr, "envtestenv: building etcd %s and kube-apiserver %s with hack/build-k8s-test-binaries.sh"+
		" (about 20 minutes on two cores, once; they are cached)\n", etcdVersion, kubeVersion)
	dir, err := toolcache.RunScript(root, "build-k8s-test-binaries.sh")
	if err != nil {
		return "", err
	}
	for _, name := range []string{"etcd", "kube-apiserver"} {
		if err := toolcache.IsExecutable(filepath.Join(dir, name)); err != nil {
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
	helmOnce.Do(func() {
		helmPath, helmErr = toolcache.Helm.Find(func(format string, args ...any) {
			t.Logf("envtestenv: "+format, args...)
		})
	})
	if helmErr != nil {
		t.Fatalf("envtestenv: no helm binary: %v", helmErr)
	}
	return helmPath
}

// CertManagerBinary returns the path of cert-manager's controller:
// $KTS_CERT_MANAGER when set, else the cache of hack/build-cert-manager.sh,
// which it runs when the cache has not got it (about 7 minutes, once).
// StartShared calls it for Options.CertManager.
func CertManagerBinary() (string, error) {
	if os.Getenv(EnvCertManager) != "" {
		return toolcache.CertManager.Find(nil)
	}
	certManagerOnce.Do(func() {
		certManagerPath, certManagerErr = toolcache.CertManager.Find(func(format string, args ...any) {
			fmt.Fprintf(os.Stderr, "envtestenv: "+format+"\n", args...)
		})
	})
	return certManagerPath, certManagerErr
}
