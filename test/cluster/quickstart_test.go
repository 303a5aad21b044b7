package cluster

import (
	"fmt"
	"net"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	corev1 "k8s.io/api/core/v1"
	"k8s.io/apimachinery/pkg/api/meta"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"sigs.k8s.io/controller-runtime/pkg/client"

	trusteev1 "trustee.dev/trustee/api/v1alpha1"
	"trustee.dev/trustee/test/controlplane"
	"trustee.dev/trustee/test/harness"
	"trustee.dev/trustee/test/memberpods"
)

// TestQuickStartOnOneNode follows the README's quick start on a cluster of
// one node, as kind, minikube and k3d make it: the chart installed as the
// README says (its namespace made under the restricted Pod Security
// Standard), a namespace for the server under the same standard, the
// one-node samples applied with kubectl -k, localhost added to the
// certificate's names, then a client registering with the organization's
// auth code and keeping a deposit. The member's pod runs as processes
// here (test/memberpods), as in TestReadyWithItsMembersRunning.
func TestQuickStartOnOneNode(t *testing.T) {
	t.Parallel()
	nodes := controlplane.Nodes(1)
	nodes[0].Untainted = true // as kind's node: the samples have no toleration
	one := controlplane.StartForTest(t, controlplane.Options{Nodes: nodes, CertManager: true})
	if err := trusteev1.AddToScheme(one.Scheme); err != nil {
		t.Fatal(err)
	}
	showOperatorLogs(t)
	operator(t, one)
	ns := one.Namespace(t)
	one.Kubectl(t, "label", "namespace", ns, "pod-security.kubernetes.io/enforce=restricted")
	one.Kubectl(t, "apply", "-n", ns, "-k", filepath.Join(root, "config/one-node"))
	one.Kubectl(t, "patch", "-n", ns, "kts", "kts", "--type", "merge", "-p", `{"spec":{"tls":{"dnsNames":["localhost"]}}}`)

	condition(t, one, ns, "kts", trusteev1.ConditionActiveReady, metav1.ConditionTrue, "is ready", 2*time.Minute)
	condition(t, one, ns, "kts", trusteev1.ConditionCertificateReady, metav1.ConditionTrue, "", time.Minute)
	harness.Eventually(t, time.Minute, "the certificate for localhost", func() (bool, string) {
		out := one.Kubectl(t, "get", "certificate", "-n", ns, "kts-server", "-o", "jsonpath={.spec.dnsNames}")
		return strings.Contains(out, `"localhost"`), out
	})
	condition(t, one, ns, "kts", trusteev1.ConditionCertificateReady, metav1.ConditionTrue, "", time.Minute)
	k := &trusteev1.KeyTrusteeServer{}
	if err := one.Client.Get(background(), client.ObjectKey{Namespace: ns, Name: "kts"}, k); err != nil {
		t.Fatal(err)
	}
	if k.HighAvailabilityEnabled() {
		t.Fatal("config/one-node's server has high availability on")
	}
	root := memberpods.RootDir(t)
	active := memberpods.LayOut(t, background(), one.Client, kts, root, k, "a", nil)
	active.RunDB(t)
	active.RunServer(t)
	ip := podIPsToServeOn(t, one, ns, "kts-a-0")[0]
	forward(t, net.JoinHostPort(ip, "11371"), fmt.Sprintf("127.0.0.1:%d", active.API))
	forward(t, net.JoinHostPort(ip, "11373"), fmt.Sprintf("127.0.0.1:%d", active.Admin))
	condition(t, one, ns, "kts", trusteev1.ConditionReady, metav1.ConditionTrue, "", 2*time.Minute)
	harness.Eventually(t, time.Minute, "the organization on the server", func() (bool, string) {
		org := &trusteev1.Organization{}
		if err := one.Client.Get(background(), client.ObjectKey{Namespace: ns, Name: "acme"}, org); err != nil {
			return false, err.Error()
		}
		c := meta.FindStatusCondition(org.Status.Conditions, trusteev1.ConditionReady)
		return c != nil && c.Status == metav1.ConditionTrue, fmt.Sprintf("%+v", org.Status)
	})
	if p := member(t, one, ns, "kts-b-0"); p != nil {
		t.Errorf("a passive's pod on a one-node cluster: %s", p.Status.Phase)
	}

	// 3. as the README: the CA and the auth code from their Secrets, then
	// register, put and get.
	dir := t.TempDir()
	secret := func(name, key string) string {
		s := &corev1.Secret{}
		if err := one.Client.Get(background(), client.ObjectKey{Namespace: ns, Name: name}, s); err != nil {
			t.Fatal(err)
		}
		p := filepath.Join(dir, name+"."+key)
		if err := os.WriteFile(p, s.Data[key], 0o600); err != nil {
			t.Fatal(err)
		}
		return p
	}
	ca, code := secret("kts-server-tls", "ca.crt"), secret("acme-auth", "code")
	run := func(stdin string, args ...string) string { t.Helper(); return runKTS(t, stdin, args...) }
	client := filepath.Join(dir, "client")
	if out := run("", "client", "register", "--dir", client, "--server", active.URL(), "--org", "acme",
		"--auth-code-file", code, "--ca-file", ca); !strings.Contains(out, "state: active") {
		t.Fatalf("registration:\n%s", out)
	}
	run("key of disk 1", "client", "put", "--dir", client, "disk-1")
	if got := run("", "client", "get", "--dir", client, "disk-1"); got != "key of disk 1" {
		t.Fatalf("get: %q", got)
	}
}
