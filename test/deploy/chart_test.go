package deploy

import (
	"bytes"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strings"
	"testing"

	"go.yaml.in/yaml/v3"
	appsv1 "k8s.io/api/apps/v1"
	corev1 "k8s.io/api/core/v1"
	rbacv1 "k8s.io/api/rbac/v1"
	"k8s.io/apimachinery/pkg/api/equality"

	"trustee.dev/trustee/test/envtestenv"
)

const chart = "charts/trustee-operator"

// helmTemplate renders the chart as release name in namespace ns with
// helm's further args (--set ...).
func helmTemplate(t *testing.T, name, ns string, args ...string) string {
	t.Helper()
	return env.Helm(t, append([]string{"template", name, path(chart), "--namespace", ns}, args...)...)
}

// dryRun has the API server take manifests in namespace ns without keeping
// them (kubectl apply --dry-run=server), failing t when it refuses any, or
// warns that a pod would break the namespace's Pod Security Standard.
func dryRun(t *testing.T, ns, manifests string) {
	t.Helper()
	out, stderr, err := kubectl(t, manifests, "apply", "--dry-run=server", "--namespace", ns, "-f", "-")
	if err != nil {
		t.Fatalf("kubectl apply --dry-run=server: %v\n%s%s", err, out, stderr)
	}
	if strings.Contains(stderr, "PodSecurity") {
		t.Errorf("kubectl apply --dry-run=server warned about Pod Security:\n%s", stderr)
	}
}

// restrictedNamespace is a namespace of t's own that enforces the
// restricted Pod Security Standard.
func restrictedNamespace(t *testing.T) string {
	t.Helper()
	ns := env.Namespace(t)
	env.Kubectl(t, "label", "namespace", ns, "pod-security.kubernetes.io/enforce=restricted")
	return ns
}

func TestChartLint(t *testing.T) {
	env.Helm(t, "lint", "--strict", path(chart))
	env.Helm(t, "lint", "--strict", path(chart), "--set", "metrics.serviceMonitor.enabled=true")
}

