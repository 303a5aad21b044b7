package cluster

import (
	"fmt"
	"strings"
	"testing"
	"time"

	appsv1 "k8s.io/api/apps/v1"
	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"sigs.k8s.io/controller-runtime/pkg/client"

	trusteev1 "trustee.dev/trustee/api/v1alpha1"
	"trustee.dev/trustee/test/controlplane"
	"trustee.dev/trustee/test/harness"
)

// TestRevertingABadImage: spec.image set to an image that cannot be
// pulled (controlplane.ImagePullFails, kwok's simulated pull failure)
// stops the roll at the passive, whose new pod waits with ErrImagePull;
// the active is untouched. Setting spec.image back leaves that pod where
// it is (a StatefulSet does not replace a pod that never got ready): the
// operator deletes it, says so in an event, and the StatefulSet makes it
// again on the good revision.
func TestRevertingABadImage(t *testing.T) {
	t.Parallel()
	ns := runningPair(t)
	active := member(t, cluster, ns, "kts-a-0")
	good := member(t, cluster, ns, "kts-b-0").Labels[appsv1.ControllerRevisionHashLabelKey]
	claim := func() *corev1.PersistentVolumeClaim {
		t.Helper()
		pvc := &corev1.PersistentVolumeClaim{}
		if err := cluster.Client.Get(background(), client.ObjectKey{Namespace: ns, Name: "data-kts-b-0"}, pvc); err != nil {
			t.Fatal(err)
		}
		return pvc
	}
	volume := claim()

	kubectl(t, "patch", "kts", "kts", "-n", ns, "--type=merge", "-p", fmt.Sprintf(`{"spec":{"image":%q}}`, controlplane.ImagePullFails))
	c := condition(t, cluster, ns, "kts", trusteev1.ConditionUpgrading, metav1.ConditionTrue, "does not start on the new template (container setup: ErrImagePull", 2*time.Minute)
	if c.Reason != trusteev1.ReasonRollStopped {
		t.Fatalf("Upgrading: %s: %s", c.Reason, c.Message)
	}
	stuck := member(t, cluster, ns, "kts-b-0")
	if stuck == nil || podReady(stuck) || stuck.Labels[appsv1.ControllerRevisionHashLabelKey] == good || stuck.Spec.Containers[0].Image != controlplane.ImagePullFails {
		t.Fatalf("the passive's pod on the bad image: %+v", stuck)
	}

	kubectl(t, "patch", "kts", "kts", "-n", ns, "--type=merge", "-p", `{"spec":{"image":null}}`)
	reverted := time.Now()
	events := func() string {
		return kubectl(t, "get", "events", "-n", ns, "--field-selector", "involvedObject.name=kts,reason="+trusteev1.ReasonReplacingPod,
			"-o", "custom-columns=TYPE:.type,REASON:.reason,MESSAGE:.message", "--no-headers")
	}
	harness.Eventually(t, 2*time.Minute, "the operator's event of the replaced pod", func() (bool, string) {
		out := events()
		return strings.Contains(out, "deleted pod kts-b-0: it was stuck on revision "+stuck.Labels[appsv1.ControllerRevisionHashLabelKey]) &&
			strings.Contains(out, "ErrImagePull") && strings.Contains(out, "re-creates it on revision "+good), out
	})
	harness.Eventually(t, 2*time.Minute, "the passive's pod made again on the good revision, ready", func() (bool, string) {
		p := member(t, cluster, ns, "kts-b-0")
		if p == nil {
			return false, "no pod"
		}
		return p.UID != stuck.UID && p.Labels[appsv1.ControllerRevisionHashLabelKey] == good && podReady(p) && p.Spec.Containers[0].Image == "trustee:test",
			fmt.Sprintf("uid %s, revision %s, ready %v, image %s", p.UID, p.Labels[appsv1.ControllerRevisionHashLabelKey], podReady(p), p.Spec.Containers[0].Image)
	})
	t.Logf("the passive's pod ready on the good revision %v after the revert", time.Since(reverted).Round(100*time.Millisecond))
	condition(t, cluster, ns, "kts", trusteev1.ConditionUpgrading, metav1.ConditionFalse, "every member runs", time.Minute)
	if now := member(t, cluster, ns, "kts-a-0"); now == nil || now.UID != active.UID {
		t.Errorf("the active's pod was replaced: %+v", now)
	}
	if out := events(); strings.Count(out, "deleted pod") != 1 || !strings.HasPrefix(out, corev1.EventTypeNormal) {
		t.Errorf("events of the replaced pod:\n%s", out)
	}
	// The passive's volume is the one it had from the start.
	if now := claim(); now.UID != volume.UID || now.Spec.VolumeName != volume.Spec.VolumeName || now.Status.Phase != corev1.ClaimBound {
		t.Errorf("the passive's claim: %s (%s, %s), was %s (%s)", now.UID, now.Spec.VolumeName, now.Status.Phase, volume.UID, volume.Spec.VolumeName)
	}
}

