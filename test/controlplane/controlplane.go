// Package controlplane runs a whole Kubernetes control plane without a
// kubelet for tests: etcd, kube-apiserver, kube-controller-manager (every
// controller), kube-scheduler and kwok, all on 127.0.0.1, each process with
// a kubeconfig and an identity of its own. kwok plays the kubelets of
// simulated Nodes: it keeps their leases, marks the pods scheduled on them
// Running and Ready (and Job pods Succeeded; but pods of the image
// ImagePullFails, the simulated image pull failure, stay Pending with
// ErrImagePull), deletes pods once they are terminating, and provisions
// and binds the volumes of claims of its StorageClass, which is the
// cluster's default. So StatefulSets, Jobs,
// CronJobs, PersistentVolumeClaims, the scheduler's placement (affinity,
// anti-affinity, topology) and what happens when a Node goes away behave
// as in a real cluster, but no container runs.
//
// The binaries come from $KTS_CONTROL_PLANE when it is set, else from the
// cache that hack/build-control-plane.sh fills, running that script when
// they are not there yet (minutes, once: `make test` builds them
// beforehand through hack/install-test-deps.sh). Without them the tests
// fail, saying why; they never skip.
//
// Starting takes a few seconds; a test package shares one cluster across
// its tests:
//
//	var cluster *controlplane.Cluster
//
//	func TestMain(m *testing.M) {
//		os.Exit(controlplane.Main(m, &cluster, controlplane.Options{
//			Nodes:       controlplane.Nodes(3, "zone-a", "zone-b", "zone-c"),
//			CRDDirs:     []string{"../../config/crd/bases"},
//			AddToScheme: []func(*runtime.Scheme) error{v1alpha1.AddToScheme},
//			CertManager: true,
//		}))
//	}
//
//	func TestSomething(t *testing.T) {
//		cluster.ShowLogsOnFailure(t)
//		ns := cluster.Namespace(t)
//		...
//	}
//
// Pods need a toleration for kwok's NoSchedule taint on the Nodes
// (KwokToleration), unless the Nodes are created without it
// (Node.Untainted). Nodes come and go with AddNode and DeleteNode (the pods
// of a deleted Node go about a minute later, when the pod garbage
// collector deals with them), and StopHeartbeat makes one stop answering,
// as a dead machine does. With Options.CertManager, cert-manager's controller
// runs too.
//
// Every process logs to a file of its own (LogFile): a failed start says
// what the failing process logged last, Logs and ShowLogsOnFailure show
// the end of them all, and $KTS_CONTROL_PLANE_LOGS (or Options.LogDir)
// keeps them after Stop.
package controlplane

import (
	"bytes"
	"context"
	"crypto/tls"
	"errors"
	"fmt"
	"maps"
	"net/http"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	corev1 "k8s.io/api/core/v1"
	storagev1 "k8s.io/api/storage/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/runtime"
	"k8s.io/client-go/rest"
	"sigs.k8s.io/controller-runtime/pkg/client"
	"sigs.k8s.io/controller-runtime/pkg/envtest"
	"sigs.k8s.io/yaml"

	"trustee.dev/trustee/test/clusterbase"
	"trustee.dev/trustee/test/envtestenv"
	"trustee.dev/trustee/test/harness"
)

// kwok's marks on the Nodes it plays: it manages the Nodes with the
// annotation; the taint keeps pods without the toleration off them.
const (
	KwokAnnotation = "kwok.x-k8s.io/node"
	kwokManaged    = "fake"
)

// EnvLogs names the environment variable that, when set, is a directory
// where each cluster keeps its processes' logs, in a directory of its own
// (see Options.LogDir).
const EnvLogs = "KTS_CONTROL_PLANE_LOGS"

// KwokTaint is the taint on every Node that is not Node.Untainted.
var KwokTaint = corev1.Taint{Key: KwokAnnotation, Value: kwokManaged, Effect: corev1.TaintEffectNoSchedule}

// KwokToleration lets a pod onto the Nodes despite KwokTaint.
var KwokToleration = corev1.Toleration{Key: KwokAnnotation, Operator: corev1.TolerationOpExists,
	Effect: corev1.TaintEffectNoSchedule}

