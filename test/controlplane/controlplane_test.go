package controlplane_test

import (
	"bytes"
	"errors"
	"flag"
	"fmt"
	"os"
	"path/filepath"
	"sort"
	"strconv"
	"strings"
	"testing"
	"time"

	cmapi "github.com/cert-manager/cert-manager/pkg/apis/certmanager/v1"
	cmmeta "github.com/cert-manager/cert-manager/pkg/apis/meta/v1"
	"github.com/go-logr/logr"
	appsv1 "k8s.io/api/apps/v1"
	batchv1 "k8s.io/api/batch/v1"
	corev1 "k8s.io/api/core/v1"
	"k8s.io/apimachinery/pkg/api/resource"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/runtime"
	"k8s.io/utils/ptr"
	"sigs.k8s.io/controller-runtime/pkg/client"
	"sigs.k8s.io/controller-runtime/pkg/log"

	trusteev1 "trustee.dev/trustee/api/v1alpha1"
	"trustee.dev/trustee/test/controlplane"
)

// One three-node cluster, a node per zone, for the package, with the
// project's CRDs and cert-manager; tests that change Nodes add their own,
// tainted so that nothing else lands there.
var cluster *controlplane.Cluster

func TestMain(m *testing.M) {
	// The tests mostly wait for controllers, some of them for a minute:
	// they wait together, whatever the number of CPUs.
	flag.Parse()
	if f := flag.Lookup("test.parallel"); f != nil && f.Value.String() == f.DefValue {
		_ = f.Value.Set("8")
	}
	log.SetLogger(logr.Discard())
	os.Exit(controlplane.Main(m, &cluster, controlplane.Options{
		Nodes:       controlplane.Nodes(3, "zone-a", "zone-b", "zone-c"),
		CRDDirs:     []string{"../../config/crd/bases"},
		AddToScheme: []func(*runtime.Scheme) error{trusteev1.AddToScheme},
		CertManager: true,
	}))
}

// The Nodes are there, Ready, with their labels and kwok's taint, and
// every process has a log.
func TestNodes(t *testing.T) {
	t.Parallel()
	cluster.ShowLogsOnFailure(t)
	var nodes corev1.NodeList
	if err := cluster.Client.List(t.Context(), &nodes, client.HasLabels{"topology.kubernetes.io/zone"}); err != nil {
		t.Fatal(err)
	}
	zones := map[string]string{}
	for _, n := range nodes.Items {
		zones[n.Name] = n.Labels["topology.kubernetes.io/zone"]
		if got := n.Labels["kubernetes.io/hostname"]; got != n.Name {
			t.Errorf("node %s: hostname label %q", n.Name, got)
		}
		if !nodeReady(n) {
			t.Errorf("node %s not Ready: %+v", n.Name, n.Status.Conditions)
		}
		if len(n.Spec.Taints) != 1 || n.Spec.Taints[0] != controlplane.KwokTaint {
			t.Errorf("node %s taints: %+v", n.Name, n.Spec.Taints)
		}
	}
	want := map[string]string{"node-1": "zone-a", "node-2": "zone-b", "node-3": "zone-c"}
	if fmt.Sprint(zones) != fmt.Sprint(want) {
		t.Errorf("nodes and zones: %v, want %v", zones, want)
	}
	out := cluster.Kubectl(t, "get", "nodes", "-o", "name")
	if !strings.Contains(out, "node/node-1") {
		t.Errorf("kubectl get nodes: %q", out)
	}
	for _, p := range controlplane.Processes[:5] {
		if fi, err := os.Stat(cluster.LogFile(p)); err != nil || fi.Size() == 0 {
			t.Errorf("log of %s: %v", p, err)
		}
	}
}

