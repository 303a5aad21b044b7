package cluster

import (
	"fmt"
	"os"
	"os/exec"
	"strings"
	"testing"
	"time"

	appsv1 "k8s.io/api/apps/v1"
	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/types"
	"sigs.k8s.io/controller-runtime/pkg/client"

	trusteev1 "trustee.dev/trustee/api/v1alpha1"
	"trustee.dev/trustee/test/harness"
)

// TestGrowingVolumes: a larger spec.storage.size, set with kubectl. On a
// StorageClass that does not allow volume expansion it is refused with
// nothing changed while the rest of the spec still applies, and setting it
// back is accepted; a size below the claims' is refused by the API server.
// Once the class allows expansion, the passive's claim grows first, the
// active's only once the passive's volume has, and then the StatefulSets
// are made again with the new claim template, their pods running on
// untouched (same UIDs) and adopted. The claims are bound to volumes the
// test makes (controlplane.AddVolume), of a class of its own; no storage
// driver runs here, so controlplane.ResizeVolume grows them as one would.
func TestGrowingVolumes(t *testing.T) {
	t.Parallel()
	showOperatorLogs(t)
	sharedOperator(t)
	ns := cluster.Namespace(t)
	class := "fixed-" + ns
	apply(t, cluster, ns, fmt.Sprintf(`apiVersion: storage.k8s.io/v1
kind: StorageClass
metadata:
  name: %s
provisioner: kubernetes.io/no-provisioner
allowVolumeExpansion: false
volumeBindingMode: Immediate
`, class))
	t.Cleanup(func() { cluster.Kubectl(t, "delete", "storageclass", class, "--wait=false") })
	claims := []string{"data-kts-b-0", "data-kts-a-0"} // the passive's, the active's
	for _, claim := range claims {
		cluster.AddVolume(t, class, "1Gi", ns, claim)
	}
	apply(t, cluster, ns, strings.Replace(serverYAML("kts", corev1.LabelHostname), "    size: 1Gi\n", "    size: 1Gi\n    storageClassName: "+class+"\n", 1))
	condition(t, cluster, ns, "kts", trusteev1.ConditionActiveReady, metav1.ConditionTrue, "is ready", 2*time.Minute)
	condition(t, cluster, ns, "kts", trusteev1.ConditionPassiveReady, metav1.ConditionTrue, "is ready", time.Minute)
	condition(t, cluster, ns, "kts", trusteev1.ConditionStorageResized, metav1.ConditionTrue, "have the 1Gi spec.storage.size asks for", time.Minute)
	pods := map[string]types.UID{}
	for _, name := range []string{"kts-a-0", "kts-b-0"} {
		pods[name] = member(t, cluster, ns, name).UID
	}
	sets := map[string]types.UID{}
	for _, name := range []string{"kts-a", "kts-b"} {
		sets[name] = statefulSetOf(t, ns, name).UID
	}
	sizes := func(passive, active, templates string) {
		t.Helper()
		got := map[string]string{}
		for _, claim := range claims {
			got[claim] = kubectl(t, "get", "pvc", claim, "-n", ns, "-o", "jsonpath={.spec.resources.requests.storage}")
		}
		for _, name := range []string{"kts-a", "kts-b"} {
			got[name] = kubectl(t, "get", "statefulset", name, "-n", ns, "-o", "jsonpath={.spec.volumeClaimTemplates[0].spec.resources.requests.storage}")
		}
		want := map[string]string{"data-kts-b-0": passive, "data-kts-a-0": active, "kts-a": templates, "kts-b": templates}
		for k, v := range want {
			if got[k] != v {
				t.Fatalf("sizes (claims, then claim templates): %v, want %v", got, want)
			}
		}
	}

	// The class does not allow expansion: refused, nothing changed, and
	// the rest of the spec still reaches the objects.
	setSize := func(size string) (string, error) {
		cmd := exec.Command("kubectl", "patch", "kts", "kts", "-n", ns, "--type=merge", "-p", `{"spec":{"storage":{"size":"`+size+`"}}}`)
		cmd.Env = append(os.Environ(), "KUBECONFIG="+cluster.Kubeconfig())
		out, err := cmd.CombinedOutput()
		return string(out), err
	}
	if out, err := setSize("2Gi"); err != nil {
		t.Fatalf("kubectl patch: %v\n%s", err, out)
	}
	c := condition(t, cluster, ns, "kts", trusteev1.ConditionStorageResized, metav1.ConditionFalse, "does not allow volume expansion", time.Minute)
	t.Logf("StorageResized %s: %s", c.Reason, c.Message)
	if c.Reason != trusteev1.ReasonResizeRefused || !strings.Contains(c.Message, "Set spec.storage.size back to 1Gi") {
		t.Fatalf("StorageResized: %+v", c)
	}
	kubectl(t, "patch", "kts", "kts", "-n", ns, "--type=merge", "-p", `{"spec":{"tls":{"dnsNames":["localhost","kts.example.com"]}}}`)
	harness.Eventually(t, time.Minute, "the new DNS name in the certificate", func() (bool, string) {
		out := kubectl(t, "get", "certificate", "kts-server", "-n", ns, "-o", "jsonpath={.spec.dnsNames}")
		return strings.Contains(out, "kts.example.com"), out
	})
	sizes("1Gi", "1Gi", "1Gi")
	harness.Eventually(t, time.Minute, "a warning event of the refusal", func() (bool, string) {
		out := kubectl(t, "get", "events", "-n", ns, "--field-selector", "involvedObject.name=kts,type=Warning", "-o", "custom-columns=REASON:.reason,MESSAGE:.message")
		return strings.Contains(out, trusteev1.ReasonResizeRefused), out
	})

	// Set back, the refusal clears; below the claims, the API server refuses.
	if out, err := setSize("1Gi"); err != nil {
		t.Fatalf("setting the size back: %v\n%s", err, out)
	}
	condition(t, cluster, ns, "kts", trusteev1.ConditionStorageResized, metav1.ConditionTrue, "have the 1Gi spec.storage.size asks for", time.Minute)
	if out, err := setSize("512Mi"); err == nil || !strings.Contains(out, "spec.storage.size cannot go below 1Gi") {
		t.Fatalf("shrinking below the claims: %v\n%s", err, out)
	}

	// The class allows expansion: the passive's claim first. No member
	// restarts throughout: the Upgrading condition stays as it is.
	upgrading := condition(t, cluster, ns, "kts", trusteev1.ConditionUpgrading, metav1.ConditionFalse, "every member runs", time.Minute)
	kubectl(t, "patch", "storageclass", class, "-p", `{"allowVolumeExpansion":true}`)
	if out, err := setSize("2Gi"); err != nil {
		t.Fatalf("kubectl patch: %v\n%s", err, out)
	}
	condition(t, cluster, ns, "kts", trusteev1.ConditionStorageResized, metav1.ConditionFalse,
		"waiting for the storage driver to grow the passive's volume (claim data-kts-b-0) to 2Gi; it has 1Gi", time.Minute)
	time.Sleep(2 * time.Second) // more reconciles: the active's claim waits
	sizes("2Gi", "1Gi", "1Gi")
	cluster.ResizeVolume(t, ns, "data-kts-b-0", true) // the kubelet grows its file system
	condition(t, cluster, ns, "kts", trusteev1.ConditionStorageResized, metav1.ConditionFalse,
		"the passive's volume has grown; waiting for the storage driver to grow the active's volume (claim data-kts-a-0) to 2Gi", time.Minute)
	sizes("2Gi", "2Gi", "1Gi")
	cluster.ResizeVolume(t, ns, "data-kts-a-0", false)
	c = condition(t, cluster, ns, "kts", trusteev1.ConditionStorageResized, metav1.ConditionTrue, "have the 2Gi spec.storage.size asks for", time.Minute)
	t.Logf("StorageResized %s: %s", c.Reason, c.Message)
	sizes("2Gi", "2Gi", "2Gi")

	// Both StatefulSets are new and have adopted the same pods.
	harness.Eventually(t, time.Minute, "the pods adopted by the new StatefulSets", func() (bool, string) {
		var state []string
		done := true
		for _, m := range []string{"a", "b"} {
			sts, pod := statefulSetOf(t, ns, "kts-"+m), member(t, cluster, ns, "kts-"+m+"-0")
			if sts.UID == sets[sts.Name] {
				t.Fatalf("StatefulSet %s was not made again", sts.Name)
			}
			if pod == nil || pod.UID != pods[pod.Name] {
				t.Fatalf("pod kts-%s-0 was replaced: %+v", m, pod)
			}
			owner := metav1.GetControllerOf(pod)
			done = done && owner != nil && owner.UID == sts.UID && sts.Status.ReadyReplicas == 1
			state = append(state, fmt.Sprintf("%s owned by %v, StatefulSet %s ready %d", pod.Name, owner, sts.UID, sts.Status.ReadyReplicas))
		}
		return done, strings.Join(state, "; ")
	})
	time.Sleep(3 * time.Second) // the StatefulSet controller would have replaced a pod by now
	for name, uid := range pods {
		if p := member(t, cluster, ns, name); p == nil || p.UID != uid || !p.DeletionTimestamp.IsZero() {
			t.Fatalf("pod %s replaced or deleted: %+v", name, p)
		}
	}
	out := kubectl(t, "get", "events", "-n", ns, "--field-selector", "involvedObject.name=kts", "-o", "custom-columns=REASON:.reason,MESSAGE:.message")
	for _, reason := range []string{trusteev1.ReasonGrowing, trusteev1.ReasonRecreatingStatefulSets, "RecreatingStatefulSet", trusteev1.ReasonResized} {
		if !strings.Contains(out, reason) {
			t.Errorf("no event %s:\n%s", reason, out)
		}
	}
	if now := condition(t, cluster, ns, "kts", trusteev1.ConditionUpgrading, metav1.ConditionFalse, "every member runs", time.Minute); !now.LastTransitionTime.Equal(&upgrading.LastTransitionTime) {
		t.Errorf("the members were said to restart while the volumes grew (Upgrading changed at %v, before at %v):\n%s", now.LastTransitionTime, upgrading.LastTransitionTime, out)
	}
	if k := kubectl(t, "get", "kts", "kts", "-n", ns, "-o", "jsonpath={.status.storageSize}"); k != "2Gi" {
		t.Errorf("status.storageSize %q, want 2Gi", k)
	}
}

func statefulSetOf(t *testing.T, ns, name string) *appsv1.StatefulSet {
	t.Helper()
	sts := &appsv1.StatefulSet{}
	if err := cluster.Client.Get(background(), client.ObjectKey{Namespace: ns, Name: name}, sts); err != nil {
		t.Fatal(err)
	}
	return sts
}
