package deploy

import (
	"fmt"
	"maps"
	"slices"
	"strings"
	"testing"
	"time"

	corev1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	"sigs.k8s.io/controller-runtime/pkg/client"

	trusteev1 "trustee.dev/trustee/api/v1alpha1"
	"trustee.dev/trustee/test/fixtures"
	"trustee.dev/trustee/test/harness"
)

// TestNamespaceScopedInstall installs the chart with watchNamespaces: the
// operator's ServiceAccount may do what the RBAC markers grant in the
// watched namespace only (Roles), and cluster-wide only on cluster-scoped
// resources; the operator, run with those permissions, reconciles a server
// there, leaves one elsewhere alone, and is refused nothing.
func TestNamespaceScopedInstall(t *testing.T) {
	applyDefault(t) // the CRDs
	opNS, watched, other := restrictedNamespace(t), env.Namespace(t), env.Namespace(t)
	env.Helm(t, "install", "scoped", path(chart), "--namespace", opNS, "--skip-crds",
		"--set", "image.tag=test", "--set", "watchNamespaces={"+watched+"}")
	t.Cleanup(func() { env.Helm(t, "uninstall", "scoped", "--namespace", opNS) })

	const sa = "scoped-trustee-operator"
	user, groups := serviceAccount(opNS, sa)
	clusterScoped := clusterScopedResources(t)
	granted := grants(readRules(t, "config/rbac/role.yaml"))
	byName := func(a, b access) int { return strings.Compare(a.String(), b.String()) }
	for _, gr := range slices.SortedFunc(maps.Keys(granted), byName) {
		name := gr.resource
		if gr.group != "" {
			name += "." + gr.group
		}
		for verb := range granted[gr] {
			where := map[string]bool{watched: true, other: false, "": false}
			if clusterScoped[name] {
				where = map[string]bool{"": true}
			}
			for ns, want := range where {
				a := gr
				a.verb, a.namespace = verb, ns
				if got := allowed(t, user, groups, a); got != want {
					t.Errorf("%s may %s: %v, want %v (watchNamespaces: %s)", user, a, got, want, watched)
				}
			}
		}
	}

	op := startOperator(t, opNS, sa, "--watch-namespaces", watched)
	ctx, c := t.Context(), env.Client
	var servers []*trusteev1.KeyTrusteeServer
	for _, ns := range []string{watched, other} {
		tlsSecret := selfSignedSecret(t, ns, "kts-tls")
		server := fixtures.Server("kts", fixtures.ServerIn(ns), fixtures.TLSSecret(tlsSecret.Name))
		for _, o := range []client.Object{tlsSecret, server} {
			if err := c.Create(ctx, o); err != nil {
				t.Fatal(err)
			}
		}
		servers = append(servers, server)
	}
	harness.Eventually(t, time.Minute, "the watched namespace's server reconciled", func() (bool, string) {
		s := &corev1.Secret{}
		err := c.Get(ctx, client.ObjectKey{Namespace: watched, Name: "kts-identity"}, s)
		return err == nil, fmt.Sprint(err)
	})
	// By now the other server would have had its identity too.
	s := &corev1.Secret{}
	if err := c.Get(ctx, client.ObjectKey{Namespace: other, Name: "kts-identity"}, s); !apierrors.IsNotFound(err) {
		t.Errorf("a server outside watchNamespaces got an identity Secret: %v", err)
	}
	if err := c.Get(ctx, client.ObjectKeyFromObject(servers[1]), servers[1]); err != nil || servers[1].Status.ObservedGeneration != 0 {
		t.Errorf("a server outside watchNamespaces has a status (%v): %+v", err, servers[1].Status)
	}
	if op.refused() {
		t.Errorf("the operator was refused something:\n%s", op.logs.String())
	}
	op.stop(t)
}

// clusterScopedResources are the API server's cluster-scoped resources,
// named as `kubectl api-resources -o name` names them (resource.group).
func clusterScopedResources(t *testing.T) map[string]bool {
	t.Helper()
	out := env.Kubectl(t, "api-resources", "--namespaced=false", "-o", "name")
	m := map[string]bool{}
	for _, l := range strings.Fields(out) {
		m[l] = true
	}
	if !m["nodes"] {
		t.Fatalf("kubectl api-resources --namespaced=false lists no nodes:\n%s", out)
	}
	return m
}
