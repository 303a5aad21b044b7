package controllers

import (
	"context"
	"fmt"
	"slices"
	"strings"
	"testing"
	"time"

	cmv1 "github.com/cert-manager/cert-manager/pkg/apis/certmanager/v1"
	cmmeta "github.com/cert-manager/cert-manager/pkg/apis/meta/v1"
	appsv1 "k8s.io/api/apps/v1"
	corev1 "k8s.io/api/core/v1"
	networkingv1 "k8s.io/api/networking/v1"
	policyv1 "k8s.io/api/policy/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	"k8s.io/apimachinery/pkg/api/meta"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/utils/ptr"
	"sigs.k8s.io/controller-runtime/pkg/client"

	trusteev1 "trustee.dev/trustee/api/v1alpha1"
	"trustee.dev/trustee/server/confdir"
	"trustee.dev/trustee/server/member/contract"
	"trustee.dev/trustee/test/fixtures"
	"trustee.dev/trustee/test/harness"
)

func testContext(t *testing.T) context.Context {
	ctx, cancel := context.WithTimeout(context.Background(), 3*time.Minute)
	t.Cleanup(cancel)
	return ctx
}

// testCA makes issuer "ca" in ns: a CA certificate that cert-manager signs
// itself, as a cluster's own CA issuer would be.
func testCA(t *testing.T, ctx context.Context, ns string) {
	t.Helper()
	self := &cmv1.Issuer{ObjectMeta: metav1.ObjectMeta{Name: "selfsigned", Namespace: ns},
		Spec: cmv1.IssuerSpec{IssuerConfig: cmv1.IssuerConfig{SelfSigned: &cmv1.SelfSignedIssuer{}}}}
	caCert := &cmv1.Certificate{ObjectMeta: metav1.ObjectMeta{Name: "ca", Namespace: ns}, Spec: cmv1.CertificateSpec{
		IsCA: true, CommonName: "test CA", SecretName: "ca",
		IssuerRef: cmmeta.IssuerReference{Name: "selfsigned", Kind: "Issuer", Group: "cert-manager.io"},
	}}
	ca := &cmv1.Issuer{ObjectMeta: metav1.ObjectMeta{Name: "ca", Namespace: ns},
		Spec: cmv1.IssuerSpec{IssuerConfig: cmv1.IssuerConfig{CA: &cmv1.CAIssuer{SecretName: "ca"}}}}
	for _, o := range []client.Object{self, caCert, ca} {
		if err := env.Client.Create(ctx, o); err != nil {
			t.Fatal(err)
		}
	}
}

func newServer(ns, name string) *trusteev1.KeyTrusteeServer {
	return fixtures.Server(name, fixtures.ServerIn(ns))
}

func getServer(t *testing.T, ctx context.Context, ns, name string) *trusteev1.KeyTrusteeServer {
	t.Helper()
	k := &trusteev1.KeyTrusteeServer{}
	if err := env.Client.Get(ctx, client.ObjectKey{Namespace: ns, Name: name}, k); err != nil {
		t.Fatal(err)
	}
	return k
}

func conditionOf(conds []metav1.Condition, typ string) metav1.Condition {
	if c := meta.FindStatusCondition(conds, typ); c != nil {
		return *c
	}
	return metav1.Condition{Type: typ, Status: "absent"}
}

// waitCondition waits until the server's condition typ has status and its
// message contains msg.
func waitCondition(t *testing.T, ctx context.Context, ns, name, typ string, status metav1.ConditionStatus, msg string) metav1.Condition {
	t.Helper()
	var c metav1.Condition
	harness.Eventually(t, 2*time.Minute, fmt.Sprintf("%s %s=%s (%q)", name, typ, status, msg), func() (bool, string) {
		k := getServer(t, ctx, ns, name)
		c = conditionOf(k.Status.Conditions, typ)
		return c.Status == status && strings.Contains(c.Message, msg) && c.ObservedGeneration == k.Generation,
			fmt.Sprintf("%s=%s %s: %s (generation %d, observed %d)", typ, c.Status, c.Reason, c.Message, k.Generation, c.ObservedGeneration)
	})
	return c
}

