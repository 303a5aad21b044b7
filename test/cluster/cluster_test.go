package cluster

import (
	"fmt"
	"io"
	"net"
	"path/filepath"
	"strings"
	"testing"
	"time"

	batchv1 "k8s.io/api/batch/v1"
	corev1 "k8s.io/api/core/v1"
	policyv1 "k8s.io/api/policy/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	"k8s.io/apimachinery/pkg/api/meta"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/types"
	"sigs.k8s.io/controller-runtime/pkg/client"

	trusteev1 "trustee.dev/trustee/api/v1alpha1"
	"trustee.dev/trustee/test/controlplane"
	"trustee.dev/trustee/test/harness"
	"trustee.dev/trustee/test/memberpods"
)

// serverYAML is what a user applies: a self-signed issuer and a
// KeyTrusteeServer whose members may run on kwok's nodes.
func serverYAML(name, topologyKey string) string {
	return fmt.Sprintf(`apiVersion: cert-manager.io/v1
kind: Issuer
metadata:
  name: selfsigned
spec:
  selfSigned: {}
---
apiVersion: trustee.dev/v1alpha1
kind: KeyTrusteeServer
metadata:
  name: %s
spec:
  storage:
    size: 1Gi
  tls:
    issuerRef:
      name: selfsigned
    # Where the test runs the members' processes, they reach each other
    # as localhost.
    dnsNames: [localhost]
  scheduling:
    topologyKey: %s
    tolerations:
    - key: %s
      operator: Exists
      effect: NoSchedule
`, name, topologyKey, controlplane.KwokToleration.Key)
}

// member is a member's pod as the cluster has it.
func member(t *testing.T, c *controlplane.Cluster, ns, name string) *corev1.Pod {
	t.Helper()
	p := &corev1.Pod{}
	if err := c.Client.Get(background(), client.ObjectKey{Namespace: ns, Name: name}, p); err != nil {
		if apierrors.IsNotFound(err) {
			return nil
		}
		t.Fatal(err)
	}
	return p
}

func podReady(p *corev1.Pod) bool {
	if p == nil || !p.DeletionTimestamp.IsZero() {
		return false
	}
	for _, c := range p.Status.Conditions {
		if c.Type == corev1.PodReady {
			return c.Status == corev1.ConditionTrue
		}
	}
	return false
}

// condition waits until the server's condition typ has status and a
// message holding msg, and returns it.
func condition(t *testing.T, c *controlplane.Cluster, ns, name, typ string, status metav1.ConditionStatus, msg string, limit time.Duration) metav1.Condition {
	t.Helper()
	var got metav1.Condition
	harness.Eventually(t, limit, fmt.Sprintf("%s %s=%s %q", name, typ, status, msg), func() (bool, string) {
		k := &trusteev1.KeyTrusteeServer{}
		if err := c.Client.Get(background(), client.ObjectKey{Namespace: ns, Name: name}, k); err != nil {
			return false, err.Error()
		}
		cond := meta.FindStatusCondition(k.Status.Conditions, typ)
		if cond == nil {
			return false, "no condition yet"
		}
		got = *cond
		return cond.Status == status && strings.Contains(cond.Message, msg), fmt.Sprintf("%s %s: %s", cond.Status, cond.Reason, cond.Message)
	})
	return got
}

