package operator

import (
	"context"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	appsv1 "k8s.io/api/apps/v1"
	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"sigs.k8s.io/controller-runtime/pkg/client"

	trusteev1 "trustee.dev/trustee/api/v1alpha1"
	kclient "trustee.dev/trustee/server/client"
	"trustee.dev/trustee/test/clusterbase"
	"trustee.dev/trustee/test/harness"
	hist "trustee.dev/trustee/test/history"
	"trustee.dev/trustee/test/memberpods"
)

// Client ids of the switchover's history.
const (
	switchClients = 3                 // the workload: ids 0 to 2
	readsFromA    = switchClients     // reads from member a alone, afterwards
	readsFromB    = switchClients + 1 // reads from member b alone, afterwards
)

// TestSwitchoverUnderWrites swaps the roles of a pair while clients keep
// writing and reading, playing the StatefulSet controller and the kubelet
// with the members' real processes: spec.activeMember is refused while the
// passive is not in sync, then goes ahead by itself once it is: the active
// is fenced (its StatefulSet scaled to zero, its processes stopped, its pod
// gone) before the passive is promoted; the old active rejoins as the
// passive, copying the new active. The history is linearizable and every
// acknowledged write reads back from each member alone.
func TestSwitchoverUnderWrites(t *testing.T) {
	ctx, cancel := context.WithTimeout(context.Background(), 8*time.Minute)
	defer cancel()
	ns := env.Namespace(t)
	server, root, a, b, load := pairWithClient(t, ctx, ns)
	waitServer(t, ctx, server, trusteev1.ConditionSwitchover, metav1.ConditionFalse, "member a (kts-a-0) is the active")
	h := hist.New()
	stop := h.RunWorkload(t, load, switchClients, uint64(time.Now().UnixNano()))
	acked := func(what string) {
		t.Helper()
		from := h.Now()
		harness.Eventually(t, time.Minute, "a write acknowledged "+what, func() (bool, string) {
			return h.Any(from, func(o hist.Op) bool { return o.Put && o.Call >= from && o.Res == hist.OK }), ""
		})
	}
	acked("before the switchover")

	// Asked while the passive's PostgreSQL is away: refused, nothing changes.
	b.DB.Stop()
	waitServer(t, ctx, server, trusteev1.ConditionReplicating, metav1.ConditionFalse, "")
	patchServer(t, ctx, server, func(k *trusteev1.KeyTrusteeServer) { k.Spec.ActiveMember = "b" })
	waitServer(t, ctx, server, trusteev1.ConditionSwitchover, metav1.ConditionFalse,
		"spec.activeMember asks for b as the active, refused: the passive kts-b-0 is not the active's synchronous standby")
	if r := stsReplicas(t, ctx, ns, "a"); r != 1 {
		t.Fatalf("the refused switchover scaled the active to %d", r)
	}
	wantEvent(t, ctx, ns, "SwitchoverRefused")

	// The passive back in sync: the switchover goes ahead. The active is
	// fenced first; the kubelet stops its processes and its pod goes.
	b.RunDB(t)
	waitServer(t, ctx, server, trusteev1.ConditionSwitchover, metav1.ConditionTrue, "")
	harness.Eventually(t, time.Minute, "the active's StatefulSet scaled to zero", func() (bool, string) {
		r := stsReplicas(t, ctx, ns, "a")
		return r == 0, fmt.Sprint(r)
	})
	if active := activeMember(t, ctx, ns); active != "" {
		t.Fatalf("the identity Secret names %q as the active before the old one is gone", active)
	}
	wantEvent(t, ctx, ns, "Fencing")
	a.Server.Stop()
	a.DB.Stop()
	// Its processes have exited: the kubelet removes the pod for good.
	if err := env.Client.Delete(ctx, &corev1.Pod{ObjectMeta: metav1.ObjectMeta{Namespace: ns, Name: "kts-a-0"}}, client.GracePeriodSeconds(0)); err != nil {
		t.Fatal(err)
	}

	// Promoted: b restarts as the active on its new template, its setup
	// promoting its copy; a comes back as the passive, copying b.
	harness.Eventually(t, time.Minute, "b recorded as the active", func() (bool, string) {
		m := activeMember(t, ctx, ns)
		return m == "b", m
	})
	wantEvent(t, ctx, ns, "Promoted")
	rejoin(t, ctx, server, b, a)
	wantEvent(t, ctx, ns, "Rejoining")
	wantEvent(t, ctx, ns, "ActiveAsSpecified")
	acked("after the switchover")
	stop()

	got := &trusteev1.KeyTrusteeServer{}
	if err := env.Client.Get(ctx, client.ObjectKeyFromObject(server), got); err != nil {
		t.Fatal(err)
	}
	if got.Status.ActiveMember != "b" || got.Status.Active != "kts-b-0" || got.Status.Passive != "kts-a-0" {
		t.Fatalf("status after the switchover: activeMember %q, active %q, passive %q", got.Status.ActiveMember, got.Status.Active, got.Status.Passive)
	}
	var alone [2]*kclient.Client
	for i, m := range []*memberpods.Member{a, b} {
		c, err := kclient.Open(hist.ClientWithServers(t, load, filepath.Join(root, "clients", "only-"+m.Name), m.URL()))
		if err != nil {
			t.Fatal(err)
		}
		alone[i] = c
	}
	lost := h.VerifyWrites(t, alone, [2]int{readsFromA, readsFromB}, [2]string{"member a", "member b"})
	ops := h.Snapshot()
	stale := hist.CheckNoStaleReads(t, ops, "clients 0-2: the workload")
	hist.CheckLinearizable(t, ops, fmt.Sprintf("clients 0-%d: the workload; %d, %d: members a and b alone afterwards",
		switchClients-1, readsFromA, readsFromB), nil)
	var writes, ok int
	for _, o := range ops {
		if o.Put && o.Client < switchClients {
			writes++
			if o.Res == hist.OK {
				ok++
			}
		}
	}
	t.Logf("switchover under writes: %d operations, %d writes (%d acknowledged), acknowledged writes lost: %d, stale reads: %d", len(ops), writes, ok, lost, stale)
}

