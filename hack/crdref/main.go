// Command crdref writes the field reference of Trustee's custom resources,
// in Markdown, from the generated CRDs: every field with its type, whether
// it is required, its default, and its description. `make manifests` runs
// it after controller-gen.
//
//	go run ./hack/crdref config/crd/bases docs/CRD-REFERENCE.md
package main

import (
	"bytes"
	"fmt"
	"os"
	"path/filepath"
	"slices"
	"sort"
	"strings"

	apiextensionsv1 "k8s.io/apiextensions-apiserver/pkg/apis/apiextensions/v1"
	"sigs.k8s.io/yaml"
)

func main() {
	if len(os.Args) != 3 {
		fmt.Fprintln(os.Stderr, "usage: crdref CRD-DIR OUTPUT.md")
		os.Exit(2)
	}
	out, err := reference(os.Args[1])
	if err == nil {
		err = os.WriteFile(os.Args[2], out, 0o644)
	}
	if err != nil {
		fmt.Fprintln(os.Stderr, "crdref:", err)
		os.Exit(1)
	}
}

// reference renders every CRD in dir.
func reference(dir string) ([]byte, error) {
	files, err := filepath.Glob(filepath.Join(dir, "*.yaml"))
	if err != nil {
		return nil, err
	}
	var crds []apiextensionsv1.CustomResourceDefinition
	for _, f := range files {
		data, err := os.ReadFile(f)
		if err != nil {
			return nil, err
		}
		var crd apiextensionsv1.CustomResourceDefinition
		if err := yaml.Unmarshal(data, &crd); err != nil {
			return nil, fmt.Errorf("%s: %w", f, err)
		}
		crds = append(crds, crd)
	}
	sort.Slice(crds, func(i, j int) bool { return crds[i].Spec.Names.Kind < crds[j].Spec.Names.Kind })
	var b bytes.Buffer
	b.WriteString("# Custom resource reference\n\nGenerated from `config/crd/bases` by `make manifests` (hack/crdref); do not edit.\n")
	for _, crd := range crds {
		for _, v := range crd.Spec.Versions {
			fmt.Fprintf(&b, "\n## %s (`%s/%s`)\n\n", crd.Spec.Names.Kind, crd.Spec.Group, v.Name)
			if len(crd.Spec.Names.ShortNames) > 0 {
				fmt.Fprintf(&b, "Short names: `%s`.\n\n", strings.Join(crd.Spec.Names.ShortNames, "`, `"))
			}
			root := v.Schema.OpenAPIV3Schema
			b.WriteString(oneLine(root.Description) + "\n\n")
			b.WriteString("| field | type | required | default | description |\n|---|---|---|---|---|\n")
			for _, name := range []string{"spec", "status"} {
				if p, ok := root.Properties[name]; ok {
					fields(&b, name, p, slices.Contains(root.Required, name))
				}
			}
			for _, r := range root.XValidations {
				fmt.Fprintf(&b, "\nRule: %s\n", oneLine(r.Message))
			}
		}
	}
	return b.Bytes(), nil
}

// fields writes the row of the field at path and those of its children.
func fields(b *bytes.Buffer, path string, s apiextensionsv1.JSONSchemaProps, required bool) {
	def := ""
	if s.Default != nil {
		def = "`" + string(s.Default.Raw) + "`"
	}
	req := ""
	if required {
		req = "yes"
	}
	desc := oneLine(s.Description)
	for _, r := range s.XValidations {
		desc += " Rule: " + oneLine(r.Message) + "."
	}
	if len(s.Enum) > 0 {
		var vals []string
		for _, e := range s.Enum {
			vals = append(vals, "`"+string(e.Raw)+"`")
		}
		desc += " One of " + strings.Join(vals, ", ") + "."
	}
	fmt.Fprintf(b, "| `%s` | %s | %s | %s | %s |\n", path, typeOf(s), req, def, strings.ReplaceAll(desc, "|", "\\|"))
	children := s.Properties
	prefix := path + "."
	if s.Type == "array" && s.Items != nil && s.Items.Schema != nil {
		children, prefix = s.Items.Schema.Properties, path+"[]."
		s = *s.Items.Schema
	}
	names := make([]string, 0, len(children))
	for n := range children {
		names = append(names, n)
	}
	sort.Strings(names)
	for _, n := range names {
		fields(b, prefix+n, children[n], slices.Contains(s.Required, n))
	}
}

func typeOf(s apiextensionsv1.JSONSchemaProps) string {
	switch {
	case s.XIntOrString:
		return "int or string"
	case s.Type == "array" && s.Items != nil && s.Items.Schema != nil:
		return "[]" + typeOf(*s.Items.Schema)
	case s.Type == "" && s.XPreserveUnknownFields != nil:
		return "any"
	}
	return s.Type
}

// oneLine joins a description's lines for a table cell.
func oneLine(s string) string { return strings.Join(strings.Fields(s), " ") }
