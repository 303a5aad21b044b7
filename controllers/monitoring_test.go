package controllers

import (
	"errors"
	"fmt"
	"testing"
	"time"

	monitoringv1 "github.com/prometheus-operator/prometheus-operator/pkg/apis/monitoring/v1"
	appsv1 "k8s.io/api/apps/v1"
	apiextensionsv1 "k8s.io/apiextensions-apiserver/pkg/apis/apiextensions/v1"
	"k8s.io/apimachinery/pkg/api/equality"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	"k8s.io/apimachinery/pkg/api/meta"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"sigs.k8s.io/controller-runtime/pkg/client"
	"sigs.k8s.io/controller-runtime/pkg/envtest"

	trusteev1 "trustee.dev/trustee/api/v1alpha1"
	"trustee.dev/trustee/test/clusterbase"
	"trustee.dev/trustee/test/harness"
)

func TestPodMonitorCondition(t *testing.T) {
	on := minimalServer()
	on.Spec.Monitoring.EnablePodMonitor = true
	noKind := &meta.NoKindMatchError{GroupKind: monitoringv1.SchemeGroupVersion.WithKind(monitoringv1.PodMonitorsKind).GroupKind(),
		SearchedVersions: []string{monitoringv1.Version}}
	for _, c := range []struct {
		name   string
		kts    *trusteev1.KeyTrusteeServer
		err    error
		want   metav1.ConditionStatus // "" : no condition
		reason string
	}{
		{"not asked for", minimalServer(), nil, "", ""},
		{"applied", on, nil, metav1.ConditionTrue, trusteev1.ReasonPodMonitorApplied},
		{"no PodMonitor kind in the cluster", on, fmt.Errorf("apply PodMonitor kts: %w", noKind), metav1.ConditionFalse, trusteev1.ReasonPodMonitorCRDMissing},
		{"refused", on, errors.New("apply PodMonitor kts: forbidden"), metav1.ConditionFalse, trusteev1.ReasonPodMonitorFailed},
	} {
		t.Run(c.name, func(t *testing.T) {
			got := podMonitorCondition(c.kts, c.err)
			switch {
			case c.want == "" && got != nil:
				t.Fatalf("condition %+v, want none", *got)
			case c.want == "":
			case got == nil:
				t.Fatalf("no condition, want %s %s", c.want, c.reason)
			case got.Type != trusteev1.ConditionPodMonitorReady || got.Status != c.want || got.Reason != c.reason || got.Message == "":
				t.Fatalf("condition %+v, want %s %s with a message", *got, c.want, c.reason)
			}
		})
	}
}

// A server asking for a PodMonitor in a cluster without the kind is
// reconciled as ever, with PodMonitorReady saying what is missing; once the
// Prometheus operator's PodMonitor CRD (the real one, from its module) is
// installed the PodMonitor appears, owned by the server, and it goes when
// no longer asked for.
func TestPodMonitorAgainstTheRealCRD(t *testing.T) {
	ctx, ns := testContext(t), env.Namespace(t)
	crd := &apiextensionsv1.CustomResourceDefinition{}
	crdName := monitoringv1.PodMonitorName + "." + monitoringv1.SchemeGroupVersion.Group
	if err := env.Client.Get(ctx, client.ObjectKey{Name: crdName}, crd); !apierrors.IsNotFound(err) {
		t.Fatalf("the API server must start without the PodMonitor CRD (run with -count=1): %v", err)
	}
	testCA(t, ctx, ns)
	kts := newServer(ns, "kts")
	kts.Spec.Monitoring.EnablePodMonitor = true
	kts.Spec.Monitoring.PodMonitorLabels = map[string]string{"release": "prometheus"}
	if err := env.Client.Create(ctx, kts); err != nil {
		t.Fatal(err)
	}
	condition := func(want metav1.ConditionStatus, reason string) {
		t.Helper()
		harness.Eventually(t, time.Minute, "PodMonitorReady "+reason, func() (bool, string) {
			k := getServer(t, ctx, ns, "kts")
			c := conditionOf(k.Status.Conditions, trusteev1.ConditionPodMonitorReady)
			if want == "" {
				return c.Status == "absent", c.Reason
			}
			return c.Status == want && c.Reason == reason, fmt.Sprintf("%s %s: %s", c.Status, c.Reason, c.Message)
		})
	}
	condition(metav1.ConditionFalse, trusteev1.ReasonPodMonitorCRDMissing)
	if err := env.Client.Get(ctx, client.ObjectKey{Namespace: ns, Name: "kts-a"}, &appsv1.StatefulSet{}); err != nil {
		t.Fatalf("the rest of the server is not reconciled without the PodMonitor kind: %v", err)
	}

	file, err := clusterbase.PodMonitorCRD()
	if err != nil {
		t.Fatal(err)
	}
	if _, err := envtest.InstallCRDs(env.Config, envtest.CRDInstallOptions{Paths: []string{file}}); err != nil {
		t.Fatal(err)
	}
	condition(metav1.ConditionTrue, trusteev1.ReasonPodMonitorApplied)
	pm := &monitoringv1.PodMonitor{}
	if err := env.Client.Get(ctx, client.ObjectKey{Namespace: ns, Name: "kts"}, pm); err != nil {
		t.Fatal(err)
	}
	k := getServer(t, ctx, ns, "kts")
	want := inputsFor(k).podMonitor()
	if !metav1.IsControlledBy(pm, k) || !equality.Semantic.DeepEqual(pm.Spec, want.Spec) || pm.Labels["release"] != "prometheus" {
		t.Fatalf("PodMonitor: owners %v labels %v spec %+v; want owned by the server, labelled release=prometheus, spec %+v",
			pm.OwnerReferences, pm.Labels, pm.Spec, want.Spec)
	}

	k.Spec.Monitoring.EnablePodMonitor = false
	if err := env.Client.Update(ctx, k); err != nil {
		t.Fatal(err)
	}
	condition("", "")
	harness.Eventually(t, 30*time.Second, "the PodMonitor deleted", func() (bool, string) {
		err := env.Client.Get(ctx, client.ObjectKey{Namespace: ns, Name: "kts"}, &monitoringv1.PodMonitor{})
		return apierrors.IsNotFound(err), fmt.Sprint(err)
	})
}