// TestStuckPodThatWasReadyIsLeftToTheUser: the passive's pod, ready on
// its revision, stops being ready (here the test writes the status a
// crash-looping pod has); a new spec.image then leaves it stuck on the old
// revision, which the StatefulSet does not replace. The operator does not
// delete it: it may hold the reason it stopped. It says so in the Upgrading
// condition and one Warning event; the user deletes the pod, and the roll
// goes on.
func TestStuckPodThatWasReadyIsLeftToTheUser(t *testing.T) {
	t.Parallel()
	ns := runningPair(t)
	was := member(t, cluster, ns, "kts-b-0")

	// What the kubelet reports of a pod whose server crashes after it ran.
	kubectl(t, "patch", "pod", "kts-b-0", "-n", ns, "--subresource=status", "--type=strategic", "-p", `{"status":{
"conditions":[{"type":"Ready","status":"False","reason":"ContainersNotReady"},{"type":"ContainersReady","status":"False","reason":"ContainersNotReady"}],
"containerStatuses":[{"name":"server","ready":false,"restartCount":3,"image":"trustee:test","imageID":"","state":{"waiting":{"reason":"CrashLoopBackOff"}},
"lastState":{"terminated":{"exitCode":1,"reason":"Error"}}}]}}`)
	condition(t, cluster, ns, "kts", trusteev1.ConditionPassiveReady, metav1.ConditionFalse, "", time.Minute)

	kubectl(t, "patch", "kts", "kts", "-n", ns, "--type=merge", "-p", `{"spec":{"image":"trustee:v2"}}`)
	c := condition(t, cluster, ns, "kts", trusteev1.ConditionUpgrading, metav1.ConditionTrue, "it may have been ready on that revision", 2*time.Minute)
	if c.Reason != trusteev1.ReasonReplaceRefused || !strings.Contains(c.Message, "kubectl delete pod kts-b-0") {
		t.Fatalf("Upgrading: %s: %s", c.Reason, c.Message)
	}
	refusals := func() string {
		return kubectl(t, "get", "events", "-n", ns, "--field-selector", "involvedObject.name=kts,reason="+trusteev1.ReasonReplaceRefused,
			"-o", "custom-columns=TYPE:.type,MESSAGE:.message", "--no-headers")
	}
	harness.Eventually(t, time.Minute, "the refusal's event", func() (bool, string) {
		out := refusals()
		return strings.HasPrefix(out, corev1.EventTypeWarning) && strings.Contains(out, "pod kts-b-0 is stuck on revision "+was.Labels[appsv1.ControllerRevisionHashLabelKey]), out
	})
	time.Sleep(15 * time.Second) // more reconciles
	if p := member(t, cluster, ns, "kts-b-0"); p == nil || p.UID != was.UID || !p.DeletionTimestamp.IsZero() {
		t.Fatalf("the operator deleted the pod that had been ready: %+v", p)
	}
	if out := refusals(); strings.Count(out, "is stuck") != 1 {
		t.Errorf("the refusal told more than once:\n%s", out)
	}
	if n := strings.Count(kubectl(t, "get", "events", "-n", ns, "--field-selector", "involvedObject.name=kts,reason="+trusteev1.ReasonReplacingPod, "--no-headers", "--ignore-not-found"), "\n"); n != 0 {
		t.Errorf("%d ReplacingPod events", n)
	}

	// As the message says: the user deletes it, and the roll goes on to
	// its next step (no server runs here to report the passive in sync, so
	// it stops there).
	kubectl(t, "delete", "pod", "kts-b-0", "-n", ns)
	c = condition(t, cluster, ns, "kts", trusteev1.ConditionUpgrading, metav1.ConditionTrue, "the passive kts-b-0 runs the new template", 2*time.Minute)
	if c.Reason != trusteev1.ReasonWaitingForSync {
		t.Fatalf("Upgrading: %s: %s", c.Reason, c.Message)
	}
	if p := member(t, cluster, ns, "kts-b-0"); p == nil || p.UID == was.UID || p.Spec.Containers[0].Image != "trustee:v2" || !podReady(p) {
		t.Errorf("the passive's pod after the delete: %+v", p)
	}
}

// runningPair applies a pair named kts in a namespace of its own, with the
// shared operator, and waits until both members run their template.
func runningPair(t *testing.T) string {
	t.Helper()
	showOperatorLogs(t)
	sharedOperator(t)
	ns := cluster.Namespace(t)
	apply(t, cluster, ns, serverYAML("kts", corev1.LabelHostname))
	condition(t, cluster, ns, "kts", trusteev1.ConditionActiveReady, metav1.ConditionTrue, "is ready", 2*time.Minute)
	condition(t, cluster, ns, "kts", trusteev1.ConditionPassiveReady, metav1.ConditionTrue, "is ready", time.Minute)
	condition(t, cluster, ns, "kts", trusteev1.ConditionUpgrading, metav1.ConditionFalse, "every member runs", time.Minute)
	return ns
}
