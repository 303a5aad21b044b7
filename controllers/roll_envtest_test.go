package controllers

import (
	"context"
	"crypto/tls"
	"net/http"
	"net/http/httptest"
	"sync/atomic"
	"testing"
	"time"

	appsv1 "k8s.io/api/apps/v1"
	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"sigs.k8s.io/controller-runtime/pkg/client"

	trusteev1 "trustee.dev/trustee/api/v1alpha1"
	"trustee.dev/trustee/test/clusterbase"
	"trustee.dev/trustee/test/harness"
)

// TestImageChangeRollsThePassiveFirst: a new image reaches the passive's
// StatefulSet first; the active's follows only once the passive runs it, is
// ready and is the synchronous standby again (asked of the active's
// /readyz, served here with the server certificate cert-manager issued).
// A passive that cannot pull the image stops the roll with the active
// untouched. envtest runs no StatefulSet controller: the test moves the
// pods to each StatefulSet's new revision as it would.
func TestImageChangeRollsThePassiveFirst(t *testing.T) {
	ctx, ns := testContext(t), env.Namespace(t)
	testCA(t, ctx, ns)
	kts := newServer(ns, "kts")
	kts.Spec.Image = "trustee:v1"
	if err := env.Client.Create(ctx, kts); err != nil {
		t.Fatal(err)
	}
	waitCondition(t, ctx, ns, "kts", trusteev1.ConditionCertificateReady, metav1.ConditionTrue, "is issued")
	inSync := serveReadyz(t, ctx, ns)
	memberPod(t, ctx, ns, "kts", memberA, podScheduled, podReady)
	rollOut(t, ctx, ns, memberA)
	harness.Eventually(t, time.Minute, "the passive's StatefulSet", func() (bool, string) {
		return image(t, ctx, ns, memberB) == "trustee:v1", image(t, ctx, ns, memberB)
	})
	memberPod(t, ctx, ns, "kts", memberB, podScheduled, podReady)
	rollOut(t, ctx, ns, memberB)
	waitReason(t, ctx, ns, metav1.ConditionFalse, trusteev1.ReasonUpToDate, "every member runs")

	setImage(t, ctx, ns, "trustee:v2")
	waitReason(t, ctx, ns, metav1.ConditionTrue, trusteev1.ReasonUpdatingPassive, "the active kts-a-0 keeps serving")
	if a, p := image(t, ctx, ns, memberA), image(t, ctx, ns, memberB); a != "trustee:v1" || p != "trustee:v2" {
		t.Fatalf("images: active %s, passive %s; want the passive's changed first", a, p)
	}

	// The passive's new pod cannot pull the image: the roll stops there.
	memberPod(t, ctx, ns, "kts", memberB, podScheduled, podNotReady)
	waiting(t, ctx, ns, memberB, "ImagePullBackOff")
	rollOut(t, ctx, ns, memberB)
	waitReason(t, ctx, ns, metav1.ConditionTrue, trusteev1.ReasonRollStopped, "does not start on the new template (container server: ImagePullBackOff")
	time.Sleep(2 * time.Second) // a few more reconciles
	if a := image(t, ctx, ns, memberA); a != "trustee:v1" {
		t.Fatalf("the active's image changed to %s while the passive could not start", a)
	}
	wantEvent(t, ctx, ns, "UpgradingTrue")

	// It starts; the active waits for it to be in sync, then follows.
	inSync.Store(false)
	memberPod(t, ctx, ns, "kts", memberB, podScheduled, podReady)
	waiting(t, ctx, ns, memberB, "")
	waitReason(t, ctx, ns, metav1.ConditionTrue, trusteev1.ReasonWaitingForSync, "waiting for it to be the synchronous standby again")
	if a := image(t, ctx, ns, memberA); a != "trustee:v1" {
		t.Fatalf("the active's image changed to %s before the passive was in sync", a)
	}
	inSync.Store(true)
	harness.Eventually(t, time.Minute, "the active's new image", func() (bool, string) {
		return image(t, ctx, ns, memberA) == "trustee:v2", image(t, ctx, ns, memberA)
	})
	waitReason(t, ctx, ns, metav1.ConditionTrue, trusteev1.ReasonUpdatingActive, "restarting the active kts-a-0")
	rollOut(t, ctx, ns, memberA)
	waitReason(t, ctx, ns, metav1.ConditionFalse, trusteev1.ReasonUpToDate, "every member runs")
}

