package controllers

import (
	"context"
	"fmt"
	"os"
	"sync"
	"testing"
	"time"

	cmv1 "github.com/cert-manager/cert-manager/pkg/apis/certmanager/v1"
	monitoringv1 "github.com/prometheus-operator/prometheus-operator/pkg/apis/monitoring/v1"
	"go.uber.org/zap/zapcore"
	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/runtime"
	ctrl "sigs.k8s.io/controller-runtime"
	"sigs.k8s.io/controller-runtime/pkg/log/zap"
	metricsserver "sigs.k8s.io/controller-runtime/pkg/metrics/server"

	trusteev1 "trustee.dev/trustee/api/v1alpha1"
	"trustee.dev/trustee/test/clusterbase"
	"trustee.dev/trustee/test/envtestenv"
)

// The package's tests share one real API server with the CRDs, a real
// cert-manager controller, and one operator (the reconcilers as
// `kts operator` runs them) reconciling every namespace.
var env *envtestenv.Env

// testNode is the node the tests place members' pods on.
const testNode = "node-1"

// addresses maps a member's port to where the test runs what the pod
// would: "namespace/server/member/port" → "127.0.0.1:PORT". Anything not
// registered goes to a closed port, so the operator never looks up a
// cluster DNS name from here.
var addresses sync.Map

func registerAddress(ns, server, member string, port int, addr string) {
	addresses.Store(fmt.Sprintf("%s/%s/%s/%d", ns, server, member, port), addr)
}

func testAddress(k *trusteev1.KeyTrusteeServer, member string, port int) string {
	if a, ok := addresses.Load(fmt.Sprintf("%s/%s/%s/%d", k.Namespace, k.Name, member, port)); ok {
		return a.(string)
	}
	return "127.0.0.1:1"
}

func TestMain(m *testing.M) {
	os.Exit(run(m))
}

func run(m *testing.M) int {
	e, err := envtestenv.StartShared(envtestenv.Options{
		CRDDirs:     []string{"../config/crd/bases"},
		AddToScheme: []func(*runtime.Scheme) error{trusteev1.AddToScheme, cmv1.AddToScheme, monitoringv1.AddToScheme},
		CertManager: true,
	})
	if err != nil {
		fmt.Fprintf(os.Stderr, "envtestenv: %v\n", err)
		return 1
	}
	env = e
	defer func() {
		if err := env.Stop(); err != nil {
			fmt.Fprintf(os.Stderr, "envtestenv: %v\n", err)
		}
	}()
	// The node the tests' pods are placed on (no scheduler runs here).
	node := &corev1.Node{ObjectMeta: metav1.ObjectMeta{Name: testNode}}
	if err := env.Client.Create(context.Background(), node); err != nil {
		fmt.Fprintf(os.Stderr, "node: %v\n", err)
		return 1
	}
	node.Status.Conditions = []corev1.NodeCondition{{Type: corev1.NodeReady, Status: corev1.ConditionTrue, Reason: "KubeletReady"}}
	if err := env.Client.Status().Update(context.Background(), node); err != nil {
		fmt.Fprintf(os.Stderr, "node: %v\n", err)
		return 1
	}
	stop, err := startOperator()
	if err != nil {
		fmt.Fprintf(os.Stderr, "operator: %v\n", err)
		return 1
	}
	defer stop()
	return m.Run()
}

// startOperator runs the reconcilers against the API server as `kts
// operator` does, with addresses from the test.
func startOperator() (stop func(), err error) {
	// Reconcile errors are worth reading when a test fails; the rest is noise.
	ctrl.SetLogger(zap.New(zap.WriteTo(os.Stderr), zap.Level(zapcore.ErrorLevel)))
	opts := ManagerOptions(nil)
	opts.Metrics = metricsserver.Options{BindAddress: "0"}
	opts.HealthProbeBindAddress = "0"
	mgr, err := ctrl.NewManager(env.Config, opts)
	if err != nil {
		return nil, err
	}
	if err := Setup(mgr, Options{DefaultImage: "trustee:test", OperatorNamespace: "trustee-system",
		OperatorLabels: map[string]string{"app.kubernetes.io/name": "trustee-operator"},
		Address:        testAddress, HTTPTimeout: 2 * time.Second}); err != nil {
		return nil, err
	}
	return clusterbase.RunManager(mgr)
}
