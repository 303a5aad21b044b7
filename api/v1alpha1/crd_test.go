package v1alpha1

import (
	"os"
	"path/filepath"
	"regexp"
	"slices"
	"sort"
	"strings"
	"testing"

	apiextensionsv1 "k8s.io/apiextensions-apiserver/pkg/apis/apiextensions/v1"
	"sigs.k8s.io/yaml"
)

// crdDir is where `make manifests` writes the CRDs.
const crdDir = "../../config/crd/bases"

// column is a printer column: its name and JSONPath.
type column struct{ name, jsonPath string }

// celRule is a CEL rule expected at a schema path ("" is the root; "spec.tls"
// the tls property of spec), recognised by a part of its text.
type celRule struct{ path, ruleContains string }

var crdTests = []struct {
	file       string
	kind       string
	plural     string
	shortNames []string
	columns    []column
	rules      []celRule
}{
	{
		file: "trustee.dev_keytrusteeservers.yaml", kind: "KeyTrusteeServer", plural: "keytrusteeservers",
		shortNames: []string{"kts"},
		columns: []column{
			{"Ready", `.status.conditions[?(@.type=="Ready")].status`},
			{"Active", ".status.active"},
			{"Passive", ".status.passive"},
			{"Replicating", `.status.conditions[?(@.type=="Replicating")].status`},
			{"Fingerprint", ".status.fingerprint"},
			{"Switchover", `.status.conditions[?(@.type=="Switchover")].reason`},
			{"Upgrade", `.status.conditions[?(@.type=="Upgrading")].reason`},
			{"Storage", `.status.conditions[?(@.type=="StorageResized")].reason`},
			{"Age", ".metadata.creationTimestamp"},
		},
		rules: []celRule{
			{"", "self.metadata.name.size() <= 40"},
			{"", "self.metadata.name.matches("},
			{"", "compareTo(quantity(string(self.status.storageSize))) >= 0"},
			{"spec", "!has(oldSelf.hsm) || has(self.hsm)"},
			{"spec", "has(self.bootstrap) == has(oldSelf.bootstrap)"},
			{"spec.tls", "has(self.issuerRef) != has(self.secretName)"},
			{"spec.tls", "!has(self.dnsNames) || has(self.issuerRef)"},
			{"spec.tls", "self.minVersion != 'tlsv1.3'"},
			{"spec.hsm", "self.tokenLabel == oldSelf.tokenLabel"},
			{"spec.hsm.module", "self.startsWith('/')"},
			{"spec.smtp", "self.security != 'none'"},
			{"spec.smtp.externalURL", "url(self).getScheme() == 'https'"},
			{"spec.storage.size", "isGreaterThan(quantity('0'))"},
			{"spec.storage.storageClassName", "self == oldSelf"},
			{"spec.postgresql.parameters[]", "!(self.name in ["},
		},
	},
	{
		file: "trustee.dev_organizations.yaml", kind: "Organization", plural: "organizations",
		shortNames: []string{"ktsorg"},
		columns: []column{
			{"Server", ".spec.serverRef.name"},
			{"Ready", `.status.conditions[?(@.type=="Ready")].status`},
			{"Active", ".status.clients.active"},
			{"Pending", ".status.clients.pending"},
			{"Disabled", ".status.clients.disabled"},
			{"UUID", ".status.uuid"},
			{"Age", ".metadata.creationTimestamp"},
		},
		rules: []celRule{
			{"", "has(self.spec.organizationName) ||"},
			{"spec", "has(self.organizationName) == has(oldSelf.organizationName)"},
			{"spec.serverRef", "self == oldSelf"},
			{"spec.organizationName", "self == oldSelf"},
			{"spec.clients", "self.enable.all(f, !(f in self.disable))"},
		},
	},
	{
		file: "trustee.dev_backupschedules.yaml", kind: "BackupSchedule", plural: "backupschedules",
		shortNames: []string{"ktsbackup"},
		columns: []column{
			{"Server", ".spec.serverRef.name"},
			{"Schedule", ".spec.schedule"},
			{"Suspend", ".spec.suspend"},
			{"Last Success", ".status.lastSuccessfulTime"},
			{"Last Archive", ".status.lastArchive"},
			{"Age", ".metadata.creationTimestamp"},
		},
		rules: []celRule{
			{"spec", "has(self.gpgRecipient) || (has(self.cleartext) && self.cleartext)"},
			{"spec", "!(has(self.gpgRecipient) && has(self.cleartext) && self.cleartext)"},
			{"spec.schedule", "self.matches('^ *("},
			{"spec.schedule", "self.matches('^@every "},
			{"spec.roll", "self >= 1"},
			{"spec.gpgRecipient", "has(self.secretKeyRef) != has(self.configMapKeyRef)"},
			{"spec.destination.subPath", "!self.startsWith('/')"},
			{"spec.destination.subPath", "[.][.]"},
		},
	},
}

