// Package cluster tests the operator on a whole control plane
// (test/controlplane): a real API server, controller manager and
// scheduler, and kwok's simulated nodes and kubelets. The operator is
// installed with `helm install` and runs as `kts operator` under its
// ServiceAccount's identity; everything else happens through kubectl, as a
// user would do it. kwok runs no containers: pods become Running and Ready
// without their processes (test/operator runs those).
package cluster

import (
	"context"
	"fmt"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/go-logr/logr"
	"k8s.io/apimachinery/pkg/runtime"
	ctrllog "sigs.k8s.io/controller-runtime/pkg/log"

	trusteev1 "trustee.dev/trustee/api/v1alpha1"
	"trustee.dev/trustee/test/controlplane"
	"trustee.dev/trustee/test/harness"
	"trustee.dev/trustee/test/toolcache"
)

var (
	cluster *controlplane.Cluster
	kts     string // the kts binary
	root    string // the repository
)

// The shared cluster: four nodes in two zones, so that one zone holds two
// nodes (members kept apart by host may share a zone; by zone may not).
func TestMain(m *testing.M) {
	ctrllog.SetLogger(logr.Discard())
	var err error
	if root, err = toolcache.RepoRoot("charts/trustee-operator/Chart.yaml"); err != nil {
		fmt.Fprintln(os.Stderr, err)
		os.Exit(1)
	}
	if kts, err = harness.BuildKTS("kts-cluster-bin-"); err != nil {
		fmt.Fprintf(os.Stderr, "build kts: %v\n", err)
		os.Exit(1)
	}
	dir := filepath.Dir(kts)
	cluster, err = controlplane.Start(controlplane.Options{
		Nodes:       controlplane.Nodes(4, "zone-a", "zone-b"),
		AddToScheme: []func(*runtime.Scheme) error{trusteev1.AddToScheme},
		CertManager: true,
	})
	if err != nil {
		fmt.Fprintf(os.Stderr, "control plane: %v\n", err)
		os.RemoveAll(dir)
		os.Exit(1)
	}
	code := m.Run()
	if shared.stop != nil {
		shared.stop()
	}
	if err := cluster.Stop(); err != nil {
		fmt.Fprintf(os.Stderr, "control plane: %v\n", err)
		code = 1
	}
	os.RemoveAll(dir)
	os.Exit(code)
}

// shared is the operator of the shared cluster: started by the first test
// that needs it, stopped after the last.
var shared struct {
	once sync.Once
	stop func()
	err  string
}

// sharedOperator makes sure the shared cluster's operator runs.
func sharedOperator(t *testing.T) {
	t.Helper()
	shared.once.Do(func() {
		stop, err := startOperator(t, cluster)
		if err != nil {
			shared.err = err.Error()
			return
		}
		shared.stop = stop
	})
	if shared.err != "" {
		t.Fatal(shared.err)
	}
}

// operator runs an operator for c until t ends.
func operator(t *testing.T, c *controlplane.Cluster) {
	t.Helper()
	stop, err := startOperator(t, c)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(stop)
}

