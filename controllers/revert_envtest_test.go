package controllers

import (
	"strings"
	"testing"

	corev1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	"k8s.io/apimachinery/pkg/api/meta"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/client-go/tools/events"
	"sigs.k8s.io/controller-runtime/pkg/client"

	trusteev1 "trustee.dev/trustee/api/v1alpha1"
)

// TestReplaceLeftBehind: the pod decided on is deleted only as it was
// observed (a pod changed since is left for the next reconcile), with a
// Normal event; a refusal deletes nothing and is a Warning event once,
// while the Upgrading condition carries it.
func TestReplaceLeftBehind(t *testing.T) {
	ctx, ns := testContext(t), env.Namespace(t)
	pod := &corev1.Pod{
		ObjectMeta: metav1.ObjectMeta{Namespace: ns, Name: "kts-b-0"},
		Spec:       corev1.PodSpec{Containers: []corev1.Container{{Name: "server", Image: "registry.invalid/trustee:bad"}}},
	}
	if err := env.Client.Create(ctx, pod); err != nil {
		t.Fatal(err)
	}
	rec := events.NewFakeRecorder(10)
	r := &ServerReconciler{Client: env.Client, Recorder: rec}
	kts := newServer(ns, "kts")
	active := memberRollout{Pod: "kts-a-0", StatefulSet: "kts-a", Exists: true, PodExists: true, Ready: true}
	stuck := memberRollout{Pod: "kts-b-0", StatefulSet: "kts-b", Exists: true, PodExists: true, Ours: true, Observed: true,
		Applied: "h", Want: "h", Revision: "r2", UpdateRevision: "r1", CurrentRevision: "r1",
		Failing: "container server: ErrImagePull", NeverStarted: true, UID: pod.UID, ResourceVersion: "1"}
	told := func() []string {
		var out []string
		for {
			select {
			case e := <-rec.Events:
				out = append(out, e)
			default:
				return out
			}
		}
	}
	exists := func() bool {
		err := env.Client.Get(ctx, client.ObjectKeyFromObject(pod), &corev1.Pod{})
		if err != nil && !apierrors.IsNotFound(err) {
			t.Fatal(err)
		}
		return err == nil
	}

	// Seen at another version: not deleted, nothing said.
	s, err := r.replaceLeftBehind(ctx, kts, revertObservation{HA: true, Active: active, Passive: stuck})
	if err != nil || s.Reason != "" || !exists() {
		t.Fatalf("a pod changed since it was seen: %+v, %v; exists: %v", s, err, exists())
	}
	if e := told(); len(e) != 0 {
		t.Fatalf("events: %q", e)
	}

	// Refused: nothing deleted; told once, after the status records it,
	// and not again while the recorded condition carries it.
	notOurs := stuck
	notOurs.Ours = false
	for i := range 2 {
		s, err := r.replaceLeftBehind(ctx, kts, revertObservation{HA: true, Active: active, Passive: notOurs})
		if err != nil || !s.Refused || !exists() {
			t.Fatalf("a refusal: %+v, %v; exists: %v", s, err, exists())
		}
		if e := told(); len(e) != 0 {
			t.Fatalf("refusal %d told before its status is recorded: %q", i+1, e)
		}
		r.tellRefusal(kts, meta.FindStatusCondition(kts.Status.Conditions, trusteev1.ConditionUpgrading), s)
		e := told()
		if want := 1 - i; len(e) != want || (want == 1 && !strings.HasPrefix(e[0], corev1.EventTypeWarning+" "+trusteev1.ReasonReplaceRefused+" pod kts-b-0 is stuck")) {
			t.Fatalf("refusal %d: events %q", i+1, e)
		}
		kts.Status.Conditions = []metav1.Condition{revertCondition(s)}
	}

	// As it was seen: deleted, and said.
	stuck.ResourceVersion = pod.ResourceVersion
	s, err = r.replaceLeftBehind(ctx, kts, revertObservation{HA: true, Active: active, Passive: stuck})
	if err != nil || s.Delete == nil || exists() {
		t.Fatalf("the pod as seen: %+v, %v; exists: %v", s, err, exists())
	}
	if e := told(); len(e) != 1 || !strings.HasPrefix(e[0], corev1.EventTypeNormal+" "+trusteev1.ReasonReplacingPod+" deleted pod kts-b-0") {
		t.Fatalf("events: %q", e)
	}
}
