package deploy

import (
	"fmt"
	"maps"
	"os"
	"slices"
	"strings"
	"testing"

	authorizationv1 "k8s.io/api/authorization/v1"
	rbacv1 "k8s.io/api/rbac/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"sigs.k8s.io/yaml"
)

// access is one request the API server authorizes: a verb on a resource
// (with its API group, and subresource) in a namespace ("" is every
// namespace, or a cluster-scoped resource).
type access struct {
	verb, group, resource, subresource, namespace string
}

func (a access) String() string {
	r := a.resource
	if a.group != "" {
		r += "." + a.group
	}
	if a.subresource != "" {
		r += "/" + a.subresource
	}
	where := "in every namespace"
	if a.namespace != "" {
		where = "in namespace " + a.namespace
	}
	return fmt.Sprintf("%s %s %s", a.verb, r, where)
}

// allowed asks the API server's authorizer, through a SubjectAccessReview
// (what `kubectl auth can-i --as` asks), whether user in groups may do a.
func allowed(t *testing.T, user string, groups []string, a access) bool {
	t.Helper()
	sar := &authorizationv1.SubjectAccessReview{Spec: authorizationv1.SubjectAccessReviewSpec{
		User:   user,
		Groups: groups,
		ResourceAttributes: &authorizationv1.ResourceAttributes{
			Verb: a.verb, Group: a.group, Resource: a.resource, Subresource: a.subresource, Namespace: a.namespace,
		},
	}}
	if err := env.Client.Create(t.Context(), sar); err != nil {
		t.Fatalf("SubjectAccessReview of %s for %s: %v", a, user, err)
	}
	return sar.Status.Allowed
}

// serviceAccount is the user name and groups a ServiceAccount's token
// authenticates as.
func serviceAccount(namespace, name string) (string, []string) {
	return "system:serviceaccount:" + namespace + ":" + name,
		[]string{"system:serviceaccounts", "system:serviceaccounts:" + namespace, "system:authenticated"}
}

// verbs are the verbs a resource may be asked for.
var verbs = []string{"get", "list", "watch", "create", "update", "patch", "delete", "deletecollection"}