// TestChartTemplate renders the chart with its default values and with a
// ServiceMonitor, and has the API server take the result in a dry run.
func TestChartTemplate(t *testing.T) {
	t.Run("defaults", func(t *testing.T) {
		ns := restrictedNamespace(t)
		out := helmTemplate(t, "trustee-operator", ns)
		dryRun(t, ns, out)

		objs := objects(t, out)
		if slices.ContainsFunc(objs, func(o object) bool { return o.kind() == "ServiceMonitor" }) {
			t.Error("a ServiceMonitor with metrics.serviceMonitor.enabled false")
		}
		d := into[appsv1.Deployment](t, find(t, objs, "Deployment", "trustee-operator"))
		checkOperatorDeployment(t, &d, "trustee:0.1.0", "--leader-elect=true")
		if got := d.Spec.Template.Spec.ServiceAccountName; got != "trustee-operator" {
			t.Errorf("serviceAccountName = %q, want trustee-operator", got)
		}
		svc := into[corev1.Service](t, find(t, objs, "Service", "trustee-operator-metrics"))
		checkMetricsService(t, &svc, d.Spec.Template.Labels)
		for _, o := range objs {
			if strings.HasPrefix(o.kind(), "Cluster") {
				continue
			}
			if got := str(o, "metadata", "namespace"); got != ns {
				t.Errorf("%s %s is in namespace %q, want the release's %s", o.kind(), o.name(), got, ns)
			}
		}
	})

	t.Run("serviceMonitor", func(t *testing.T) {
		// The Prometheus operator's CRD, as a stand-in (testdata).
		env.Kubectl(t, "apply", "-f", filepath.Join("testdata", "servicemonitor-crd.yaml"))
		env.Kubectl(t, "wait", "--for=condition=Established", "--timeout=60s", "crd/servicemonitors.monitoring.coreos.com")
		ns := restrictedNamespace(t)
		out := helmTemplate(t, "trustee-operator", ns, "--set", "metrics.serviceMonitor.enabled=true",
			"--set", "metrics.serviceMonitor.interval=30s", "--set", "metrics.serviceMonitor.labels.release=prometheus")
		dryRun(t, ns, out)

		objs := objects(t, out)
		sm := find(t, objs, "ServiceMonitor", "trustee-operator")
		svc := into[corev1.Service](t, find(t, objs, "Service", "trustee-operator-metrics"))
		spec := into[struct {
			Selector struct {
				MatchLabels map[string]string `json:"matchLabels"`
			} `json:"selector"`
			Endpoints []struct {
				Port, Path, Scheme, Interval string
			} `json:"endpoints"`
		}](t, sm["spec"])
		for k, v := range spec.Selector.MatchLabels {
			if svc.Labels[k] != v {
				t.Errorf("the ServiceMonitor selects %s=%s, which the metrics Service does not carry", k, v)
			}
		}
		if len(spec.Endpoints) != 1 || spec.Endpoints[0].Port != "metrics" || spec.Endpoints[0].Scheme != "https" ||
			spec.Endpoints[0].Interval != "30s" || spec.Endpoints[0].Path != "/metrics" {
			t.Errorf("ServiceMonitor endpoints = %+v, want https on the port metrics, /metrics, every 30s", spec.Endpoints)
		}
		if got := str(sm, "metadata", "labels", "release"); got != "prometheus" {
			t.Errorf("ServiceMonitor label release = %q, want prometheus", got)
		}
	})

	// Another chart name changes app.kubernetes.io/name, not the label by
	// which the servers admit the operator to their admin API.
	t.Run("nameOverride", func(t *testing.T) {
		ns := restrictedNamespace(t)
		out := helmTemplate(t, "trustee-operator", ns, "--set", "nameOverride=keys-operator")
		dryRun(t, ns, out)
		d := into[appsv1.Deployment](t, find(t, objects(t, out), "Deployment", "trustee-operator-keys-operator"))
		if got := d.Spec.Template.Labels["app.kubernetes.io/name"]; got != "keys-operator" {
			t.Errorf("pod label app.kubernetes.io/name = %q, want keys-operator", got)
		}
		checkOperatorDeployment(t, &d, "trustee:0.1.0", "--leader-elect=true")
	})

	// An image pinned by digest runs the operator and is the servers'
	// default; a malformed digest is refused with what a digest looks like.
	t.Run("image pinned by digest", func(t *testing.T) {
		digest := "sha256:" + strings.Repeat("0123456789abcdef", 4)
		ns := restrictedNamespace(t)
		out := helmTemplate(t, "trustee-operator", ns, "--set", "image.repository=registry.example.com/trustee",
			"--set", "image.tag=0.2.0", "--set", "image.digest="+digest)
		dryRun(t, ns, out)
		d := into[appsv1.Deployment](t, find(t, objects(t, out), "Deployment", "trustee-operator"))
		checkOperatorDeployment(t, &d, "registry.example.com/trustee@"+digest, "--leader-elect=true")

		for _, bad := range []string{"sha256:abc", "SHA256:" + strings.Repeat("0123456789ABCDEF", 4), strings.Repeat("0123456789abcdef", 4), "sha512:" + strings.Repeat("0123456789abcdef", 8)} {
			cmd := exec.Command(envtestenv.HelmBinary(t), "template", "trustee-operator", path(chart), "--set", "image.digest="+bad)
			out, err := cmd.CombinedOutput()
			if err == nil || !strings.Contains(string(out), "give the image's digest as sha256: followed by 64 lower-case hex digits") {
				t.Errorf("helm template with image.digest %q: %v\n%s", bad, err, out)
			}
		}
	})

	// "n", "y", "on", "no"... are booleans to YAML 1.1 when unquoted.
	t.Run("release named n", func(t *testing.T) {
		ns := restrictedNamespace(t)
		out := helmTemplate(t, "n", ns)
		dryRun(t, ns, out)
		d := into[appsv1.Deployment](t, find(t, objects(t, out), "Deployment", "n-trustee-operator"))
		if got := d.Spec.Template.Labels["app.kubernetes.io/instance"]; got != "n" {
			t.Errorf("pod label app.kubernetes.io/instance = %q, want n", got)
		}
	})

	t.Run("crds", func(t *testing.T) {
		count := func(out string) int {
			return len(slices.DeleteFunc(objects(t, out), func(o object) bool { return o.kind() != "CustomResourceDefinition" }))
		}
		if n := count(helmTemplate(t, "trustee-operator", "default", "--include-crds")); n != 3 {
			t.Errorf("%d CRDs rendered with crds.install true, want 3", n)
		}
		if n := count(helmTemplate(t, "trustee-operator", "default", "--include-crds", "--set", "crds.install=false")); n != 0 {
			t.Errorf("%d CRDs rendered with crds.install false, want none", n)
		}
	})

	t.Run("without RBAC and leader election", func(t *testing.T) {
		out := helmTemplate(t, "trustee-operator", "default", "--set", "rbac.create=false",
			"--set", "leaderElection.enabled=false", "--set", "serviceAccount.create=false", "--set", "serviceAccount.name=ops")
		objs := objects(t, out)
		for _, o := range objs {
			if strings.HasPrefix(str(o, "apiVersion"), "rbac.authorization.k8s.io/") || o.kind() == "ServiceAccount" {
				t.Errorf("%s %s rendered with rbac.create and serviceAccount.create false", o.kind(), o.name())
			}
		}
		d := into[appsv1.Deployment](t, find(t, objs, "Deployment", "trustee-operator"))
		if got := d.Spec.Template.Spec.ServiceAccountName; got != "ops" {
			t.Errorf("serviceAccountName = %q, want ops", got)
		}
		if !slices.Contains(d.Spec.Template.Spec.Containers[0].Args, "--leader-elect=false") {
			t.Errorf("args = %q, want --leader-elect=false", d.Spec.Template.Spec.Containers[0].Args)
		}
	})
}