// TestMembersOnSeparateNodes: both members Running and Ready on different
// nodes with bound volumes, and the status says so; with the zone as
// topology key they are in different zones too.
func TestMembersOnSeparateNodes(t *testing.T) {
	t.Parallel()
	showOperatorLogs(t)
	sharedOperator(t)
	for _, tc := range []struct{ name, key, label string }{
		{"by-host", corev1.LabelHostname, corev1.LabelHostname},
		{"by-zone", corev1.LabelTopologyZone, corev1.LabelTopologyZone},
	} {
		t.Run(tc.name, func(t *testing.T) {
			ns := cluster.Namespace(t)
			apply(t, cluster, ns, serverYAML("kts", tc.key))
			condition(t, cluster, ns, "kts", trusteev1.ConditionActiveReady, metav1.ConditionTrue, "is ready", 2*time.Minute)
			condition(t, cluster, ns, "kts", trusteev1.ConditionPassiveReady, metav1.ConditionTrue, "is ready", time.Minute)
			condition(t, cluster, ns, "kts", trusteev1.ConditionCertificateReady, metav1.ConditionTrue, "", time.Minute)
			a, p := member(t, cluster, ns, "kts-a-0"), member(t, cluster, ns, "kts-b-0")
			nodes := map[string]*corev1.Node{}
			for _, pod := range []*corev1.Pod{a, p} {
				n := &corev1.Node{}
				if err := cluster.Client.Get(background(), client.ObjectKey{Name: pod.Spec.NodeName}, n); err != nil {
					t.Fatal(err)
				}
				nodes[pod.Name] = n
			}
			if av, pv := nodes[a.Name].Labels[tc.label], nodes[p.Name].Labels[tc.label]; av == pv {
				t.Fatalf("both members have %s=%s (nodes %s and %s)", tc.label, av, a.Spec.NodeName, p.Spec.NodeName)
			}
			for _, claim := range []string{"data-kts-a-0", "data-kts-b-0"} {
				pvc := &corev1.PersistentVolumeClaim{}
				if err := cluster.Client.Get(background(), client.ObjectKey{Namespace: ns, Name: claim}, pvc); err != nil || pvc.Status.Phase != corev1.ClaimBound {
					t.Fatalf("PVC %s: %v %s", claim, err, pvc.Status.Phase)
				}
			}
			// No member runs a server here, so nothing reports replication:
			// the operator does not claim the pair is in sync.
			condition(t, cluster, ns, "kts", trusteev1.ConditionReplicating, metav1.ConditionFalse, "did not report on its standby", time.Minute)
		})
	}
}

// TestPassiveWithoutASecondNode: on a one-node cluster the passive stays
// Pending, and the status says why in the scheduler's words, rather than
// the two sharing the node.
func TestPassiveWithoutASecondNode(t *testing.T) {
	t.Parallel()
	one := controlplane.StartForTest(t, controlplane.Options{Nodes: controlplane.Nodes(1), CertManager: true})
	if err := trusteev1.AddToScheme(one.Scheme); err != nil {
		t.Fatal(err)
	}
	showOperatorLogs(t)
	operator(t, one)
	ns := one.Namespace(t)
	apply(t, one, ns, serverYAML("kts", corev1.LabelHostname))
	condition(t, one, ns, "kts", trusteev1.ConditionActiveReady, metav1.ConditionTrue, "is ready", 2*time.Minute)
	c := condition(t, one, ns, "kts", trusteev1.ConditionPassiveReady, metav1.ConditionFalse, "anti-affinity", time.Minute)
	if !strings.Contains(c.Message, "cannot be scheduled") {
		t.Errorf("PassiveReady: %s", c.Message)
	}
	if p := member(t, one, ns, "kts-b-0"); p == nil || p.Spec.NodeName != "" || p.Status.Phase != corev1.PodPending {
		t.Fatalf("the passive's pod: %+v", p)
	}
	ready := condition(t, one, ns, "kts", trusteev1.ConditionReady, metav1.ConditionFalse, "", time.Minute)
	t.Logf("Ready: %s: %s", ready.Reason, ready.Message)
}