// checkOperatorAccess checks that the ServiceAccount name in namespace
// (where the operator runs) may do exactly what config/rbac/role.yaml (the
// RBAC markers) and leader election grant, and a few things it must never
// do.
func checkOperatorAccess(t *testing.T, namespace, name string) {
	t.Helper()
	user, groups := serviceAccount(namespace, name)
	const elsewhere = "keys" // any namespace but the operator's

	// Everything role.yaml grants, in every namespace; and no other verb
	// on those resources.
	granted := grants(readRules(t, "config/rbac/role.yaml"))
	byName := func(a, b access) int { return strings.Compare(a.String(), b.String()) }
	for _, gr := range slices.SortedFunc(maps.Keys(granted), byName) {
		for _, verb := range verbs {
			for _, ns := range []string{"", elsewhere, namespace} {
				a := gr
				a.verb, a.namespace = verb, ns
				want := granted[gr][verb]
				if got := allowed(t, user, groups, a); got != want {
					t.Errorf("%s may %s: %v, want %v (config/rbac/role.yaml)", user, a, got, want)
				}
			}
		}
	}

	// Leader election: in the operator's namespace only.
	for gr, vs := range grants(readRules(t, "config/rbac/leader_election_role.yaml")) {
		for verb := range vs {
			a := gr
			a.verb, a.namespace = verb, namespace
			if !allowed(t, user, groups, a) {
				t.Errorf("%s may not %s (leader election)", user, a)
			}
		}
	}

	// Read from the markers by hand, and what the operator must never do.
	cases := []struct {
		access
		want bool
	}{
		{access{"get", "", "secrets", "", elsewhere}, true},
		{access{"list", "", "secrets", "", ""}, true},
		{access{"create", "", "services", "", elsewhere}, true},
		{access{"create", "apps", "statefulsets", "", elsewhere}, true},
		{access{"create", "policy", "poddisruptionbudgets", "", elsewhere}, true},
		// Deleted only when high availability is turned off.
		{access{"delete", "apps", "statefulsets", "", elsewhere}, true},
		{access{"delete", "", "services", "", elsewhere}, true},
		{access{"create", "networking.k8s.io", "networkpolicies", "", elsewhere}, true},
		{access{"create", "cert-manager.io", "certificates", "", elsewhere}, true},
		{access{"create", "cert-manager.io", "issuers", "", elsewhere}, true},
		{access{"create", "batch", "cronjobs", "", elsewhere}, true},
		{access{"watch", "batch", "jobs", "", ""}, true},
		{access{"watch", "", "pods", "", ""}, true},
		// A member's pod stuck on a template no longer wanted, which its
		// StatefulSet does not replace.
		{access{"delete", "", "pods", "", elsewhere}, true},
		{access{"get", "", "persistentvolumeclaims", "", elsewhere}, true},
		// Growing the members' volumes: their claims, where their class allows it.
		{access{"patch", "", "persistentvolumeclaims", "", elsewhere}, true},
		{access{"get", "storage.k8s.io", "storageclasses", "", ""}, true},
		{access{"patch", "storage.k8s.io", "storageclasses", "", ""}, false},
		{access{"delete", "", "persistentvolumes", "", ""}, false},
		{access{"patch", "trustee.dev", "keytrusteeservers", "", elsewhere}, true},
		{access{"update", "trustee.dev", "keytrusteeservers", "status", elsewhere}, true},
		{access{"update", "trustee.dev", "organizations", "finalizers", elsewhere}, true},
		{access{"patch", "trustee.dev", "backupschedules", "status", elsewhere}, true},
		{access{"create", "", "events", "", elsewhere}, true},
		{access{"create", "events.k8s.io", "events", "", elsewhere}, true},
		{access{"create", "coordination.k8s.io", "leases", "", namespace}, true},
		{access{"update", "coordination.k8s.io", "leases", "", namespace}, true},
		// The PodMonitor of spec.monitoring: applied (server-side apply:
		// create and patch) and deleted, never read, so that the
		// operator runs without its CRD.
		{access{"create", "monitoring.coreos.com", "podmonitors", "", elsewhere}, true},
		{access{"patch", "monitoring.coreos.com", "podmonitors", "", elsewhere}, true},
		{access{"delete", "monitoring.coreos.com", "podmonitors", "", elsewhere}, true},
		{access{"watch", "monitoring.coreos.com", "podmonitors", "", ""}, false},
		{access{"create", "monitoring.coreos.com", "servicemonitors", "", elsewhere}, false},
		// Who may read the metrics (GET /metrics over HTTPS).
		{access{"create", "authentication.k8s.io", "tokenreviews", "", ""}, true},
		{access{"create", "authorization.k8s.io", "subjectaccessreviews", "", ""}, true},

		// It applies and patches; it never replaces a whole object.
		{access{"update", "", "secrets", "", elsewhere}, false},
		{access{"update", "apps", "statefulsets", "", elsewhere}, false},
		{access{"update", "batch", "cronjobs", "", elsewhere}, false},

		// What garbage collection removes with its owner, the operator
		// may not delete.
		{access{"delete", "", "secrets", "", elsewhere}, false},
		{access{"delete", "", "configmaps", "", elsewhere}, false},
		{access{"delete", "policy", "poddisruptionbudgets", "", elsewhere}, false},
		{access{"delete", "networking.k8s.io", "networkpolicies", "", elsewhere}, false},
		{access{"delete", "cert-manager.io", "certificates", "", elsewhere}, false},
		{access{"delete", "cert-manager.io", "issuers", "", elsewhere}, false},
		{access{"delete", "batch", "cronjobs", "", elsewhere}, false},
		{access{"create", "", "pods", "", elsewhere}, false},
		{access{"create", "", "pods", "exec", elsewhere}, false},
		{access{"create", "", "persistentvolumeclaims", "", elsewhere}, false},
		{access{"delete", "", "persistentvolumeclaims", "", elsewhere}, false},
		{access{"create", "", "serviceaccounts", "token", elsewhere}, false},
		{access{"get", "", "nodes", "", ""}, true}, // a member on a gone or not-ready node is not counted ready
		{access{"delete", "", "nodes", "", ""}, false},
		{access{"patch", "", "nodes", "", ""}, false},
		{access{"get", "", "namespaces", "", ""}, false},
		{access{"create", "rbac.authorization.k8s.io", "clusterroles", "", ""}, false},
		{access{"bind", "rbac.authorization.k8s.io", "clusterroles", "", ""}, false},
		{access{"escalate", "rbac.authorization.k8s.io", "clusterroles", "", ""}, false},
		{access{"create", "rbac.authorization.k8s.io", "rolebindings", "", elsewhere}, false},
		{access{"impersonate", "", "users", "", ""}, false},
		{access{"create", "apiextensions.k8s.io", "customresourcedefinitions", "", ""}, false},
		{access{"create", "apps", "deployments", "", elsewhere}, false},
		{access{"delete", "batch", "jobs", "", elsewhere}, false},
		{access{"create", "cert-manager.io", "clusterissuers", "", ""}, false},
		{access{"create", "trustee.dev", "keytrusteeservers", "", elsewhere}, false},
		{access{"delete", "trustee.dev", "organizations", "", elsewhere}, false},
		{access{"create", "coordination.k8s.io", "leases", "", elsewhere}, false},
		{access{"get", "coordination.k8s.io", "leases", "", ""}, false},
	}
	for _, tc := range cases {
		if got := allowed(t, user, groups, tc.access); got != tc.want {
			t.Errorf("%s may %s: %v, want %v", user, tc.access, got, tc.want)
		}
	}
}

