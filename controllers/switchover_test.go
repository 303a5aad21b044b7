package controllers

import (
	"context"
	"fmt"
	"strings"
	"testing"
	"time"

	appsv1 "k8s.io/api/apps/v1"
	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"sigs.k8s.io/controller-runtime/pkg/client"

	trusteev1 "trustee.dev/trustee/api/v1alpha1"
	"trustee.dev/trustee/server/member/contract"
	"trustee.dev/trustee/test/harness"
)

// A change of spec.activeMember fences the active, then, once its pod is
// gone, promotes the passive; it is refused, changing nothing, unless both
// members are ready, settled and in sync. An active whose data is lost is
// replaced the same way without being asked.
func TestDecideSwitchover(t *testing.T) {
	settled := memberRollout{Exists: true, Applied: "h", Want: "h", Current: true, Ready: true}
	restarting := memberRollout{Exists: true, Applied: "h", Want: "h2", Current: true, Ready: true}
	down := memberRollout{Exists: true, Applied: "h", Want: "h", Current: true}
	pair := func(edit func(*switchObservation)) switchObservation {
		o := switchObservation{HA: true, Active: memberA, ActivePod: "kts-a-0", PassivePod: "kts-b-0",
			ActiveRollout: settled, PassiveRollout: settled, InSync: true, InSyncAsked: true}
		edit(&o)
		return o
	}
	for _, c := range []struct {
		name     string
		o        switchObservation
		reason   string
		fenceFor string
		promote  bool
		message  string
	}{
		{"nothing asked", pair(func(o *switchObservation) {}), "", "", false, ""},
		{"the active asked for", pair(func(o *switchObservation) { o.Want = memberA }), "", "", false, ""},
		{"a healthy pair in sync: fence the active first", pair(func(o *switchObservation) { o.Want = memberB }),
			trusteev1.ReasonFencing, memberB, false, "stopping the active kts-a-0 so that it accepts no more writes"},
		{"in sync not yet known: ask before deciding", pair(func(o *switchObservation) { o.Want, o.InSyncAsked, o.InSync = memberB, false, false }),
			"", "", false, ""},
		{"not in sync: refused", pair(func(o *switchObservation) { o.Want, o.InSync = memberB, false }),
			trusteev1.ReasonSwitchoverRefused, "", false, "the passive kts-b-0 is not the active's synchronous standby"},
		{"the passive not ready: refused", pair(func(o *switchObservation) { o.Want, o.PassiveRollout = memberB, down }),
			trusteev1.ReasonSwitchoverRefused, "", false, "the passive kts-b-0 is not ready; nothing was changed"},
		{"the active not ready: refused", pair(func(o *switchObservation) { o.Want, o.ActiveRollout = memberB, down }),
			trusteev1.ReasonSwitchoverRefused, "", false, "the active kts-a-0 is not ready"},
		{"during a roll: refused", pair(func(o *switchObservation) { o.Want, o.ActiveRollout = memberB, restarting }),
			trusteev1.ReasonSwitchoverRefused, "", false, "restarting on a new pod template"},
		{"without high availability: refused", pair(func(o *switchObservation) { o.Want, o.HA = memberB, false }),
			trusteev1.ReasonSwitchoverRefused, "", false, "high availability is off"},
		{"fenced, its pod still there: wait", pair(func(o *switchObservation) { o.Want, o.PromoteTo, o.InSync = memberB, memberB, false }),
			trusteev1.ReasonFencing, memberB, false, "waiting for the active's pod kts-a-0 to stop"},
		{"fenced and gone: promote", pair(func(o *switchObservation) {
			o.Want, o.PromoteTo, o.ActivePodGone, o.ActiveRollout = memberB, memberB, true, memberRollout{}
		}), trusteev1.ReasonPromoting, memberB, true, "promoting the passive kts-b-0"},
		{"called off while fenced: the active comes back", pair(func(o *switchObservation) { o.Want, o.PromoteTo = memberA, memberB }),
			"", "", false, ""},
		{"the active's data lost: fence it", pair(func(o *switchObservation) { o.Lost, o.ActiveRollout, o.InSync = true, down, false }),
			trusteev1.ReasonActiveLost, memberB, false, "fencing it, then promoting the passive kts-b-0"},
		{"the active's data lost, the passive not ready: wait", pair(func(o *switchObservation) { o.Lost, o.ActiveRollout, o.PassiveRollout = true, down, down }),
			trusteev1.ReasonActiveLost, "", false, "waiting for the passive kts-b-0 to be ready"},
		{"the lost active fenced and gone: promote", pair(func(o *switchObservation) { o.PromoteTo, o.ActivePodGone = memberB, true }),
			trusteev1.ReasonPromoting, memberB, true, ""},
		{"the active's data lost without a passive: nothing to do", pair(func(o *switchObservation) { o.Lost, o.HA = true, false }),
			"", "", false, ""},
	} {
		t.Run(c.name, func(t *testing.T) {
			s := decideSwitchover(c.o)
			if s.Reason != c.reason || s.FenceFor != c.fenceFor || s.Promote != c.promote || !strings.Contains(s.Message, c.message) {
				t.Errorf("got %+v;\nwant reason %q, fence for %q, promote %v, a message with %q", s, c.reason, c.fenceFor, c.promote, c.message)
			}
		})
	}
}

