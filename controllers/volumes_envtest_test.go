package controllers

import (
	"context"
	"maps"
	"slices"
	"strings"
	"testing"
	"time"

	cmv1 "github.com/cert-manager/cert-manager/pkg/apis/certmanager/v1"
	appsv1 "k8s.io/api/apps/v1"
	corev1 "k8s.io/api/core/v1"
	storagev1 "k8s.io/api/storage/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	"k8s.io/apimachinery/pkg/api/meta"
	"k8s.io/apimachinery/pkg/api/resource"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/types"
	"k8s.io/utils/ptr"
	"sigs.k8s.io/controller-runtime/pkg/client"

	trusteev1 "trustee.dev/trustee/api/v1alpha1"
	"trustee.dev/trustee/test/harness"
)

// TestGrowingVolumesThePassiveFirst: a larger spec.storage.size grows the
// passive's claim, and the active's only once the passive's volume has
// grown; then each StatefulSet is deleted without its pod and made again
// with the new claim template. envtest runs neither the StatefulSet
// controller nor the garbage collector nor a storage driver: the test makes
// the claims, reports their volumes' growth and lets the deleted
// StatefulSets go as they would.
func TestGrowingVolumesThePassiveFirst(t *testing.T) {
	ctx, ns := testContext(t), env.Namespace(t)
	class := storageClass(t, ctx, "grow-"+ns, true)
	pods := volumeServer(t, ctx, ns, class)

	setSize(t, ctx, ns, "2Gi")
	c := waitCondition(t, ctx, ns, "kts", trusteev1.ConditionStorageResized, metav1.ConditionFalse,
		"waiting for the storage driver to grow the passive's volume (claim data-kts-b-0) to 2Gi; it has 1Gi")
	if c.Reason != trusteev1.ReasonGrowing {
		t.Fatalf("StorageResized: %+v", c)
	}
	time.Sleep(time.Second) // a few more reconciles
	checkSizes(t, ctx, ns, map[string]string{"data-kts-b-0": "2Gi", "data-kts-a-0": "1Gi"}, map[string]string{"kts-a": "1Gi", "kts-b": "1Gi"})
	if k := getServer(t, ctx, ns, "kts"); k.Status.StorageSize == nil || k.Status.StorageSize.String() != "2Gi" {
		t.Fatalf("status.storageSize %v, want 2Gi", k.Status.StorageSize)
	}
	// The passive's claim asks for 2Gi now: going back is refused.
	k := getServer(t, ctx, ns, "kts")
	k.Spec.Storage.Size = ptr.To(resource.MustParse("1Gi"))
	if err := env.Client.Update(ctx, k); !apierrors.IsInvalid(err) || !strings.Contains(err.Error(), "cannot go below 2Gi") {
		t.Fatalf("reverting once a claim has grown: %v, want refused", err)
	}

	volumeGrown(t, ctx, ns, "data-kts-b-0", false)
	waitCondition(t, ctx, ns, "kts", trusteev1.ConditionStorageResized, metav1.ConditionFalse,
		"the passive's volume has grown; waiting for the storage driver to grow the active's volume (claim data-kts-a-0)")
	checkSizes(t, ctx, ns, map[string]string{"data-kts-b-0": "2Gi", "data-kts-a-0": "2Gi"}, map[string]string{"kts-a": "1Gi", "kts-b": "1Gi"})
	wantEvent(t, ctx, ns, trusteev1.ReasonGrowing)

	old := map[string]types.UID{}
	for _, name := range []string{"kts-a", "kts-b"} {
		old[name] = statefulSet(t, ctx, ns, name).UID
	}
	volumeGrown(t, ctx, ns, "data-kts-a-0", true) // the kubelet grows its file system
	waitCondition(t, ctx, ns, "kts", trusteev1.ConditionStorageResized, metav1.ConditionFalse, "StatefulSets kts-b and kts-a are made again with the new claim template")
	for name := range old {
		collectOrphaning(t, ctx, ns, name)
	}
	c = waitCondition(t, ctx, ns, "kts", trusteev1.ConditionStorageResized, metav1.ConditionTrue,
		"the members' volumes have the 2Gi spec.storage.size asks for; the kubelet grows the file system of the active's volume (claim data-kts-a-0)")
	checkSizes(t, ctx, ns, map[string]string{"data-kts-b-0": "2Gi", "data-kts-a-0": "2Gi"}, map[string]string{"kts-a": "2Gi", "kts-b": "2Gi"})
	for name, uid := range old {
		if now := statefulSet(t, ctx, ns, name).UID; now == uid {
			t.Errorf("StatefulSet %s was not made again", name)
		}
	}
	for member, uid := range pods {
		if p := pod(t, ctx, ns, member); p.UID != uid || !p.DeletionTimestamp.IsZero() {
			t.Errorf("pod %s: uid %s (was %s), deleted %v", member, p.UID, uid, p.DeletionTimestamp)
		}
	}
	wantEvent(t, ctx, ns, "RecreatingStatefulSet")
}

