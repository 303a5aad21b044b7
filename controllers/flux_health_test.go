package controllers

import (
	"encoding/json"
	"os"
	"testing"

	"github.com/google/cel-go/cel"
	"sigs.k8s.io/yaml"

	trusteev1 "trustee.dev/trustee/api/v1alpha1"
)

// fluxCheck is one entry of config/flux/health-check-exprs.yaml.
type fluxCheck struct {
	APIVersion, Kind            string
	InProgress, Failed, Current string
}

// fluxHealth evaluates the expressions for obj's kind as kustomize-controller
// does — the object's top-level fields as variables; inProgress, then
// failed, then current; none true means in progress — with cel-go, and
// returns Argo CD's word for the verdict (InProgress is Progressing,
// Failed is Degraded, Current is Healthy).
func fluxHealth(t *testing.T, checks []fluxCheck, obj any) string {
	t.Helper()
	kind := map[string]string{}
	switch obj.(type) {
	case *trusteev1.KeyTrusteeServer:
		kind["kind"] = "KeyTrusteeServer"
	case *trusteev1.Organization:
		kind["kind"] = "Organization"
	case *trusteev1.BackupSchedule:
		kind["kind"] = "BackupSchedule"
	}
	var fields map[string]any
	b, err := json.Marshal(obj)
	if err != nil {
		t.Fatal(err)
	}
	if err := json.Unmarshal(b, &fields); err != nil {
		t.Fatal(err)
	}
	vars := map[string]any{}
	var opts []cel.EnvOption
	for _, v := range []string{"apiVersion", "kind", "metadata", "spec", "status"} {
		opts = append(opts, cel.Variable(v, cel.DynType))
		vars[v] = fields[v]
		if vars[v] == nil {
			vars[v] = map[string]any{}
		}
	}
	env, err := cel.NewEnv(opts...)
	if err != nil {
		t.Fatal(err)
	}
	eval := func(expr string) bool {
		if expr == "" {
			return false
		}
		ast, iss := env.Compile(expr)
		if iss.Err() != nil {
			t.Fatalf("%s: %v", expr, iss.Err())
		}
		prg, err := env.Program(ast)
		if err != nil {
			t.Fatal(err)
		}
		out, _, err := prg.Eval(vars)
		if err != nil {
			t.Fatalf("%s on %s: %v", expr, b, err)
		}
		return out.Value() == true
	}
	for _, c := range checks {
		if c.Kind != kind["kind"] || c.APIVersion != trusteev1.GroupVersion.String() {
			continue
		}
		switch {
		case eval(c.InProgress):
			return "Progressing"
		case eval(c.Failed):
			return "Degraded"
		case eval(c.Current):
			return "Healthy"
		}
		return "Progressing"
	}
	t.Fatalf("config/flux/health-check-exprs.yaml has no check for %s", kind["kind"])
	return ""
}

// Flux's health checks give the statuses the operator writes the verdicts
// Argo CD's script gives them.
func TestFluxHealth(t *testing.T) {
	data, err := os.ReadFile("../config/flux/health-check-exprs.yaml")
	if err != nil {
		t.Fatal(err)
	}
	var checks []fluxCheck
	if err := yaml.UnmarshalStrict(data, &checks); err != nil {
		t.Fatal(err)
	}
	if len(checks) != 3 {
		t.Fatalf("%d checks, want one for each of the three kinds", len(checks))
	}
	for _, tc := range healthCases() {
		t.Run(tc.name, func(t *testing.T) {
			if got := fluxHealth(t, checks, tc.obj); got != tc.wantStatus {
				t.Errorf("Flux's verdict is Argo CD's %s, want %s", got, tc.wantStatus)
			}
		})
	}
}