// TestChartInstall installs the chart into the API server with helm and
// checks that its ServiceAccount may do what the operator needs and no
// more, as config/default's may.
func TestChartInstall(t *testing.T) {
	ns := restrictedNamespace(t)
	env.Helm(t, "install", "perm", path(chart), "--namespace", ns, "--set", "image.tag=test")
	t.Cleanup(func() { env.Helm(t, "uninstall", "perm", "--namespace", ns) })
	env.Kubectl(t, "wait", "--for=condition=Established", "--timeout=60s",
		"crd/keytrusteeservers.trustee.dev", "crd/organizations.trustee.dev", "crd/backupschedules.trustee.dev")
	checkOperatorAccess(t, ns, "perm-trustee-operator")

	notes := env.Helm(t, "get", "notes", "perm", "--namespace", ns)
	if want := "rollout status deployment/perm-trustee-operator"; !strings.Contains(notes, want) {
		t.Errorf("NOTES.txt does not say %q:\n%s", want, notes)
	}
}

// TestChartMatchesConfig checks that the chart's CRDs and RBAC are those of
// config/, and that its Deployment runs the operator as config/manager
// does.
func TestChartMatchesConfig(t *testing.T) {
	t.Run("CRDs", func(t *testing.T) {
		want, err := filepath.Glob(path("config/crd/bases/*.yaml"))
		if err != nil {
			t.Fatal(err)
		}
		got, err := filepath.Glob(path(chart + "/charts/crds/crds/*"))
		if err != nil {
			t.Fatal(err)
		}
		base := func(files []string) []string {
			var names []string
			for _, f := range files {
				names = append(names, filepath.Base(f))
			}
			return names
		}
		if !slices.Equal(base(got), base(want)) {
			t.Fatalf("the chart's CRDs are %v, config/crd/bases has %v: run make manifests", base(got), base(want))
		}
		for i := range want {
			a, errA := os.ReadFile(want[i])
			b, errB := os.ReadFile(got[i])
			if errA != nil || errB != nil {
				t.Fatal(errA, errB)
			}
			if !bytes.Equal(a, b) {
				t.Errorf("%s differs from config/crd/bases: run make manifests", got[i])
			}
		}
	})

	// The release named as the chart: the objects are named as in config/,
	// but for the prefix of the people's ClusterRoles.
	rendered := objects(t, helmTemplate(t, "trustee-operator", "trustee-system"))
	config := objects(t, env.Kubectl(t, "kustomize", path("config/default")))

	t.Run("RBAC", func(t *testing.T) {
		isRole := func(o object) bool { return o.kind() == "ClusterRole" || o.kind() == "Role" }
		inChart := map[string]bool{} // kind/name of the roles expected in the chart
		for _, c := range config {
			if !isRole(c) {
				continue
			}
			kind, name := c.kind(), c.name()
			if n, ok := strings.CutPrefix(name, "trustee-"); ok && !strings.HasPrefix(name, "trustee-operator") {
				name = "trustee-operator-" + n
			}
			inChart[kind+"/"+name] = true
			h := find(t, rendered, kind, name)
			want, got := into[rbacv1.ClusterRole](t, c), into[rbacv1.ClusterRole](t, h)
			if !equality.Semantic.DeepEqual(got.Rules, want.Rules) {
				t.Errorf("the chart's %s %s has the rules\n%+v\nconfig/rbac's %s has\n%+v", kind, name, got.Rules, c.name(), want.Rules)
			}
			for label, v := range want.Labels {
				if strings.HasPrefix(label, "rbac.authorization.k8s.io/") && got.Labels[label] != v {
					t.Errorf("the chart's %s %s has not got the label %s=%s of config/rbac's", kind, name, label, v)
				}
			}
		}
		for _, h := range rendered {
			if isRole(h) && !inChart[h.kind()+"/"+h.name()] {
				t.Errorf("the chart's %s %s is not in config/rbac", h.kind(), h.name())
			}
		}
	})

	t.Run("Deployment", func(t *testing.T) {
		want := into[appsv1.Deployment](t, find(t, config, "Deployment", "trustee-operator")).Spec.Template.Spec
		got := into[appsv1.Deployment](t, find(t, rendered, "Deployment", "trustee-operator")).Spec.Template.Spec
		w, g := want.Containers[0], got.Containers[0]
		for _, f := range []struct {
			name      string
			got, want any
		}{
			{"pod securityContext", got.SecurityContext, want.SecurityContext},
			{"volumes", got.Volumes, want.Volumes},
			{"container name", g.Name, w.Name},
			{"securityContext", g.SecurityContext, w.SecurityContext},
			{"resources", g.Resources, w.Resources},
			{"ports", g.Ports, w.Ports},
			{"livenessProbe", g.LivenessProbe, w.LivenessProbe},
			{"readinessProbe", g.ReadinessProbe, w.ReadinessProbe},
			{"volumeMounts", g.VolumeMounts, w.VolumeMounts},
			{"env names", envNames(g.Env), envNames(w.Env)},
		} {
			if !equality.Semantic.DeepEqual(f.got, f.want) {
				t.Errorf("the chart's Deployment has the %s\n%+v\nconfig/manager's has\n%+v", f.name, f.got, f.want)
			}
		}
	})
}