// startOperator installs the chart (CRDs, RBAC, the operator's
// Deployment, which kwok only pretends to run) in trustee-system, and runs
// `kts operator` as the chart's ServiceAccount, returning how to stop it.
func startOperator(t *testing.T, c *controlplane.Cluster) (stop func(), err error) {
	t.Helper()
	installChart(t, c)
	user := "system:serviceaccount:trustee-system:trustee-operator"
	_, kubeconfig := c.AddUser(t, user, "system:serviceaccounts", "system:serviceaccounts:trustee-system", "system:authenticated")
	probe := harness.FreePort(t)
	cmd := exec.Command(kts, "operator", "--kubeconfig", kubeconfig, "--default-image", "trustee:test", "--leader-elect",
		"--metrics-bind-address", "0", "--health-probe-bind-address", fmt.Sprintf("127.0.0.1:%d", probe))
	cmd.Env = append(os.Environ(), "POD_NAMESPACE=trustee-system")
	logs := &harness.Buffer{}
	cmd.Stdout, cmd.Stderr = logs, logs
	if err := cmd.Start(); err != nil {
		return nil, err
	}
	exited := make(chan error, 1)
	go func() { exited <- cmd.Wait() }()
	stop = func() {
		cmd.Process.Signal(syscall.SIGTERM)
		select {
		case <-exited:
		case <-time.After(30 * time.Second):
			cmd.Process.Kill()
			<-exited
		}
	}
	logOnFailure(t, logs)
	deadline := time.Now().Add(time.Minute)
	for {
		resp, err := http.Get(fmt.Sprintf("http://127.0.0.1:%d/readyz", probe))
		if err == nil {
			resp.Body.Close()
			if resp.StatusCode == http.StatusOK {
				return stop, nil
			}
		}
		if time.Now().After(deadline) {
			stop()
			return nil, fmt.Errorf("kts operator not ready within a minute:\n%s", harness.Tail(logs.String(), 40))
		}
		time.Sleep(200 * time.Millisecond)
	}
}

// operatorLogs are the logs of the operators, shown when a test fails.
var operatorLogs sync.Map // *harness.Buffer → struct{}

func logOnFailure(t *testing.T, logs *harness.Buffer) { operatorLogs.Store(logs, struct{}{}) }

// showOperatorLogs logs the tail of every operator's log when t failed.
func showOperatorLogs(t *testing.T) {
	t.Cleanup(func() {
		if !t.Failed() {
			return
		}
		operatorLogs.Range(func(k, _ any) bool {
			t.Logf("kts operator:\n%s", harness.Tail(k.(*harness.Buffer).String(), 30))
			return true
		})
	})
}

var chartOnce sync.Map // *controlplane.Cluster → struct{}

func installChart(t *testing.T, c *controlplane.Cluster) {
	t.Helper()
	if _, done := chartOnce.LoadOrStore(c, struct{}{}); done {
		return
	}
	c.Helm(t, "install", "trustee-operator", filepath.Join(root, "charts/trustee-operator"),
		"--namespace", "default", "--set", "namespace.create=true", "--set", "namespace.name=trustee-system",
		"--set", "image.repository=trustee", "--set", "image.tag=test", "--wait=false")
	// The chart made the namespace, under the restricted Pod Security
	// Standard, which the operator's pod then met.
	if got := c.Kubectl(t, "get", "namespace", "trustee-system", "-o", `jsonpath={.metadata.labels.pod-security\.kubernetes\.io/enforce}`); got != "restricted" {
		t.Fatalf("namespace trustee-system: pod-security.kubernetes.io/enforce = %q, want restricted", got)
	}
	c.Kubectl(t, "wait", "--for=condition=Established", "--timeout=60s",
		"crd/keytrusteeservers.trustee.dev", "crd/organizations.trustee.dev", "crd/backupschedules.trustee.dev")
}

// apply is `kubectl apply -n ns -f -` of manifests.
func apply(t *testing.T, c *controlplane.Cluster, ns, manifests string) {
	t.Helper()
	cmd := exec.Command("kubectl", "apply", "-n", ns, "-f", "-")
	cmd.Env = append(os.Environ(), "KUBECONFIG="+c.Kubeconfig())
	cmd.Stdin = strings.NewReader(manifests)
	if out, err := cmd.CombinedOutput(); err != nil {
		t.Fatalf("kubectl apply: %v\n%s\n%s", err, out, manifests)
	}
}

func background() context.Context { return context.Background() }

// runKTS runs kts with args and stdin to its end, failing t when it fails,
// and returns what it printed.
func runKTS(t *testing.T, stdin string, args ...string) string {
	t.Helper()
	cmd := exec.Command(kts, args...)
	cmd.Stdin = strings.NewReader(stdin)
	out, err := cmd.CombinedOutput()
	if err != nil {
		t.Fatalf("kts %s: %v\n%s", strings.Join(args, " "), err, out)
	}
	return string(out)
}
