package operator

import (
	"context"
	"crypto/tls"
	"crypto/x509"
	"encoding/json"
	"encoding/pem"
	"fmt"
	"io"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	cmv1 "github.com/cert-manager/cert-manager/pkg/apis/certmanager/v1"
	cmmeta "github.com/cert-manager/cert-manager/pkg/apis/meta/v1"
	appsv1 "k8s.io/api/apps/v1"
	corev1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	"k8s.io/apimachinery/pkg/api/meta"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"sigs.k8s.io/controller-runtime/pkg/client"

	trusteev1 "trustee.dev/trustee/api/v1alpha1"
	"trustee.dev/trustee/test/fixtures"
	"trustee.dev/trustee/test/harness"
	"trustee.dev/trustee/test/memberpods"
)

// TestPairFromKubectlApplyToClients follows a user: a KeyTrusteeServer and
// an Organization are applied; cert-manager issues the certificates; the
// members run from the operator's Secrets and ConfigMap; the status
// reports the pair in sync; a client registers with the Organization's
// auth code; the code is rotated through its Secret; a client is disabled
// through the Organization; a renewed certificate reaches the running
// servers; deleting the Organization retires it on the server.
func TestPairFromKubectlApplyToClients(t *testing.T) {
	ctx, cancel := context.WithTimeout(context.Background(), 8*time.Minute)
	defer cancel()
	ns := env.Namespace(t)
	c := env.Client
	server := newServer(t, ctx, ns)

	// The pods, as local processes.
	root := memberpods.RootDir(t)
	active, passive := runPair(t, ctx, ns, root, server)
	waitServer(t, ctx, server, trusteev1.ConditionReplicating, metav1.ConditionTrue, "synchronous standby")
	waitServer(t, ctx, server, trusteev1.ConditionReady, metav1.ConditionTrue, "")
	if err := c.Get(ctx, client.ObjectKeyFromObject(server), server); err != nil {
		t.Fatal(err)
	}
	if got := fingerprintOf(t, active); got != server.Status.Fingerprint {
		t.Fatalf("the server answers fingerprint %s, the status says %s", got, server.Status.Fingerprint)
	}

	// An Organization with its auth code in a Secret.
	code := &corev1.Secret{ObjectMeta: metav1.ObjectMeta{Name: "acme-code", Namespace: ns}, StringData: map[string]string{"code": "first code"}}
	create(t, ctx, code)
	org := fixtures.Organization("acme", fixtures.OrganizationIn(ns), fixtures.Contacts("keys@acme.example"), fixtures.AuthCode("acme-code", "code"))
	create(t, ctx, org)
	waitOrg(t, ctx, org, func(o *trusteev1.Organization) bool { return o.Status.UUID != "" })

	first := register(t, root, active, "first", "first code")
	if first.state != "active" {
		t.Fatalf("a client with the Organization's code is %s", first.state)
	}
	put(t, first, "disk-1", "key of disk 1")

	// Rotating the code in the Secret reaches the server.
	if err := c.Get(ctx, client.ObjectKeyFromObject(code), code); err != nil {
		t.Fatal(err)
	}
	code.Data = map[string][]byte{"code": []byte("second code")}
	if err := c.Update(ctx, code); err != nil {
		t.Fatal(err)
	}
	waitOrg(t, ctx, org, func(o *trusteev1.Organization) bool { return o.Status.AuthCodeSecretVersion == code.ResourceVersion })
	if r := register(t, root, active, "old-code", "first code"); r.state != "pending" {
		t.Fatalf("a client with the old code is %s", r.state)
	}
	if r := register(t, root, active, "new-code", "second code"); r.state != "active" {
		t.Fatalf("a client with the new code is %s", r.state)
	}
	for _, bad := range []string{"first code", "second code"} {
		if out, _ := json.Marshal(org.Status); strings.Contains(string(out), bad) {
			t.Fatalf("the auth code is in the status: %s", out)
		}
	}

	// Disabling a client through the Organization.
	if err := c.Get(ctx, client.ObjectKeyFromObject(org), org); err != nil {
		t.Fatal(err)
	}
	unchanged := org.DeepCopy()
	org.Spec.Clients.Disable = []string{first.fingerprint}
	if err := c.Patch(ctx, org, client.MergeFrom(unchanged)); err != nil {
		t.Fatal(err)
	}
	waitOrg(t, ctx, org, func(o *trusteev1.Organization) bool {
		return o.Status.Clients.Disabled == 1 && o.Status.Clients.Active == 1 && o.Status.Clients.Pending == 1
	})
	if out, err := ktsErr(t, "client", "get", "--dir", first.dir, "disk-1"); err == nil || !strings.Contains(out, "client_not_active") {
		t.Fatalf("a disabled client reads: %v\n%s", err, out)
	}

	// A renewed certificate reaches the running servers, no restart.
	before := servingCert(t, active)
	renew(t, ctx, ns, "kts-server")
	tlsSecret := &corev1.Secret{}
	harness.Eventually(t, time.Minute, "a new certificate in kts-server-tls", func() (bool, string) {
		if err := c.Get(ctx, client.ObjectKey{Namespace: ns, Name: "kts-server-tls"}, tlsSecret); err != nil {
			return false, err.Error()
		}
		now := leafOf(t, tlsSecret.Data[corev1.TLSCertKey])
		return now.SerialNumber.Cmp(before.SerialNumber) != 0, "serial " + now.SerialNumber.String()
	})
	for _, m := range []*memberpods.Member{active, passive} {
		m.Mount(t, "tls", tlsSecret.Data) // what the kubelet does with the Secret volume
	}
	harness.Eventually(t, time.Minute, "the servers present the renewed certificate", func() (bool, string) {
		a, p := servingCert(t, active), servingCert(t, passive)
		return a.SerialNumber.Cmp(before.SerialNumber) != 0 && a.SerialNumber.Cmp(p.SerialNumber) == 0,
			fmt.Sprintf("active serial %s, passive %s, old %s", a.SerialNumber, p.SerialNumber, before.SerialNumber)
	})
	for _, m := range []*memberpods.Member{active, passive} {
		if !m.Server.Running() {
			t.Fatalf("the %s server exited", m.Name)
		}
	}
	waitServer(t, ctx, server, trusteev1.ConditionCertificateReady, metav1.ConditionTrue, "is issued")
	if got := get(t, register(t, root, active, "after-renewal", "second code"), "disk-1", true); got != "" {
		t.Fatalf("another client read %q", got)
	}

	// A new image: the passive restarts on it first while the active
	// serves; the active follows once the passive is its synchronous
	// standby again (the active's own /readyz says so); reads go on at the
	// passive while the active restarts, and nothing written is lost.
	both := filepath.Join(root, "clients", "both")
	kts(t, "client", "register", "--dir", both, "--server", active.URL()+","+passive.URL(), "--org", "acme", "--auth-code", "second code", "--ca-file", active.CAFile())
	reader := registered{dir: both}
	put(t, reader, "before-roll", "written before the roll")
	for _, m := range []*memberpods.Member{active, passive} {
		onNewRevision(t, ctx, ns, m.Name)
	}
	waitServer(t, ctx, server, trusteev1.ConditionUpgrading, metav1.ConditionFalse, "every member runs")
	if err := c.Get(ctx, client.ObjectKeyFromObject(server), server); err != nil {
		t.Fatal(err)
	}
	orig := server.DeepCopy()
	server.Spec.Image = "trustee:next"
	if err := c.Patch(ctx, server, client.MergeFrom(orig)); err != nil {
		t.Fatal(err)
	}
	waitServer(t, ctx, server, trusteev1.ConditionUpgrading, metav1.ConditionTrue, "restarting the passive kts-b-0 on the new template first")
	if a, p := stsImage(t, ctx, ns, "a"), stsImage(t, ctx, ns, "b"); a == "trustee:next" || p != "trustee:next" {
		t.Fatalf("images: active %s, passive %s; want the passive's changed first", a, p)
	}
	passive.Server.Stop()
	passive.DB.Stop()
	onNewRevision(t, ctx, ns, "b")
	passive.RunDB(t)
	passive.RunServer(t)
	waitServer(t, ctx, server, trusteev1.ConditionUpgrading, metav1.ConditionTrue, "restarting the active kts-a-0")
	// The active's own write gate follows its standby on its next look,
	// as a client that retries sees it.
	during := filepath.Join(both, "during-roll.in")
	if err := os.WriteFile(during, []byte("written while the passive was new"), 0o600); err != nil {
		t.Fatal(err)
	}
	harness.Eventually(t, 30*time.Second, "a write with the passive back", func() (bool, string) {
		out, err := ktsErr(t, "client", "put", "--dir", both, "during-roll", during)
		return err == nil, out
	})
	if a := stsImage(t, ctx, ns, "a"); a != "trustee:next" {
		t.Fatalf("the active's image is %s after the passive's restart", a)
	}
	active.Server.Stop()
	active.DB.Stop()
	for _, name := range []string{"before-roll", "during-roll"} {
		if got := get(t, reader, name, false); !strings.HasPrefix(got, "written") {
			t.Fatalf("reading %s while the active restarts: %q", name, got)
		}
	}
	onNewRevision(t, ctx, ns, "a")
	active.RunDB(t)
	active.RunServer(t)
	waitServer(t, ctx, server, trusteev1.ConditionUpgrading, metav1.ConditionFalse, "every member runs")
	waitServer(t, ctx, server, trusteev1.ConditionReady, metav1.ConditionTrue, "")
	put(t, reader, "after-roll", "written after the roll")

	// Deleting the Organization retires it: registration is closed, data kept.
	if err := c.Delete(ctx, org); err != nil {
		t.Fatal(err)
	}
	harness.Eventually(t, time.Minute, "the Organization gone", func() (bool, string) {
		err := c.Get(ctx, client.ObjectKeyFromObject(org), org)
		return apierrors.IsNotFound(err), fmt.Sprint(err)
	})
	out, err := ktsErr(t, "client", "register", "--dir", filepath.Join(root, "clients", "late"), "--server", active.URL(),
		"--org", "acme", "--auth-code", "second code", "--ca-file", active.CAFile())
	if err == nil || !strings.Contains(out, "expired") {
		t.Fatalf("registration with a retired organization: %v\n%s", err, out)
	}
	orgs := kts(t, "org", "list", "--confdir", active.State)
	if !strings.Contains(orgs, `"acme"`) {
		t.Fatalf("the retired organization is gone from the server:\n%s", orgs)
	}
}

