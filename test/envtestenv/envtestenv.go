// Package envtestenv runs a real Kubernetes API server (kube-apiserver and
// etcd, through controller-runtime's envtest) for the operator's tests, on
// 127.0.0.1, and gives them a client, a kubeconfig for kubectl, helm and,
// on request (Options.CertManager), cert-manager's controller.
//
// The binaries come from $KUBEBUILDER_ASSETS when it is set, else from the
// cache that hack/build-k8s-test-binaries.sh fills
// (${XDG_CACHE_HOME:-$HOME/.cache}/trustee/envtest-<k8s>-etcd-<etcd>/),
// running that script when they are not there yet (many minutes, once: `make
// test` builds them beforehand through hack/install-test-deps.sh). Without
// them the tests fail, saying why; they never skip.
//
// Starting takes about five seconds, so a test package shares one API server
// across its tests:
//
//	var env *envtestenv.Env
//
//	func TestMain(m *testing.M) {
//		os.Exit(envtestenv.Main(m, &env, envtestenv.Options{
//			CRDDirs:     []string{"../../config/crd/bases"},
//			AddToScheme: []func(*runtime.Scheme) error{v1alpha1.AddToScheme},
//			CertManager: true, // cert-manager's CRDs and controller
//		}))
//	}
//
//	func TestSomething(t *testing.T) {
//		ns := env.Namespace(t) // a namespace of the test's own
//		...
//	}
//
// Start and StartWith give a test an API server of its own instead.
package envtestenv

import (
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"

	"k8s.io/apimachinery/pkg/runtime"
	"k8s.io/client-go/rest"
	"sigs.k8s.io/controller-runtime/pkg/client"
	"sigs.k8s.io/controller-runtime/pkg/envtest"
	"trustee.dev/trustee/test/clusterbase"
	"trustee.dev/trustee/test/harness"
)

// Options say what a new Env has besides Kubernetes' built-in types.
type Options struct {
	// CRDDirs are directories (or files) of CustomResourceDefinition
	// YAML to install, e.g. config/crd/bases. Each must exist.
	CRDDirs []string
	// AddToScheme are added to the client's scheme after client-go's
	// built-in types, e.g. the project's v1alpha1.AddToScheme.
	AddToScheme []func(*runtime.Scheme) error
	// CertManager installs cert-manager's CRDs, adds its cert-manager.io
	// types to the scheme and runs its controller (hack/cert-manager, see
	// CertManagerBinary) against the API server, with
	// CertManagerNamespace as its ClusterResourceNamespace. It issues
	// Certificates from SelfSigned and CA Issuers and ClusterIssuers; no
	// webhook runs, so nothing validates or defaults those objects.
	CertManager bool
}

// Env is a running API server with an administrator's access to it.
type Env struct {
	// Config connects as an administrator (group system:masters).
	Config *rest.Config
	// Client is a controller-runtime client on Config, with Scheme.
	Client client.Client
	// Scheme has client-go's built-in types, apiextensions/v1,
	// cert-manager.io/v1 with Options.CertManager, and what
	// Options.AddToScheme added.
	Scheme *runtime.Scheme
	// Environment is envtest's, for what this package does not cover.
	Environment *envtest.Environment
	// AssetsDir holds the etcd and kube-apiserver binaries in use.
	AssetsDir string

	dir string // kubeconfigs and helm's home; removed by Stop

	certManager *certManager // with Options.CertManager

	mu         sync.Mutex
	kubeconfig string

	stopOnce sync.Once
	stopErr  error
}

// Start starts an API server for t alone and stops it when t ends. It
// installs the CRDs found in crdDirs. Tests of a package should rather share
// one (see Main).
func Start(t testing.TB, crdDirs ...string) *Env {
	t.Helper()
	return StartWith(t, Options{CRDDirs: crdDirs})
}

// StartWith is Start with all of Options. When t has failed, it logs the
// end of the cert-manager controller's output before stopping it.
func StartWith(t testing.TB, opts Options) *Env {
	t.Helper()
	env, err := StartShared(opts)
	if err != nil {
		t.Fatalf("envtestenv: %v", err)
	}
	t.Cleanup(func() {
		if log := env.CertManagerLog(); t.Failed() && log != "" {
			t.Log(log)
		}
		if err := env.Stop(); err != nil {
			t.Errorf("envtestenv: %v", err)
		}
	})
	return env
}