// serveReadyz answers the active's /readyz as a server does, with the
// certificate cert-manager issued for the servers; the standby is reported
// synchronous while the returned flag is set.
func serveReadyz(t *testing.T, ctx context.Context, ns string) *atomic.Bool {
	t.Helper()
	s := &corev1.Secret{}
	harness.Eventually(t, time.Minute, "the server certificate's Secret", func() (bool, string) {
		err := env.Client.Get(ctx, client.ObjectKey{Namespace: ns, Name: "kts-server-tls"}, s)
		return err == nil && len(s.Data[corev1.TLSCertKey]) > 0, "missing"
	})
	cert, err := tls.X509KeyPair(s.Data[corev1.TLSCertKey], s.Data[corev1.TLSPrivateKeyKey])
	if err != nil {
		t.Fatal(err)
	}
	var inSync atomic.Bool
	inSync.Store(true)
	srv := httptest.NewUnstartedServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		state := "async"
		if inSync.Load() {
			state = "sync"
		}
		w.Write([]byte(`{"replication":{"attached":true,"sync_state":"` + state + `"}}`))
	}))
	srv.TLS = &tls.Config{Certificates: []tls.Certificate{cert}}
	srv.StartTLS()
	t.Cleanup(srv.Close)
	registerAddress(ns, "kts", memberA, portAPI, srv.Listener.Addr().String())
	return &inSync
}

// rollOut does what the StatefulSet controller does once a member's
// template changed: its pod is made again on the new revision.
func rollOut(t *testing.T, ctx context.Context, ns, member string) {
	t.Helper()
	n := serverNames{server: "kts", namespace: ns}
	sts := &appsv1.StatefulSet{}
	if err := env.Client.Get(ctx, client.ObjectKey{Namespace: ns, Name: n.StatefulSet(member)}, sts); err != nil {
		t.Fatal(err)
	}
	rev := "kts-" + member + "-" + sts.Annotations[templateHashAnnotation]
	sts.Status.ObservedGeneration, sts.Status.UpdateRevision, sts.Status.CurrentRevision = sts.Generation, rev, rev
	sts.Status.Replicas = 1
	if err := env.Client.Status().Update(ctx, sts); err != nil {
		t.Fatal(err)
	}
	pod := &corev1.Pod{}
	if err := env.Client.Get(ctx, client.ObjectKey{Namespace: ns, Name: n.Pod(member)}, pod); err != nil {
		t.Fatal(err)
	}
	pod.Labels[appsv1.ControllerRevisionHashLabelKey] = rev
	if err := env.Client.Update(ctx, pod); err != nil {
		t.Fatal(err)
	}
}

// waiting sets the waiting reason of a member pod's container ("" runs it).
func waiting(t *testing.T, ctx context.Context, ns, member, reason string) {
	t.Helper()
	pod := &corev1.Pod{}
	if err := env.Client.Get(ctx, client.ObjectKey{Namespace: ns, Name: serverNames{server: "kts", namespace: ns}.Pod(member)}, pod); err != nil {
		t.Fatal(err)
	}
	st := corev1.ContainerState{Running: &corev1.ContainerStateRunning{}}
	if reason != "" {
		st = corev1.ContainerState{Waiting: &corev1.ContainerStateWaiting{Reason: reason}}
	}
	pod.Status.ContainerStatuses = []corev1.ContainerStatus{{Name: "server", State: st, Ready: reason == ""}}
	if err := env.Client.Status().Update(ctx, pod); err != nil {
		t.Fatal(err)
	}
}

func image(t *testing.T, ctx context.Context, ns, member string) string {
	t.Helper()
	sts := &appsv1.StatefulSet{}
	if err := env.Client.Get(ctx, client.ObjectKey{Namespace: ns, Name: serverNames{server: "kts", namespace: ns}.StatefulSet(member)}, sts); err != nil {
		return err.Error()
	}
	return sts.Spec.Template.Spec.Containers[0].Image
}

func setImage(t *testing.T, ctx context.Context, ns, img string) {
	t.Helper()
	k := getServer(t, ctx, ns, "kts")
	orig := k.DeepCopy()
	k.Spec.Image = img
	if err := env.Client.Patch(ctx, k, client.MergeFrom(orig)); err != nil {
		t.Fatal(err)
	}
}

func waitReason(t *testing.T, ctx context.Context, ns string, status metav1.ConditionStatus, reason, msg string) {
	t.Helper()
	c := waitCondition(t, ctx, ns, "kts", trusteev1.ConditionUpgrading, status, msg)
	if c.Reason != reason {
		t.Fatalf("Upgrading %s: reason %s, want %s (%s)", status, c.Reason, reason, c.Message)
	}
}

// wantEvent waits for an event of the server with this reason.
func wantEvent(t *testing.T, ctx context.Context, ns, reason string) {
	t.Helper()
	clusterbase.WaitForEvent(t, ctx, env.Client, ns, "kts", reason)
}
