package deploy

import (
	"encoding/hex"
	"encoding/json"
	"os"
	"path/filepath"
	"slices"
	"sort"
	"strings"
	"testing"

	"github.com/ProtonMail/go-crypto/openpgp"
	appsv1 "k8s.io/api/apps/v1"
	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"sigs.k8s.io/controller-runtime/pkg/client"
	"sigs.k8s.io/yaml"

	trusteev1 "trustee.dev/trustee/api/v1alpha1"
	"trustee.dev/trustee/controllers"
)

// TestConfigDefault applies config/default as a user would, then checks
// that every object it renders is in the API server, and that the
// operator's Deployment is the one docs/OPERATOR.md and the image expect.
func TestConfigDefault(t *testing.T) {
	// The namespace is labelled for the restricted Pod Security Standard:
	// the API server warns when the Deployment's pods would not pass it.
	_, stderr, err := kubectl(t, "", "apply", "-k", path("config/default"))
	if err != nil {
		t.Fatalf("kubectl apply -k config/default: %v\n%s", err, stderr)
	}
	if strings.Contains(stderr, "PodSecurity") {
		t.Errorf("kubectl apply -k config/default warned about Pod Security:\n%s", stderr)
	}

	rendered := objects(t, env.Kubectl(t, "kustomize", path("config/default")))
	var want []string
	for _, o := range rendered {
		want = append(want, strings.ToLower(o.kind())+"/"+o.name())
	}
	stored := env.Kubectl(t, "get", "-k", path("config/default"), "-o", "name")
	var got []string
	for _, line := range strings.Fields(stored) {
		// kubectl names kinds with their group: "clusterrole.rbac.authorization.k8s.io/x".
		kind, name, _ := strings.Cut(line, "/")
		kind, _, _ = strings.Cut(kind, ".")
		got = append(got, kind+"/"+name)
	}
	sort.Strings(want)
	sort.Strings(got)
	if !slices.Equal(got, want) {
		t.Errorf("objects in the API server = %v\nwant what config/default renders: %v", got, want)
	}
	for _, kind := range []string{"Namespace", "CustomResourceDefinition", "ServiceAccount", "ClusterRole",
		"ClusterRoleBinding", "Role", "RoleBinding", "Deployment", "Service"} {
		if !slices.ContainsFunc(rendered, func(o object) bool { return o.kind() == kind }) {
			t.Errorf("config/default renders no %s", kind)
		}
	}
	for _, o := range rendered {
		if ns := str(o, "metadata", "namespace"); ns != "" && ns != "trustee-system" {
			t.Errorf("%s %s is in namespace %s, want trustee-system", o.kind(), o.name(), ns)
		}
		if strings.HasPrefix(o.kind(), "Cluster") || o.kind() == "CustomResourceDefinition" || o.kind() == "Namespace" {
			continue
		}
		if str(o, "metadata", "namespace") == "" {
			t.Errorf("%s %s has no namespace", o.kind(), o.name())
		}
	}

	var d appsv1.Deployment
	if err := env.Client.Get(t.Context(), client.ObjectKey{Namespace: "trustee-system", Name: "trustee-operator"}, &d); err != nil {
		t.Fatal(err)
	}
	checkOperatorDeployment(t, &d, "trustee:latest", "--leader-elect")
	if got := *d.Spec.Replicas; got != 1 {
		t.Errorf("replicas = %d, want 1", got)
	}
	if got := d.Spec.Template.Spec.ServiceAccountName; got != "trustee-operator" {
		t.Errorf("serviceAccountName = %q, want trustee-operator", got)
	}

	var svc corev1.Service
	if err := env.Client.Get(t.Context(), client.ObjectKey{Namespace: "trustee-system", Name: "trustee-operator-metrics"}, &svc); err != nil {
		t.Fatal(err)
	}
	checkMetricsService(t, &svc, d.Spec.Template.Labels)

	// The pod the Deployment would make passes the restricted Pod Security
	// Standard that the namespace enforces.
	pod := &corev1.Pod{
		ObjectMeta: metav1.ObjectMeta{GenerateName: "trustee-operator-", Namespace: "trustee-system", Labels: d.Spec.Template.Labels},
		Spec:       d.Spec.Template.Spec,
	}
	if err := env.Client.Create(t.Context(), pod, client.DryRunAll); err != nil {
		t.Errorf("a pod of the Deployment in trustee-system (restricted): %v", err)
	}
}