// TestNodeLoss: the active's node is deleted; the status tells the truth
// at each step, the pod comes back on another node, and the status
// recovers. Then the out-of-service taint path: a node that stops
// heartbeating keeps its pod Terminating until the taint is added.
func TestNodeLoss(t *testing.T) {
	// Not parallel: losing nodes would disturb the other tests' pods. It
	// runs first, alone.
	showOperatorLogs(t)
	sharedOperator(t)
	ns := cluster.Namespace(t)
	apply(t, cluster, ns, serverYAML("kts", corev1.LabelHostname))
	condition(t, cluster, ns, "kts", trusteev1.ConditionActiveReady, metav1.ConditionTrue, "is ready", 2*time.Minute)
	condition(t, cluster, ns, "kts", trusteev1.ConditionPassiveReady, metav1.ConditionTrue, "is ready", time.Minute)

	lost := member(t, cluster, ns, "kts-a-0").Spec.NodeName
	cluster.DeleteNode(t, lost)
	t.Cleanup(func() { cluster.AddNode(t, controlplane.Node{Name: lost, Zone: zoneOf(lost)}) })
	c := condition(t, cluster, ns, "kts", trusteev1.ConditionActiveReady, metav1.ConditionFalse, "kts-a-0", 2*time.Minute)
	t.Logf("after the node is gone: ActiveReady %s: %s", c.Reason, c.Message)
	condition(t, cluster, ns, "kts", trusteev1.ConditionReady, metav1.ConditionFalse, "", time.Minute)
	d := condition(t, cluster, ns, "kts", trusteev1.ConditionDegraded, metav1.ConditionTrue, "reads only, served by the passive; writes wait for the active", time.Minute)
	t.Logf("Degraded: %s", d.Message)
	c = condition(t, cluster, ns, "kts", trusteev1.ConditionActiveReady, metav1.ConditionTrue, "is ready", 3*time.Minute)
	// The events tell the same story: the active lost, then back.
	harness.Eventually(t, time.Minute, "events of the loss and the return", func() (bool, string) {
		out := kubectl(t, "get", "events", "-n", ns, "--field-selector", "involvedObject.name=kts", "-o", "custom-columns=REASON:.reason,MESSAGE:.message")
		return strings.Contains(out, "ActiveReadyFalse") && strings.Contains(out, "ActiveReadyTrue"), out
	})
	if now := member(t, cluster, ns, "kts-a-0").Spec.NodeName; now == lost || now == member(t, cluster, ns, "kts-b-0").Spec.NodeName {
		t.Fatalf("the active came back on node %s (lost %s)", now, lost)
	}

	// A node that only stops answering.
	silent := member(t, cluster, ns, "kts-b-0").Spec.NodeName
	cluster.StopHeartbeat(t, silent)
	t.Cleanup(func() { cluster.ResumeHeartbeat(t, silent) })
	condition(t, cluster, ns, "kts", trusteev1.ConditionPassiveReady, metav1.ConditionFalse, "", 2*time.Minute)
	if err := cluster.Client.Delete(background(), &corev1.Pod{ObjectMeta: metav1.ObjectMeta{Namespace: ns, Name: "kts-b-0"}}); err != nil {
		t.Fatal(err)
	}
	time.Sleep(5 * time.Second)
	if p := member(t, cluster, ns, "kts-b-0"); p == nil || p.DeletionTimestamp.IsZero() || p.Spec.NodeName != silent {
		t.Fatalf("on a silent node the deleted pod should stay Terminating: %+v", p)
	}
	node := &corev1.Node{}
	if err := cluster.Client.Get(background(), client.ObjectKey{Name: silent}, node); err != nil {
		t.Fatal(err)
	}
	node.Spec.Taints = append(node.Spec.Taints, corev1.Taint{Key: corev1.TaintNodeOutOfService, Value: "nodeshutdown", Effect: corev1.TaintEffectNoExecute})
	if err := cluster.Client.Update(background(), node); err != nil {
		t.Fatal(err)
	}
	condition(t, cluster, ns, "kts", trusteev1.ConditionPassiveReady, metav1.ConditionTrue, "is ready", 3*time.Minute)
	if now := member(t, cluster, ns, "kts-b-0").Spec.NodeName; now == silent {
		t.Fatalf("the passive came back on the silent node %s", now)
	}
}

func zoneOf(node string) string {
	var n int
	fmt.Sscanf(node, "node-%d", &n)
	return []string{"zone-b", "zone-a"}[n%2]
}