// newServer applies a KeyTrusteeServer "kts", changed by edits, with its
// certificate from a test CA, and waits for the certificates.
func newServer(t *testing.T, ctx context.Context, ns string, edits ...fixtures.ServerOption) *trusteev1.KeyTrusteeServer {
	t.Helper()
	testCA(t, ctx, ns)
	// The members run on this machine, where the active is reached as
	// localhost.
	server := fixtures.Server("kts", append([]fixtures.ServerOption{fixtures.ServerIn(ns), fixtures.DNSNames("localhost")}, edits...)...)
	create(t, ctx, server)
	waitServer(t, ctx, server, trusteev1.ConditionCertificateReady, metav1.ConditionTrue, "is issued")
	for _, s := range []string{"kts-admin-ca", "kts-operator-admin"} {
		harness.Eventually(t, time.Minute, "Secret "+s, func() (bool, string) {
			sec := &corev1.Secret{}
			err := env.Client.Get(ctx, client.ObjectKey{Namespace: ns, Name: s}, sec)
			return err == nil && len(sec.Data[corev1.TLSCertKey]) > 0, fmt.Sprint(err)
		})
	}
	return server
}

// runPair starts the pods of a new pair as local processes: member a the
// active, b the passive. Each pod's PostgreSQL first: the active's first
// commit (its schema) waits for its synchronous standby, whose copy needs
// the active's PostgreSQL; the passive's StatefulSet is made once the
// active's pod is placed.
func runPair(t *testing.T, ctx context.Context, ns, root string, server *trusteev1.KeyTrusteeServer) (active, passive *memberpods.Member) {
	t.Helper()
	active = memberpods.LayOut(t, ctx, env.Client, bin, root, server, "a", nil)
	active.RunDB(t)
	markReady(t, ctx, ns, "kts-a-0", "a")
	passive = memberpods.LayOut(t, ctx, env.Client, bin, root, server, "b", active)
	passive.RunDB(t)
	markReady(t, ctx, ns, "kts-b-0", "b")
	for _, m := range []*memberpods.Member{active, passive} {
		m.RunServer(t)
		serveAt(ns, m)
	}
	return active, passive
}