// checkOperatorDeployment checks what both config/manager and the chart
// must give the operator's Deployment: the image (also the servers'
// default), the arguments, the downward API, the probes and the restricted
// security context.
func checkOperatorDeployment(t *testing.T, d *appsv1.Deployment, image, leaderElect string) {
	t.Helper()
	if len(d.Spec.Template.Spec.Containers) != 1 {
		t.Fatalf("%d containers, want 1", len(d.Spec.Template.Spec.Containers))
	}
	c := d.Spec.Template.Spec.Containers[0]
	if c.Image != image {
		t.Errorf("image = %q, want %q", c.Image, image)
	}
	wantArgs := []string{"operator", leaderElect, "--metrics-bind-address=:8443", "--health-probe-bind-address=:8081"}
	if !slices.Equal(c.Args, wantArgs) {
		t.Errorf("args = %q, want %q", c.Args, wantArgs)
	}
	env := map[string]corev1.EnvVar{}
	for _, e := range c.Env {
		env[e.Name] = e
	}
	if e := env["POD_NAMESPACE"]; e.ValueFrom == nil || e.ValueFrom.FieldRef == nil || e.ValueFrom.FieldRef.FieldPath != "metadata.namespace" {
		t.Errorf("POD_NAMESPACE = %+v, want the pod's metadata.namespace", e)
	}
	if e := env["OPERATOR_IMAGE"]; e.Value != c.Image {
		t.Errorf("OPERATOR_IMAGE = %q, want the operator's image %q", e.Value, c.Image)
	}
	ports := map[string]int32{}
	for _, p := range c.Ports {
		ports[p.Name] = p.ContainerPort
	}
	if ports["metrics"] != 8443 || ports["health"] != 8081 {
		t.Errorf("container ports = %v, want metrics 8443 and health 8081", ports)
	}
	for _, p := range []struct {
		name  string
		probe *corev1.Probe
		path  string
	}{{"liveness", c.LivenessProbe, "/healthz"}, {"readiness", c.ReadinessProbe, "/readyz"}} {
		if p.probe == nil || p.probe.HTTPGet == nil || p.probe.HTTPGet.Path != p.path || p.probe.HTTPGet.Port.String() != "health" {
			t.Errorf("%s probe = %+v, want GET %s on port health (8081)", p.name, p.probe, p.path)
		}
	}

	pod := d.Spec.Template.Spec.SecurityContext
	if pod == nil || pod.RunAsNonRoot == nil || !*pod.RunAsNonRoot || pod.RunAsUser == nil || *pod.RunAsUser != 10001 ||
		pod.SeccompProfile == nil || pod.SeccompProfile.Type != corev1.SeccompProfileTypeRuntimeDefault {
		t.Errorf("pod securityContext = %+v, want non-root uid 10001 with seccomp RuntimeDefault", pod)
	}
	sc := c.SecurityContext
	switch {
	case sc == nil:
		t.Fatal("no container securityContext")
	case sc.AllowPrivilegeEscalation == nil || *sc.AllowPrivilegeEscalation:
		t.Error("allowPrivilegeEscalation is not false")
	case sc.ReadOnlyRootFilesystem == nil || !*sc.ReadOnlyRootFilesystem:
		t.Error("readOnlyRootFilesystem is not true")
	case sc.RunAsNonRoot == nil || !*sc.RunAsNonRoot || sc.RunAsUser == nil || *sc.RunAsUser != 10001:
		t.Errorf("container runs as %v (runAsNonRoot %v), want non-root 10001", sc.RunAsUser, sc.RunAsNonRoot)
	case sc.Capabilities == nil || !slices.Equal(sc.Capabilities.Drop, []corev1.Capability{"ALL"}) || len(sc.Capabilities.Add) > 0:
		t.Errorf("capabilities = %+v, want all dropped, none added", sc.Capabilities)
	case sc.SeccompProfile == nil || sc.SeccompProfile.Type != corev1.SeccompProfileTypeRuntimeDefault:
		t.Errorf("container seccompProfile = %+v, want RuntimeDefault", sc.SeccompProfile)
	}
	for _, r := range []corev1.ResourceName{corev1.ResourceCPU, corev1.ResourceMemory} {
		if _, ok := c.Resources.Requests[r]; !ok {
			t.Errorf("no %s request", r)
		}
		if _, ok := c.Resources.Limits[r]; !ok {
			t.Errorf("no %s limit", r)
		}
	}
	// The servers' NetworkPolicy admits the operator's pods to the admin
	// API by these labels.
	for k, v := range controllers.OperatorPodLabels {
		if got := d.Spec.Template.Labels[k]; got != v {
			t.Errorf("pod label %s = %q, want %q: the servers' NetworkPolicy would keep the operator from their admin API", k, got, v)
		}
	}
}