// StorageClass is the cluster's default StorageClass: kwok provisions and
// binds the claims of this class at once (volumeBindingMode Immediate).
const StorageClass = "kwok-volume"

// CertManagerNamespace is the ClusterResourceNamespace of the cert-manager
// controller that Options.CertManager runs, the same as envtestenv's.
const CertManagerNamespace = clusterbase.CertManagerNamespace

// Defaults of Options.
const (
	DefaultNodeMonitorGracePeriod = 20 * time.Second
	DefaultStartTimeout           = 3 * time.Minute
)

// How long kwok's Node leases last; kwok renews them every quarter of
// that. Well below DefaultNodeMonitorGracePeriod.
const nodeLeaseSeconds = 8

// Node is a simulated Node.
type Node struct {
	// Name is the Node's name and its kubernetes.io/hostname label.
	Name string
	// Zone, when set, is its topology.kubernetes.io/zone label.
	Zone string
	// Labels are more labels; they win over the ones above.
	Labels map[string]string
	// Untainted leaves out KwokTaint, so that pods need no toleration to
	// run on the Node.
	Untainted bool
	// Taints are more taints, e.g. to keep a Node for some pods.
	Taints []corev1.Taint
}

// Nodes returns n Nodes named node-1 to node-n, spread over zones in turn
// when there are any.
func Nodes(n int, zones ...string) []Node {
	nodes := make([]Node, n)
	for i := range nodes {
		nodes[i].Name = "node-" + strconv.Itoa(i+1)
		if len(zones) > 0 {
			nodes[i].Zone = zones[i%len(zones)]
		}
	}
	return nodes
}

// object is the Node as kwok's own node template makes them.
func (n Node) object() *corev1.Node {
	labels := map[string]string{
		corev1.LabelHostname:   n.Name,
		corev1.LabelOSStable:   "linux",
		corev1.LabelArchStable: "amd64",
		"type":                 "kwok",
	}
	if n.Zone != "" {
		labels[corev1.LabelTopologyZone] = n.Zone
	}
	maps.Copy(labels, n.Labels)
	node := &corev1.Node{ObjectMeta: metav1.ObjectMeta{
		Name:        n.Name,
		Labels:      labels,
		Annotations: map[string]string{KwokAnnotation: kwokManaged, "node.alpha.kubernetes.io/ttl": "0"},
	}}
	if !n.Untainted {
		node.Spec.Taints = []corev1.Taint{KwokTaint}
	}
	node.Spec.Taints = append(node.Spec.Taints, n.Taints...)
	return node
}

// Options say what a new Cluster has.
type Options struct {
	// Nodes are created, Ready and schedulable, when Start returns. More can come
	// and go later (AddNode, DeleteNode).
	Nodes []Node
	// CRDDirs are directories (or files) of CustomResourceDefinition
	// YAML to install, e.g. config/crd/bases. Each must exist.
	CRDDirs []string
	// AddToScheme are added to the client's scheme after client-go's
	// built-in types, e.g. the project's v1alpha1.AddToScheme.
	AddToScheme []func(*runtime.Scheme) error
	// CertManager installs cert-manager's CRDs, adds its cert-manager.io
	// types to the scheme and runs its controller (see
	// envtestenv.CertManagerBinary), with CertManagerNamespace as its
	// ClusterResourceNamespace. No webhook runs.
	CertManager bool
	// NodeMonitorGracePeriod is how long a Node may go without a
	// heartbeat before kube-controller-manager marks it NotReady
	// (--node-monitor-grace-period); DefaultNodeMonitorGracePeriod when
	// zero.
	NodeMonitorGracePeriod time.Duration
	// LogDir, when set, is where the processes' logs go; it is kept
	// after Stop. Otherwise they go to a directory of this cluster's
	// under $KTS_CONTROL_PLANE_LOGS when that is set (kept too), else
	// to the cluster's temporary directory, which Stop removes.
	LogDir string
	// StartTimeout bounds the whole start; DefaultStartTimeout when zero.
	StartTimeout time.Duration
}