// TestGrowthRefusedChangesNothing: a class that does not allow expansion,
// or none, refuses the growth with nothing changed, while the rest of the
// spec is still applied; reverting the size clears the refusal.
func TestGrowthRefusedChangesNothing(t *testing.T) {
	ctx := testContext(t)
	for _, tc := range []struct {
		name, refusal string
		class         func(ns string) string
	}{
		{"class without expansion", "StorageClass fixed-%s of the claims does not allow volume expansion (its allowVolumeExpansion is not true); nothing was changed and the claims stay at 1Gi. Set spec.storage.size back to 1Gi",
			func(ns string) string { return storageClass(t, ctx, "fixed-"+ns, false) }},
		{"class missing", "StorageClass missing-%s of the passive's claim data-kts-b-0 does not exist",
			func(ns string) string { return "missing-" + ns }},
	} {
		t.Run(tc.name, func(t *testing.T) {
			ns := env.Namespace(t)
			volumeServer(t, ctx, ns, tc.class(ns))
			setSize(t, ctx, ns, "2Gi")
			refusal := strings.ReplaceAll(tc.refusal, "%s", ns)
			c := waitCondition(t, ctx, ns, "kts", trusteev1.ConditionStorageResized, metav1.ConditionFalse, refusal)
			if c.Reason != trusteev1.ReasonResizeRefused {
				t.Fatalf("StorageResized: %+v", c)
			}
			wantEvent(t, ctx, ns, trusteev1.ReasonResizeRefused)

			// The rest of the spec still reaches the objects.
			k := getServer(t, ctx, ns, "kts")
			k.Spec.TLS.DNSNames = append(k.Spec.TLS.DNSNames, "kts.example.com")
			if err := env.Client.Update(ctx, k); err != nil {
				t.Fatal(err)
			}
			harness.Eventually(t, time.Minute, "the new DNS name in the certificate", func() (bool, string) {
				cert := &cmv1.Certificate{}
				if err := env.Client.Get(ctx, client.ObjectKey{Namespace: ns, Name: "kts-server"}, cert); err != nil {
					return false, err.Error()
				}
				return slices.Contains(cert.Spec.DNSNames, "kts.example.com"), strings.Join(cert.Spec.DNSNames, " ")
			})
			if c := conditionOf(getServer(t, ctx, ns, "kts").Status.Conditions, trusteev1.ConditionReady); c.Reason == "ReconcileFailed" {
				t.Fatalf("Ready: %+v", c)
			}
			checkSizes(t, ctx, ns, map[string]string{"data-kts-b-0": "1Gi", "data-kts-a-0": "1Gi"}, map[string]string{"kts-a": "1Gi", "kts-b": "1Gi"})

			setSize(t, ctx, ns, "1Gi")
			waitCondition(t, ctx, ns, "kts", trusteev1.ConditionStorageResized, metav1.ConditionTrue, "have the 1Gi spec.storage.size asks for")
		})
	}
}

