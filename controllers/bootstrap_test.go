package controllers

import (
	"fmt"
	"testing"

	appsv1 "k8s.io/api/apps/v1"
	corev1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"sigs.k8s.io/controller-runtime/pkg/client"

	trusteev1 "trustee.dev/trustee/api/v1alpha1"
)

// A server to start from an archive that cannot be used creates nothing —
// no identity, no members — and says why; it goes ahead once the archive
// is fixed. (TestBootstrapFromBackup in test/operator starts one from a
// real archive.)
func TestBootstrapFromAnUnusableArchiveCreatesNothing(t *testing.T) {
	ctx, ns := testContext(t), env.Namespace(t)
	testCA(t, ctx, ns)
	k := newServer(ns, "kts")
	k.Spec.Bootstrap = &trusteev1.BootstrapSpec{Backup: trusteev1.BackupSource{
		ArchiveSecretRef: trusteev1.SecretKeySelector{Name: "archive", Key: "archive"},
	}}
	if err := env.Client.Create(ctx, k); err != nil {
		t.Fatal(err)
	}
	nothingCreated := func() {
		t.Helper()
		err := env.Client.Get(ctx, client.ObjectKey{Namespace: ns, Name: "kts-identity"}, &corev1.Secret{})
		if !apierrors.IsNotFound(err) {
			t.Fatalf("the identity Secret: %v; want none", err)
		}
		if got := names(t, ctx, &appsv1.StatefulSetList{}, ns, "kts"); len(got) != 0 {
			t.Fatalf("StatefulSets %v; want none", got)
		}
	}
	waitCondition(t, ctx, ns, "kts", trusteev1.ConditionReady, metav1.ConditionFalse, "bootstrap.backup.archiveSecretRef: Secret archive")
	nothingCreated()

	secret := &corev1.Secret{ObjectMeta: metav1.ObjectMeta{Name: "archive", Namespace: ns}, Data: map[string][]byte{"other": []byte("x")}}
	if err := env.Client.Create(ctx, secret); err != nil {
		t.Fatal(err)
	}
	waitCondition(t, ctx, ns, "kts", trusteev1.ConditionReady, metav1.ConditionFalse, `Secret archive has no key "archive"`)
	for _, c := range []struct{ archive, want string }{
		{"not an archive at all", "not a complete, intact Trustee backup archive"},
		{"-----BEGIN PGP MESSAGE-----\n\nhQEMA1234\n-----END PGP MESSAGE-----\n", "it is encrypted: set bootstrap.backup.decryptionKeyRef"},
	} {
		secret.Data = map[string][]byte{"archive": []byte(c.archive)}
		if err := env.Client.Update(ctx, secret); err != nil {
			t.Fatal(err)
		}
		waitCondition(t, ctx, ns, "kts", trusteev1.ConditionReady, metav1.ConditionFalse, c.want)
		nothingCreated()
	}
	wantEvent(t, ctx, ns, "ReconcileFailed")

	// bootstrap is fixed once the server exists.
	got := getServer(t, ctx, ns, "kts")
	got.Spec.Bootstrap.Backup.ArchiveSecretRef.Name = "another"
	if err := env.Client.Update(ctx, got); err == nil {
		t.Fatal("spec.bootstrap changed after the server was created")
	} else if !apierrors.IsInvalid(err) {
		t.Fatal(fmt.Errorf("changing spec.bootstrap: %w", err))
	}
}