func patchServer(t *testing.T, ctx context.Context, k *trusteev1.KeyTrusteeServer, edit func(*trusteev1.KeyTrusteeServer)) {
	t.Helper()
	got := &trusteev1.KeyTrusteeServer{}
	if err := env.Client.Get(ctx, client.ObjectKeyFromObject(k), got); err != nil {
		t.Fatal(err)
	}
	orig := got.DeepCopy()
	edit(got)
	if err := env.Client.Patch(ctx, got, client.MergeFrom(orig)); err != nil {
		t.Fatal(err)
	}
}

func stsReplicas(t *testing.T, ctx context.Context, ns, member string) int32 {
	t.Helper()
	sts := &appsv1.StatefulSet{}
	if err := env.Client.Get(ctx, client.ObjectKey{Namespace: ns, Name: "kts-" + member}, sts); err != nil {
		t.Fatal(err)
	}
	return *sts.Spec.Replicas
}

// activeMember is what the state Secret records as the active member.
func activeMember(t *testing.T, ctx context.Context, ns string) string {
	t.Helper()
	s := &corev1.Secret{}
	if err := env.Client.Get(ctx, client.ObjectKey{Namespace: ns, Name: "kts-state"}, s); err != nil {
		t.Fatal(err)
	}
	return string(s.Data["active-member"])
}

// wantEvent waits for an event of the server with this reason.
func wantEvent(t *testing.T, ctx context.Context, ns, reason string) {
	t.Helper()
	clusterbase.WaitForEvent(t, ctx, env.Client, ns, "kts", reason)
}