// Main is a TestMain for a package whose tests share one API server: it
// starts one with opts, stores it in *env, runs the tests, stops it and
// returns the exit code for os.Exit. When no API server can be had, the
// reason goes to stderr and no test runs: the package fails.
func Main(m *testing.M, env **Env, opts Options) int {
	e, err := StartShared(opts)
	if err != nil {
		fmt.Fprintf(os.Stderr, "envtestenv: %v\n", err)
		return 1
	}
	*env = e
	code := m.Run()
	if log := e.CertManagerLog(); code != 0 && log != "" {
		fmt.Fprintln(os.Stderr, log)
	}
	if err := e.Stop(); err != nil {
		fmt.Fprintf(os.Stderr, "envtestenv: %v\n", err)
		if code == 0 {
			code = 1
		}
	}
	return code
}

// StartShared starts an API server that lives until Stop; for a TestMain
// that does more than Main.
func StartShared(opts Options) (*Env, error) {
	var certManagerBinary func() (string, error)
	if opts.CertManager {
		certManagerBinary = CertManagerBinary
	}
	setup, err := clusterbase.NewSetup(opts.CRDDirs, opts.AddToScheme, certManagerBinary)
	if err != nil {
		return nil, err
	}
	assets, err := AssetsDir()
	if err != nil {
		return nil, err
	}
	crdDirs, scheme, certManagerBin := setup.CRDDirs, setup.Scheme, setup.CertManagerBin

	te := &envtest.Environment{
		BinaryAssetsDirectory: assets,
		CRDDirectoryPaths:     crdDirs,
		ErrorIfCRDPathMissing: true,
		Scheme:                scheme,
	}
	// All on 127.0.0.1 (etcd and the secure port are on localhost by
	// default). The API server would otherwise advertise the machine's
	// address in the `kubernetes` Service's endpoints; the endpoint
	// reconciler refuses a loopback address, so it is turned off: nothing
	// here needs that Service.
	api := te.ControlPlane.GetAPIServer()
	api.Configure().
		Set("advertise-address", "127.0.0.1").
		Set("endpoint-reconciler-type", "none")
	// Keep the end of what the processes say, for the error when they do
	// not start (envtest only says it timed out). Unless envtest is told
	// to show it all (KUBEBUILDER_ATTACH_CONTROL_PLANE_OUTPUT=true).
	apiOut, etcdOut := &harness.Buffer{Max: 16 << 10}, &harness.Buffer{Max: 16 << 10}
	if os.Getenv("KUBEBUILDER_ATTACH_CONTROL_PLANE_OUTPUT") != "true" {
		api.Out, api.Err = apiOut, apiOut
		te.ControlPlane.Etcd = &envtest.Etcd{Out: etcdOut, Err: etcdOut}
	}

	dir, err := os.MkdirTemp("", "envtestenv-")
	if err != nil {
		return nil, err
	}
	cfg, err := te.Start()
	if err != nil {
		// envtest stops what it started when the control plane itself
		// fails; after that (CRDs, say) it leaves it running.
		_ = te.Stop()
		// After a failed start it also leaves the API server's
		// certificate directory (a temporary one of its own) behind.
		if api.CertDir != "" {
			_ = os.RemoveAll(api.CertDir)
		}
		_ = os.RemoveAll(dir)
		// The output of the process that failed says why.
		out := outputTail("kube-apiserver", apiOut, 20)
		if strings.Contains(err.Error(), "process etcd") {
			out = outputTail("etcd", etcdOut, 10)
		}
		return nil, fmt.Errorf("starting kube-apiserver and etcd from %s: %w%s", assets, err, out)
	}
	env := &Env{Config: cfg, Scheme: scheme, Environment: te, AssetsDir: assets, dir: dir}
	env.Client, err = client.New(cfg, client.Options{Scheme: scheme})
	if err != nil {
		_ = env.Stop()
		return nil, fmt.Errorf("client: %w", err)
	}
	if opts.CertManager {
		if env.certManager, err = startCertManager(env, certManagerBin); err != nil {
			_ = env.Stop()
			return nil, err
		}
	}
	return env, nil
}