// The project's kinds are served, and cert-manager issues certificates.
func TestCRDsAndCertManager(t *testing.T) {
	t.Parallel()
	cluster.ShowLogsOnFailure(t)
	ns := cluster.Namespace(t)
	var servers trusteev1.KeyTrusteeServerList
	if err := cluster.Client.List(t.Context(), &servers, client.InNamespace(ns)); err != nil {
		t.Errorf("listing KeyTrusteeServers: %v", err)
	}
	meta := func(name string) metav1.ObjectMeta { return metav1.ObjectMeta{Name: name, Namespace: ns} }
	create(t, &cmapi.Issuer{ObjectMeta: meta("selfsigned"), Spec: cmapi.IssuerSpec{IssuerConfig: cmapi.IssuerConfig{
		SelfSigned: &cmapi.SelfSignedIssuer{},
	}}})
	cert := &cmapi.Certificate{ObjectMeta: meta("server"), Spec: cmapi.CertificateSpec{
		DNSNames: []string{"server.example"}, SecretName: "server-tls",
		IssuerRef: cmmeta.IssuerReference{Name: "selfsigned", Kind: cmapi.IssuerKind},
	}}
	create(t, cert)
	waitFor(t, time.Minute, "the Certificate Ready", func() (bool, string) {
		if err := cluster.Client.Get(t.Context(), client.ObjectKeyFromObject(cert), cert); err != nil {
			return false, err.Error()
		}
		for _, c := range cert.Status.Conditions {
			if c.Type == cmapi.CertificateConditionReady && c.Status == cmmeta.ConditionTrue {
				return true, ""
			}
		}
		return false, fmt.Sprintf("%+v", cert.Status.Conditions)
	})
	var secret corev1.Secret
	if err := cluster.Client.Get(t.Context(), client.ObjectKey{Namespace: ns, Name: "server-tls"}, &secret); err != nil {
		t.Fatal(err)
	}
	if len(secret.Data[corev1.TLSCertKey]) == 0 {
		t.Error("no certificate in the Secret")
	}
}

// Stop ends every process Start started and removes the cluster's files.
// It runs alone (not in parallel), so that the test binary's children are
// the shared cluster's and this one's.
func TestStartAndStop(t *testing.T) {
	before := children(t)
	began := time.Now()
	c, err := controlplane.Start(controlplane.Options{Nodes: controlplane.Nodes(3)})
	if err != nil {
		t.Fatal(err)
	}
	started := time.Since(began)
	pids := newChildren(t, before)
	if len(pids) != 5 {
		t.Errorf("%d new processes, want 5: %v", len(pids), pids)
	}
	t.Logf("a three-node cluster started in %v; resident memory: %s", started.Round(10*time.Millisecond), rss(c))
	began = time.Now()
	if err := c.Stop(); err != nil {
		t.Error(err)
	}
	t.Logf("stopped in %v", time.Since(began).Round(10*time.Millisecond))
	if left := newChildren(t, before); len(left) > 0 {
		t.Errorf("processes left after Stop: %v", left)
	}
	if _, err := os.Stat(c.LogDir); !errors.Is(err, os.ErrNotExist) {
		t.Errorf("the cluster's directory is still there: %v", err)
	}
}

// A start that fails once the processes run (here: a CRD the API server
// refuses) stops them all, and says why.
func TestFailedStartLeavesNothing(t *testing.T) {
	crd := filepath.Join(t.TempDir(), "bad.yaml")
	if err := os.WriteFile(crd, []byte(`apiVersion: apiextensions.k8s.io/v1
kind: CustomResourceDefinition
metadata:
  name: bad.example.com
spec:
  group: example.com
  names: {kind: Bad, plural: bad}
  scope: Namespaced
`), 0o600); err != nil {
		t.Fatal(err)
	}
	before := children(t)
	c, err := controlplane.Start(controlplane.Options{Nodes: controlplane.Nodes(1), CRDDirs: []string{crd}})
	if err == nil {
		c.Stop()
		t.Fatal("Start with a bad CRD succeeded")
	}
	if !strings.Contains(err.Error(), "installing CRDs") {
		t.Errorf("Start: %v, want it to say that installing CRDs failed", err)
	}
	if left := newChildren(t, before); len(left) > 0 {
		t.Errorf("processes left after a failed start: %v", left)
	}
}

