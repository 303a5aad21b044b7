// Package clusterbase holds what the tests' two Kubernetes clusters share:
// envtestenv's API server and controlplane's whole control plane. Both
// install CRDs into a scheme of client-go's types (cert-manager's too, on
// request), give each test a namespace of its own, run kubectl and helm
// against themselves as the administrator and write users' kubeconfig
// files; the operator's tests run its manager against either and wait
// for its events.
package clusterbase

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"

	cmapi "github.com/cert-manager/cert-manager/pkg/apis/certmanager/v1"
	corev1 "k8s.io/api/core/v1"
	eventsv1 "k8s.io/api/events/v1"
	apiextensionsv1 "k8s.io/apiextensions-apiserver/pkg/apis/apiextensions/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/runtime"
	clientgoscheme "k8s.io/client-go/kubernetes/scheme"
	"sigs.k8s.io/controller-runtime/pkg/client"
	"sigs.k8s.io/controller-runtime/pkg/manager"

	"trustee.dev/trustee/test/harness"
	"trustee.dev/trustee/test/toolcache"
)

// CertManagerNamespace is the ClusterResourceNamespace of the cert-manager
// controller the clusters run on request: the namespace of the Secrets
// that ClusterIssuers refer to. The clusters create it.
const CertManagerNamespace = "cert-manager"

// Setup is what a cluster installs.
type Setup struct {
	// CRDDirs are the directories of the CRDs to install, cert-manager's
	// included when it runs.
	CRDDirs []string
	// Scheme has client-go's built-in types, apiextensions/v1,
	// cert-manager.io/v1 when cert-manager runs, and what the caller
	// added.
	Scheme *runtime.Scheme
	// CertManagerBin is the cert-manager controller to run; "" for none.
	CertManagerBin string
}

// NewSetup checks that each of crdDirs exists and builds the scheme, adding
// addToScheme last. With certManagerBinary (which finds the controller's
// binary) cert-manager's CRDs and types come in too.
func NewSetup(crdDirs []string, addToScheme []func(*runtime.Scheme) error, certManagerBinary func() (string, error)) (*Setup, error) {
	// The clusters would find a missing directory only after starting.
	for _, dir := range crdDirs {
		if _, err := os.Stat(dir); err != nil {
			return nil, fmt.Errorf("CRD directory: %w", err)
		}
	}
	s := &Setup{CRDDirs: slices.Clone(crdDirs), Scheme: runtime.NewScheme()}
	adders := []func(*runtime.Scheme) error{clientgoscheme.AddToScheme, apiextensionsv1.AddToScheme}
	if certManagerBinary != nil {
		var err error
		if s.CertManagerBin, err = certManagerBinary(); err != nil {
			return nil, err
		}
		dir, err := certManagerCRDDir()
		if err != nil {
			return nil, err
		}
		s.CRDDirs = append(s.CRDDirs, dir)
		adders = append(adders, cmapi.AddToScheme)
	}
	for _, add := range append(adders, addToScheme...) {
		if err := add(s.Scheme); err != nil {
			return nil, fmt.Errorf("building the scheme: %w", err)
		}
	}
	return s, nil
}

// certManagerCRDDir returns the deploy/crds directory of the cert-manager
// module that hack/cert-manager requires, the version the controller is
// built from, downloading the module when the module cache has not got it.
func certManagerCRDDir() (string, error) {
	root, err := toolcache.RepoRoot("hack/cert-manager/go.mod")
	if err != nil {
		return "", err
	}
	dir, err := moduleDir(filepath.Join(root, "hack", "cert-manager"), toolcache.CertManager.Module)
	if err != nil {
		return "", fmt.Errorf("locating cert-manager's CRDs: %w", err)
	}
	return filepath.Join(dir, "deploy", "crds"), nil
}

// PrometheusOperatorModule is the Prometheus operator's main module, whose
// example/prometheus-operator-crd holds the CRDs of its kinds.
const PrometheusOperatorModule = "github.com/prometheus-operator/prometheus-operator"

// PodMonitorCRD returns the PodMonitor CRD's file, from the Prometheus
// operator's module of the version whose API types the project's go.mod
// requires (downloaded when the module cache has not got it), so that the
// CRD and the types the operator builds PodMonitors with agree.
func PodMonitorCRD() (string, error) {
	root, err := toolcache.RepoRoot("go.mod")
	if err != nil {
		return "", err
	}
	version, err := toolcache.WrapperVersion(filepath.Join(root, "go.mod"), PrometheusOperatorModule+"/pkg/apis/monitoring")
	if err != nil {
		return "", err
	}
	dir, err := moduleDir(root, PrometheusOperatorModule+"@"+version)
	if err != nil {
		return "", fmt.Errorf("locating the PodMonitor CRD: %w", err)
	}
	f := filepath.Join(dir, "example", "prometheus-operator-crd", "monitoring.coreos.com_podmonitors.yaml")
	if _, err := os.Stat(f); err != nil {
		return "", err
	}
	return f, nil
}