// readRules reads the rules of the Role or ClusterRole in file p.
func readRules(t *testing.T, p string) []rbacv1.PolicyRule {
	t.Helper()
	data, err := os.ReadFile(path(p))
	if err != nil {
		t.Fatal(err)
	}
	var role rbacv1.ClusterRole // a Role has the same fields
	if err := yaml.Unmarshal(data, &role); err != nil {
		t.Fatalf("%s: %v", p, err)
	}
	if len(role.Rules) == 0 {
		t.Fatalf("%s has no rules", p)
	}
	return role.Rules
}

// grants maps each resource the rules name (the verb of the key is empty)
// to the verbs they grant on it.
func grants(rules []rbacv1.PolicyRule) map[access]map[string]bool {
	m := map[access]map[string]bool{}
	for _, r := range rules {
		for _, g := range r.APIGroups {
			for _, res := range r.Resources {
				resource, sub, _ := strings.Cut(res, "/")
				k := access{group: g, resource: resource, subresource: sub}
				if m[k] == nil {
					m[k] = map[string]bool{}
				}
				for _, v := range r.Verbs {
					m[k][v] = true
				}
			}
		}
	}
	return m
}

// TestOperatorPermissions checks what the ServiceAccount of config/default
// may do, through the API server's authorizer.
func TestOperatorPermissions(t *testing.T) {
	applyDefault(t)
	checkOperatorAccess(t, "trustee-system", "trustee-operator")

	// The same answers through impersonation, as an administrator would
	// ask.
	as := "--as=system:serviceaccount:trustee-system:trustee-operator"
	for _, tc := range []struct {
		args []string
		want string
	}{
		{[]string{"get", "secrets", "-n", "keys"}, "yes"},
		{[]string{"create", "statefulsets.apps", "--all-namespaces"}, "yes"},
		{[]string{"create", "leases.coordination.k8s.io", "-n", "trustee-system"}, "yes"},
		{[]string{"delete", "pods", "-n", "keys"}, "yes"},
		{[]string{"create", "pods", "-n", "keys"}, "no"},
		{[]string{"delete", "nodes"}, "no"},
		{[]string{"create", "clusterroles.rbac.authorization.k8s.io"}, "no"},
	} {
		// can-i ends with status 1 for "no".
		out, stderr, _ := kubectl(t, "", append([]string{"auth", "can-i", as}, tc.args...)...)
		if got := strings.TrimSpace(out); got != tc.want {
			t.Errorf("kubectl auth can-i %s %s = %q, want %q\n%s", as, strings.Join(tc.args, " "), got, tc.want, stderr)
		}
	}
}