func readCRD(t testing.TB, file string) *apiextensionsv1.CustomResourceDefinition {
	t.Helper()
	data, err := os.ReadFile(filepath.Join(crdDir, file))
	if err != nil {
		t.Fatalf("%v (run make manifests)", err)
	}
	var crd apiextensionsv1.CustomResourceDefinition
	if err := yaml.UnmarshalStrict(data, &crd); err != nil {
		t.Fatalf("%s: %v", file, err)
	}
	return &crd
}

// rulesByPath walks a schema and returns its CEL rules by path.
func rulesByPath(s *apiextensionsv1.JSONSchemaProps, path string, out map[string][]apiextensionsv1.ValidationRule) {
	if s == nil {
		return
	}
	out[path] = append(out[path], s.XValidations...)
	for name, p := range s.Properties {
		rulesByPath(&p, joinPath(path, name), out)
	}
	if s.Items != nil {
		rulesByPath(s.Items.Schema, path+"[]", out)
	}
	if s.AdditionalProperties != nil {
		rulesByPath(s.AdditionalProperties.Schema, path+"{}", out)
	}
}

func joinPath(path, name string) string {
	if path == "" {
		return name
	}
	return path + "." + name
}

func TestCRDs(t *testing.T) {
	for _, tc := range crdTests {
		t.Run(tc.kind, func(t *testing.T) {
			crd := readCRD(t, tc.file)
			if crd.Spec.Group != GroupVersion.Group || crd.Name != tc.plural+"."+GroupVersion.Group {
				t.Errorf("group %q, name %q", crd.Spec.Group, crd.Name)
			}
			n := crd.Spec.Names
			if n.Kind != tc.kind || n.Plural != tc.plural || !slices.Equal(n.ShortNames, tc.shortNames) {
				t.Errorf("names = %+v, want kind %s, plural %s, short names %v", n, tc.kind, tc.plural, tc.shortNames)
			}
			if !slices.Contains(n.Categories, "trustee") {
				t.Errorf("categories = %v, want trustee (kubectl get trustee)", n.Categories)
			}
			if crd.Spec.Scope != apiextensionsv1.NamespaceScoped {
				t.Errorf("scope = %s, want Namespaced", crd.Spec.Scope)
			}
			if len(crd.Spec.Versions) != 1 {
				t.Fatalf("%d versions, want 1", len(crd.Spec.Versions))
			}
			v := crd.Spec.Versions[0]
			if v.Name != GroupVersion.Version || !v.Served || !v.Storage {
				t.Errorf("version %s served=%v storage=%v, want %s served and stored", v.Name, v.Served, v.Storage, GroupVersion.Version)
			}
			if v.Subresources == nil || v.Subresources.Status == nil {
				t.Errorf("no status subresource: the operator patches status separately from spec")
			}

			var cols []column
			for _, c := range v.AdditionalPrinterColumns {
				cols = append(cols, column{c.Name, c.JSONPath})
			}
			if !slices.Equal(cols, tc.columns) {
				t.Errorf("printer columns:\n got  %v\n want %v", cols, tc.columns)
			}

			schema := v.Schema.OpenAPIV3Schema
			rules := map[string][]apiextensionsv1.ValidationRule{}
			rulesByPath(schema, "", rules)
			for _, want := range tc.rules {
				found := false
				for _, r := range rules[want.path] {
					found = found || strings.Contains(r.Rule, want.ruleContains)
				}
				if !found {
					t.Errorf("no CEL rule containing %q at %q; rules there: %v", want.ruleContains, want.path, rules[want.path])
				}
			}
			for path, rs := range rules {
				for _, r := range rs {
					if strings.TrimSpace(r.Message) == "" && r.MessageExpression == "" {
						t.Errorf("the CEL rule %q at %q has no message: a refused spec must say why", r.Rule, path)
					}
				}
			}

			for _, part := range []string{"spec", "status"} {
				if _, ok := schema.Properties[part]; !ok {
					t.Errorf("schema has no %s", part)
				}
			}
			if !slices.Contains(schema.Required, "spec") {
				t.Errorf("spec is not required")
			}
			for _, cond := range []string{"spec", "status"} {
				p := schema.Properties[cond]
				checkDescribed(t, &p, cond)
			}
			checkConditions(t, schema)
			checkNoInlineSecrets(t, schema, "")
		})
	}
}