// names lists the names of the objects of a kind labelled for server name.
func names(t *testing.T, ctx context.Context, list client.ObjectList, ns, server string) []string {
	t.Helper()
	if err := env.Client.List(ctx, list, client.InNamespace(ns), client.MatchingLabels{labelServer: server}); err != nil {
		t.Fatal(err)
	}
	items, err := meta.ExtractList(list)
	if err != nil {
		t.Fatal(err)
	}
	var out []string
	for _, o := range items {
		out = append(out, o.(client.Object).GetName())
	}
	slices.Sort(out)
	return out
}

func TestServerBecomesExactlyItsObjects(t *testing.T) {
	ctx, ns := testContext(t), env.Namespace(t)
	testCA(t, ctx, ns)
	if err := env.Client.Create(ctx, newServer(ns, "kts")); err != nil {
		t.Fatal(err)
	}
	waitCondition(t, ctx, ns, "kts", trusteev1.ConditionCertificateReady, metav1.ConditionTrue, "is issued")
	// The passive's StatefulSet comes once the active's pod is placed.
	waitCondition(t, ctx, ns, "kts", trusteev1.ConditionPassiveReady, metav1.ConditionFalse, "it is made once the active's pod is placed on a node")
	if got := names(t, ctx, &appsv1.StatefulSetList{}, ns, "kts"); !slices.Equal(got, []string{"kts-a"}) {
		t.Fatalf("StatefulSets before the active is placed: %v", got)
	}
	memberPod(t, ctx, ns, "kts", memberA, podScheduled, podNotReady)

	want := map[string]struct {
		list  client.ObjectList
		names []string
	}{
		"Secret":              {&corev1.SecretList{}, []string{"kts-admin-ca", "kts-identity", "kts-operator-admin", "kts-replication", "kts-server-tls", "kts-state"}},
		"ConfigMap":           {&corev1.ConfigMapList{}, []string{"kts-config"}},
		"Service":             {&corev1.ServiceList{}, []string{"kts-a", "kts-b", "kts-members", "kts-ro", "kts-rw"}},
		"StatefulSet":         {&appsv1.StatefulSetList{}, []string{"kts-a", "kts-b"}},
		"PodDisruptionBudget": {&policyv1.PodDisruptionBudgetList{}, []string{"kts"}},
		"NetworkPolicy":       {&networkingv1.NetworkPolicyList{}, []string{"kts"}},
		"Certificate":         {&cmv1.CertificateList{}, []string{"kts-admin-ca", "kts-operator-admin", "kts-server"}},
		"Issuer":              {&cmv1.IssuerList{}, []string{"kts-admin-ca", "kts-admin-selfsigned"}},
	}
	for kind, w := range want {
		harness.Eventually(t, 30*time.Second, kind+"s "+strings.Join(w.names, ", "), func() (bool, string) {
			got := names(t, ctx, w.list, ns, "kts")
			return slices.Equal(got, w.names), fmt.Sprintf("%v", got)
		})
	}

	// Everything but the identity, state and replication Secrets is owned
	// by the server (cert-manager's Secrets by their Certificates).
	k := getServer(t, ctx, ns, "kts")
	for _, l := range []client.ObjectList{&corev1.ConfigMapList{}, &corev1.ServiceList{}, &appsv1.StatefulSetList{},
		&policyv1.PodDisruptionBudgetList{}, &networkingv1.NetworkPolicyList{}, &cmv1.CertificateList{}, &cmv1.IssuerList{}} {
		names(t, ctx, l, ns, "kts")
		items, _ := meta.ExtractList(l)
		for _, o := range items {
			if !metav1.IsControlledBy(o.(client.Object), k) {
				t.Errorf("%T %s is not controlled by the KeyTrusteeServer", o, o.(client.Object).GetName())
			}
		}
	}
	for _, name := range []string{"kts-identity", "kts-replication", "kts-state"} {
		s := &corev1.Secret{}
		if err := env.Client.Get(ctx, client.ObjectKey{Namespace: ns, Name: name}, s); err != nil {
			t.Fatal(err)
		}
		if _, ok := s.Labels["app.kubernetes.io/instance"]; ok || s.Labels["trustee.dev/server"] != "kts" {
			t.Errorf("Secret %s has labels %v: want trustee.dev/server and no app.kubernetes.io/instance (Argo CD's tracking)", name, s.Labels)
		}
		if len(s.OwnerReferences) != 0 {
			t.Errorf("Secret %s is owned by %v: deleting the server would take its keys", name, s.OwnerReferences)
		}
	}

	// The status names the members, the endpoints and the identity.
	if k.Status.Active != "kts-a-0" || k.Status.Passive != "kts-b-0" {
		t.Errorf("status active %q passive %q", k.Status.Active, k.Status.Passive)
	}
	if k.Status.Endpoints == nil || k.Status.Endpoints.ReadWrite != "https://kts-rw."+ns+".svc:11371" {
		t.Errorf("status endpoints %+v", k.Status.Endpoints)
	}
	if !strings.HasPrefix(k.Status.Fingerprint, "4096R/") || len(k.Status.Fingerprint) != 46 {
		t.Errorf("status fingerprint %q", k.Status.Fingerprint)
	}
	if c := conditionOf(k.Status.Conditions, trusteev1.ConditionReady); c.Status != metav1.ConditionFalse {
		t.Errorf("Ready %s without pods: %s", c.Status, c.Message)
	}
	// The status of the reconcile that saw the pod may land after the
	// objects it applied.
	harness.Eventually(t, 30*time.Second, "ActiveReady of a pod not ready", func() (bool, string) {
		c := conditionOf(getServer(t, ctx, ns, "kts").Status.Conditions, trusteev1.ConditionActiveReady)
		return c.Reason == trusteev1.ReasonPodNotReady, c.Reason + ": " + c.Message
	})

	// kubectl get kts shows the printer columns.
	out := env.Kubectl(t, "get", "kts", "-n", ns)
	for _, col := range []string{"READY", "ACTIVE", "PASSIVE", "REPLICATING", "FINGERPRINT", "AGE", "kts-a-0", k.Status.Fingerprint} {
		if !strings.Contains(out, col) {
			t.Errorf("kubectl get kts lacks %q:\n%s", col, out)
		}
	}
}