// A StatefulSet's pod runs, Ready, on a Node with its claim Bound; a
// second one, whose pod must not share a node with the first's, lands on
// another Node.
func TestStatefulSetsWithAntiAffinity(t *testing.T) {
	t.Parallel()
	cluster.ShowLogsOnFailure(t)
	ns := cluster.Namespace(t)
	create(t, statefulSet(ns, "first", nil))
	first := waitRunning(t, ns, "first-0")
	waitBound(t, ns, "data-first-0")

	create(t, statefulSet(ns, "second", antiAffinity("first")))
	second := waitRunning(t, ns, "second-0")
	if first.Spec.NodeName == second.Spec.NodeName {
		t.Errorf("both pods on %s", first.Spec.NodeName)
	}
	t.Logf("first-0 on %s, second-0 on %s", first.Spec.NodeName, second.Spec.NodeName)
}

// On a cluster of one Node, the pod that must not share a node with
// another stays Pending, and the scheduler says why.
func TestAntiAffinityOnOneNode(t *testing.T) {
	t.Parallel()
	began := time.Now()
	one := controlplane.StartForTest(t, controlplane.Options{Nodes: controlplane.Nodes(1)})
	t.Logf("a one-node cluster started in %v; resident memory: %s", time.Since(began).Round(10*time.Millisecond), rss(one))
	ns := one.Namespace(t)
	c := one.Client
	if err := c.Create(t.Context(), statefulSet(ns, "first", nil)); err != nil {
		t.Fatal(err)
	}
	waitFor(t, time.Minute, "first-0 Running", func() (bool, string) {
		var p corev1.Pod
		err := c.Get(t.Context(), client.ObjectKey{Namespace: ns, Name: "first-0"}, &p)
		return err == nil && p.Status.Phase == corev1.PodRunning, fmt.Sprint(err, p.Status.Phase)
	})
	if err := c.Create(t.Context(), statefulSet(ns, "second", antiAffinity("first"))); err != nil {
		t.Fatal(err)
	}
	waitFor(t, time.Minute, "first-0 Running and second-0 unschedulable", func() (bool, string) {
		var first, second corev1.Pod
		if err := c.Get(t.Context(), client.ObjectKey{Namespace: ns, Name: "first-0"}, &first); err != nil {
			return false, err.Error()
		}
		if err := c.Get(t.Context(), client.ObjectKey{Namespace: ns, Name: "second-0"}, &second); err != nil {
			return false, err.Error()
		}
		cond := condition(second.Status.Conditions, corev1.PodScheduled)
		return first.Status.Phase == corev1.PodRunning && second.Status.Phase == corev1.PodPending &&
				second.Spec.NodeName == "" && cond != nil && cond.Status == corev1.ConditionFalse &&
				cond.Reason == corev1.PodReasonUnschedulable && strings.Contains(cond.Message, "anti-affinity"),
			fmt.Sprintf("first-0 %s; second-0 %s on %q, %+v", first.Status.Phase, second.Status.Phase, second.Spec.NodeName, cond)
	})
}

// A CronJob that runs every minute creates a Job whose pod Succeeds and
// which completes. This waits for the next full minute: up to a minute.
func TestCronJobRuns(t *testing.T) {
	t.Parallel()
	cluster.ShowLogsOnFailure(t)
	ns := cluster.Namespace(t)
	cj := &batchv1.CronJob{
		ObjectMeta: metav1.ObjectMeta{Name: "every-minute", Namespace: ns},
		Spec: batchv1.CronJobSpec{
			Schedule: "* * * * *",
			JobTemplate: batchv1.JobTemplateSpec{Spec: batchv1.JobSpec{
				Template: corev1.PodTemplateSpec{Spec: corev1.PodSpec{
					RestartPolicy: corev1.RestartPolicyNever,
					Containers:    []corev1.Container{{Name: "main", Image: "example.invalid/job:1"}},
					Tolerations:   []corev1.Toleration{controlplane.KwokToleration},
				}},
			}},
		},
	}
	create(t, cj)
	waitFor(t, 100*time.Second, "a Job of the CronJob complete with its pod Succeeded", func() (bool, string) {
		var jobs batchv1.JobList
		if err := cluster.Client.List(t.Context(), &jobs, client.InNamespace(ns)); err != nil {
			return false, err.Error()
		}
		var pods corev1.PodList
		if err := cluster.Client.List(t.Context(), &pods, client.InNamespace(ns)); err != nil {
			return false, err.Error()
		}
		complete := false
		for _, j := range jobs.Items {
			for _, c := range j.Status.Conditions {
				complete = complete || c.Type == batchv1.JobComplete && c.Status == corev1.ConditionTrue
			}
		}
		succeeded := false
		for _, p := range pods.Items {
			succeeded = succeeded || p.Status.Phase == corev1.PodSucceeded
		}
		return complete && succeeded, fmt.Sprintf("%d jobs (complete: %v), %d pods (one Succeeded: %v)",
			len(jobs.Items), complete, len(pods.Items), succeeded)
	})
}