// TestUserRoles checks the editor and viewer ClusterRoles of each kind,
// bound in one namespace, and their aggregation labels (no
// clusterrole-aggregation controller runs here to act on them).
func TestUserRoles(t *testing.T) {
	applyDefault(t)
	ns, other := env.Namespace(t), env.Namespace(t)
	for _, kind := range []string{"keytrusteeserver", "organization", "backupschedule"} {
		t.Run(kind, func(t *testing.T) {
			editor, viewer := "trustee-"+kind+"-editor", "trustee-"+kind+"-viewer"
			for _, role := range []string{editor, viewer} {
				rb := &rbacv1.RoleBinding{
					ObjectMeta: metav1.ObjectMeta{Name: role, Namespace: ns},
					RoleRef:    rbacv1.RoleRef{APIGroup: rbacv1.GroupName, Kind: "ClusterRole", Name: role},
					Subjects:   []rbacv1.Subject{{APIGroup: rbacv1.GroupName, Kind: "User", Name: role + "-user"}},
				}
				if err := env.Client.Create(t.Context(), rb); err != nil {
					t.Fatal(err)
				}
			}
			resource := kind + "s"
			for _, tc := range []struct {
				user string
				access
				want bool
			}{
				{editor, access{"create", "trustee.dev", resource, "", ns}, true},
				{editor, access{"delete", "trustee.dev", resource, "", ns}, true},
				{editor, access{"get", "trustee.dev", resource, "status", ns}, true},
				{editor, access{"update", "trustee.dev", resource, "status", ns}, false},
				{editor, access{"create", "trustee.dev", resource, "", other}, false},
				{editor, access{"get", "", "secrets", "", ns}, false},
				{viewer, access{"list", "trustee.dev", resource, "", ns}, true},
				{viewer, access{"get", "trustee.dev", resource, "status", ns}, true},
				{viewer, access{"create", "trustee.dev", resource, "", ns}, false},
				{viewer, access{"patch", "trustee.dev", resource, "", ns}, false},
				{viewer, access{"list", "trustee.dev", resource, "", other}, false},
			} {
				if got := allowed(t, tc.user+"-user", []string{"system:authenticated"}, tc.access); got != tc.want {
					t.Errorf("bound to %s: may %s: %v, want %v", tc.user, tc.access, got, tc.want)
				}
			}

			aggregates := map[string][]string{editor: {"admin", "edit"}, viewer: {"view"}}
			for role, into := range aggregates {
				var cr rbacv1.ClusterRole
				data, err := os.ReadFile(path("config/rbac/" + strings.TrimPrefix(strings.ReplaceAll(role, "-", "_"), "trustee_") + "_role.yaml"))
				if err != nil {
					t.Fatal(err)
				}
				if err := yaml.Unmarshal(data, &cr); err != nil {
					t.Fatal(err)
				}
				var got []string
				for label, v := range cr.Labels {
					if to, ok := strings.CutPrefix(label, "rbac.authorization.k8s.io/aggregate-to-"); ok && v == "true" {
						got = append(got, to)
					}
				}
				slices.Sort(got)
				if !slices.Equal(got, into) {
					t.Errorf("%s aggregates into %v, want %v", role, got, into)
				}
			}
		})
	}
}