// Cluster is a running control plane with an administrator's access to it.
type Cluster struct {
	// Config connects as an administrator (group system:masters).
	Config *rest.Config
	// Client is a controller-runtime client on Config, with Scheme.
	Client client.Client
	// Scheme has client-go's built-in types, apiextensions/v1,
	// cert-manager.io/v1 with Options.CertManager, and what
	// Options.AddToScheme added. Types added to it later reach Client.
	Scheme *runtime.Scheme
	// BinDir holds the binaries in use (see BinDir).
	BinDir string
	// LogDir holds each process's log, <process>.log.
	LogDir string

	dir        string // pki/, kubeconfigs, data; removed by Stop
	pki        *pki
	kubeconfig string // the administrator's

	// The processes, in the order they start; nil when not started.
	etcd, apiServer, controllerManager, scheduler, certManager *process

	kwokMu   sync.Mutex // kwok, kwokArgs
	kwok     *process
	kwokArgs []string
	kwokPort int

	stopOnce sync.Once
	stopErr  error
}

// Start starts a cluster that lives until Stop. When it fails, nothing of
// it is left running and the error says what the failing process logged
// last.
func Start(opts Options) (*Cluster, error) {
	var certManagerBinary func() (string, error)
	if opts.CertManager {
		certManagerBinary = envtestenv.CertManagerBinary
	}
	setup, err := clusterbase.NewSetup(opts.CRDDirs, opts.AddToScheme, certManagerBinary)
	if err != nil {
		return nil, err
	}
	bins, err := BinDir()
	if err != nil {
		return nil, err
	}
	crdDirs, scheme, certManagerBin := setup.CRDDirs, setup.Scheme, setup.CertManagerBin
	if opts.NodeMonitorGracePeriod == 0 {
		opts.NodeMonitorGracePeriod = DefaultNodeMonitorGracePeriod
	}
	if opts.StartTimeout == 0 {
		opts.StartTimeout = DefaultStartTimeout
	}

	dir, err := os.MkdirTemp("", "controlplane-")
	if err != nil {
		return nil, err
	}
	c := &Cluster{Scheme: scheme, BinDir: bins, LogDir: opts.LogDir, dir: dir}
	if keep := os.Getenv(EnvLogs); c.LogDir == "" && keep != "" {
		c.LogDir = filepath.Join(keep, filepath.Base(dir))
	}
	if c.LogDir == "" {
		c.LogDir = filepath.Join(dir, "logs")
	}
	if err := os.MkdirAll(c.LogDir, 0o700); err != nil {
		_ = os.RemoveAll(dir)
		return nil, err
	}
	ctx, cancel := context.WithTimeout(context.Background(), opts.StartTimeout)
	defer cancel()
	if err := c.start(ctx, opts, crdDirs, certManagerBin); err != nil {
		_ = c.Stop()
		kept := ""
		if !strings.HasPrefix(c.LogDir, dir+string(filepath.Separator)) {
			kept = " (logs in " + c.LogDir + ")"
		}
		return nil, fmt.Errorf("starting the control plane from %s%s: %w", bins, kept, err)
	}
	return c, nil
}