// Only a setup that exited for a lost volume, and has not run through
// since, counts as the loss.
func TestVolumeLost(t *testing.T) {
	exited := func(code int32) *corev1.ContainerStateTerminated {
		return &corev1.ContainerStateTerminated{ExitCode: code}
	}
	waiting := &corev1.ContainerStateWaiting{Reason: "CrashLoopBackOff"}
	for _, c := range []struct {
		name string
		cs   corev1.ContainerStatus
		want bool
	}{
		{"exited for a lost volume", corev1.ContainerStatus{Name: "setup", State: corev1.ContainerState{Terminated: exited(3)}}, true},
		{"waiting after that exit", corev1.ContainerStatus{Name: "setup", State: corev1.ContainerState{Waiting: waiting},
			LastTerminationState: corev1.ContainerState{Terminated: exited(3)}}, true},
		{"ran through after it (the volume came back)", corev1.ContainerStatus{Name: "setup", State: corev1.ContainerState{Terminated: exited(0)},
			LastTerminationState: corev1.ContainerState{Terminated: exited(3)}}, false},
		{"running again after it", corev1.ContainerStatus{Name: "setup", State: corev1.ContainerState{Running: &corev1.ContainerStateRunning{}},
			LastTerminationState: corev1.ContainerState{Terminated: exited(3)}}, false},
		{"another failure", corev1.ContainerStatus{Name: "setup", State: corev1.ContainerState{Waiting: waiting},
			LastTerminationState: corev1.ContainerState{Terminated: exited(1)}}, false},
		{"another container", corev1.ContainerStatus{Name: "other", State: corev1.ContainerState{Terminated: exited(3)}}, false},
	} {
		pod := &corev1.Pod{Status: corev1.PodStatus{InitContainerStatuses: []corev1.ContainerStatus{c.cs}}}
		if got := volumeLost(pod); got != c.want {
			t.Errorf("%s: %v, want %v", c.name, got, c.want)
		}
	}
}

// The Switchover condition follows the new pair until the old active is
// its synchronous standby again.
func TestSwitchCondition(t *testing.T) {
	ready := podObservation{Name: "kts-b-0", Ready: true}
	synced := &replicationObservation{Attached: true, SyncState: "sync"}
	for _, c := range []struct {
		name   string
		s      switchState
		was    bool
		o      serverObservation
		status metav1.ConditionStatus
		reason string
	}{
		{"settled", switchState{}, false, serverObservation{Active: ready}, metav1.ConditionFalse, trusteev1.ReasonActiveAsSpecified},
		{"refused", switchState{Reason: trusteev1.ReasonSwitchoverRefused}, false, serverObservation{}, metav1.ConditionFalse, trusteev1.ReasonSwitchoverRefused},
		{"fencing", switchState{Reason: trusteev1.ReasonFencing}, false, serverObservation{}, metav1.ConditionTrue, trusteev1.ReasonFencing},
		{"the new active restarting", switchState{}, true, serverObservation{}, metav1.ConditionTrue, trusteev1.ReasonPromoting},
		{"the old active rejoining", switchState{}, true, serverObservation{Active: ready}, metav1.ConditionTrue, trusteev1.ReasonRejoining},
		{"done", switchState{}, true, serverObservation{Active: ready, Passive: podObservation{Name: "kts-a-0", Ready: true}, Replication: synced},
			metav1.ConditionFalse, trusteev1.ReasonActiveAsSpecified},
	} {
		t.Run(c.name, func(t *testing.T) {
			got := switchCondition(c.s, c.was, c.o, memberB)
			if got.Status != c.status || got.Reason != c.reason {
				t.Errorf("got %s/%s (%s); want %s/%s", got.Status, got.Reason, got.Message, c.status, c.reason)
			}
		})
	}
}