func envNames(env []corev1.EnvVar) []string {
	var names []string
	for _, e := range env {
		names = append(names, e.Name)
	}
	return names
}

// TestChartValuesDocumented checks that every value in values.yaml has a
// comment there, and a row in the README's table (a free-form object, such
// as resources, may have one row for all its keys).
func TestChartValuesDocumented(t *testing.T) {
	data, err := os.ReadFile(path(chart + "/values.yaml"))
	if err != nil {
		t.Fatal(err)
	}
	readme, err := os.ReadFile(path(chart + "/README.md"))
	if err != nil {
		t.Fatal(err)
	}
	var table []string // the keys in the first column of README's tables
	for _, line := range strings.Split(string(readme), "\n") {
		if cells := strings.Split(line, "|"); len(cells) > 2 && strings.HasPrefix(line, "| `") {
			table = append(table, strings.Trim(strings.TrimSpace(cells[1]), "`"))
		}
	}
	var doc yaml.Node
	if err := yaml.Unmarshal(data, &doc); err != nil {
		t.Fatal(err)
	}
	if len(doc.Content) != 1 || doc.Content[0].Kind != yaml.MappingNode {
		t.Fatal("values.yaml is not a mapping")
	}
	var walk func(n *yaml.Node, prefix string, inTable bool)
	walk = func(n *yaml.Node, prefix string, inTable bool) {
		for i := 0; i+1 < len(n.Content); i += 2 {
			k, v := n.Content[i], n.Content[i+1]
			key := prefix + k.Value
			if strings.TrimSpace(k.HeadComment) == "" && strings.TrimSpace(k.LineComment) == "" {
				t.Errorf("values.yaml: %s (line %d) has no comment", key, k.Line)
			}
			listed := inTable || slices.Contains(table, key)
			if !listed && (v.Kind != yaml.MappingNode || len(v.Content) == 0) {
				t.Errorf("README.md: no row for the value %s", key)
			}
			if v.Kind == yaml.MappingNode {
				walk(v, key+".", listed)
			}
		}
	}
	walk(doc.Content[0], "", false)
	// And no row for a value that is not there.
	for _, key := range table {
		if !hasKey(doc.Content[0], strings.Split(key, ".")) {
			t.Errorf("README.md has a row for %s, which values.yaml has not got", key)
		}
	}
}