// start starts the processes in turn, each once what it needs is ready.
func (c *Cluster) start(ctx context.Context, opts Options, crdDirs []string, certManagerBin string) error {
	var err error
	if c.pki, err = newPKI(filepath.Join(c.dir, "pki")); err != nil {
		return fmt.Errorf("certificates: %w", err)
	}
	ports, err := harness.FreePorts(6)
	if err != nil {
		return err
	}
	etcdPort, peerPort, apiPort, kcmPort, schedulerPort := ports[0], ports[1], ports[2], ports[3], ports[4]
	c.kwokPort = ports[5]
	c.pki.server = fmt.Sprintf("https://127.0.0.1:%d", apiPort)

	// etcd.
	etcdURL := fmt.Sprintf("http://127.0.0.1:%d", etcdPort)
	peerURL := fmt.Sprintf("http://127.0.0.1:%d", peerPort)
	c.etcd, err = startProcess("etcd", c.bin(binEtcd), []string{
		"--name=controlplane",
		"--data-dir=" + filepath.Join(c.dir, "etcd"),
		"--listen-client-urls=" + etcdURL,
		"--advertise-client-urls=" + etcdURL,
		"--listen-peer-urls=" + peerURL,
		"--initial-advertise-peer-urls=" + peerURL,
		"--initial-cluster=controlplane=" + peerURL,
		// Test data: speed over durability.
		"--unsafe-no-fsync=true",
	}, c.logPath("etcd"))
	if err != nil {
		return err
	}
	if err := c.etcd.waitReady(ctx, "healthy", httpCheck(http.DefaultClient, etcdURL+"/health", `"health":"true"`)); err != nil {
		return err
	}

	// kube-apiserver. The advertised address is a loopback one, which the
	// endpoint reconciler refuses: it is turned off, so the `kubernetes`
	// Service has no endpoints; nothing here needs them.
	c.apiServer, err = startProcess("kube-apiserver", c.bin(binAPIServer), []string{
		"--etcd-servers=" + etcdURL,
		"--bind-address=127.0.0.1",
		fmt.Sprintf("--secure-port=%d", apiPort),
		"--advertise-address=127.0.0.1",
		"--endpoint-reconciler-type=none",
		"--cert-dir=" + filepath.Join(c.dir, "kube-apiserver"),
		"--tls-cert-file=" + c.pki.path(serverCertFile),
		"--tls-private-key-file=" + c.pki.path(serverKeyFile),
		"--client-ca-file=" + c.pki.path(caCertFile),
		"--service-account-issuer=https://kubernetes.default.svc.cluster.local",
		"--service-account-key-file=" + c.pki.path(saPubFile),
		"--service-account-signing-key-file=" + c.pki.path(saKeyFile),
		"--service-cluster-ip-range=10.96.0.0/16",
		"--authorization-mode=RBAC",
		"--allow-privileged=true",
		"--profiling=false",
	}, c.logPath("kube-apiserver"))
	if err != nil {
		return err
	}
	var kc []byte
	c.Config, kc, err = c.pki.user("admin", "system:masters")
	if err != nil {
		return err
	}
	if c.kubeconfig, err = c.writeKubeconfig("admin", kc); err != nil {
		return err
	}
	adminHTTP, err := rest.HTTPClientFor(c.Config)
	if err != nil {
		return err
	}
	if err := c.apiServer.waitReady(ctx, "ready", httpCheck(adminHTTP, c.pki.server+"/readyz", "ok")); err != nil {
		return err
	}
	if c.Client, err = client.New(c.Config, client.Options{Scheme: c.Scheme}); err != nil {
		return fmt.Errorf("client: %w", err)
	}

	// The API server's clients, at once: kube-controller-manager and
	// kube-scheduler as the users the bootstrap RBAC policy grants their
	// permissions to (kube-controller-manager runs each controller as
	// its service account, as kubeadm's does), kwok as an administrator.
	kcmKubeconfig, err := c.addComponentUser("kube-controller-manager", "system:kube-controller-manager")
	if err != nil {
		return err
	}
	schedulerKubeconfig, err := c.addComponentUser("kube-scheduler", "system:kube-scheduler")
	if err != nil {
		return err
	}
	kwokKubeconfig, err := c.addComponentUser("kwok", "kwok", "system:masters")
	if err != nil {
		return err
	}
	c.controllerManager, err = startProcess("kube-controller-manager", c.bin(binControllerManager), []string{
		"--kubeconfig=" + kcmKubeconfig,
		"--bind-address=127.0.0.1",
		fmt.Sprintf("--secure-port=%d", kcmPort),
		"--cert-dir=" + filepath.Join(c.dir, "kube-controller-manager"),
		"--controllers=*",
		"--leader-elect=false",
		"--use-service-account-credentials=true",
		"--service-account-private-key-file=" + c.pki.path(saKeyFile),
		"--root-ca-file=" + c.pki.path(caCertFile),
		"--cluster-name=controlplane",
		// Starting, it creates a ServiceAccount and requests a token for
		// each controller: the default 20 requests a second make that
		// take seconds.
		"--kube-api-qps=200",
		"--kube-api-burst=400",
		"--node-monitor-period=2s",
		"--node-monitor-grace-period=" + opts.NodeMonitorGracePeriod.String(),
		"--profiling=false",
		"--v=2",
	}, c.logPath("kube-controller-manager"))
	if err != nil {
		return err
	}
	// A pod that does not fit yet is tried again after at most two
	// seconds (not ten): tests wait less for pods whose claims were bound
	// or whose Nodes came a moment later.
	schedulerConfig := filepath.Join(c.dir, "kube-scheduler.yaml")
	if err := os.WriteFile(schedulerConfig, fmt.Appendf(nil, `apiVersion: kubescheduler.config.k8s.io/v1
kind: KubeSchedulerConfiguration
clientConnection:
  kubeconfig: %q
  qps: 200
  burst: 400
leaderElection:
  leaderElect: false
podInitialBackoffSeconds: 1
podMaxBackoffSeconds: 2
`, schedulerKubeconfig), 0o600); err != nil {
		return err
	}
	c.scheduler, err = startProcess("kube-scheduler", c.bin(binScheduler), []string{
		"--config=" + schedulerConfig,
		"--bind-address=127.0.0.1",
		fmt.Sprintf("--secure-port=%d", schedulerPort),
		"--cert-dir=" + filepath.Join(c.dir, "kube-scheduler"),
		"--profiling=false",
		"--v=2",
	}, c.logPath("kube-scheduler"))
	if err != nil {
		return err
	}
	stages, err := filepath.Glob(filepath.Join(c.BinDir, kwokStagesDir, "*.yaml"))
	if err != nil {
		return err
	}
	own, err := writeStages(c.dir)
	if err != nil {
		return err
	}
	stages = append(stages, own...)
	c.kwokArgs = []string{
		"--kubeconfig=" + kwokKubeconfig,
		"--manage-nodes-with-annotation-selector=" + KwokAnnotation + "=" + kwokManaged,
		// Pod IPs on the loopback interface: whatever connects to a pod
		// (the operator to its members) stays on this machine, and a test
		// can serve a pod's ports on the pod's own IP.
		"--cidr=127.1.0.0/16",
		"--node-ip=127.0.0.1",
		fmt.Sprintf("--node-lease-duration-seconds=%d", nodeLeaseSeconds),
		fmt.Sprintf("--server-address=127.0.0.1:%d", c.kwokPort),
		// At INFO it logs every lease renewal.
		"--v=WARN",
	}
	for _, s := range stages {
		c.kwokArgs = append(c.kwokArgs, "--config="+s)
	}
	if err := c.startKwok(); err != nil {
		return err
	}
	insecure := &http.Client{Transport: &http.Transport{TLSClientConfig: insecureTLS()}}
	if err := c.controllerManager.waitReady(ctx, "healthy", httpCheck(insecure,
		fmt.Sprintf("https://127.0.0.1:%d/healthz", kcmPort), "ok")); err != nil {
		return err
	}
	if err := c.scheduler.waitReady(ctx, "healthy", httpCheck(insecure,
		fmt.Sprintf("https://127.0.0.1:%d/healthz", schedulerPort), "ok")); err != nil {
		return err
	}
	if err := c.waitKwok(ctx); err != nil {
		return err
	}

	// kwok's StorageClass, the default one.
	b, err := os.ReadFile(filepath.Join(c.BinDir, kwokStorageClassFile))
	if err != nil {
		return err
	}
	var sc storagev1.StorageClass
	if err := yaml.UnmarshalStrict(b, &sc); err != nil {
		return fmt.Errorf("%s: %w", kwokStorageClassFile, err)
	}
	if err := c.Client.Create(ctx, &sc); err != nil {
		return fmt.Errorf("creating StorageClass %s: %w", sc.Name, err)
	}

	if len(crdDirs) > 0 {
		if _, err := envtest.InstallCRDs(c.Config, envtest.CRDInstallOptions{
			Paths: crdDirs, ErrorIfPathMissing: true, Scheme: c.Scheme, MaxTime: time.Minute,
		}); err != nil {
			return fmt.Errorf("installing CRDs: %w", err)
		}
	}
	if opts.CertManager {
		if err := c.startCertManager(ctx, certManagerBin); err != nil {
			return err
		}
	}

	for _, n := range opts.Nodes {
		if err := c.Client.Create(ctx, n.object()); err != nil {
			return fmt.Errorf("creating node %s: %w", n.Name, err)
		}
	}
	for _, n := range opts.Nodes {
		if err := c.waitNodeReady(ctx, n.Name); err != nil {
			return err
		}
	}
	// Pods need their namespace's default ServiceAccount, which
	// kube-controller-manager creates: once it is there for "default",
	// the controllers run.
	return c.controllerManager.waitReady(ctx, "creating ServiceAccounts", func(ctx context.Context) error {
		return c.Client.Get(ctx, client.ObjectKey{Namespace: "default", Name: "default"}, &corev1.ServiceAccount{})
	})
}

