package envtestenv_test

import (
	"context"
	"crypto/x509"
	"encoding/pem"
	"errors"
	"net"
	"net/url"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"

	cmapi "github.com/cert-manager/cert-manager/pkg/apis/certmanager/v1"
	cmmeta "github.com/cert-manager/cert-manager/pkg/apis/meta/v1"
	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/client-go/tools/clientcmd"
	"k8s.io/client-go/util/retry"
	"sigs.k8s.io/controller-runtime/pkg/client"

	"trustee.dev/trustee/test/envtestenv"
)

// A self-signed Issuer makes a CA, a CA Issuer signs a leaf certificate with
// it, and the leaf is issued anew when renewal is asked for and when its
// spec changes: cert-manager's real controller at work.
func TestCertManagerIssuesAndRenews(t *testing.T) {
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	env := envtestenv.StartWith(t, envtestenv.Options{CertManager: true})
	ns := env.Namespace(t)
	c := env.Client
	meta := func(name string) metav1.ObjectMeta { return metav1.ObjectMeta{Name: name, Namespace: ns} }
	for _, obj := range []client.Object{
		&cmapi.Issuer{ObjectMeta: meta("selfsigned"), Spec: cmapi.IssuerSpec{IssuerConfig: cmapi.IssuerConfig{
			SelfSigned: &cmapi.SelfSignedIssuer{},
		}}},
		&cmapi.Certificate{ObjectMeta: meta("ca"), Spec: cmapi.CertificateSpec{
			IsCA: true, CommonName: "test CA", SecretName: "ca",
			IssuerRef: cmmeta.IssuerReference{Name: "selfsigned", Kind: cmapi.IssuerKind},
		}},
		&cmapi.Issuer{ObjectMeta: meta("ca"), Spec: cmapi.IssuerSpec{IssuerConfig: cmapi.IssuerConfig{
			CA: &cmapi.CAIssuer{SecretName: "ca"},
		}}},
		&cmapi.Certificate{ObjectMeta: meta("leaf"), Spec: cmapi.CertificateSpec{
			DNSNames: []string{"leaf.example"}, SecretName: "leaf",
			IssuerRef: cmmeta.IssuerReference{Name: "ca", Kind: cmapi.IssuerKind},
		}},
	} {
		if err := c.Create(ctx, obj); err != nil {
			t.Fatal(err)
		}
	}

	ca := waitForCertificate(ctx, t, c, client.ObjectKey{Namespace: ns, Name: "ca"}, nil)
	if !ca.IsCA {
		t.Fatalf("the CA's certificate (%s) is not a CA", ca.Subject)
	}
	leaf := waitForCertificate(ctx, t, c, client.ObjectKey{Namespace: ns, Name: "leaf"}, nil)
	// A leaf chains to the ca.crt of its own Secret: the CA that signed it,
	// which is what the servers trust. (cert-manager may issue the CA's own
	// Certificate once more while the leaf is issued, so that the CA
	// Secret read before can hold another key of the same name.)
	verify := func(cert *x509.Certificate, dnsName string) {
		t.Helper()
		var secret corev1.Secret
		if err := c.Get(ctx, client.ObjectKey{Namespace: ns, Name: "leaf"}, &secret); err != nil {
			t.Fatal(err)
		}
		caCrt := parseCert(t, secret.Data["ca.crt"])
		if !caCrt.IsCA || caCrt.Subject.CommonName != ca.Subject.CommonName {
			t.Fatalf("the leaf Secret's ca.crt is %s (CA %v), want the CA %s", caCrt.Subject, caCrt.IsCA, ca.Subject)
		}
		roots := x509.NewCertPool()
		roots.AddCert(caCrt)
		if _, err := cert.Verify(x509.VerifyOptions{Roots: roots, DNSName: dnsName}); err != nil {
			t.Fatalf("the leaf certificate does not chain to the CA in its Secret's ca.crt for %s: %v", dnsName, err)
		}
	}
	verify(leaf, "leaf.example")

	// Renewal as `cmctl renew` asks for it: the Issuing condition.
	err := retry.RetryOnConflict(retry.DefaultRetry, func() error {
		var crt cmapi.Certificate
		if err := c.Get(ctx, client.ObjectKey{Namespace: ns, Name: "leaf"}, &crt); err != nil {
			return err
		}
		now := metav1.Now()
		crt.Status.Conditions = append(crt.Status.Conditions, cmapi.CertificateCondition{
			Type: cmapi.CertificateConditionIssuing, Status: cmmeta.ConditionTrue,
			Reason: "ManuallyTriggered", Message: "renewal asked for by the test",
			LastTransitionTime: &now, ObservedGeneration: crt.Generation,
		})
		return c.Status().Update(ctx, &crt)
	})
	if err != nil {
		t.Fatal(err)
	}
	renewed := waitForCertificate(ctx, t, c, client.ObjectKey{Namespace: ns, Name: "leaf"}, leaf)
	verify(renewed, "leaf.example")

	// A new name in the spec: a certificate for it.
	var crt cmapi.Certificate
	if err := c.Get(ctx, client.ObjectKey{Namespace: ns, Name: "leaf"}, &crt); err != nil {
		t.Fatal(err)
	}
	patch := client.MergeFrom(crt.DeepCopy())
	crt.Spec.DNSNames = append(crt.Spec.DNSNames, "other.example")
	if err := c.Patch(ctx, &crt, patch); err != nil {
		t.Fatal(err)
	}
	changed := waitForCertificate(ctx, t, c, client.ObjectKey{Namespace: ns, Name: "leaf"}, renewed)
	if !slices.Contains(changed.DNSNames, "other.example") {
		t.Errorf("the certificate after the spec change is for %v, want other.example too", changed.DNSNames)
	}
	verify(changed, "other.example")
}

