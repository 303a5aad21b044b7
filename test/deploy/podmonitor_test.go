package deploy

import (
	"testing"

	apierrors "k8s.io/apimachinery/pkg/api/errors"
	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"
	"k8s.io/client-go/rest"
	"sigs.k8s.io/controller-runtime/pkg/client"
	"sigs.k8s.io/controller-runtime/pkg/envtest"

	"trustee.dev/trustee/test/clusterbase"
)

// The operator's ServiceAccount, with config/default's ClusterRole, applies
// a PodMonitor as the reconciler does (server-side apply) and deletes it,
// against the Prometheus operator's own CRD; it cannot read one.
func TestOperatorAppliesPodMonitors(t *testing.T) {
	applyDefault(t)
	file, err := clusterbase.PodMonitorCRD()
	if err != nil {
		t.Fatal(err)
	}
	if _, err := envtest.InstallCRDs(env.Config, envtest.CRDInstallOptions{Paths: []string{file}}); err != nil {
		t.Fatal(err)
	}
	ns := env.Namespace(t)
	cfg := rest.CopyConfig(env.Config)
	cfg.Impersonate = rest.ImpersonationConfig{UserName: "system:serviceaccount:trustee-system:trustee-operator"}
	c, err := client.New(cfg, client.Options{})
	if err != nil {
		t.Fatal(err)
	}
	pm := &unstructured.Unstructured{Object: map[string]any{
		"apiVersion": "monitoring.coreos.com/v1", "kind": "PodMonitor",
		"metadata": map[string]any{"name": "kts", "namespace": ns},
		"spec": map[string]any{
			"selector":            map[string]any{"matchLabels": map[string]any{"trustee.dev/server": "kts"}},
			"podMetricsEndpoints": []any{map[string]any{"port": "api", "path": "/metrics", "scheme": "HTTPS"}},
		},
	}}
	for range 2 { // creates, then patches
		if err := c.Apply(t.Context(), client.ApplyConfigurationFromUnstructured(pm.DeepCopy()), client.FieldOwner("trustee-operator"), client.ForceOwnership); err != nil {
			t.Fatalf("apply as the operator: %v", err)
		}
	}
	got := &unstructured.Unstructured{}
	got.SetGroupVersionKind(pm.GroupVersionKind())
	if err := c.Get(t.Context(), client.ObjectKey{Namespace: ns, Name: "kts"}, got); !apierrors.IsForbidden(err) {
		t.Errorf("get as the operator: %v, want forbidden", err)
	}
	if err := c.Delete(t.Context(), pm); err != nil {
		t.Fatalf("delete as the operator: %v", err)
	}
}