// bin is the path of one of BinDir's binaries.
func (c *Cluster) bin(name string) string {
	return filepath.Join(c.BinDir, name)
}

// logPath is the path of the log file of a process.
func (c *Cluster) logPath(name string) string {
	return filepath.Join(c.LogDir, name+".log")
}

// addComponentUser issues a client certificate for user in groups and
// writes a kubeconfig with it for the process name, returning its path.
func (c *Cluster) addComponentUser(name, user string, groups ...string) (string, error) {
	_, kc, err := c.pki.user(user, groups...)
	if err != nil {
		return "", err
	}
	return c.writeKubeconfig(name, kc)
}

// writeKubeconfig writes kc to the file <name>.kubeconfig of the cluster's
// directory and returns its path.
func (c *Cluster) writeKubeconfig(name string, kc []byte) (string, error) {
	p := filepath.Join(c.dir, name+".kubeconfig")
	return p, os.WriteFile(p, kc, 0o600)
}

// startKwok starts kwok with kwokArgs; its home directory is one of its
// own, so that no kwok configuration of the user's comes in. The caller
// holds kwokMu or is Start.
func (c *Cluster) startKwok() error {
	home := filepath.Join(c.dir, "kwok-home")
	if err := os.MkdirAll(home, 0o700); err != nil {
		return err
	}
	var err error
	c.kwok, err = startProcess("kwok", c.bin(binKwok), c.kwokArgs, c.logPath("kwok"), "HOME="+home)
	return err
}

