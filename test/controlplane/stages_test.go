package controlplane_test

import (
	"fmt"
	"testing"
	"time"

	appsv1 "k8s.io/api/apps/v1"
	corev1 "k8s.io/api/core/v1"
	"sigs.k8s.io/controller-runtime/pkg/client"

	"trustee.dev/trustee/test/controlplane"
)

// A pod of controlplane.ImagePullFails stays Pending, its containers
// waiting with ErrImagePull, and kwok leaves it so (it does not make it
// Ready, nor keep rewriting its status). Its StatefulSet, set back to a
// good image, does not replace it (it waits for the pod to be ready first,
// as a real cluster's does); deleted, it comes back on the good revision.
func TestImagePullFails(t *testing.T) {
	t.Parallel()
	cluster.ShowLogsOnFailure(t)
	ns := cluster.Namespace(t)
	sts := statefulSet(ns, "bad", nil)
	good := sts.Spec.Template.Spec.Containers[0].Image
	sts.Spec.Template.Spec.Containers[0].Image = controlplane.ImagePullFails
	sts.Spec.Template.Spec.InitContainers = []corev1.Container{{Name: "setup", Image: controlplane.ImagePullFails}}
	create(t, sts)

	get := func() *corev1.Pod {
		t.Helper()
		var p corev1.Pod
		if err := cluster.Client.Get(t.Context(), client.ObjectKey{Namespace: ns, Name: "bad-0"}, &p); err != nil {
			t.Fatal(err)
		}
		return &p
	}
	failing := func(p *corev1.Pod) (bool, string) {
		if p.Spec.NodeName == "" || len(p.Status.InitContainerStatuses) != 1 || len(p.Status.ContainerStatuses) != 1 {
			return false, fmt.Sprintf("on %q, %+v", p.Spec.NodeName, p.Status)
		}
		init, main := p.Status.InitContainerStatuses[0].State.Waiting, p.Status.ContainerStatuses[0].State.Waiting
		return p.Status.Phase == corev1.PodPending && !podReady(*p) && init != nil && init.Reason == "ErrImagePull" &&
				main != nil && main.Reason == "PodInitializing",
			fmt.Sprintf("%s, %+v", p.Status.Phase, p.Status)
	}
	waitFor(t, time.Minute, "bad-0 failing to pull its image", func() (bool, string) {
		var p corev1.Pod
		if err := cluster.Client.Get(t.Context(), client.ObjectKey{Namespace: ns, Name: "bad-0"}, &p); err != nil {
			return false, err.Error()
		}
		return failing(&p)
	})
	stuck := get()
	time.Sleep(3 * time.Second)
	if now := get(); now.ResourceVersion != stuck.ResourceVersion {
		ok, why := failing(now)
		t.Fatalf("kwok changed the failing pod again (failing still: %v): %s", ok, why)
	}

	// Set back to the good image: the StatefulSet moves to a new revision
	// but leaves its pod that never got ready where it is.
	var set appsv1.StatefulSet
	if err := cluster.Client.Get(t.Context(), client.ObjectKey{Namespace: ns, Name: "bad"}, &set); err != nil {
		t.Fatal(err)
	}
	set.Spec.Template.Spec.Containers[0].Image = good
	set.Spec.Template.Spec.InitContainers[0].Image = good
	if err := cluster.Client.Update(t.Context(), &set); err != nil {
		t.Fatal(err)
	}
	waitFor(t, time.Minute, "the StatefulSet on its new revision", func() (bool, string) {
		if err := cluster.Client.Get(t.Context(), client.ObjectKey{Namespace: ns, Name: "bad"}, &set); err != nil {
			return false, err.Error()
		}
		return set.Status.ObservedGeneration == set.Generation && set.Status.UpdateRevision != stuck.Labels[appsv1.ControllerRevisionHashLabelKey],
			fmt.Sprintf("%+v", set.Status)
	})
	time.Sleep(5 * time.Second)
	if p := get(); p.UID != stuck.UID || !p.DeletionTimestamp.IsZero() {
		t.Fatalf("the StatefulSet replaced its pod that never got ready: %+v", p.ObjectMeta)
	}
	if err := cluster.Client.Delete(t.Context(), stuck); err != nil {
		t.Fatal(err)
	}
	back := waitRunning(t, ns, "bad-0")
	if back.UID == stuck.UID || back.Labels[appsv1.ControllerRevisionHashLabelKey] != set.Status.UpdateRevision {
		t.Fatalf("bad-0 after the delete: %+v", back.ObjectMeta)
	}
}
