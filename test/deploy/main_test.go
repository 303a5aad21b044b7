// Package deploy tests the operator's deployment artifacts against a real
// kube-apiserver (test/envtestenv): the kustomize tree under config/
// (config/default, config/rbac, config/samples) and the Helm chart
// charts/trustee-operator, and that the chart's generated parts match
// config/. No controller runs: the tests check what the API server accepts,
// stores and authorizes.
package deploy

import (
	"bufio"
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	utilyaml "k8s.io/apimachinery/pkg/util/yaml"
	"sigs.k8s.io/yaml"

	"trustee.dev/trustee/test/envtestenv"
	"trustee.dev/trustee/test/toolcache"
)

// One API server for the package. It starts with cert-manager's CRDs (the
// samples hold an Issuer); the trustee.dev CRDs come from config/default or
// the chart, as they would in a cluster.
var env *envtestenv.Env

// root is the repository's top directory.
var root string

func TestMain(m *testing.M) {
	var err error
	root, err = toolcache.RepoRoot("config/default/kustomization.yaml")
	if err != nil {
		fmt.Fprintf(os.Stderr, "deploy: %v\n", err)
		os.Exit(1)
	}
	certManagerCRDs, err := certManagerCRDs()
	if err != nil {
		fmt.Fprintf(os.Stderr, "deploy: %v\n", err)
		os.Exit(1)
	}
	os.Exit(envtestenv.Main(m, &env, envtestenv.Options{CRDDirs: certManagerCRDs}))
}

// certManagerCRDs returns the CRD files of the cert-manager.io kinds the
// operator and the samples use, from the cert-manager module that go.mod
// requires (downloaded when it is not in the module cache yet).
func certManagerCRDs() ([]string, error) {
	const module = "github.com/cert-manager/cert-manager"
	cmd := exec.Command("go", "mod", "download", "-json", module)
	cmd.Dir = root
	var stderr bytes.Buffer
	cmd.Stderr = &stderr
	out, err := cmd.Output()
	if err != nil {
		return nil, fmt.Errorf("go mod download %s: %v\n%s%s", module, err, out, stderr.Bytes())
	}
	var m struct{ Dir, Error string }
	if err := json.Unmarshal(out, &m); err != nil {
		return nil, fmt.Errorf("go mod download %s: %v", module, err)
	}
	if m.Error != "" || m.Dir == "" {
		return nil, fmt.Errorf("go mod download %s: %s", module, m.Error)
	}
	var files []string
	for _, plural := range []string{"issuers", "clusterissuers", "certificates"} {
		f := filepath.Join(m.Dir, "deploy", "crds", "cert-manager.io_"+plural+".yaml")
		if _, err := os.Stat(f); err != nil {
			return nil, fmt.Errorf("cert-manager's CRD of %s: %w", plural, err)
		}
		files = append(files, f)
	}
	return files, nil
}

// path is p (slash-separated, relative to the repository) on this machine.
func path(p string) string {
	return filepath.Join(root, filepath.FromSlash(p))
}

// kubectl runs kubectl as the administrator with stdin (may be empty) and
// returns what it printed and how it ended, for commands expected to fail
// (env.Kubectl fails the test instead).
func kubectl(t *testing.T, stdin string, args ...string) (stdout, stderr string, err error) {
	t.Helper()
	ctx, cancel := context.WithTimeout(t.Context(), 2*time.Minute)
	defer cancel()
	cmd := exec.CommandContext(ctx, "kubectl", args...)
	cmd.Env = append(os.Environ(), "KUBECONFIG="+env.Kubeconfig(t))
	cmd.Stdin = strings.NewReader(stdin)
	var out, errOut bytes.Buffer
	cmd.Stdout, cmd.Stderr = &out, &errOut
	err = cmd.Run()
	return out.String(), errOut.String(), err
}

// applyDefault installs config/default (idempotent: kubectl apply) and waits
// until the API server serves the trustee.dev kinds.
func applyDefault(t testing.TB) {
	t.Helper()
	env.Kubectl(t, "apply", "-k", path("config/default"))
	env.Kubectl(t, "wait", "--for=condition=Established", "--timeout=60s",
		"crd/keytrusteeservers.trustee.dev", "crd/organizations.trustee.dev", "crd/backupschedules.trustee.dev")
}

// object is one Kubernetes object of a YAML stream, kept as parsed.
type object map[string]any

func (o object) kind() string { return str(o, "kind") }
func (o object) name() string { return str(o, "metadata", "name") }

// str returns the string at the path of keys in o, or "".
func str(o map[string]any, keys ...string) string {
	var v any = o
	for _, k := range keys {
		m, ok := v.(map[string]any)
		if !ok {
			return ""
		}
		v = m[k]
	}
	s, _ := v.(string)
	return s
}

// objects parses a multi-document YAML stream (kubectl kustomize's, helm
// template's), skipping empty documents.
func objects(t *testing.T, stream string) []object {
	t.Helper()
	var objs []object
	r := utilyaml.NewYAMLReader(bufio.NewReader(strings.NewReader(stream)))
	for {
		doc, err := r.Read()
		if errors.Is(err, io.EOF) {
			return objs
		}
		if err != nil {
			t.Fatalf("reading YAML: %v", err)
		}
		var o object
		if err := yaml.Unmarshal(doc, &o); err != nil {
			t.Fatalf("parsing YAML: %v\n%s", err, doc)
		}
		if o != nil {
			objs = append(objs, o)
		}
	}
}

// find returns the object of kind and name in objs, failing t when there is
// none.
func find(t *testing.T, objs []object, kind, name string) object {
	t.Helper()
	for _, o := range objs {
		if o.kind() == kind && o.name() == name {
			return o
		}
	}
	t.Fatalf("no %s %s among the objects", kind, name)
	return nil
}

// into converts o to a typed object (via JSON), failing t when it does not
// fit.
func into[T any](t *testing.T, o any) T {
	t.Helper()
	var v T
	b, err := json.Marshal(o)
	if err == nil {
		err = json.Unmarshal(b, &v)
	}
	if err != nil {
		t.Fatalf("converting to %T: %v", v, err)
	}
	return v
}