// waitKwok waits until kwok serves its health check, which it does once
// its controllers run.
func (c *Cluster) waitKwok(ctx context.Context) error {
	return c.kwok.waitReady(ctx, "healthy", httpCheck(http.DefaultClient,
		fmt.Sprintf("http://127.0.0.1:%d/healthz", c.kwokPort), "ok"))
}

// waitNodeReady waits until the Node's Ready condition is True and
// kube-controller-manager has seen it so: the Node has none of the taints
// it puts on Nodes that are not ready or unreachable.
func (c *Cluster) waitNodeReady(ctx context.Context, name string) error {
	return c.kwok.waitReady(ctx, "making node "+name+" Ready", func(ctx context.Context) error {
		var n corev1.Node
		if err := c.Client.Get(ctx, client.ObjectKey{Name: name}, &n); err != nil {
			return err
		}
		ready := false
		for _, cond := range n.Status.Conditions {
			ready = ready || cond.Type == corev1.NodeReady && cond.Status == corev1.ConditionTrue
		}
		if !ready {
			return fmt.Errorf("node %s is not Ready: %+v", name, n.Status.Conditions)
		}
		for _, t := range n.Spec.Taints {
			if t.Key == corev1.TaintNodeNotReady || t.Key == corev1.TaintNodeUnreachable {
				return fmt.Errorf("node %s is Ready but still tainted %s", name, t.Key)
			}
		}
		return nil
	})
}

// Main is a TestMain for a package whose tests share one cluster: it
// starts one with opts, stores it in *c, runs the tests, stops it and
// returns the exit code for os.Exit. When the tests fail, the end of every
// process's log goes to stderr. When no cluster can be had, the reason
// goes to stderr and no test runs: the package fails.
func Main(m *testing.M, c **Cluster, opts Options) int {
	cl, err := Start(opts)
	if err != nil {
		fmt.Fprintf(os.Stderr, "controlplane: %v\n", err)
		return 1
	}
	*c = cl
	code := m.Run()
	if code != 0 {
		fmt.Fprintln(os.Stderr, cl.Logs(40))
	}
	if err := cl.Stop(); err != nil {
		fmt.Fprintf(os.Stderr, "controlplane: %v\n", err)
		if code == 0 {
			code = 1
		}
	}
	return code
}