// waitForCertificate waits until the Certificate key is Ready for its
// current spec and its Secret holds a certificate other than previous, and
// returns that certificate.
func waitForCertificate(ctx context.Context, t *testing.T, c client.Client, key client.ObjectKey, previous *x509.Certificate) *x509.Certificate {
	t.Helper()
	var crt cmapi.Certificate
	for {
		if err := c.Get(ctx, key, &crt); err != nil {
			t.Fatal(err)
		}
		if isReady(&crt) {
			var secret corev1.Secret
			err := c.Get(ctx, client.ObjectKey{Namespace: key.Namespace, Name: crt.Spec.SecretName}, &secret)
			if client.IgnoreNotFound(err) != nil {
				t.Fatal(err)
			}
			if err == nil {
				if cert := parseCert(t, secret.Data[corev1.TLSCertKey]); previous == nil || !cert.Equal(previous) {
					return cert
				}
			}
		}
		select {
		case <-ctx.Done():
			t.Fatalf("Certificate %s not issued (anew): %v; its conditions: %+v", key, ctx.Err(), crt.Status.Conditions)
		case <-time.After(100 * time.Millisecond):
		}
	}
}

// isReady says whether crt is Ready for its current generation and not
// being issued.
func isReady(crt *cmapi.Certificate) bool {
	ready := false
	for _, cond := range crt.Status.Conditions {
		switch cond.Type {
		case cmapi.CertificateConditionIssuing:
			if cond.Status == cmmeta.ConditionTrue {
				return false
			}
		case cmapi.CertificateConditionReady:
			ready = cond.Status == cmmeta.ConditionTrue && cond.ObservedGeneration == crt.Generation
		}
	}
	return ready
}

func parseCert(t *testing.T, b []byte) *x509.Certificate {
	t.Helper()
	block, _ := pem.Decode(b)
	if block == nil {
		t.Fatalf("no PEM block in %q", b)
	}
	cert, err := x509.ParseCertificate(block.Bytes)
	if err != nil {
		t.Fatal(err)
	}
	return cert
}

// A controller that does not come up makes StartShared fail with what it
// said, and leaves no API server or files behind.
func TestCertManagerThatFailsStopsEverything(t *testing.T) {
	dir := t.TempDir()
	fake := filepath.Join(dir, "cert-manager-controller")
	// It keeps a copy of the kubeconfig it is given, and that file's path.
	script := `#!/bin/sh
for a; do
	case $a in --kubeconfig=*)
		cp "${a#--kubeconfig=}" '` + dir + `/kubeconfig'
		echo "${a#--kubeconfig=}" >'` + dir + `/path';;
	esac
done
echo 'no certificates today' >&2
exit 3
`
	if err := os.WriteFile(fake, []byte(script), 0o755); err != nil {
		t.Fatal(err)
	}
	t.Setenv(envtestenv.EnvCertManager, fake)

	_, err := envtestenv.StartShared(envtestenv.Options{CertManager: true})
	if err == nil || !strings.Contains(err.Error(), "no certificates today") {
		t.Fatalf("StartShared with a controller that exits: %v, want an error with its output", err)
	}
	path, err := os.ReadFile(filepath.Join(dir, "path"))
	if err != nil {
		t.Fatalf("the fake controller did not run: %v", err)
	}
	if _, err := os.Stat(strings.TrimSpace(string(path))); !errors.Is(err, os.ErrNotExist) {
		t.Errorf("the controller's kubeconfig is still there (%v)", err)
	}
	cfg, err := clientcmd.BuildConfigFromFlags("", filepath.Join(dir, "kubeconfig"))
	if err != nil {
		t.Fatal(err)
	}
	u, err := url.Parse(cfg.Host)
	if err != nil {
		t.Fatal(err)
	}
	if conn, err := net.DialTimeout("tcp", u.Host, time.Second); err == nil {
		conn.Close()
		t.Errorf("the API server at %s still listens", u.Host)
	}
}