// TestDisruptionBudget: a drain may evict one member, never both at once.
func TestDisruptionBudget(t *testing.T) {
	t.Parallel()
	showOperatorLogs(t)
	sharedOperator(t)
	ns := cluster.Namespace(t)
	apply(t, cluster, ns, serverYAML("kts", corev1.LabelHostname))
	condition(t, cluster, ns, "kts", trusteev1.ConditionActiveReady, metav1.ConditionTrue, "is ready", 2*time.Minute)
	condition(t, cluster, ns, "kts", trusteev1.ConditionPassiveReady, metav1.ConditionTrue, "is ready", time.Minute)
	harness.Eventually(t, time.Minute, "the budget allows one disruption", func() (bool, string) {
		pdb := &policyv1.PodDisruptionBudget{}
		err := cluster.Client.Get(background(), client.ObjectKey{Namespace: ns, Name: "kts"}, pdb)
		return err == nil && pdb.Status.DisruptionsAllowed == 1 && pdb.Status.CurrentHealthy == 2, fmt.Sprintf("%v %+v", err, pdb.Status)
	})
	evict := func(pod string) error {
		return cluster.Client.SubResource("eviction").Create(background(),
			&corev1.Pod{ObjectMeta: metav1.ObjectMeta{Namespace: ns, Name: pod}},
			&policyv1.Eviction{ObjectMeta: metav1.ObjectMeta{Namespace: ns, Name: pod}})
	}
	// The evicted passive is held while it terminates (a finalizer of the
	// test's), as a real pod is while its processes stop: kwok would have
	// it back, Ready, within milliseconds, and then evicting the active is
	// rightly allowed.
	hold := func(on bool) {
		finalizers := `["trustee.dev/test-hold"]`
		if !on {
			finalizers = `null`
		}
		patch := client.RawPatch(types.MergePatchType, []byte(`{"metadata":{"finalizers":`+finalizers+`}}`))
		if err := cluster.Client.Patch(background(), &corev1.Pod{ObjectMeta: metav1.ObjectMeta{Namespace: ns, Name: "kts-b-0"}}, patch); err != nil {
			t.Fatal(err)
		}
	}
	hold(true)
	if err := evict("kts-b-0"); err != nil {
		t.Fatalf("evicting the first member: %v", err)
	}
	err := evict("kts-a-0")
	hold(false)
	if !apierrors.IsTooManyRequests(err) || !strings.Contains(err.Error(), "disruption budget") {
		t.Fatalf("evicting the second member while the first is away: %v, want refused by the disruption budget", err)
	}
	condition(t, cluster, ns, "kts", trusteev1.ConditionPassiveReady, metav1.ConditionTrue, "is ready", 2*time.Minute)
	harness.Eventually(t, time.Minute, "the budget healthy again", func() (bool, string) {
		pdb := &policyv1.PodDisruptionBudget{}
		err := cluster.Client.Get(background(), client.ObjectKey{Namespace: ns, Name: "kts"}, pdb)
		return err == nil && pdb.Status.DisruptionsAllowed == 1, fmt.Sprintf("%v %+v", err, pdb.Status)
	})
	// As a drain does, retry while the budget catches up with the
	// passive's return.
	harness.Eventually(t, time.Minute, "the active evicted once the passive is back", func() (bool, string) {
		err := evict("kts-a-0")
		return err == nil, fmt.Sprint(err)
	})
}

// TestBackupScheduleRunsJobs: the CronJob creates Jobs on its schedule, and
// the schedule's status follows them to completion.
func TestBackupScheduleRunsJobs(t *testing.T) {
	t.Parallel()
	showOperatorLogs(t)
	sharedOperator(t)
	ns := cluster.Namespace(t)
	apply(t, cluster, ns, serverYAML("kts", corev1.LabelHostname)+`---
apiVersion: v1
kind: PersistentVolumeClaim
metadata:
  name: archives
spec:
  accessModes: [ReadWriteOnce]
  resources:
    requests:
      storage: 1Gi
---
apiVersion: trustee.dev/v1alpha1
kind: BackupSchedule
metadata:
  name: every-minute
spec:
  serverRef:
    name: kts
  schedule: "* * * * *"
  cleartext: true
  roll: 3
  destination:
    claimName: archives
`)
	bs := &trusteev1.BackupSchedule{}
	// The CronJob controller starts a Job at the next full minute (at most
	// a minute away); kwok completes its pod.
	harness.Eventually(t, 150*time.Second, "a backup Job completed and reported", func() (bool, string) {
		if err := cluster.Client.Get(background(), client.ObjectKey{Namespace: ns, Name: "every-minute"}, bs); err != nil {
			return false, err.Error()
		}
		c := meta.FindStatusCondition(bs.Status.Conditions, trusteev1.ConditionLastBackupSucceeded)
		return c != nil && c.Status == metav1.ConditionTrue && bs.Status.LastSuccessfulTime != nil && bs.Status.LastScheduleTime != nil,
			fmt.Sprintf("%+v", bs.Status)
	})
	var jobs batchv1.JobList
	if err := cluster.Client.List(background(), &jobs, client.InNamespace(ns)); err != nil {
		t.Fatal(err)
	}
	if len(jobs.Items) == 0 || !metav1.IsControlledBy(&jobs.Items[0], &batchv1.CronJob{ObjectMeta: metav1.ObjectMeta{Name: "every-minute-backup", UID: jobs.Items[0].OwnerReferences[0].UID}}) {
		t.Fatalf("jobs: %+v", jobs.Items)
	}
	if !bs.Status.LastSuccessfulTime.After(bs.Status.LastScheduleTime.Time) && !bs.Status.LastSuccessfulTime.Equal(bs.Status.LastScheduleTime) {
		t.Errorf("success at %v before the schedule at %v", bs.Status.LastSuccessfulTime, bs.Status.LastScheduleTime)
	}
}