// StartForTest starts a cluster for t alone and stops it when t ends,
// showing the end of the processes' logs first when t has failed. Tests of
// a package should rather share one (see Main).
func StartForTest(t testing.TB, opts Options) *Cluster {
	t.Helper()
	c, err := Start(opts)
	if err != nil {
		t.Fatalf("controlplane: %v", err)
	}
	t.Cleanup(func() {
		if err := c.Stop(); err != nil {
			t.Errorf("controlplane: %v", err)
		}
	})
	c.ShowLogsOnFailure(t)
	return c
}

// Stop stops the API server's clients (cert-manager, kwok, the scheduler
// and the controller manager) together, then the API server, then etcd
// (etcd first would leave the API server hanging on shutdown), and
// removes their data and the files this Cluster wrote (but Options.LogDir).
// It reports a process that had ended by itself. Calling it again does
// nothing.
func (c *Cluster) Stop() error {
	c.stopOnce.Do(func() {
		c.kwokMu.Lock()
		clients := []*process{c.certManager, c.kwok, c.scheduler, c.controllerManager}
		c.kwokMu.Unlock()
		errs := make([]error, len(clients))
		var wg sync.WaitGroup
		for i, p := range clients {
			if p != nil {
				wg.Go(func() { errs[i] = p.stop() })
			}
		}
		wg.Wait()
		for _, p := range []*process{c.apiServer, c.etcd} {
			if p != nil {
				errs = append(errs, p.stop())
			}
		}
		errs = append(errs, os.RemoveAll(c.dir))
		c.stopErr = errors.Join(errs...)
	})
	return c.stopErr
}

// Kubeconfig returns the path of a kubeconfig file for the administrator
// Config is for, for kubectl and helm. The file lives until Stop.
func (c *Cluster) Kubeconfig() string {
	return c.kubeconfig
}

// AddUser provisions a user with the given groups (none: only what RBAC
// grants it), e.g. a ServiceAccount's identity
// ("system:serviceaccount:NS:NAME" in "system:serviceaccounts" and
// "system:serviceaccounts:NS") to run a controller with only its
// permissions. It returns the user's REST config and the path of a
// kubeconfig file for it that lives until Stop.
func (c *Cluster) AddUser(t testing.TB, name string, groups ...string) (*rest.Config, string) {
	t.Helper()
	cfg, kc, err := c.pki.user(name, groups...)
	if err != nil {
		t.Fatalf("controlplane: %v", err)
	}
	path, err := clusterbase.WriteKubeconfig(c.dir, kc)
	if err != nil {
		t.Fatalf("controlplane: kubeconfig of user %s: %v", name, err)
	}
	return cfg, path
}

// Namespace creates a namespace with a fresh name for t and deletes it
// when t ends (kube-controller-manager then empties and removes it; this
// does not wait for that).
func (c *Cluster) Namespace(t testing.TB) string {
	t.Helper()
	return clusterbase.Namespace(t, c.Client, "controlplane")
}

// Kubectl runs the machine's kubectl with args against the API server as
// the administrator (args may name another --kubeconfig, see AddUser) and
// returns its standard output; it fails t, with kubectl's standard error,
// when kubectl fails. kubectl may be older than the API server: it warns
// about the skew on standard error, harmlessly.
func (c *Cluster) Kubectl(t testing.TB, args ...string) string {
	t.Helper()
	return clusterbase.Kubectl(t, "controlplane", c.kubeconfig, args...)
}

// Helm runs helm (see envtestenv.HelmBinary) with args against the API
// server as the administrator and returns its standard output; it fails
// t, with helm's standard error, when helm fails. Helm's cache,
// configuration and data are kept apart from the user's, until Stop.
func (c *Cluster) Helm(t testing.TB, args ...string) string {
	t.Helper()
	return clusterbase.Helm(t, envtestenv.HelmBinary(t), c.kubeconfig, filepath.Join(c.dir, "helm"), args...)
}