// moduleDir downloads module (a path, or path@version) into the module
// cache, when it is not there, with the go command in dir, and returns
// where its files are.
func moduleDir(dir, module string) (string, error) {
	cmd := exec.Command("go", "mod", "download", "-json", module)
	cmd.Dir = dir
	cmd.Env = append(os.Environ(), "GOWORK=off")
	var stdout, stderr bytes.Buffer
	cmd.Stdout, cmd.Stderr = &stdout, &stderr
	runErr := cmd.Run()
	var mod struct{ Dir, Error string }
	if err := json.Unmarshal(stdout.Bytes(), &mod); err != nil || mod.Dir == "" || runErr != nil {
		return "", fmt.Errorf("go mod download %s in %s: %v %s%s", module, dir, runErr, mod.Error, stderr.String())
	}
	return mod.Dir, nil
}

// Namespace creates a namespace with a fresh name with c for t and deletes
// it when t ends; who (the cluster's package) starts the errors.
func Namespace(t testing.TB, c client.Client, who string) string {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	ns := &corev1.Namespace{ObjectMeta: metav1.ObjectMeta{GenerateName: "test-"}}
	if err := c.Create(ctx, ns); err != nil {
		t.Fatalf("%s: creating a namespace: %v", who, err)
	}
	t.Cleanup(func() {
		ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
		defer cancel()
		if err := c.Delete(ctx, ns); client.IgnoreNotFound(err) != nil {
			t.Errorf("%s: deleting namespace %s: %v", who, ns.Name, err)
		}
	})
	return ns.Name
}

// Kubectl runs the machine's kubectl with args and kubeconfig (args may
// name another --kubeconfig) and returns its standard output; it fails t,
// with kubectl's standard error, when kubectl fails. kubectl may be older
// than the API server: it warns about the skew on standard error,
// harmlessly.
func Kubectl(t testing.TB, who, kubeconfig string, args ...string) string {
	t.Helper()
	kubectl, err := exec.LookPath("kubectl")
	if err != nil {
		t.Fatalf("%s: kubectl is not on PATH: %v", who, err)
	}
	return run(t, kubectl, args, []string{"KUBECONFIG=" + kubeconfig})
}

// Helm runs the binary helm with args and kubeconfig and returns its
// standard output; it fails t, with helm's standard error, when helm fails.
// Helm's cache, configuration and data are kept under home, apart from the
// user's.
func Helm(t testing.TB, helm, kubeconfig, home string, args ...string) string {
	t.Helper()
	return run(t, helm, args, []string{
		"KUBECONFIG=" + kubeconfig,
		"HELM_CACHE_HOME=" + filepath.Join(home, "cache"),
		"HELM_CONFIG_HOME=" + filepath.Join(home, "config"),
		"HELM_DATA_HOME=" + filepath.Join(home, "data"),
	})
}

// run runs name with args (and environ on top of the test's environment),
// returning standard output, failing t when it fails.
func run(t testing.TB, name string, args, environ []string) string {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	cmd := exec.CommandContext(ctx, name, args...)
	cmd.Env = append(os.Environ(), environ...)
	var stdout, stderr bytes.Buffer
	cmd.Stdout, cmd.Stderr = &stdout, &stderr
	if err := cmd.Run(); err != nil {
		t.Fatalf("%s %s: %v\n%s", filepath.Base(name), strings.Join(args, " "), err, stderr.String())
	}
	return stdout.String()
}

// WriteKubeconfig writes a user's kubeconfig kc to a new file in dir and
// returns its path.
func WriteKubeconfig(dir string, kc []byte) (string, error) {
	f, err := os.CreateTemp(dir, "user-*.kubeconfig")
	if err != nil {
		return "", err
	}
	_, err = f.Write(kc)
	return f.Name(), errors.Join(err, f.Close())
}

// RunManager starts mgr (an operator's controllers against a cluster) and
// waits until its cache has synced; stop ends it, saying on stderr why it
// failed, if it did.
func RunManager(mgr manager.Manager) (stop func(), err error) {
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- mgr.Start(ctx) }()
	if !mgr.GetCache().WaitForCacheSync(ctx) {
		cancel()
		return nil, fmt.Errorf("the operator's cache did not sync: %v", <-done)
	}
	return func() {
		cancel()
		if err := <-done; err != nil {
			fmt.Fprintf(os.Stderr, "operator: %v\n", err)
		}
	}, nil
}

// WaitForEvent waits a minute at most for an event regarding the object
// name in ns with reason, failing t with the reasons seen.
func WaitForEvent(t testing.TB, ctx context.Context, c client.Client, ns, name, reason string) {
	t.Helper()
	harness.Eventually(t, time.Minute, "event "+reason, func() (bool, string) {
		var evs eventsv1.EventList
		if err := c.List(ctx, &evs, client.InNamespace(ns)); err != nil {
			return false, err.Error()
		}
		var seen []string
		for _, e := range evs.Items {
			if e.Regarding.Name == name && e.Reason == reason {
				return true, ""
			}
			seen = append(seen, e.Reason)
		}
		return false, fmt.Sprint(seen)
	})
}