// When the Node of a StatefulSet's pod is deleted, the pod is recreated
// on another Node, with the same claim. The pod garbage collector takes
// 40 to 60 seconds to remove the old pod.
func TestPodMovesOffADeletedNode(t *testing.T) {
	t.Parallel()
	cluster.ShowLogsOnFailure(t)
	ns := cluster.Namespace(t)
	// Two Nodes of the test's own; only its pod may go there, and
	// nowhere else.
	pool := map[string]string{"test.trustee.dev/pool": ns}
	taint := corev1.Taint{Key: "test.trustee.dev/pool", Value: ns, Effect: corev1.TaintEffectNoSchedule}
	nodes := []string{ns + "-a", ns + "-b"}
	for _, n := range nodes {
		cluster.AddNode(t, controlplane.Node{Name: n, Labels: pool, Taints: []corev1.Taint{taint}})
	}
	s := statefulSet(ns, "mover", nil)
	s.Spec.Template.Spec.NodeSelector = pool
	s.Spec.Template.Spec.Tolerations = append(s.Spec.Template.Spec.Tolerations,
		corev1.Toleration{Key: taint.Key, Operator: corev1.TolerationOpEqual, Value: taint.Value, Effect: taint.Effect})
	create(t, s)
	before := waitRunning(t, ns, "mover-0")
	waitBound(t, ns, "data-mover-0")

	began := time.Now()
	cluster.DeleteNode(t, before.Spec.NodeName)
	after := waitFor(t, 2*time.Minute, "mover-0 recreated and Running elsewhere", func() (bool, string) {
		var p corev1.Pod
		if err := cluster.Client.Get(t.Context(), client.ObjectKey{Namespace: ns, Name: "mover-0"}, &p); err != nil {
			return false, err.Error()
		}
		return p.UID != before.UID && p.Status.Phase == corev1.PodRunning && podReady(p),
			fmt.Sprintf("uid %s on %q, %s", p.UID, p.Spec.NodeName, p.Status.Phase)
	})
	var p corev1.Pod
	if err := cluster.Client.Get(t.Context(), client.ObjectKey{Namespace: ns, Name: "mover-0"}, &p); err != nil {
		t.Fatal(err)
	}
	if p.Spec.NodeName == before.Spec.NodeName {
		t.Errorf("the new pod is on the deleted node %s", p.Spec.NodeName)
	}
	t.Logf("mover-0 moved from %s to %s in %v", before.Spec.NodeName, p.Spec.NodeName, after.Sub(began).Round(time.Second))
	for _, n := range nodes {
		if n != before.Spec.NodeName {
			cluster.DeleteNode(t, n)
		}
	}
}