// serveAt tells the operator where member m's ports are.
func serveAt(ns string, m *memberpods.Member) {
	addresses.Store(fmt.Sprintf("%s/kts/%s/11371", ns, m.Name), fmt.Sprintf("127.0.0.1:%d", m.API))
	addresses.Store(fmt.Sprintf("%s/kts/%s/11373", ns, m.Name), fmt.Sprintf("127.0.0.1:%d", m.Admin))
}

// testCA makes issuer "ca": a CA that cert-manager signs itself.
func testCA(t *testing.T, ctx context.Context, ns string) {
	t.Helper()
	create(t, ctx, &cmv1.Issuer{ObjectMeta: metav1.ObjectMeta{Name: "selfsigned", Namespace: ns},
		Spec: cmv1.IssuerSpec{IssuerConfig: cmv1.IssuerConfig{SelfSigned: &cmv1.SelfSignedIssuer{}}}})
	create(t, ctx, &cmv1.Certificate{ObjectMeta: metav1.ObjectMeta{Name: "ca", Namespace: ns}, Spec: cmv1.CertificateSpec{
		IsCA: true, CommonName: "test CA", SecretName: "ca",
		IssuerRef: cmmeta.IssuerReference{Name: "selfsigned", Kind: "Issuer", Group: "cert-manager.io"}}})
	create(t, ctx, &cmv1.Issuer{ObjectMeta: metav1.ObjectMeta{Name: "ca", Namespace: ns},
		Spec: cmv1.IssuerSpec{IssuerConfig: cmv1.IssuerConfig{CA: &cmv1.CAIssuer{SecretName: "ca"}}}})
}

