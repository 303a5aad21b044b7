package controlplane

import (
	"fmt"
	"os"
	"path/filepath"
	"sync"

	"trustee.dev/trustee/test/toolcache"
)

// EnvBinDir names the environment variable that, when set, is the
// directory holding the control plane's binaries and kwok's files (see
// BinDir); nothing is built then.
const EnvBinDir = "KTS_CONTROL_PLANE"

// The files of a BinDir.
const (
	binEtcd              = "etcd"
	binAPIServer         = "kube-apiserver"
	binControllerManager = "kube-controller-manager"
	binScheduler         = "kube-scheduler"
	binKwok              = "kwok"
	kwokStagesDir        = "kwok-stages"
	kwokStorageClassFile = "kwok-storage-class.yaml"
)

var binaries = []string{binEtcd, binAPIServer, binControllerManager, binScheduler, binKwok}

var (
	binDirOnce sync.Once
	binDir     string
	binDirErr  error
)

// BinDir returns the directory holding etcd, kube-apiserver,
// kube-controller-manager, kube-scheduler and kwok, kwok's Stages
// (kwok-stages/) and its StorageClass (kwok-storage-class.yaml):
// $KTS_CONTROL_PLANE when set, else the cache of
// hack/build-control-plane.sh, which it runs when the cache has not got
// them (minutes, once). Start calls it.
func BinDir() (string, error) {
	binDirOnce.Do(func() { binDir, binDirErr = findBinDir() })
	return binDir, binDirErr
}

func findBinDir() (string, error) {
	if dir := os.Getenv(EnvBinDir); dir != "" {
		if err := checkBinDir(dir); err != nil {
			return "", fmt.Errorf("$%s: %w", EnvBinDir, err)
		}
		return dir, nil
	}
	const script = "build-control-plane.sh"
	root, err := toolcache.RepoRoot("hack/" + script)
	if err != nil {
		return "", fmt.Errorf("%w (or set $%s to a directory that hack/%s made)", err, EnvBinDir, script)
	}
	versions := map[string]string{}
	for _, w := range []struct{ wrapper, module string }{
		{"etcd", "go.etcd.io/etcd/server/v3"},
		{"kube-apiserver", "k8s.io/kubernetes"},
		{"kwok", "sigs.k8s.io/kwok"},
	} {
		v, err := toolcache.WrapperVersion(filepath.Join(root, "hack", "k8s", w.wrapper, "go.mod"), w.module)
		if err != nil {
			return "", err
		}
		versions[w.wrapper] = v
	}
	name := "control-plane-" + versions["kube-apiserver"] + "-etcd-" + versions["etcd"] + "-kwok-" + versions["kwok"]
	if dir, err := toolcache.Dir(name); err == nil && checkBinDir(dir) == nil {
		return dir, nil
	}
	fmt.Fprintf(os.Stderr, "controlplane: building the control plane (Kubernetes %s, etcd %s, kwok %s) with hack/%s"+
		" (minutes, once; it is cached)\n", versions["kube-apiserver"], versions["etcd"], versions["kwok"], script)
	dir, err := toolcache.RunScript(root, script)
	if err != nil {
		return "", err
	}
	if err := checkBinDir(dir); err != nil {
		return "", fmt.Errorf("hack/%s printed %q: %w", script, dir, err)
	}
	return dir, nil
}

// checkBinDir checks that dir has everything BinDir promises.
func checkBinDir(dir string) error {
	for _, name := range binaries {
		if err := toolcache.IsExecutable(filepath.Join(dir, name)); err != nil {
			return err
		}
	}
	stages, err := filepath.Glob(filepath.Join(dir, kwokStagesDir, "*.yaml"))
	if err != nil {
		return err
	}
	if len(stages) == 0 {
		return fmt.Errorf("no kwok stages in %s", filepath.Join(dir, kwokStagesDir))
	}
	_, err = os.Stat(filepath.Join(dir, kwokStorageClassFile))
	return err
}
