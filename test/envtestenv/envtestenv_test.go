package envtestenv_test

import (
	"context"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	corev1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"
	"k8s.io/apimachinery/pkg/runtime/schema"
	"sigs.k8s.io/controller-runtime/pkg/client"

	"trustee.dev/trustee/test/envtestenv"
)

// One API server for the package, as the package comment shows.
var env *envtestenv.Env

func TestMain(m *testing.M) {
	os.Exit(envtestenv.Main(m, &env, envtestenv.Options{}))
}

func TestClientAndKubectlSeeTheSameObjects(t *testing.T) {
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()

	ns := env.Namespace(t)
	cm := &corev1.ConfigMap{
		ObjectMeta: metav1.ObjectMeta{Name: "greeting", Namespace: ns},
		Data:       map[string]string{"hello": "world"},
	}
	if err := env.Client.Create(ctx, cm); err != nil {
		t.Fatal(err)
	}

	// No controller manager runs, so nothing else (kube-root-ca.crt) is
	// in the namespace.
	if got := env.Kubectl(t, "get", "configmaps", "-n", ns, "-o", "name"); got != "configmap/greeting\n" {
		t.Fatalf("kubectl get configmaps -n %s -o name = %q, want configmap/greeting", ns, got)
	}

	// And the other way round: what kubectl writes, the client reads.
	env.Kubectl(t, "-n", ns, "label", "configmap", "greeting", "written-by=kubectl")
	var back corev1.ConfigMap
	if err := env.Client.Get(ctx, client.ObjectKeyFromObject(cm), &back); err != nil {
		t.Fatal(err)
	}
	if back.Labels["written-by"] != "kubectl" || back.Data["hello"] != "world" {
		t.Fatalf("configmap after kubectl label: labels %v, data %v", back.Labels, back.Data)
	}
}

func TestEverythingOnLoopback(t *testing.T) {
	if !strings.HasPrefix(env.Config.Host, "https://127.0.0.1:") {
		t.Errorf("API server at %s, want https://127.0.0.1:<port>", env.Config.Host)
	}
	kc, err := os.ReadFile(env.Kubeconfig(t))
	if err != nil {
		t.Fatal(err)
	}
	if !strings.Contains(string(kc), "server: https://127.0.0.1:") {
		t.Errorf("kubeconfig does not point at 127.0.0.1:\n%s", kc)
	}
	etcd := env.Environment.ControlPlane.Etcd.URL
	if etcd == nil || etcd.Hostname() != "127.0.0.1" {
		t.Errorf("etcd at %v, want 127.0.0.1", etcd)
	}
}

func TestUserWithoutRightsIsRefused(t *testing.T) {
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()

	cfg, kubeconfig := env.AddUser(t, "nobody")
	c, err := client.New(cfg, client.Options{Scheme: env.Scheme})
	if err != nil {
		t.Fatal(err)
	}
	err = c.List(ctx, &corev1.ConfigMapList{}, client.InNamespace("default"))
	if !apierrors.IsForbidden(err) {
		t.Errorf("listing configmaps as a user without rights: %v, want Forbidden", err)
	}
	if got := env.Kubectl(t, "--kubeconfig", kubeconfig, "auth", "whoami", "-o", "jsonpath={.status.userInfo.username}"); got != "nobody" {
		t.Errorf("kubectl auth whoami with the user's kubeconfig = %q, want nobody", got)
	}
}

func TestHelmRunsFromTheCache(t *testing.T) {
	helm := envtestenv.HelmBinary(t)
	cache, err := os.UserCacheDir()
	if err != nil {
		t.Fatal(err)
	}
	if os.Getenv(envtestenv.EnvHelm) == "" && !strings.HasPrefix(helm, filepath.Join(cache, "trustee", "helm-")) {
		t.Errorf("helm at %s, want it under %s", helm, filepath.Join(cache, "trustee"))
	}
	version := env.Helm(t, "version", "--short")
	if !strings.HasPrefix(version, "v3.") {
		t.Errorf("helm version --short = %q, want v3.x", version)
	}
	// helm reaches the API server through the kubeconfig.
	if out := env.Helm(t, "list", "--all-namespaces", "--short"); strings.TrimSpace(out) != "" {
		t.Errorf("helm list on a fresh API server = %q, want nothing", out)
	}
}

// Start gives a test an API server of its own, with the CRDs it names.
func TestStartInstallsCRDs(t *testing.T) {
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()

	own := envtestenv.Start(t, "testdata/crd")
	if own.Config.Host == env.Config.Host {
		t.Fatalf("Start gave the shared API server (%s)", own.Config.Host)
	}
	ns := own.Namespace(t)
	w := &unstructured.Unstructured{}
	w.SetAPIVersion("example.trustee.dev/v1")
	w.SetKind("Widget")
	w.SetNamespace(ns)
	w.SetName("w1")
	if err := unstructured.SetNestedField(w.Object, int64(3), "spec", "size"); err != nil {
		t.Fatal(err)
	}
	if err := own.Client.Create(ctx, w); err != nil {
		t.Fatal(err)
	}
	if got := own.Kubectl(t, "get", "widgets", "-n", ns, "-o", "jsonpath={.items[*].spec.size}"); got != "3" {
		t.Errorf("kubectl get widgets: spec.size = %q, want 3", got)
	}
	// The shared API server has no such kind.
	if _, err := env.Client.RESTMapper().RESTMapping(schema.GroupKind{Group: "example.trustee.dev", Kind: "Widget"}); err == nil {
		t.Error("the shared API server knows Widget too")
	}
}

func TestMissingCRDDirectoryFailsBeforeStarting(t *testing.T) {
	_, err := envtestenv.StartShared(envtestenv.Options{CRDDirs: []string{"testdata/no-such-dir"}})
	if err == nil || !strings.Contains(err.Error(), "no-such-dir") {
		t.Fatalf("StartShared with a missing CRD directory: %v, want an error naming it", err)
	}
}