// A Node that stops its heartbeat goes NotReady and gets the unreachable
// taint; once it beats again it is Ready again.
func TestHeartbeat(t *testing.T) {
	t.Parallel()
	cluster.ShowLogsOnFailure(t)
	name := "silent"
	cluster.AddNode(t, controlplane.Node{Name: name, Taints: []corev1.Taint{
		{Key: "test.trustee.dev/silent", Effect: corev1.TaintEffectNoSchedule}}})
	t.Cleanup(func() { cluster.DeleteNode(t, name) })

	began := time.Now()
	cluster.StopHeartbeat(t, name)
	t.Logf("kwok restarted in %v", time.Since(began).Round(10*time.Millisecond))
	at := waitFor(t, time.Minute, "node silent NotReady and unreachable", func() (bool, string) {
		var n corev1.Node
		if err := cluster.Client.Get(t.Context(), client.ObjectKey{Name: name}, &n); err != nil {
			return false, err.Error()
		}
		cond := nodeCondition(n, corev1.NodeReady)
		tainted := false
		for _, taint := range n.Spec.Taints {
			tainted = tainted || taint.Key == corev1.TaintNodeUnreachable
		}
		return cond != nil && cond.Status == corev1.ConditionUnknown && tainted, fmt.Sprintf("%+v, taints %+v", cond, n.Spec.Taints)
	})
	t.Logf("node silent unreachable %v after its heartbeat stopped", at.Sub(began).Round(time.Second))
	cluster.ResumeHeartbeat(t, name)
}

// children returns the processes whose parent is the test binary, by pid,
// with their command lines.
func children(t *testing.T) map[int]string {
	t.Helper()
	entries, err := os.ReadDir("/proc")
	if err != nil {
		t.Fatal(err)
	}
	self := os.Getpid()
	m := map[int]string{}
	for _, e := range entries {
		pid, err := strconv.Atoi(e.Name())
		if err != nil {
			continue
		}
		stat, err := os.ReadFile(filepath.Join("/proc", e.Name(), "stat"))
		if err != nil {
			continue
		}
		// pid (comm) state ppid ...; comm may hold spaces.
		f := strings.Fields(string(stat[bytes.LastIndexByte(stat, ')')+1:]))
		if len(f) > 1 && f[1] == strconv.Itoa(self) {
			cmdline, _ := os.ReadFile(filepath.Join("/proc", e.Name(), "cmdline"))
			m[pid] = string(bytes.ReplaceAll(cmdline, []byte{0}, []byte{' '}))
		}
	}
	return m
}

// newChildren returns the children of the test binary not in before.
func newChildren(t *testing.T, before map[int]string) map[int]string {
	t.Helper()
	now := children(t)
	for pid := range before {
		delete(now, pid)
	}
	return now
}

// statefulSet is a StatefulSet of one pod, labelled app: name, with a
// claim of the default StorageClass, tolerating kwok's taint.
func statefulSet(ns, name string, affinity *corev1.Affinity) *appsv1.StatefulSet {
	labels := map[string]string{"app": name}
	return &appsv1.StatefulSet{
		ObjectMeta: metav1.ObjectMeta{Name: name, Namespace: ns},
		Spec: appsv1.StatefulSetSpec{
			Replicas:    ptr.To[int32](1),
			ServiceName: name,
			Selector:    &metav1.LabelSelector{MatchLabels: labels},
			Template: corev1.PodTemplateSpec{
				ObjectMeta: metav1.ObjectMeta{Labels: labels},
				Spec: corev1.PodSpec{
					Containers: []corev1.Container{{Name: "main", Image: "example.invalid/app:1",
						VolumeMounts: []corev1.VolumeMount{{Name: "data", MountPath: "/data"}}}},
					Tolerations: []corev1.Toleration{controlplane.KwokToleration},
					Affinity:    affinity,
				},
			},
			VolumeClaimTemplates: []corev1.PersistentVolumeClaim{{
				ObjectMeta: metav1.ObjectMeta{Name: "data"},
				Spec: corev1.PersistentVolumeClaimSpec{
					AccessModes: []corev1.PersistentVolumeAccessMode{corev1.ReadWriteOnce},
					Resources: corev1.VolumeResourceRequirements{Requests: corev1.ResourceList{
						corev1.ResourceStorage: resource.MustParse("1Gi")}},
				},
			}},
		},
	}
}

