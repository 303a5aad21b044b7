package deploy

import (
	"crypto/tls"
	"fmt"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"

	appsv1 "k8s.io/api/apps/v1"
	batchv1 "k8s.io/api/batch/v1"
	coordinationv1 "k8s.io/api/coordination/v1"
	corev1 "k8s.io/api/core/v1"
	eventsv1 "k8s.io/api/events/v1"
	"k8s.io/apimachinery/pkg/api/meta"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"sigs.k8s.io/controller-runtime/pkg/client"

	trusteev1 "trustee.dev/trustee/api/v1alpha1"
	"trustee.dev/trustee/server/tlsconf"
	"trustee.dev/trustee/test/fixtures"
	"trustee.dev/trustee/test/harness"
)

// TestOperatorRunsWithItsOwnPermissions runs `kts operator` as
// config/default deploys it — as the trustee-operator ServiceAccount, with
// only the permissions config/rbac gives it, leader election on — and
// checks that it serves its probes, takes the lease and reconciles each
// kind.
func TestOperatorRunsWithItsOwnPermissions(t *testing.T) {
	applyDefault(t)
	op := startOperator(t, "trustee-system", "trustee-operator", "--leader-elect")
	metricsPort := op.metricsPort
	logs := &op.logs
	c := env.Client
	harness.Eventually(t, time.Minute, "the leader election lease held", func() (bool, string) {
		l := &coordinationv1.Lease{}
		err := c.Get(t.Context(), client.ObjectKey{Namespace: "trustee-system", Name: "trustee-operator.trustee.dev"}, l)
		return err == nil && l.Spec.HolderIdentity != nil && *l.Spec.HolderIdentity != "", fmt.Sprint(err)
	})
	// Metrics are for callers the API server authorizes, over HTTPS.
	insecure := &http.Client{Transport: &http.Transport{TLSClientConfig: &tls.Config{InsecureSkipVerify: true}}}
	harness.Eventually(t, time.Minute, "metrics refused without a token", func() (bool, string) {
		resp, err := insecure.Get(fmt.Sprintf("https://127.0.0.1:%d/metrics", metricsPort))
		if err != nil {
			return false, err.Error() // the metrics server starts after the probes
		}
		resp.Body.Close()
		return resp.StatusCode == http.StatusUnauthorized, resp.Status + ", want 401"
	})

	// One of each kind, in a namespace of its own.
	ns := env.Namespace(t)
	ctx := t.Context()
	tlsSecret := selfSignedSecret(t, ns, "kts-tls")
	server := fixtures.Server("kts", fixtures.ServerIn(ns), fixtures.TLSSecret(tlsSecret.Name))
	org := fixtures.Organization("acme", fixtures.OrganizationIn(ns), fixtures.Contacts("keys@acme.example"), fixtures.AuthCode("acme-code", "code"))
	backup := fixtures.BackupSchedule("nightly", fixtures.BackupScheduleIn(ns), fixtures.Schedule("0 3 * * *"), fixtures.Cleartext(),
		fixtures.Roll(3), fixtures.Claim("archives"))
	for _, o := range []client.Object{tlsSecret, server, org, backup} {
		if err := c.Create(ctx, o); err != nil {
			t.Fatal(err)
		}
	}
	harness.Eventually(t, time.Minute, "the server's status", func() (bool, string) {
		if err := c.Get(ctx, client.ObjectKeyFromObject(server), server); err != nil {
			return false, err.Error()
		}
		cert := meta.FindStatusCondition(server.Status.Conditions, trusteev1.ConditionCertificateReady)
		return server.Status.Fingerprint != "" && cert != nil && cert.Status == metav1.ConditionTrue, fmt.Sprintf("%+v", server.Status)
	})
	for _, o := range []client.Object{
		&corev1.Secret{ObjectMeta: metav1.ObjectMeta{Name: "kts-identity", Namespace: ns}},
		&corev1.ConfigMap{ObjectMeta: metav1.ObjectMeta{Name: "kts-config", Namespace: ns}},
		&appsv1.StatefulSet{ObjectMeta: metav1.ObjectMeta{Name: "kts-a", Namespace: ns}},
		&batchv1.CronJob{ObjectMeta: metav1.ObjectMeta{Name: "nightly-backup", Namespace: ns}},
	} {
		harness.Eventually(t, time.Minute, fmt.Sprintf("%T %s", o, o.GetName()), func() (bool, string) {
			err := c.Get(ctx, client.ObjectKeyFromObject(o), o)
			return err == nil, fmt.Sprint(err)
		})
	}
	// No scheduler runs here: the active's pod is never placed, so the
	// passive's StatefulSet waits for it, and the status says so.
	waitFor := func(what string, cond func() (bool, string)) {
		t.Helper()
		harness.Eventually(t, time.Minute, what, cond)
	}
	waitFor("the passive waiting for the active", func() (bool, string) {
		if err := c.Get(ctx, client.ObjectKeyFromObject(server), server); err != nil {
			return false, err.Error()
		}
		p := meta.FindStatusCondition(server.Status.Conditions, trusteev1.ConditionPassiveReady)
		return p != nil && strings.Contains(p.Message, "made once the active's pod is placed"), fmt.Sprintf("%+v", p)
	})
	// The Organization waits, and says for what: no pod runs here.
	harness.Eventually(t, time.Minute, "the organization's status", func() (bool, string) {
		if err := c.Get(ctx, client.ObjectKeyFromObject(org), org); err != nil {
			return false, err.Error()
		}
		r := meta.FindStatusCondition(org.Status.Conditions, trusteev1.ConditionReady)
		return r != nil && r.Reason == trusteev1.ReasonServerNotReady && strings.Contains(r.Message, "waiting for the active server of kts: pod kts-a-0"), fmt.Sprintf("%+v", r)
	})
	harness.Eventually(t, time.Minute, "an event on the server", func() (bool, string) {
		var evs eventsv1.EventList
		if err := c.List(ctx, &evs, client.InNamespace(ns)); err != nil {
			return false, err.Error()
		}
		for _, e := range evs.Items {
			if e.Regarding.Name == "kts" && e.Reason == "Generated" {
				return true, ""
			}
		}
		return false, fmt.Sprintf("%d events", len(evs.Items))
	})
	if op.refused() {
		t.Errorf("the operator was refused something:\n%s", logs.String())
	}

	op.stop(t)
}