func create(t *testing.T, ctx context.Context, o client.Object) {
	t.Helper()
	if err := env.Client.Create(ctx, o); err != nil {
		t.Fatal(err)
	}
}

func waitServer(t *testing.T, ctx context.Context, k *trusteev1.KeyTrusteeServer, typ string, status metav1.ConditionStatus, msg string) {
	t.Helper()
	harness.Eventually(t, 2*time.Minute, fmt.Sprintf("%s=%s", typ, status), func() (bool, string) {
		got := &trusteev1.KeyTrusteeServer{}
		if err := env.Client.Get(ctx, client.ObjectKeyFromObject(k), got); err != nil {
			return false, err.Error()
		}
		c := meta.FindStatusCondition(got.Status.Conditions, typ)
		if c == nil {
			return false, "no condition"
		}
		return c.Status == status && strings.Contains(c.Message, msg), fmt.Sprintf("%s %s: %s", c.Status, c.Reason, c.Message)
	})
}

func waitOrg(t *testing.T, ctx context.Context, org *trusteev1.Organization, cond func(*trusteev1.Organization) bool) {
	t.Helper()
	harness.Eventually(t, 2*time.Minute, "organization status", func() (bool, string) {
		if err := env.Client.Get(ctx, client.ObjectKeyFromObject(org), org); err != nil {
			return false, err.Error()
		}
		ready := meta.FindStatusCondition(org.Status.Conditions, trusteev1.ConditionReady)
		out, _ := json.Marshal(org.Status)
		return ready != nil && ready.Status == metav1.ConditionTrue && ready.ObservedGeneration == org.Generation && cond(org), string(out)
	})
}