// TestActiveVolumeLostRecoversFromThePassive loses the active's volume
// with the members' real processes: its pod comes back on an empty volume,
// whose setup refuses to start an empty database (exit status 3, as the
// kubelet reports it); the operator fences it, promotes the passive once
// the old pod is gone, and the old active's member copies the new active
// as its passive. Every acknowledged write is kept.
func TestActiveVolumeLostRecoversFromThePassive(t *testing.T) {
	ctx, cancel := context.WithTimeout(context.Background(), 8*time.Minute)
	defer cancel()
	ns := env.Namespace(t)
	server, root, a, b, dir := pairWithClient(t, ctx, ns)
	wantEvent(t, ctx, ns, "DatabaseCreated")
	c := registered{dir: dir}
	put(t, c, "disk-1", "key of disk 1")

	// The active's volume is lost; its pod comes back on an empty one.
	a.Server.Stop()
	a.DB.Stop()
	a.Remount(t, ctx, nil) // the identity Secret as it is now: it says the database was created
	if err := os.RemoveAll(filepath.Dir(a.State)); err != nil {
		t.Fatal(err)
	}
	if err := os.MkdirAll(filepath.Dir(a.State), 0o755); err != nil {
		t.Fatal(err)
	}
	out, err := a.Setup(t)
	var exit *exec.ExitError
	if !errors.As(err, &exit) || exit.ExitCode() != 3 || !strings.Contains(out, "the active's volume holds no database") {
		t.Fatalf("setup of the active on an empty volume: %v\n%s", err, out)
	}
	pod := &corev1.Pod{}
	if err := env.Client.Get(ctx, client.ObjectKey{Namespace: ns, Name: "kts-a-0"}, pod); err != nil {
		t.Fatal(err)
	}
	pod.Status.Conditions = []corev1.PodCondition{{Type: corev1.PodScheduled, Status: corev1.ConditionTrue}, {Type: corev1.PodReady, Status: corev1.ConditionFalse}}
	pod.Status.InitContainerStatuses = []corev1.ContainerStatus{{Name: "setup",
		State:                corev1.ContainerState{Waiting: &corev1.ContainerStateWaiting{Reason: "CrashLoopBackOff"}},
		LastTerminationState: corev1.ContainerState{Terminated: &corev1.ContainerStateTerminated{ExitCode: int32(exit.ExitCode())}}}}
	if err := env.Client.Status().Update(ctx, pod); err != nil {
		t.Fatal(err)
	}
	waitServer(t, ctx, server, trusteev1.ConditionSwitchover, metav1.ConditionTrue, "lost its data")
	wantEvent(t, ctx, ns, "ActiveLost")
	harness.Eventually(t, time.Minute, "the lost active fenced", func() (bool, string) {
		r := stsReplicas(t, ctx, ns, "a")
		return r == 0, fmt.Sprint(r)
	})
	if m := activeMember(t, ctx, ns); m != "" {
		t.Fatalf("promoted while the old active's pod exists: %q", m)
	}
	if err := env.Client.Delete(ctx, pod, client.GracePeriodSeconds(0)); err != nil {
		t.Fatal(err)
	}
	harness.Eventually(t, time.Minute, "b recorded as the active", func() (bool, string) {
		m := activeMember(t, ctx, ns)
		return m == "b", m
	})
	wantEvent(t, ctx, ns, "Promoted")
	// The old active's member, on its empty volume, copies the new active.
	rejoin(t, ctx, server, b, a)

	for _, m := range []*memberpods.Member{a, b} {
		alone := registered{dir: hist.ClientWithServers(t, dir, filepath.Join(root, "clients", "only-"+m.Name), m.URL())}
		if v := get(t, alone, "disk-1", false); v != "key of disk 1" {
			t.Fatalf("member %s reads disk-1 as %q", m.Name, v)
		}
	}
	put(t, c, "disk-2", "written after the recovery")
}

// pairWithClient starts a pair (member a the active) with its members'
// processes, on their current revisions, with organization acme open to
// registration and a client registered with both members, whose state
// directory it returns.
func pairWithClient(t *testing.T, ctx context.Context, ns string) (server *trusteev1.KeyTrusteeServer, root string, a, b *memberpods.Member, clientDir string) {
	t.Helper()
	server = newServer(t, ctx, ns)
	root = memberpods.RootDir(t)
	a, b = runPair(t, ctx, ns, root, server)
	for _, m := range []*memberpods.Member{a, b} {
		onNewRevision(t, ctx, ns, m.Name)
	}
	waitServer(t, ctx, server, trusteev1.ConditionReady, metav1.ConditionTrue, "")
	kts(t, "org", "add", "-n", "acme", "-c", "keys@acme.example", "--confdir", a.State)
	kts(t, "org", "set-auth", "-n", "acme", "-s", "", "--confdir", a.State)
	clientDir = filepath.Join(root, "clients", "c")
	kts(t, "client", "register", "--dir", clientDir, "--server", a.URL()+","+b.URL(), "--org", "acme", "--ca-file", a.CAFile())
	return server, root, a, b, clientDir
}

// rejoin plays the StatefulSet controller and the kubelet once member
// promoted is recorded as the active and old was fenced: promoted's pod
// restarts as the active (its setup promoting its copy), then old's comes
// back as the passive and copies it; it waits for the pair to be ready.
func rejoin(t *testing.T, ctx context.Context, server *trusteev1.KeyTrusteeServer, promoted, old *memberpods.Member) {
	t.Helper()
	ns := server.Namespace
	promoted.Server.Stop()
	promoted.DB.Stop()
	promoted.Remount(t, ctx, nil)
	if promoted.Role != "active" {
		t.Fatalf("member %s's configuration after the promotion says %s", promoted.Name, promoted.Role)
	}
	promoted.RunDB(t)
	promoted.RunServer(t)
	onNewRevision(t, ctx, ns, promoted.Name)
	harness.Eventually(t, time.Minute, "the old active's StatefulSet back to one", func() (bool, string) {
		r := stsReplicas(t, ctx, ns, old.Name)
		return r == 1, fmt.Sprint(r)
	})
	old.Remount(t, ctx, promoted)
	old.RunDB(t)
	old.RunServer(t)
	markReady(t, ctx, ns, "kts-"+old.Name+"-0", old.Name)
	onNewRevision(t, ctx, ns, old.Name)
	waitServer(t, ctx, server, trusteev1.ConditionSwitchover, metav1.ConditionFalse,
		fmt.Sprintf("member %s (kts-%s-0) is the active", promoted.Name, promoted.Name))
	waitServer(t, ctx, server, trusteev1.ConditionReady, metav1.ConditionTrue, "")
}
