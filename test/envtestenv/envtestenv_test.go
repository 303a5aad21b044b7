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