// markReady creates a member's pod as the StatefulSet controller would and
// marks it ready as its kubelet would once the probes pass.
func markReady(t *testing.T, ctx context.Context, ns, name, role string) {
	t.Helper()
	pod := &corev1.Pod{
		ObjectMeta: metav1.ObjectMeta{Name: name, Namespace: ns, Labels: map[string]string{
			"trustee.dev/server": "kts", "trustee.dev/member": role, "app.kubernetes.io/component": "server"}},
		Spec: corev1.PodSpec{Containers: []corev1.Container{{Name: "server", Image: "trustee:test"}}},
	}
	// On a node, as the scheduler would place it: the operator makes the
	// passive's StatefulSet once the active's pod is placed.
	node := &corev1.Node{ObjectMeta: metav1.ObjectMeta{Name: "node-" + role}}
	if err := env.Client.Create(ctx, node); err != nil && !apierrors.IsAlreadyExists(err) {
		t.Fatal(err)
	}
	node.Status.Conditions = []corev1.NodeCondition{{Type: corev1.NodeReady, Status: corev1.ConditionTrue, Reason: "KubeletReady"}}
	if err := env.Client.Status().Update(ctx, node); err != nil {
		t.Fatal(err)
	}
	pod.Spec.NodeName = node.Name
	create(t, ctx, pod)
	pod.Status.Phase = corev1.PodRunning
	pod.Status.Conditions = []corev1.PodCondition{{Type: corev1.PodScheduled, Status: corev1.ConditionTrue}, {Type: corev1.PodReady, Status: corev1.ConditionTrue}}
	if err := env.Client.Status().Update(ctx, pod); err != nil {
		t.Fatal(err)
	}
}

// renew asks cert-manager to issue a Certificate again, as `cmctl renew`
// does.
func renew(t *testing.T, ctx context.Context, ns, name string) {
	t.Helper()
	crt := &cmv1.Certificate{}
	if err := env.Client.Get(ctx, client.ObjectKey{Namespace: ns, Name: name}, crt); err != nil {
		t.Fatal(err)
	}
	now := metav1.Now()
	crt.Status.Conditions = append(crt.Status.Conditions, cmv1.CertificateCondition{Type: cmv1.CertificateConditionIssuing,
		Status: cmmeta.ConditionTrue, Reason: "ManuallyTriggered", Message: "renewal asked by the test", LastTransitionTime: &now})
	if err := env.Client.Status().Update(ctx, crt); err != nil {
		t.Fatal(err)
	}
}

// servingCert is the certificate the member presents, verified against the
// CA in its tls mount.
func servingCert(t *testing.T, m *memberpods.Member) *x509.Certificate {
	t.Helper()
	pool := x509.NewCertPool()
	ca, err := os.ReadFile(m.CAFile())
	if err != nil || !pool.AppendCertsFromPEM(ca) {
		t.Fatalf("ca.crt: %v", err)
	}
	conn, err := tls.Dial("tcp", fmt.Sprintf("127.0.0.1:%d", m.API), &tls.Config{RootCAs: pool, ServerName: "localhost"})
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close()
	return conn.ConnectionState().PeerCertificates[0]
}

// leafOf is the first certificate of a PEM chain.
func leafOf(t *testing.T, chain []byte) *x509.Certificate {
	t.Helper()
	block, _ := pem.Decode(chain)
	if block == nil {
		t.Fatal("no PEM certificate")
	}
	c, err := x509.ParseCertificate(block.Bytes)
	if err != nil {
		t.Fatal(err)
	}
	return c
}