// Stop stops the cert-manager controller, if any, then the API server,
// then etcd (envtest's order: etcd first would leave the API server hanging
// on shutdown), and removes their data and the files this Env wrote. It
// reports a cert-manager controller that had ended by itself. Calling it
// again does nothing.
func (e *Env) Stop() error {
	e.stopOnce.Do(func() {
		var cmErr error
		if e.certManager != nil {
			cmErr = e.certManager.stop()
		}
		err := e.Environment.Stop()
		if rmErr := os.RemoveAll(e.dir); rmErr != nil {
			err = errors.Join(err, rmErr)
		}
		if err != nil {
			err = fmt.Errorf("stopping the API server: %w", err)
		}
		e.stopErr = errors.Join(cmErr, err)
	})
	return e.stopErr
}

// Kubeconfig returns the path of a kubeconfig file for the administrator
// Config is for, for kubectl and helm. The file lives until Stop.
func (e *Env) Kubeconfig(t testing.TB) string {
	t.Helper()
	e.mu.Lock()
	defer e.mu.Unlock()
	if e.kubeconfig == "" {
		p := filepath.Join(e.dir, "admin.kubeconfig")
		if err := os.WriteFile(p, e.Environment.KubeConfig, 0o600); err != nil {
			t.Fatalf("envtestenv: %v", err)
		}
		e.kubeconfig = p
	}
	return e.kubeconfig
}

// AddUser provisions a user with the given groups (none: only what RBAC
// grants it), for tests of permissions. It returns the user's REST config
// and the path of a kubeconfig file for it that lives until Stop.
func (e *Env) AddUser(t testing.TB, name string, groups ...string) (*rest.Config, string) {
	t.Helper()
	u, err := e.Environment.AddUser(envtest.User{Name: name, Groups: groups},
		&rest.Config{QPS: e.Config.QPS, Burst: e.Config.Burst})
	if err != nil {
		t.Fatalf("envtestenv: adding user %s: %v", name, err)
	}
	kc, err := u.KubeConfig()
	if err != nil {
		t.Fatalf("envtestenv: kubeconfig of user %s: %v", name, err)
	}
	path, err := clusterbase.WriteKubeconfig(e.dir, kc)
	if err != nil {
		t.Fatalf("envtestenv: kubeconfig of user %s: %v", name, err)
	}
	return u.Config(), path
}

// Namespace creates a namespace with a fresh name for t and deletes it when
// t ends (no namespace controller runs, so it then stays Terminating, out
// of the way).
func (e *Env) Namespace(t testing.TB) string {
	t.Helper()
	return clusterbase.Namespace(t, e.Client, "envtestenv")
}

// Kubectl runs the machine's kubectl with args against the API server as
// the administrator (args may name another --kubeconfig, see AddUser) and
// returns its standard output; it fails t, with kubectl's standard error,
// when kubectl fails. kubectl may be older than the API server: it warns
// about the skew on standard error, harmlessly.
func (e *Env) Kubectl(t testing.TB, args ...string) string {
	t.Helper()
	return clusterbase.Kubectl(t, "envtestenv", e.Kubeconfig(t), args...)
}

// Helm runs helm (see HelmBinary) with args against the API server as the
// administrator and returns its standard output; it fails t, with helm's
// standard error, when helm fails. Helm's cache, configuration and data
// are kept apart from the user's, until Stop.
func (e *Env) Helm(t testing.TB, args ...string) string {
	t.Helper()
	return clusterbase.Helm(t, HelmBinary(t), e.Kubeconfig(t), filepath.Join(e.dir, "helm"), args...)
}

// outputTail returns the last n lines that who wrote to out, under a
// heading naming who, or nothing when it wrote nothing.
func outputTail(who string, out *harness.Buffer, n int) string {
	if out.Len() == 0 {
		return ""
	}
	return fmt.Sprintf("\n--- last lines of %s's output:\n%s", who, harness.Tail(out.String(), n))
}