// checkDescribed fails for a property without a description: the
// descriptions are the CRD reference (kubectl explain, the README).
func checkDescribed(t *testing.T, s *apiextensionsv1.JSONSchemaProps, path string) {
	t.Helper()
	if strings.TrimSpace(s.Description) == "" {
		t.Errorf("%s has no description: give the Go field a doc comment", path)
	}
	for name, p := range s.Properties {
		checkDescribed(t, &p, path+"."+name)
	}
	if s.Items != nil && s.Items.Schema != nil {
		for name, p := range s.Items.Schema.Properties {
			checkDescribed(t, &p, path+"[]."+name)
		}
	}
}

// checkConditions checks the status has conditions keyed by type and an
// observedGeneration.
func checkConditions(t *testing.T, schema *apiextensionsv1.JSONSchemaProps) {
	t.Helper()
	status := schema.Properties["status"]
	conds, ok := status.Properties["conditions"]
	if !ok {
		t.Fatalf("status has no conditions")
	}
	if conds.XListType == nil || *conds.XListType != "map" || !slices.Equal(conds.XListMapKeys, []string{"type"}) {
		t.Errorf("status.conditions is not a list map keyed by type")
	}
	for _, f := range []string{"type", "status", "reason", "message", "lastTransitionTime", "observedGeneration"} {
		if _, ok := conds.Items.Schema.Properties[f]; !ok {
			t.Errorf("status.conditions[] has no %s: use metav1.Condition", f)
		}
	}
	if og, ok := status.Properties["observedGeneration"]; !ok || og.Type != "integer" {
		t.Errorf("status has no integer observedGeneration")
	}
}

// secretWords name values that must only be referenced, never inlined.
var secretWords = regexp.MustCompile(`(?i)password|passphrase|pin|authcode|privatekey|token`)

// checkNoInlineSecrets fails for a string property whose name says it holds
// a secret (a password, PIN, auth code, ...): secrets are referenced through
// a Secret, in a property named ...SecretRef or ...SecretName (or, in a
// status, ...SecretVersion: the resourceVersion of such a Secret).
func checkNoInlineSecrets(t *testing.T, s *apiextensionsv1.JSONSchemaProps, path string) {
	t.Helper()
	for name, p := range s.Properties {
		if name == "tokenLabel" || strings.HasSuffix(name, "SecretRef") || strings.HasSuffix(name, "SecretName") ||
			strings.HasSuffix(name, "SecretVersion") {
			continue
		}
		if secretWords.MatchString(name) && p.Type == "string" {
			t.Errorf("%s is a string whose name says it is a secret: reference a Secret instead", joinPath(path, name))
		}
		checkNoInlineSecrets(t, &p, joinPath(path, name))
	}
	if s.Items != nil && s.Items.Schema != nil {
		checkNoInlineSecrets(t, s.Items.Schema, path+"[]")
	}
}

// TestCRDKustomization checks config/crd/kustomization.yaml lists exactly
// the generated CRDs.
func TestCRDKustomization(t *testing.T) {
	data, err := os.ReadFile(filepath.Join(crdDir, "..", "kustomization.yaml"))
	if err != nil {
		t.Fatal(err)
	}
	var k struct {
		Resources []string `json:"resources"`
	}
	if err := yaml.Unmarshal(data, &k); err != nil {
		t.Fatal(err)
	}
	files, err := filepath.Glob(filepath.Join(crdDir, "*.yaml"))
	if err != nil {
		t.Fatal(err)
	}
	var want []string
	for _, f := range files {
		want = append(want, "bases/"+filepath.Base(f))
	}
	got := slices.Clone(k.Resources)
	sort.Strings(got)
	if !slices.Equal(got, want) {
		t.Errorf("config/crd/kustomization.yaml resources = %v, want %v", k.Resources, want)
	}
	if len(want) != len(crdTests) {
		t.Errorf("%d CRDs in %s, %d tested here", len(want), crdDir, len(crdTests))
	}
}