// checkMetricsService checks that svc sends port 8443 to the metrics port
// of the pods labelled podLabels.
func checkMetricsService(t *testing.T, svc *corev1.Service, podLabels map[string]string) {
	t.Helper()
	if len(svc.Spec.Ports) != 1 || svc.Spec.Ports[0].Port != 8443 || svc.Spec.Ports[0].TargetPort.String() != "metrics" {
		t.Errorf("metrics Service ports = %+v, want 8443 to the port named metrics", svc.Spec.Ports)
	}
	if len(svc.Spec.Selector) == 0 {
		t.Error("metrics Service selects no pods")
	}
	for k, v := range svc.Spec.Selector {
		if podLabels[k] != v {
			t.Errorf("metrics Service selects %s=%s, which the operator's pods do not carry", k, v)
		}
	}
}

// TestSamples applies config/samples/ in a namespace, as a user would once
// the operator is installed: the API server takes every sample (the CRDs'
// validation included), and refuses broken variants of them with the
// message of the CEL rule that each breaks.
func TestSamples(t *testing.T) {
	applyDefault(t)
	ns := env.Namespace(t)
	env.Kubectl(t, "apply", "-n", ns, "-f", path("config/samples")+"/")

	rendered := objects(t, env.Kubectl(t, "kustomize", path("config/samples")))
	for _, o := range rendered {
		kind := strings.ToLower(o.kind())
		if g, _, ok := strings.Cut(str(o, "apiVersion"), "/"); ok {
			kind += "." + g
		}
		env.Kubectl(t, "get", "-n", ns, kind+"/"+o.name())
	}
	for _, kind := range []string{"KeyTrusteeServer", "Organization", "BackupSchedule", "Issuer", "Secret", "ConfigMap", "PersistentVolumeClaim"} {
		if !slices.ContainsFunc(rendered, func(o object) bool { return o.kind() == kind }) {
			t.Errorf("the samples have no %s", kind)
		}
	}
	// What the samples refer to is in the samples.
	kts := find(t, rendered, "KeyTrusteeServer", "kts")
	find(t, rendered, "Issuer", str(kts, "spec", "tls", "issuerRef", "name"))
	org := find(t, rendered, "Organization", "acme")
	find(t, rendered, "Secret", str(org, "spec", "authCodeSecretRef", "name"))
	backup := find(t, rendered, "BackupSchedule", "kts-nightly")
	find(t, rendered, "PersistentVolumeClaim", str(backup, "spec", "destination", "claimName"))
	cm := find(t, rendered, "ConfigMap", str(backup, "spec", "gpgRecipient", "configMapKeyRef", "name"))
	checkRecipientKey(t, str(cm, "data", str(backup, "spec", "gpgRecipient", "configMapKeyRef", "key")),
		str(backup, "spec", "gpgRecipient", "recipient"))

	bad := []struct {
		name    string
		sample  object
		change  func(o object)
		wantErr string
	}{
		{"server without a certificate", kts, func(o object) {
			delete(o["spec"].(map[string]any)["tls"].(map[string]any), "issuerRef")
		}, "tls needs exactly one of issuerRef (cert-manager issues the certificate) or secretName"},
		{"server with two certificates", kts, func(o object) {
			o["spec"].(map[string]any)["tls"].(map[string]any)["secretName"] = "kts-tls"
		}, "tls needs exactly one of issuerRef"},
		{"organization with a dotted name", org, func(o object) {
			o["metadata"].(map[string]any)["name"] = "acme.corp"
		}, "metadata.name is not an organization name"},
		{"unencrypted backups", backup, func(o object) {
			delete(o["spec"].(map[string]any), "gpgRecipient")
		}, "backups hold every key of the server, so they are encrypted"},
		{"backups at a bad time", backup, func(o object) {
			o["spec"].(map[string]any)["schedule"] = "15 25 * * *"
		}, "schedule must be a cron expression"},
	}
	for _, tc := range bad {
		t.Run(tc.name, func(t *testing.T) {
			o := into[object](t, tc.sample) // a deep copy
			o["metadata"].(map[string]any)["name"] = "bad-" + strings.ReplaceAll(o.name(), ".", "-")
			tc.change(o)
			doc, err := yaml.Marshal(o)
			if err != nil {
				t.Fatal(err)
			}
			_, stderr, err := kubectl(t, string(doc), "apply", "-n", ns, "-f", "-")
			if err == nil {
				t.Fatalf("the API server took the %s:\n%s", tc.name, doc)
			}
			if !strings.Contains(stderr, tc.wantErr) {
				t.Errorf("kubectl apply: %v\n%s\nwant the message %q", err, stderr, tc.wantErr)
			}
		})
	}
}