// TestReadyWithItsMembersRunning: kwok runs no containers, so here the
// test runs what the members' pods would (test/memberpods: kts member
// setup, kts db run, kts server from the operator's Secrets and
// ConfigMap) and forwards each pod's IP and ports to them, as the pod
// network would. The status then says Ready, and an Organization applied
// with kubectl reaches the server.
func TestReadyWithItsMembersRunning(t *testing.T) {
	t.Parallel()
	showOperatorLogs(t)
	sharedOperator(t)
	ns := cluster.Namespace(t)
	apply(t, cluster, ns, serverYAML("kts", corev1.LabelHostname))
	condition(t, cluster, ns, "kts", trusteev1.ConditionActiveReady, metav1.ConditionTrue, "is ready", 2*time.Minute)
	condition(t, cluster, ns, "kts", trusteev1.ConditionPassiveReady, metav1.ConditionTrue, "is ready", time.Minute)
	condition(t, cluster, ns, "kts", trusteev1.ConditionCertificateReady, metav1.ConditionTrue, "", time.Minute)
	harness.Eventually(t, time.Minute, "the admin certificates", func() (bool, string) {
		for _, name := range []string{"kts-admin-ca", "kts-operator-admin"} {
			s := &corev1.Secret{}
			if err := cluster.Client.Get(background(), client.ObjectKey{Namespace: ns, Name: name}, s); err != nil || len(s.Data["tls.crt"]) == 0 {
				return false, fmt.Sprintf("%s: %v", name, err)
			}
		}
		return true, ""
	})
	k := &trusteev1.KeyTrusteeServer{}
	if err := cluster.Client.Get(background(), client.ObjectKey{Namespace: ns, Name: "kts"}, k); err != nil {
		t.Fatal(err)
	}
	root := memberpods.RootDir(t)
	active := memberpods.LayOut(t, background(), cluster.Client, kts, root, k, "a", nil)
	passive := memberpods.LayOut(t, background(), cluster.Client, kts, root, k, "b", active)
	active.RunDB(t)
	passive.RunDB(t)
	active.RunServer(t)
	passive.RunServer(t)
	ips := podIPsToServeOn(t, cluster, ns, "kts-a-0", "kts-b-0")
	for i, m := range []*memberpods.Member{active, passive} {
		forward(t, net.JoinHostPort(ips[i], "11371"), fmt.Sprintf("127.0.0.1:%d", m.API))
		forward(t, net.JoinHostPort(ips[i], "11373"), fmt.Sprintf("127.0.0.1:%d", m.Admin))
	}
	condition(t, cluster, ns, "kts", trusteev1.ConditionReplicating, metav1.ConditionTrue, "synchronous standby", 2*time.Minute)
	condition(t, cluster, ns, "kts", trusteev1.ConditionReady, metav1.ConditionTrue, "both members answer", time.Minute)

	apply(t, cluster, ns, `apiVersion: v1
kind: Secret
metadata:
  name: acme-auth
stringData:
  code: a-long-random-auth-code
---
apiVersion: trustee.dev/v1alpha1
kind: Organization
metadata:
  name: acme
spec:
  serverRef:
    name: kts
  contacts: [security@acme.example]
  authCodeSecretRef:
    name: acme-auth
    key: code
`)
	harness.Eventually(t, time.Minute, "the organization on the server", func() (bool, string) {
		org := &trusteev1.Organization{}
		if err := cluster.Client.Get(background(), client.ObjectKey{Namespace: ns, Name: "acme"}, org); err != nil {
			return false, err.Error()
		}
		c := meta.FindStatusCondition(org.Status.Conditions, trusteev1.ConditionReady)
		return c != nil && c.Status == metav1.ConditionTrue && org.Status.UUID != "", fmt.Sprintf("%+v", org.Status)
	})
	if out := kubectl(t, "get", "kts", "-n", ns); !strings.Contains(out, "True") || !strings.Contains(out, "kts-a-0") {
		t.Errorf("kubectl get kts:\n%s", out)
	}

	// A client registers with the Organization's code and keeps a deposit,
	// as the README's quick start goes on.
	dir := filepath.Join(root, "client")
	run := func(stdin string, args ...string) string { t.Helper(); return runKTS(t, stdin, args...) }
	if out := run("", "client", "register", "--dir", dir, "--server", active.URL()+","+passive.URL(), "--org", "acme",
		"--auth-code", "a-long-random-auth-code", "--ca-file", active.CAFile()); !strings.Contains(out, "state: active") {
		t.Fatalf("registration:\n%s", out)
	}
	run("key of disk 1", "client", "put", "--dir", dir, "disk-1")
	if got := run("", "client", "get", "--dir", dir, "disk-1"); got != "key of disk 1" {
		t.Fatalf("get: %q", got)
	}
}

