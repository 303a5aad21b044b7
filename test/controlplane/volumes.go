package controlplane

import (
	"context"
	"testing"

	corev1 "k8s.io/api/core/v1"
	"k8s.io/apimachinery/pkg/api/resource"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/utils/ptr"
	"sigs.k8s.io/controller-runtime/pkg/client"
)

// AddVolume makes a PersistentVolume of class and size reserved for the
// claim ns/claim (its claimRef), which the controller manager's volume
// binder binds the claim to once it exists, as an administrator's
// pre-provisioned volume is. Its class need not be kwok's: a test makes
// StorageClasses of its own this way, with the settings it wants
// (allowVolumeExpansion, say). The volume goes when t ends.
func (c *Cluster) AddVolume(t testing.TB, class, size, ns, claim string) {
	t.Helper()
	pv := &corev1.PersistentVolume{
		ObjectMeta: metav1.ObjectMeta{GenerateName: "pv-" + claim + "-"},
		Spec: corev1.PersistentVolumeSpec{
			Capacity:                      corev1.ResourceList{corev1.ResourceStorage: resource.MustParse(size)},
			AccessModes:                   []corev1.PersistentVolumeAccessMode{corev1.ReadWriteOnce},
			PersistentVolumeReclaimPolicy: corev1.PersistentVolumeReclaimRetain,
			StorageClassName:              class,
			ClaimRef:                      &corev1.ObjectReference{APIVersion: "v1", Kind: "PersistentVolumeClaim", Namespace: ns, Name: claim},
			PersistentVolumeSource: corev1.PersistentVolumeSource{HostPath: &corev1.HostPathVolumeSource{
				Path: "/tmp/kwok-static/" + ns + "/" + claim, Type: ptr.To(corev1.HostPathDirectoryOrCreate)}},
		},
	}
	if err := c.Client.Create(context.Background(), pv); err != nil {
		t.Fatalf("PersistentVolume for claim %s/%s: %v", ns, claim, err)
	}
	t.Cleanup(func() { c.Client.Delete(context.Background(), pv) })
}

// ResizeVolume is the simulated storage driver: no CSI driver, and so no
// external resizer, runs on this control plane (nothing expands kwok's
// volumes), so a test that grows a claim makes its volume grow with this,
// the only stand-in for the driver. As a driver's resizer does, it grows
// the claim's PersistentVolume to what the claim asks for, then either
// reports the claim's new capacity (a driver that grows the file system
// itself, or the kubelet having done it) or, with fileSystemPending, sets
// the claim's FileSystemResizePending condition, which a driver with node
// expansion leaves for the kubelet.
func (c *Cluster) ResizeVolume(t testing.TB, ns, claim string, fileSystemPending bool) {
	t.Helper()
	ctx := context.Background()
	pvc := &corev1.PersistentVolumeClaim{}
	if err := c.Client.Get(ctx, client.ObjectKey{Namespace: ns, Name: claim}, pvc); err != nil {
		t.Fatalf("claim %s/%s: %v", ns, claim, err)
	}
	size := pvc.Spec.Resources.Requests.Storage().DeepCopy()
	pv := &corev1.PersistentVolume{}
	if err := c.Client.Get(ctx, client.ObjectKey{Name: pvc.Spec.VolumeName}, pv); err != nil {
		t.Fatalf("volume %q of claim %s/%s: %v", pvc.Spec.VolumeName, ns, claim, err)
	}
	orig := pv.DeepCopy()
	pv.Spec.Capacity[corev1.ResourceStorage] = size
	if err := c.Client.Patch(ctx, pv, client.MergeFrom(orig)); err != nil {
		t.Fatalf("growing volume %s to %s: %v", pv.Name, size.String(), err)
	}
	origClaim := pvc.DeepCopy()
	if fileSystemPending {
		pvc.Status.Conditions = append(pvc.Status.Conditions, corev1.PersistentVolumeClaimCondition{
			Type: corev1.PersistentVolumeClaimFileSystemResizePending, Status: corev1.ConditionTrue, LastTransitionTime: metav1.Now(),
			Message: "Waiting for user to (re-)start a pod to finish file system resize of volume on node."})
	} else {
		pvc.Status.Capacity[corev1.ResourceStorage] = size
		pvc.Status.Conditions = nil
	}
	if err := c.Client.Status().Patch(ctx, pvc, client.MergeFrom(origClaim)); err != nil {
		t.Fatalf("reporting claim %s/%s grown to %s: %v", ns, claim, size.String(), err)
	}
}