// checkRecipientKey checks that armored is an OpenPGP public key (and no
// private one) whose fingerprint is recipient, able to encrypt.
func checkRecipientKey(t *testing.T, armored, recipient string) {
	t.Helper()
	keys, err := openpgp.ReadArmoredKeyRing(strings.NewReader(armored))
	if err != nil {
		t.Fatalf("the sample backup key: %v", err)
	}
	if len(keys) != 1 {
		t.Fatalf("the sample backup key holds %d keys, want 1", len(keys))
	}
	k := keys[0]
	if got := strings.ToUpper(hex.EncodeToString(k.PrimaryKey.Fingerprint)); got != recipient {
		t.Errorf("the sample backup key's fingerprint is %s, the BackupSchedule's recipient %s", got, recipient)
	}
	if k.PrivateKey != nil {
		t.Error("the sample backup key holds its private key")
	}
	if _, ok := k.EncryptionKey(k.PrimaryKey.CreationTime); !ok {
		t.Error("the sample backup key cannot encrypt")
	}
}

// TestSamplesKustomization checks config/samples/Kustomization lists every
// sample file, so that -k and -f apply the same objects.
func TestSamplesKustomization(t *testing.T) {
	data, err := os.ReadFile(path("config/samples/Kustomization"))
	if err != nil {
		t.Fatal(err)
	}
	var k struct {
		Resources []string `json:"resources"`
	}
	if err := yaml.Unmarshal(data, &k); err != nil {
		t.Fatal(err)
	}
	files, err := filepath.Glob(path("config/samples/*.yaml"))
	if err != nil {
		t.Fatal(err)
	}
	var want []string
	for _, f := range files {
		want = append(want, filepath.Base(f))
	}
	got := slices.Sorted(slices.Values(k.Resources))
	if !slices.Equal(got, want) {
		t.Errorf("config/samples/Kustomization resources = %v, want every sample file: %v", k.Resources, want)
	}
}

// TestOneNodeSamples applies config/one-node as a user of a one-node
// cluster would: the same objects as config/samples, the server's high
// availability off (its members never share a node), the backups on a
// ReadWriteOnce claim that default storage classes provide.
func TestOneNodeSamples(t *testing.T) {
	applyDefault(t)
	ns := env.Namespace(t)
	env.Kubectl(t, "apply", "-n", ns, "-k", path("config/one-node"))

	oneNode := objects(t, env.Kubectl(t, "kustomize", path("config/one-node")))
	samples := objects(t, env.Kubectl(t, "kustomize", path("config/samples")))
	if len(oneNode) != len(samples) {
		t.Fatalf("config/one-node renders %d objects, config/samples %d", len(oneNode), len(samples))
	}
	for _, o := range samples {
		find(t, oneNode, o.kind(), o.name())
	}
	got := into[trusteev1.KeyTrusteeServer](t, find(t, oneNode, "KeyTrusteeServer", "kts"))
	if got.HighAvailabilityEnabled() {
		t.Error("config/one-node's KeyTrusteeServer has high availability on")
	}
	var applied trusteev1.KeyTrusteeServer
	if err := json.Unmarshal([]byte(env.Kubectl(t, "get", "-n", ns, "keytrusteeserver.trustee.dev/kts", "-o", "json")), &applied); err != nil {
		t.Fatal(err)
	}
	if applied.HighAvailabilityEnabled() {
		t.Error("the applied one-node KeyTrusteeServer has high availability on")
	}
	backup := find(t, samples, "BackupSchedule", "kts-nightly")
	claim := into[corev1.PersistentVolumeClaim](t, find(t, samples, "PersistentVolumeClaim", str(backup, "spec", "destination", "claimName")))
	if !slices.Equal(claim.Spec.AccessModes, []corev1.PersistentVolumeAccessMode{corev1.ReadWriteOnce}) {
		t.Errorf("the backup sample's claim asks for %v: default storage classes provide ReadWriteOnce", claim.Spec.AccessModes)
	}
}