// forward accepts connections on from (a pod's IP and port, on the
// loopback interface here) and carries them to to, until t ends.
// podIPsToServeOn returns the pod IPs of the named pods once they differ
// and this machine can serve the members' ports on them. kwok hands out
// IPs from a pool, and under load has been seen to hand one out twice; a
// pod whose IP is taken is deleted, and its StatefulSet makes it again
// with another.
func podIPsToServeOn(t *testing.T, c *controlplane.Cluster, ns string, names ...string) []string {
	t.Helper()
	free := func(ip string) bool {
		for _, port := range []string{"11371", "11373"} {
			ln, err := net.Listen("tcp", net.JoinHostPort(ip, port))
			if err != nil {
				return false
			}
			ln.Close()
		}
		return true
	}
	var ips []string
	harness.Eventually(t, 2*time.Minute, "pod IPs to serve the members on", func() (bool, string) {
		ips = ips[:0]
		seen := map[string]bool{}
		for _, name := range names {
			p := member(t, c, ns, name)
			if p == nil || p.Status.PodIP == "" || !p.DeletionTimestamp.IsZero() {
				return false, "waiting for pod " + name + " and its IP"
			}
			ip := p.Status.PodIP
			if seen[ip] || !free(ip) {
				if err := c.Client.Delete(background(), p); err != nil && !apierrors.IsNotFound(err) {
					t.Fatal(err)
				}
				return false, fmt.Sprintf("pod %s got IP %s, which is taken: it is made again", name, ip)
			}
			seen[ip] = true
			ips = append(ips, ip)
		}
		return true, ""
	})
	return ips
}

func forward(t *testing.T, from, to string) {
	t.Helper()
	ln, err := net.Listen("tcp", from) // podIPsToServeOn saw it free
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { ln.Close() })
	go func() {
		for {
			in, err := ln.Accept()
			if err != nil {
				return
			}
			go func() {
				defer in.Close()
				out, err := net.Dial("tcp", to)
				if err != nil {
					return
				}
				defer out.Close()
				go io.Copy(out, in)
				io.Copy(in, out)
			}()
		}
	}()
}

func kubectl(t *testing.T, args ...string) string {
	t.Helper()
	return cluster.Kubectl(t, args...)
}