// fingerprintOf asks the member for its OpenPGP fingerprint.
func fingerprintOf(t *testing.T, m *memberpods.Member) string {
	t.Helper()
	pool := x509.NewCertPool()
	ca, err := os.ReadFile(m.CAFile())
	if err != nil || !pool.AppendCertsFromPEM(ca) {
		t.Fatalf("ca.crt: %v", err)
	}
	hc := &http.Client{Timeout: 10 * time.Second, Transport: &http.Transport{TLSClientConfig: &tls.Config{RootCAs: pool}}}
	resp, err := hc.Get(m.URL() + "/?a=fingerprint")
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(resp.Body)
	if err != nil {
		t.Fatal(err)
	}
	return strings.TrimSpace(string(b))
}

// registered is a client registered by register.
type registered struct {
	dir, fingerprint, state string
}

func register(t *testing.T, root string, m *memberpods.Member, name, code string) registered {
	t.Helper()
	dir := filepath.Join(root, "clients", name)
	out := kts(t, "client", "register", "--dir", dir, "--server", m.URL(), "--org", "acme", "--auth-code", code, "--ca-file", m.CAFile())
	r := registered{dir: dir}
	for _, line := range strings.Split(out, "\n") {
		if v, ok := strings.CutPrefix(line, "fingerprint: "); ok {
			r.fingerprint = v
		}
		if v, ok := strings.CutPrefix(line, "state: "); ok {
			r.state = v
		}
	}
	return r
}

func put(t *testing.T, r registered, name, value string) {
	t.Helper()
	file := filepath.Join(r.dir, name+".in")
	if err := os.WriteFile(file, []byte(value), 0o600); err != nil {
		t.Fatal(err)
	}
	kts(t, "client", "put", "--dir", r.dir, name, file)
}

// get reads a deposit; with missing it expects none and returns "".
func get(t *testing.T, r registered, name string, missing bool) string {
	t.Helper()
	out, err := ktsErr(t, "client", "get", "--dir", r.dir, name)
	if missing {
		if err == nil {
			return out
		}
		return ""
	}
	if err != nil {
		t.Fatalf("get %s: %v\n%s", name, err, out)
	}
	return out
}

// onNewRevision does what the StatefulSet controller and the kubelet do
// when a member's template changed: its pod is made again on the newest
// revision.
func onNewRevision(t *testing.T, ctx context.Context, ns, member string) {
	t.Helper()
	sts := &appsv1.StatefulSet{}
	if err := env.Client.Get(ctx, client.ObjectKey{Namespace: ns, Name: "kts-" + member}, sts); err != nil {
		t.Fatal(err)
	}
	rev := "kts-" + member + "-" + sts.Annotations["trustee.dev/template-hash"]
	sts.Status.ObservedGeneration, sts.Status.UpdateRevision, sts.Status.CurrentRevision, sts.Status.Replicas = sts.Generation, rev, rev, 1
	if err := env.Client.Status().Update(ctx, sts); err != nil {
		t.Fatal(err)
	}
	pod := &corev1.Pod{}
	if err := env.Client.Get(ctx, client.ObjectKey{Namespace: ns, Name: "kts-" + member + "-0"}, pod); err != nil {
		t.Fatal(err)
	}
	pod.Labels[appsv1.ControllerRevisionHashLabelKey] = rev
	if err := env.Client.Update(ctx, pod); err != nil {
		t.Fatal(err)
	}
}

func stsImage(t *testing.T, ctx context.Context, ns, member string) string {
	t.Helper()
	sts := &appsv1.StatefulSet{}
	if err := env.Client.Get(ctx, client.ObjectKey{Namespace: ns, Name: "kts-" + member}, sts); err != nil {
		t.Fatal(err)
	}
	return sts.Spec.Template.Spec.Containers[0].Image
}