func TestIdentityIsGeneratedOnceAndAdopted(t *testing.T) {
	ctx, ns := testContext(t), env.Namespace(t)
	testCA(t, ctx, ns)
	k := newServer(ns, "kts")
	if err := env.Client.Create(ctx, k); err != nil {
		t.Fatal(err)
	}
	identity := &corev1.Secret{}
	harness.Eventually(t, time.Minute, "identity generated", func() (bool, string) {
		err := env.Client.Get(ctx, client.ObjectKey{Namespace: ns, Name: "kts-identity"}, identity)
		return err == nil, fmt.Sprint(err)
	})
	fingerprint := waitFingerprint(t, ctx, ns, "kts")

	// A change of the spec reconciles everything again; the identity stays.
	k = getServer(t, ctx, ns, "kts")
	orig := k.DeepCopy()
	k.Spec.TLS.DNSNames = []string{"kts.example.com"}
	if err := env.Client.Patch(ctx, k, client.MergeFrom(orig)); err != nil {
		t.Fatal(err)
	}
	waitCondition(t, ctx, ns, "kts", trusteev1.ConditionCertificateReady, metav1.ConditionTrue, "")
	again := &corev1.Secret{}
	if err := env.Client.Get(ctx, client.ObjectKeyFromObject(identity), again); err != nil {
		t.Fatal(err)
	}
	if again.ResourceVersion != identity.ResourceVersion {
		t.Fatalf("the identity Secret changed on reconcile (resourceVersion %s → %s)", identity.ResourceVersion, again.ResourceVersion)
	}

	// Deleting the server keeps the identity; a new server of that name
	// adopts it, so clients see the same server.
	if err := env.Client.Delete(ctx, k); err != nil {
		t.Fatal(err)
	}
	harness.Eventually(t, 30*time.Second, "server deleted", func() (bool, string) {
		err := env.Client.Get(ctx, client.ObjectKeyFromObject(k), &trusteev1.KeyTrusteeServer{})
		return apierrors.IsNotFound(err), fmt.Sprint(err)
	})
	if err := env.Client.Create(ctx, newServer(ns, "kts")); err != nil {
		t.Fatal(err)
	}
	if got := waitFingerprint(t, ctx, ns, "kts"); got != fingerprint {
		t.Fatalf("the re-created server has identity %s, the old one had %s", got, fingerprint)
	}

	// A Secret of that name that is not an identity is refused, not
	// overwritten.
	bad := &corev1.Secret{ObjectMeta: metav1.ObjectMeta{Name: "other-identity", Namespace: ns}, Data: map[string][]byte{"unrelated": []byte("x")}}
	if err := env.Client.Create(ctx, bad); err != nil {
		t.Fatal(err)
	}
	if err := env.Client.Create(ctx, newServer(ns, "other")); err != nil {
		t.Fatal(err)
	}
	waitCondition(t, ctx, ns, "other", trusteev1.ConditionReady, metav1.ConditionFalse, `has no key "`+confdir.IdentityKeys[0]+`"`)
	if err := env.Client.Get(ctx, client.ObjectKeyFromObject(bad), bad); err != nil {
		t.Fatal(err)
	}
	if len(bad.Data) != 1 {
		t.Fatalf("the foreign Secret was changed: %v", bad.Data)
	}
}