// volumeServer makes server kts of 1Gi volumes of class in ns with both
// members' pods and their bound claims, as the StatefulSet controller and a
// provisioner would, and returns the pods' UIDs.
func volumeServer(t *testing.T, ctx context.Context, ns, class string) map[string]types.UID {
	t.Helper()
	testCA(t, ctx, ns)
	kts := newServer(ns, "kts")
	kts.Spec.Storage = trusteev1.StorageSpec{Size: ptr.To(resource.MustParse("1Gi")), StorageClassName: &class}
	if err := env.Client.Create(ctx, kts); err != nil {
		t.Fatal(err)
	}
	n := serverNames{server: "kts", namespace: ns}
	uids := map[string]types.UID{}
	for _, member := range []string{memberA, memberB} {
		harness.Eventually(t, time.Minute, "StatefulSet "+n.StatefulSet(member), func() (bool, string) {
			err := env.Client.Get(ctx, client.ObjectKey{Namespace: ns, Name: n.StatefulSet(member)}, &appsv1.StatefulSet{})
			return err == nil, "missing"
		})
		memberPod(t, ctx, ns, "kts", member, podScheduled, podReady)
		rollOut(t, ctx, ns, member)
		uids[member] = pod(t, ctx, ns, member).UID
		pvc := &corev1.PersistentVolumeClaim{
			ObjectMeta: metav1.ObjectMeta{Name: n.Claim(member), Namespace: ns, Labels: mergeLabels(n.labels(), n.memberLabels(member))},
			Spec: corev1.PersistentVolumeClaimSpec{
				AccessModes: []corev1.PersistentVolumeAccessMode{corev1.ReadWriteOnce}, StorageClassName: &class,
				Resources: corev1.VolumeResourceRequirements{Requests: corev1.ResourceList{corev1.ResourceStorage: resource.MustParse("1Gi")}},
			},
		}
		if err := env.Client.Create(ctx, pvc); err != nil {
			t.Fatal(err)
		}
		pvc.Status = corev1.PersistentVolumeClaimStatus{Phase: corev1.ClaimBound, AccessModes: pvc.Spec.AccessModes,
			Capacity: corev1.ResourceList{corev1.ResourceStorage: resource.MustParse("1Gi")}}
		if err := env.Client.Status().Update(ctx, pvc); err != nil {
			t.Fatal(err)
		}
	}
	waitCondition(t, ctx, ns, "kts", trusteev1.ConditionStorageResized, metav1.ConditionTrue, "have the 1Gi spec.storage.size asks for")
	return uids
}

// storageClass makes a StorageClass that goes when t ends.
func storageClass(t *testing.T, ctx context.Context, name string, expands bool) string {
	t.Helper()
	sc := &storagev1.StorageClass{ObjectMeta: metav1.ObjectMeta{Name: name}, Provisioner: "example.com/test", AllowVolumeExpansion: &expands}
	if err := env.Client.Create(ctx, sc); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { env.Client.Delete(context.Background(), sc) })
	return name
}

func setSize(t *testing.T, ctx context.Context, ns, size string) {
	t.Helper()
	k := getServer(t, ctx, ns, "kts")
	orig := k.DeepCopy()
	k.Spec.Storage.Size = ptr.To(resource.MustParse(size))
	if err := env.Client.Patch(ctx, k, client.MergeFrom(orig)); err != nil {
		t.Fatal(err)
	}
}

// volumeGrown reports a claim's volume grown to its request, as the storage
// driver does; with fileSystemPending, as one that leaves the file system
// to the kubelet.
func volumeGrown(t *testing.T, ctx context.Context, ns, claim string, fileSystemPending bool) {
	t.Helper()
	pvc := &corev1.PersistentVolumeClaim{}
	if err := env.Client.Get(ctx, client.ObjectKey{Namespace: ns, Name: claim}, pvc); err != nil {
		t.Fatal(err)
	}
	if fileSystemPending {
		pvc.Status.Conditions = []corev1.PersistentVolumeClaimCondition{{Type: corev1.PersistentVolumeClaimFileSystemResizePending, Status: corev1.ConditionTrue}}
	} else {
		pvc.Status.Capacity = pvc.Spec.Resources.Requests
	}
	if err := env.Client.Status().Update(ctx, pvc); err != nil {
		t.Fatal(err)
	}
}

// collectOrphaning waits for a StatefulSet deleted with propagation Orphan
// and finishes its deletion, as the garbage collector does once the pods
// no longer name it.
func collectOrphaning(t *testing.T, ctx context.Context, ns, name string) {
	t.Helper()
	harness.Eventually(t, time.Minute, "StatefulSet "+name+" deleted, orphaning its pod", func() (bool, string) {
		sts := statefulSet(t, ctx, ns, name)
		if sts.DeletionTimestamp.IsZero() || !slices.Contains(sts.Finalizers, metav1.FinalizerOrphanDependents) {
			return false, "not deleted"
		}
		sts.Finalizers = slices.DeleteFunc(sts.Finalizers, func(f string) bool { return f == metav1.FinalizerOrphanDependents })
		err := env.Client.Update(ctx, sts)
		return err == nil, "removing the finalizer: " + errString(err)
	})
}

func errString(err error) string {
	if err == nil {
		return ""
	}
	return err.Error()
}