// Processes are the names of the cluster's processes, which name their log
// files (LogFile); cert-manager only with Options.CertManager.
var Processes = []string{"etcd", "kube-apiserver", "kube-controller-manager", "kube-scheduler", "kwok", "cert-manager"}

// LogFile returns the path of the log of process (one of Processes).
func (c *Cluster) LogFile(process string) string {
	return c.logPath(process)
}

// Logs returns the last n lines of each process's log, under headings.
func (c *Cluster) Logs(n int) string {
	var b strings.Builder
	for _, name := range Processes {
		b.WriteString(logTail(name, c.logPath(name), n))
	}
	return b.String()
}

// ShowLogsOnFailure logs the end of every process's log when t ends
// failed.
func (c *Cluster) ShowLogsOnFailure(t testing.TB) {
	t.Cleanup(func() {
		if t.Failed() {
			t.Log(c.Logs(40))
		}
	})
}

// RSS returns the resident memory of each running process, in bytes.
func (c *Cluster) RSS() map[string]int64 {
	c.kwokMu.Lock()
	procs := []*process{c.etcd, c.apiServer, c.controllerManager, c.scheduler, c.kwok, c.certManager}
	c.kwokMu.Unlock()
	rss := map[string]int64{}
	for _, p := range procs {
		if p == nil || !p.Running() {
			continue
		}
		b, err := os.ReadFile(fmt.Sprintf("/proc/%d/status", p.Cmd.Process.Pid))
		if err != nil {
			continue
		}
		for _, line := range strings.Split(string(b), "\n") {
			if f := strings.Fields(line); len(f) == 3 && f[0] == "VmRSS:" && f[2] == "kB" {
				if kb, err := strconv.ParseInt(f[1], 10, 64); err == nil {
					rss[p.name] = kb << 10
				}
			}
		}
	}
	return rss
}

// httpCheck is a readiness check: a GET of url answering 200 with a body
// that contains want.
func httpCheck(hc *http.Client, url, want string) func(context.Context) error {
	return func(ctx context.Context) error {
		ctx, cancel := context.WithTimeout(ctx, 5*time.Second)
		defer cancel()
		req, err := http.NewRequestWithContext(ctx, http.MethodGet, url, nil)
		if err != nil {
			return err
		}
		resp, err := hc.Do(req)
		if err != nil {
			return err
		}
		defer resp.Body.Close()
		var body bytes.Buffer
		_, _ = body.ReadFrom(resp.Body)
		if resp.StatusCode != http.StatusOK || !strings.Contains(body.String(), want) {
			return fmt.Errorf("GET %s: %s %s", url, resp.Status, harness.Tail(body.String(), 5))
		}
		return nil
	}
}

// insecureTLS is for the health checks of kube-controller-manager and
// kube-scheduler, which serve them with a self-signed certificate.
func insecureTLS() *tls.Config {
	return &tls.Config{InsecureSkipVerify: true}
}

// startCertManager creates CertManagerNamespace and runs the cert-manager
// controller bin as a user of its own in system:masters, until it says it
// is ready.
func (c *Cluster) startCertManager(ctx context.Context, bin string) error {
	ns := &corev1.Namespace{ObjectMeta: metav1.ObjectMeta{Name: CertManagerNamespace}}
	if err := c.Client.Create(ctx, ns); err != nil {
		return fmt.Errorf("creating namespace %s: %w", CertManagerNamespace, err)
	}
	kubeconfig, err := c.addComponentUser("cert-manager", "cert-manager", "system:masters")
	if err != nil {
		return err
	}
	c.certManager, err = startProcess("cert-manager", bin, []string{
		"--kubeconfig=" + kubeconfig, "--cluster-resource-namespace=" + CertManagerNamespace, "-v=2",
	}, c.logPath("cert-manager"))
	if err != nil {
		return err
	}
	// It prints a line "ready" once its informers' caches are synced.
	return c.certManager.waitReady(ctx, "ready", func(context.Context) error {
		b, err := os.ReadFile(c.certManager.log)
		if err != nil {
			return err
		}
		for _, line := range strings.Split(string(b), "\n") {
			if line == "ready" {
				return nil
			}
		}
		return errors.New(`no line "ready" yet`)
	})
}