// TestStateCarriedOverFromTheIdentity: a server made before the state
// Secret kept its markers in its identity Secret. The operator carries them
// over into the state Secret once, obeys them, and leaves the identity (an
// external secret manager may own it) as it is.
func TestStateCarriedOverFromTheIdentity(t *testing.T) {
	ctx, ns := testContext(t), env.Namespace(t)
	testCA(t, ctx, ns)
	data, err := confdir.NewIdentity(confdir.IdentityOptions{Hostname: "kts-rw." + ns + ".svc"})
	if err != nil {
		t.Fatal(err)
	}
	data[contract.KeyActiveMember] = []byte(memberB)
	data[contract.KeyDatabaseCreated] = []byte("2026-11-27T10:00:00Z")
	identity := &corev1.Secret{ObjectMeta: metav1.ObjectMeta{Name: "kts-identity", Namespace: ns}, Data: data}
	if err := env.Client.Create(ctx, identity); err != nil {
		t.Fatal(err)
	}
	if err := env.Client.Create(ctx, newServer(ns, "kts")); err != nil {
		t.Fatal(err)
	}
	state := &corev1.Secret{}
	harness.Eventually(t, time.Minute, "the state Secret", func() (bool, string) {
		err := env.Client.Get(ctx, client.ObjectKey{Namespace: ns, Name: "kts-state"}, state)
		return err == nil, fmt.Sprint(err)
	})
	if got := string(state.Data[contract.KeyActiveMember]); got != memberB {
		t.Errorf("state active-member = %q, want b from the identity", got)
	}
	if got := string(state.Data[contract.KeyDatabaseCreated]); got != "2026-11-27T10:00:00Z" {
		t.Errorf("state database-created = %q, want the identity's", got)
	}
	harness.Eventually(t, time.Minute, "b the active in the status", func() (bool, string) {
		k := getServer(t, ctx, ns, "kts")
		return k.Status.ActiveMember == memberB, k.Status.ActiveMember
	})
	again := &corev1.Secret{}
	if err := env.Client.Get(ctx, client.ObjectKeyFromObject(identity), again); err != nil {
		t.Fatal(err)
	}
	if again.ResourceVersion != identity.ResourceVersion {
		t.Errorf("the identity Secret was changed (resourceVersion %s → %s)", identity.ResourceVersion, again.ResourceVersion)
	}
}

func waitFingerprint(t *testing.T, ctx context.Context, ns, name string) string {
	t.Helper()
	var fp string
	harness.Eventually(t, time.Minute, "fingerprint in the status", func() (bool, string) {
		fp = getServer(t, ctx, ns, name).Status.Fingerprint
		return fp != "", "empty"
	})
	return fp
}

// memberPod makes the pod the StatefulSet controller would make, since no
// controller manager runs here, and sets its conditions as a kubelet would.
func memberPod(t *testing.T, ctx context.Context, ns, server, member string, conds ...corev1.PodCondition) {
	t.Helper()
	n := serverNames{server: server, namespace: ns}
	pod := &corev1.Pod{}
	err := env.Client.Get(ctx, client.ObjectKey{Namespace: ns, Name: n.Pod(member)}, pod)
	if apierrors.IsNotFound(err) {
		pod = &corev1.Pod{
			ObjectMeta: metav1.ObjectMeta{Name: n.Pod(member), Namespace: ns, Labels: mergeLabels(n.labels(), n.memberLabels(member))},
			Spec:       corev1.PodSpec{Containers: []corev1.Container{{Name: "server", Image: "trustee:test"}}},
		}
		if slices.ContainsFunc(conds, func(c corev1.PodCondition) bool {
			return c.Type == corev1.PodScheduled && c.Status == corev1.ConditionTrue
		}) {
			pod.Spec.NodeName = testNode
		}
		if err = env.Client.Create(ctx, pod); err != nil {
			t.Fatal(err)
		}
	} else if err != nil {
		t.Fatal(err)
	}
	pod.Status.Conditions = conds
	pod.Status.Phase = corev1.PodPending
	if slices.ContainsFunc(conds, func(c corev1.PodCondition) bool { return c.Type == corev1.PodReady && c.Status == corev1.ConditionTrue }) {
		pod.Status.Phase = corev1.PodRunning
	}
	if err := env.Client.Status().Update(ctx, pod); err != nil {
		t.Fatal(err)
	}
}