// checkSizes checks the claims' requests and the StatefulSets' claim
// templates.
func checkSizes(t *testing.T, ctx context.Context, ns string, claims, templates map[string]string) {
	t.Helper()
	for name, want := range claims {
		pvc := &corev1.PersistentVolumeClaim{}
		if err := env.Client.Get(ctx, client.ObjectKey{Namespace: ns, Name: name}, pvc); err != nil {
			t.Fatal(err)
		}
		if got := pvc.Spec.Resources.Requests.Storage().String(); got != want {
			t.Errorf("claim %s asks for %s, want %s", name, got, want)
		}
	}
	for name, want := range templates {
		if got := statefulSet(t, ctx, ns, name).Spec.VolumeClaimTemplates[0].Spec.Resources.Requests.Storage().String(); got != want {
			t.Errorf("StatefulSet %s's claim template asks for %s, want %s", name, got, want)
		}
	}
}

func statefulSet(t *testing.T, ctx context.Context, ns, name string) *appsv1.StatefulSet {
	t.Helper()
	sts := &appsv1.StatefulSet{}
	if err := env.Client.Get(ctx, client.ObjectKey{Namespace: ns, Name: name}, sts); err != nil {
		t.Fatal(err)
	}
	return sts
}

func pod(t *testing.T, ctx context.Context, ns, member string) *corev1.Pod {
	t.Helper()
	p := &corev1.Pod{}
	if err := env.Client.Get(ctx, client.ObjectKey{Namespace: ns, Name: serverNames{server: "kts", namespace: ns}.Pod(member)}, p); err != nil {
		t.Fatal(err)
	}
	return p
}

// TestOlderClaimsLoseTheInstanceLabel: a server made by an older operator
// has claims, and a StatefulSet claim template, carrying
// app.kubernetes.io/instance. The operator takes the label off the claims,
// and keeps the StatefulSet's claim template as it is (it cannot change)
// while applying the rest of the StatefulSet.
func TestOlderClaimsLoseTheInstanceLabel(t *testing.T) {
	ctx, ns := testContext(t), env.Namespace(t)
	class := storageClass(t, ctx, "older-"+ns, true)
	volumeServer(t, ctx, ns, class)

	// The passive's StatefulSet as an older operator made it.
	old := statefulSet(t, ctx, ns, "kts-b")
	if err := env.Client.Delete(ctx, old, client.PropagationPolicy(metav1.DeletePropagationOrphan)); err != nil {
		t.Fatal(err)
	}
	collectOrphaning(t, ctx, ns, "kts-b")
	harness.Eventually(t, time.Minute, "StatefulSet kts-b gone", func() (bool, string) {
		err := env.Client.Get(ctx, client.ObjectKey{Namespace: ns, Name: "kts-b"}, &appsv1.StatefulSet{})
		return apierrors.IsNotFound(err), errString(err)
	})
	older := &appsv1.StatefulSet{ObjectMeta: metav1.ObjectMeta{Name: "kts-b", Namespace: ns, Labels: old.Labels, OwnerReferences: old.OwnerReferences},
		Spec: *old.Spec.DeepCopy()}
	older.Spec.VolumeClaimTemplates[0].Labels[labelInstance] = "kts"
	if err := env.Client.Create(ctx, older); err != nil {
		t.Fatal(err)
	}
	pvc := &corev1.PersistentVolumeClaim{}
	if err := env.Client.Get(ctx, client.ObjectKey{Namespace: ns, Name: "data-kts-b-0"}, pvc); err != nil {
		t.Fatal(err)
	}
	pvc.Labels[labelInstance] = "kts"
	if err := env.Client.Update(ctx, pvc); err != nil {
		t.Fatal(err)
	}

	harness.Eventually(t, time.Minute, "the claim without app.kubernetes.io/instance", func() (bool, string) {
		if err := env.Client.Get(ctx, client.ObjectKeyFromObject(pvc), pvc); err != nil {
			return false, err.Error()
		}
		_, has := pvc.Labels[labelInstance]
		return !has, "labels " + strings.Join(slices.Sorted(maps.Keys(pvc.Labels)), ",")
	})
	setImage(t, ctx, ns, "trustee:v2")
	harness.Eventually(t, time.Minute, "the new image applied to the older StatefulSet", func() (bool, string) {
		sts := statefulSet(t, ctx, ns, "kts-b")
		img := sts.Spec.Template.Spec.Containers[0].Image
		return img == "trustee:v2", img
	})
	if sts := statefulSet(t, ctx, ns, "kts-b"); sts.Spec.VolumeClaimTemplates[0].Labels[labelInstance] != "kts" {
		t.Errorf("the claim template changed: %v", sts.Spec.VolumeClaimTemplates[0].Labels)
	}
	if c := meta.FindStatusCondition(getServer(t, ctx, ns, "kts").Status.Conditions, trusteev1.ConditionReady); c != nil && strings.Contains(c.Message, "Forbidden") {
		t.Errorf("Ready: %s", c.Message)
	}
}