// antiAffinity keeps a pod off the nodes of pods labelled app: other.
func antiAffinity(other string) *corev1.Affinity {
	return &corev1.Affinity{PodAntiAffinity: &corev1.PodAntiAffinity{
		RequiredDuringSchedulingIgnoredDuringExecution: []corev1.PodAffinityTerm{{
			LabelSelector: &metav1.LabelSelector{MatchLabels: map[string]string{"app": other}},
			TopologyKey:   corev1.LabelHostname,
		}},
	}}
}

func create(t *testing.T, o client.Object) {
	t.Helper()
	if err := cluster.Client.Create(t.Context(), o); err != nil {
		t.Fatal(err)
	}
}

// waitRunning waits until the pod runs, Ready, on a Node, and returns it.
func waitRunning(t *testing.T, ns, name string) *corev1.Pod {
	t.Helper()
	var p corev1.Pod
	waitFor(t, time.Minute, "pod "+name+" Running and Ready", func() (bool, string) {
		if err := cluster.Client.Get(t.Context(), client.ObjectKey{Namespace: ns, Name: name}, &p); err != nil {
			return false, err.Error()
		}
		return p.Spec.NodeName != "" && p.Status.Phase == corev1.PodRunning && podReady(p),
			fmt.Sprintf("on %q, %s, %+v", p.Spec.NodeName, p.Status.Phase, p.Status.Conditions)
	})
	return &p
}

// waitBound waits until the claim is Bound to a volume.
func waitBound(t *testing.T, ns, name string) {
	t.Helper()
	waitFor(t, time.Minute, "claim "+name+" Bound", func() (bool, string) {
		var pvc corev1.PersistentVolumeClaim
		if err := cluster.Client.Get(t.Context(), client.ObjectKey{Namespace: ns, Name: name}, &pvc); err != nil {
			return false, err.Error()
		}
		return pvc.Status.Phase == corev1.ClaimBound && pvc.Spec.VolumeName != "" &&
				ptr.Deref(pvc.Spec.StorageClassName, "") == controlplane.StorageClass,
			fmt.Sprintf("%s, volume %q, class %v", pvc.Status.Phase, pvc.Spec.VolumeName, ptr.Deref(pvc.Spec.StorageClassName, ""))
	})
}

// waitFor polls cond until it holds, failing t with cond's last word after
// timeout; it returns when it held.
func waitFor(t *testing.T, timeout time.Duration, what string, cond func() (bool, string)) time.Time {
	t.Helper()
	deadline := time.Now().Add(timeout)
	for {
		ok, last := cond()
		if ok {
			return time.Now()
		}
		if time.Now().After(deadline) {
			t.Fatalf("after %v, still not %s: %s", timeout, what, last)
		}
		time.Sleep(200 * time.Millisecond)
	}
}

// nodeReady reports whether the Node's Ready condition is True.
func nodeReady(n corev1.Node) bool {
	c := nodeCondition(n, corev1.NodeReady)
	return c != nil && c.Status == corev1.ConditionTrue
}

// podReady reports whether the pod's Ready condition is True.
func podReady(p corev1.Pod) bool {
	c := condition(p.Status.Conditions, corev1.PodReady)
	return c != nil && c.Status == corev1.ConditionTrue
}

func condition(conds []corev1.PodCondition, typ corev1.PodConditionType) *corev1.PodCondition {
	for i := range conds {
		if conds[i].Type == typ {
			return &conds[i]
		}
	}
	return nil
}

func nodeCondition(n corev1.Node, typ corev1.NodeConditionType) *corev1.NodeCondition {
	for i := range n.Status.Conditions {
		if n.Status.Conditions[i].Type == typ {
			return &n.Status.Conditions[i]
		}
	}
	return nil
}

// rss formats the processes' resident memory, and its sum.
func rss(c *controlplane.Cluster) string {
	m := c.RSS()
	var names []string
	var total int64
	for n, b := range m {
		names = append(names, n)
		total += b
	}
	sort.Strings(names)
	var parts []string
	for _, n := range names {
		parts = append(parts, fmt.Sprintf("%s %d MiB", n, m[n]>>20))
	}
	return fmt.Sprintf("%s; %d MiB in all", strings.Join(parts, ", "), total>>20)
}