var (
	podReady       = corev1.PodCondition{Type: corev1.PodReady, Status: corev1.ConditionTrue}
	podNotReady    = corev1.PodCondition{Type: corev1.PodReady, Status: corev1.ConditionFalse}
	podScheduled   = corev1.PodCondition{Type: corev1.PodScheduled, Status: corev1.ConditionTrue}
	podUnscheduled = corev1.PodCondition{Type: corev1.PodScheduled, Status: corev1.ConditionFalse, Reason: corev1.PodReasonUnschedulable,
		Message: "0/1 nodes are available: 1 node(s) didn't match pod anti-affinity rules."}
)

func TestStatusFollowsThePods(t *testing.T) {
	ctx, ns := testContext(t), env.Namespace(t)
	testCA(t, ctx, ns)
	if err := env.Client.Create(ctx, newServer(ns, "kts")); err != nil {
		t.Fatal(err)
	}
	waitCondition(t, ctx, ns, "kts", trusteev1.ConditionActiveReady, metav1.ConditionFalse, "does not exist yet")

	memberPod(t, ctx, ns, "kts", memberA, podScheduled, podNotReady)
	waitCondition(t, ctx, ns, "kts", trusteev1.ConditionActiveReady, metav1.ConditionFalse, "is Pending")
	state := &corev1.Secret{}
	if err := env.Client.Get(ctx, client.ObjectKey{Namespace: ns, Name: "kts-state"}, state); err != nil || len(state.Data[contract.KeyDatabaseCreated]) > 0 {
		t.Fatalf("the state Secret before the active served: %v, marked %q", err, state.Data[contract.KeyDatabaseCreated])
	}
	memberPod(t, ctx, ns, "kts", memberA, podScheduled, podReady)
	waitCondition(t, ctx, ns, "kts", trusteev1.ConditionActiveReady, metav1.ConditionTrue, "kts-a-0 is ready")
	// Ready, but its server does not answer yet: not marked.
	time.Sleep(time.Second)
	if err := env.Client.Get(ctx, client.ObjectKey{Namespace: ns, Name: "kts-state"}, state); err != nil || len(state.Data[contract.KeyDatabaseCreated]) > 0 {
		t.Fatalf("the state Secret before the active answered: %v, marked %q", err, state.Data[contract.KeyDatabaseCreated])
	}
	// Once its server answers, an empty volume of the active is a loss,
	// not a start.
	serveReadyz(t, ctx, ns)
	harness.Eventually(t, time.Minute, "the state Secret marked", func() (bool, string) {
		err := env.Client.Get(ctx, client.ObjectKey{Namespace: ns, Name: "kts-state"}, state)
		_, perr := time.Parse(time.RFC3339, string(state.Data[contract.KeyDatabaseCreated]))
		return err == nil && perr == nil, fmt.Sprint(err, perr)
	})
	wantEvent(t, ctx, ns, "DatabaseCreated")
	registerAddress(ns, "kts", memberA, portAPI, "127.0.0.1:1") // nothing answers there

	// The passive cannot be placed: the status says why, in the
	// scheduler's words.
	memberPod(t, ctx, ns, "kts", memberB, podUnscheduled)
	waitCondition(t, ctx, ns, "kts", trusteev1.ConditionPassiveReady, metav1.ConditionFalse, "didn't match pod anti-affinity rules")
	ready := waitCondition(t, ctx, ns, "kts", trusteev1.ConditionReady, metav1.ConditionFalse, "")
	if ready.Reason != trusteev1.ReasonPodNotReady {
		t.Errorf("Ready: %s %s", ready.Reason, ready.Message)
	}

	memberPod(t, ctx, ns, "kts", memberB, podScheduled, podReady)
	waitCondition(t, ctx, ns, "kts", trusteev1.ConditionPassiveReady, metav1.ConditionTrue, "")
	// Both pods are ready, but nothing answers at the active's address: the
	// operator does not call the pair in sync.
	waitCondition(t, ctx, ns, "kts", trusteev1.ConditionReplicating, metav1.ConditionFalse, "did not report on its standby")
	waitCondition(t, ctx, ns, "kts", trusteev1.ConditionReady, metav1.ConditionFalse, "")
}