func hasKey(n *yaml.Node, path []string) bool {
	if len(path) == 0 {
		return true
	}
	if n.Kind != yaml.MappingNode {
		return false
	}
	for i := 0; i+1 < len(n.Content); i += 2 {
		if n.Content[i].Value == path[0] {
			return hasKey(n.Content[i+1], path[1:])
		}
	}
	return false
}

// TestChartCreatesItsNamespace installs the chart, as a release of the
// namespace default, with namespace.create: the chart makes the operator's
// namespace under the restricted Pod Security Standard and puts the
// operator there; uninstalling keeps it (servers may live in it). What
// cannot work is refused with what to do instead.
func TestChartCreatesItsNamespace(t *testing.T) {
	const ns = "trustee-chart-made"
	t.Cleanup(func() { env.Kubectl(t, "delete", "namespace", ns, "--wait=false", "--ignore-not-found") })
	env.Helm(t, "install", "own-ns", path(chart), "--namespace", "default", "--set", "namespace.create=true",
		"--set", "namespace.name="+ns, "--set", "image.tag=test", "--skip-crds")
	label := func() string {
		return env.Kubectl(t, "get", "namespace", ns, "-o", `jsonpath={.metadata.labels.pod-security\.kubernetes\.io/enforce}`)
	}
	if got := label(); got != "restricted" {
		t.Errorf("namespace %s: pod-security.kubernetes.io/enforce = %q, want restricted", ns, got)
	}
	if got := env.Kubectl(t, "get", "deployment", "-n", ns, "-o", "name"); strings.TrimSpace(got) != "deployment.apps/own-ns-trustee-operator" {
		t.Errorf("deployments in %s: %q, want the operator's", ns, got)
	}
	checkOperatorAccess(t, ns, "own-ns-trustee-operator")
	env.Helm(t, "uninstall", "own-ns", "--namespace", "default")
	if got := label(); got != "restricted" {
		t.Errorf("after helm uninstall, namespace %s: enforce label %q, want the namespace kept", ns, got)
	}

	for _, c := range []struct {
		name string
		args []string
		want string
	}{
		{"no name", []string{"--set", "namespace.create=true"}, "namespace.create needs namespace.name"},
		{"the release's namespace", []string{"--namespace", "keys", "--set", "namespace.create=true", "--set", "namespace.name=keys"},
			`namespace.name "keys" is the release's namespace, which must exist before Helm installs`},
		{"no such standard", []string{"--set", "namespace.create=true", "--set", "namespace.name=x", "--set", "namespace.podSecurity=strict"},
			`namespace.podSecurity is "strict": use restricted, baseline or privileged`},
	} {
		cmd := exec.Command(envtestenv.HelmBinary(t), append([]string{"template", "x", path(chart)}, c.args...)...)
		out, err := cmd.CombinedOutput()
		if err == nil || !strings.Contains(string(out), c.want) {
			t.Errorf("%s: helm template %q: %v\n%s", c.name, c.args, err, out)
		}
	}
}
