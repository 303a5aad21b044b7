// Package operator tests the operator end to end: a real API server, a
// real cert-manager controller issuing the certificates, the operator's
// reconcilers as `kts operator` runs them, and the pods' processes (kts
// member setup, kts db run, kts server) run by the test from the very
// Secrets and ConfigMap the operator made.
package operator

import (
	"bytes"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	cmv1 "github.com/cert-manager/cert-manager/pkg/apis/certmanager/v1"
	"go.uber.org/zap/zapcore"
	"k8s.io/apimachinery/pkg/runtime"
	ctrl "sigs.k8s.io/controller-runtime"
	"sigs.k8s.io/controller-runtime/pkg/log/zap"
	metricsserver "sigs.k8s.io/controller-runtime/pkg/metrics/server"

	trusteev1 "trustee.dev/trustee/api/v1alpha1"
	"trustee.dev/trustee/controllers"
	"trustee.dev/trustee/test/clusterbase"
	"trustee.dev/trustee/test/envtestenv"
	"trustee.dev/trustee/test/harness"
)

var (
	env *envtestenv.Env
	bin string // holds the kts binary the test built
)

func TestMain(m *testing.M) { os.Exit(run(m)) }

func run(m *testing.M) int {
	var err error
	if bin, err = harness.BuildKTS("kts-operator-bin-"); err != nil {
		fmt.Fprintln(os.Stderr, "build kts:", err)
		return 1
	}
	defer os.RemoveAll(filepath.Dir(bin))
	env, err = envtestenv.StartShared(envtestenv.Options{
		CRDDirs:     []string{"../../config/crd/bases"},
		AddToScheme: []func(*runtime.Scheme) error{trusteev1.AddToScheme, cmv1.AddToScheme},
		CertManager: true,
	})
	if err != nil {
		fmt.Fprintf(os.Stderr, "envtestenv: %v\n", err)
		return 1
	}
	defer func() {
		if err := env.Stop(); err != nil {
			fmt.Fprintf(os.Stderr, "envtestenv: %v\n", err)
		}
	}()
	stop, err := startOperator()
	if err != nil {
		fmt.Fprintf(os.Stderr, "operator: %v\n", err)
		return 1
	}
	defer stop()
	return m.Run()
}

// addresses maps "namespace/server/member/port" to where the test runs that
// member's port on 127.0.0.1, in place of the pod's DNS name.
var addresses sync.Map

func address(k *trusteev1.KeyTrusteeServer, member string, port int) string {
	if a, ok := addresses.Load(fmt.Sprintf("%s/%s/%s/%d", k.Namespace, k.Name, member, port)); ok {
		return a.(string)
	}
	return "127.0.0.1:1"
}

func startOperator() (stop func(), err error) {
	ctrl.SetLogger(zap.New(zap.WriteTo(os.Stderr), zap.Level(zapcore.ErrorLevel)))
	opts := controllers.ManagerOptions(nil)
	opts.Metrics = metricsserver.Options{BindAddress: "0"}
	opts.HealthProbeBindAddress = "0"
	mgr, err := ctrl.NewManager(env.Config, opts)
	if err != nil {
		return nil, err
	}
	if err := controllers.Setup(mgr, controllers.Options{DefaultImage: "trustee:test", Address: address, HTTPTimeout: 3 * time.Second}); err != nil {
		return nil, err
	}
	return clusterbase.RunManager(mgr)
}

// kts runs kts to its end and returns its standard output.
func kts(t *testing.T, args ...string) string {
	t.Helper()
	var stdout, stderr bytes.Buffer
	cmd := exec.Command(bin, args...)
	cmd.Stdout, cmd.Stderr = &stdout, &stderr
	if err := cmd.Run(); err != nil {
		t.Fatalf("kts %s: %v\n%s%s", strings.Join(args, " "), err, stdout.String(), stderr.String())
	}
	return stdout.String()
}

// ktsErr runs kts to its end and returns its output (standard output and
// error together) and how it exited.
func ktsErr(t *testing.T, args ...string) (string, error) {
	t.Helper()
	out, err := exec.Command(bin, args...).CombinedOutput()
	return string(out), err
}