func TestHighAvailabilityOff(t *testing.T) {
	ctx, ns := testContext(t), env.Namespace(t)
	testCA(t, ctx, ns)
	k := newServer(ns, "kts")
	if err := env.Client.Create(ctx, k); err != nil {
		t.Fatal(err)
	}
	memberPod(t, ctx, ns, "kts", memberA, podScheduled, podNotReady)
	harness.Eventually(t, time.Minute, "both StatefulSets", func() (bool, string) {
		got := names(t, ctx, &appsv1.StatefulSetList{}, ns, "kts")
		return len(got) == 2, fmt.Sprint(got)
	})
	k = getServer(t, ctx, ns, "kts")
	orig := k.DeepCopy()
	k.Spec.HighAvailability.Enabled = ptr.To(false)
	if err := env.Client.Patch(ctx, k, client.MergeFrom(orig)); err != nil {
		t.Fatal(err)
	}
	harness.Eventually(t, time.Minute, "the passive removed", func() (bool, string) {
		sts := names(t, ctx, &appsv1.StatefulSetList{}, ns, "kts")
		svcs := names(t, ctx, &corev1.ServiceList{}, ns, "kts")
		return slices.Equal(sts, []string{"kts-a"}) && !slices.Contains(svcs, "kts-b"), fmt.Sprint(sts, svcs)
	})
	c := waitCondition(t, ctx, ns, "kts", trusteev1.ConditionPassiveReady, metav1.ConditionFalse, "high availability is off")
	if c.Reason != trusteev1.ReasonHighAvailabilityDisabled {
		t.Errorf("PassiveReady reason %s", c.Reason)
	}
	memberPod(t, ctx, ns, "kts", memberA, podScheduled, podReady)
	waitCondition(t, ctx, ns, "kts", trusteev1.ConditionReady, metav1.ConditionTrue, "the server answers")
	cm := &corev1.ConfigMap{}
	if err := env.Client.Get(ctx, client.ObjectKey{Namespace: ns, Name: "kts-config"}, cm); err != nil {
		t.Fatal(err)
	}
	if _, ok := cm.Data["b.conf"]; ok || !strings.Contains(cm.Data["a.conf"], `"STANDBY_NAME": ""`) {
		t.Errorf("a standalone server's configuration: %v", cm.Data)
	}
}

func TestExistingTLSSecret(t *testing.T) {
	ctx, ns := testContext(t), env.Namespace(t)
	k := newServer(ns, "kts")
	k.Spec.TLS = trusteev1.TLSSpec{SecretName: "own-tls"}
	if err := env.Client.Create(ctx, k); err != nil {
		t.Fatal(err)
	}
	waitCondition(t, ctx, ns, "kts", trusteev1.ConditionCertificateReady, metav1.ConditionFalse, "Secret own-tls named in tls.secretName does not exist")
	bad := &corev1.Secret{ObjectMeta: metav1.ObjectMeta{Name: "own-tls", Namespace: ns}, Type: corev1.SecretTypeTLS,
		Data: map[string][]byte{corev1.TLSCertKey: []byte("not a certificate"), corev1.TLSPrivateKeyKey: []byte("nor a key")}}
	if err := env.Client.Create(ctx, bad); err != nil {
		t.Fatal(err)
	}
	waitCondition(t, ctx, ns, "kts", trusteev1.ConditionCertificateReady, metav1.ConditionFalse, "holds no usable tls.crt and tls.key")
	if l := names(t, ctx, &cmv1.CertificateList{}, ns, "kts"); slices.Contains(l, "kts-server") {
		t.Errorf("a server certificate was requested although tls.secretName is set: %v", l)
	}
}