// An active whose setup finds its volume empty after the database existed
// is fenced, and only once its pod is gone is the passive promoted; the
// decision is in events and status, and the old active's StatefulSet comes
// back as the passive.
func TestActiveLostPromotesThePassive(t *testing.T) {
	ctx, ns := testContext(t), env.Namespace(t)
	testCA(t, ctx, ns)
	if err := env.Client.Create(ctx, newServer(ns, "kts")); err != nil {
		t.Fatal(err)
	}
	memberPod(t, ctx, ns, "kts", memberA, podScheduled, podReady)
	memberPod(t, ctx, ns, "kts", memberB, podScheduled, podReady)
	waitCondition(t, ctx, ns, "kts", trusteev1.ConditionPassiveReady, metav1.ConditionTrue, "")

	// The active's pod comes back on an empty volume: its setup refuses.
	pod := &corev1.Pod{}
	if err := env.Client.Get(ctx, client.ObjectKey{Namespace: ns, Name: "kts-a-0"}, pod); err != nil {
		t.Fatal(err)
	}
	pod.Status.Conditions = []corev1.PodCondition{podScheduled, podNotReady}
	pod.Status.InitContainerStatuses = []corev1.ContainerStatus{{Name: "setup",
		State:                corev1.ContainerState{Waiting: &corev1.ContainerStateWaiting{Reason: "CrashLoopBackOff"}},
		LastTerminationState: corev1.ContainerState{Terminated: &corev1.ContainerStateTerminated{ExitCode: contract.ExitVolumeLost}}}}
	if err := env.Client.Status().Update(ctx, pod); err != nil {
		t.Fatal(err)
	}
	waitCondition(t, ctx, ns, "kts", trusteev1.ConditionSwitchover, metav1.ConditionTrue, "has lost its data")
	wantEvent(t, ctx, ns, trusteev1.ReasonActiveLost)
	harness.Eventually(t, time.Minute, "the lost active fenced", func() (bool, string) {
		sts := &appsv1.StatefulSet{}
		err := env.Client.Get(ctx, client.ObjectKey{Namespace: ns, Name: "kts-a"}, sts)
		return err == nil && *sts.Spec.Replicas == 0 && sts.Annotations[promoteAnnotation] == memberB, fmt.Sprint(err)
	})
	if m := recordedActive(t, ctx, ns); m != "" {
		t.Fatalf("the passive was promoted while the old active's pod existed: %q", m)
	}

	// Its pod gone, the passive is promoted; a rejoins as the passive.
	if err := env.Client.Delete(ctx, pod, client.GracePeriodSeconds(0)); err != nil {
		t.Fatal(err)
	}
	harness.Eventually(t, time.Minute, "b recorded as the active", func() (bool, string) {
		m := recordedActive(t, ctx, ns)
		return m == memberB, m
	})
	wantEvent(t, ctx, ns, "Promoted")
	harness.Eventually(t, time.Minute, "the StatefulSets in their new roles", func() (bool, string) {
		a, b := &appsv1.StatefulSet{}, &appsv1.StatefulSet{}
		errA := env.Client.Get(ctx, client.ObjectKey{Namespace: ns, Name: "kts-a"}, a)
		errB := env.Client.Get(ctx, client.ObjectKey{Namespace: ns, Name: "kts-b"}, b)
		return errA == nil && errB == nil && *a.Spec.Replicas == 1 && a.Labels[labelRole] == "passive" && b.Labels[labelRole] == "active",
			fmt.Sprint(errA, errB, a.Labels, b.Labels)
	})
	k := &trusteev1.KeyTrusteeServer{}
	harness.Eventually(t, time.Minute, "status.activeMember b", func() (bool, string) {
		err := env.Client.Get(ctx, client.ObjectKey{Namespace: ns, Name: "kts"}, k)
		return err == nil && k.Status.ActiveMember == memberB && k.Status.Active == "kts-b-0", fmt.Sprint(err, k.Status.ActiveMember)
	})
}

func recordedActive(t *testing.T, ctx context.Context, ns string) string {
	t.Helper()
	s := &corev1.Secret{}
	if err := env.Client.Get(ctx, client.ObjectKey{Namespace: ns, Name: "kts-state"}, s); err != nil {
		t.Fatal(err)
	}
	return string(s.Data[contract.KeyActiveMember])
}