// operator is `kts operator` running as a ServiceAccount.
type operator struct {
	user                   string // the ServiceAccount's user name
	logs                   harness.Buffer
	metricsPort, probePort int
	cmd                    *exec.Cmd
	exited                 chan error
	stopped                bool
}

// startOperator runs `kts operator` with args as the ServiceAccount sa of
// namespace ns — with only the permissions RBAC gives it — and waits until
// it serves its probes. It is killed when t ends, unless stop ended it.
func startOperator(t testing.TB, ns, sa string, args ...string) *operator {
	t.Helper()
	kts := os.Getenv("TRUSTEE_OPERATOR_BIN") // another build to measure (BenchmarkOperatorMemory)
	if kts == "" {
		bin, err := harness.BuildKTS("kts-deploy-bin-")
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { os.RemoveAll(filepath.Dir(bin)) })
		kts = bin
	}
	if err := trusteev1.AddToScheme(env.Client.Scheme()); err != nil {
		t.Fatal(err)
	}
	user, groups := serviceAccount(ns, sa)
	_, kubeconfig := env.AddUser(t, user, groups...)
	op := &operator{user: user, metricsPort: harness.FreePort(t), probePort: harness.FreePort(t), exited: make(chan error, 1)}
	op.cmd = exec.Command(kts, append([]string{"operator", "--kubeconfig", kubeconfig, "--default-image", "trustee:test",
		"--metrics-bind-address", fmt.Sprintf("127.0.0.1:%d", op.metricsPort),
		"--health-probe-bind-address", fmt.Sprintf("127.0.0.1:%d", op.probePort)}, args...)...)
	op.cmd.Env = append(os.Environ(), "POD_NAMESPACE="+ns)
	op.cmd.Stdout, op.cmd.Stderr = &op.logs, &op.logs
	if err := op.cmd.Start(); err != nil {
		t.Fatal(err)
	}
	go func() { op.exited <- op.cmd.Wait() }()
	t.Cleanup(func() {
		if !op.stopped {
			op.cmd.Process.Kill()
			<-op.exited
		}
		if t.Failed() {
			t.Logf("kts operator:\n%s", op.logs.String())
		}
	})
	harness.Eventually(t, time.Minute, "the operator ready", func() (bool, string) {
		resp, err := http.Get(fmt.Sprintf("http://127.0.0.1:%d/readyz", op.probePort))
		if err != nil {
			return false, err.Error()
		}
		resp.Body.Close()
		return resp.StatusCode == http.StatusOK, resp.Status
	})
	return op
}

// refused reports whether RBAC refused the operator anything; its
// refusals read `User "system:serviceaccount:..." cannot ...`.
func (op *operator) refused() bool {
	return strings.Contains(op.logs.String(), `User \"`+op.user+`\" cannot`)
}

// stop ends the operator with SIGTERM, which must stop it.
func (op *operator) stop(t testing.TB) {
	t.Helper()
	op.cmd.Process.Signal(syscall.SIGTERM)
	select {
	case err := <-op.exited:
		op.stopped = true
		if err != nil {
			t.Errorf("kts operator exited with %v after SIGTERM", err)
		}
	case <-time.After(30 * time.Second):
		t.Error("kts operator still runs 30 s after SIGTERM")
	}
}

// selfSignedSecret is a kubernetes.io/tls Secret with a self-signed
// certificate (its own ca.crt).
func selfSignedSecret(t *testing.T, ns, name string) *corev1.Secret {
	t.Helper()
	dir := t.TempDir()
	crt, key := filepath.Join(dir, "tls.crt"), filepath.Join(dir, "tls.key")
	if err := tlsconf.GenerateSelfSigned([]string{"kts-rw." + ns + ".svc"}, crt, key, 24*time.Hour); err != nil {
		t.Fatal(err)
	}
	read := func(p string) []byte {
		b, err := os.ReadFile(p)
		if err != nil {
			t.Fatal(err)
		}
		return b
	}
	return &corev1.Secret{ObjectMeta: metav1.ObjectMeta{Name: name, Namespace: ns}, Type: corev1.SecretTypeTLS,
		Data: map[string][]byte{corev1.TLSCertKey: read(crt), corev1.TLSPrivateKeyKey: read(key), "ca.crt": read(crt)}}
}
