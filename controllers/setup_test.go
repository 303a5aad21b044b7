package controllers

import (
	"slices"
	"strings"
	"testing"

	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
)

func TestParseWatchNamespaces(t *testing.T) {
	for _, c := range []struct {
		in, err string
		want    []string
	}{
		{in: "", want: nil},
		{in: "  ", want: nil},
		{in: "keys", want: []string{"keys"}},
		{in: "keys, keys-staging,keys", want: []string{"keys", "keys-staging"}},
		{in: "keys,,other", err: `"" is not a namespace name`},
		{in: "Keys", err: `"Keys" is not a namespace name`},
		{in: "keys/a", err: `"keys/a" is not a namespace name`},
	} {
		got, err := ParseWatchNamespaces(c.in)
		if c.err != "" {
			if err == nil || !strings.Contains(err.Error(), c.err) || !strings.Contains(err.Error(), "separated by commas") {
				t.Errorf("ParseWatchNamespaces(%q) = %q, %v; want an error with %q", c.in, got, err, c.err)
			}
			continue
		}
		if err != nil || !slices.Equal(got, c.want) {
			t.Errorf("ParseWatchNamespaces(%q) = %q, %v; want %q", c.in, got, err, c.want)
		}
	}
}

// A watched Secret is kept in the cache by its name only: not its labels,
// nor annotations such as kubectl's last-applied-configuration, which can
// hold its data.
func TestSecretNameOnly(t *testing.T) {
	in := &metav1.PartialObjectMetadata{
		TypeMeta: metav1.TypeMeta{APIVersion: "v1", Kind: "Secret"},
		ObjectMeta: metav1.ObjectMeta{Name: "acme-code", Namespace: "keys", UID: "u1", ResourceVersion: "7",
			Labels:        map[string]string{"a": "b"},
			Annotations:   map[string]string{"kubectl.kubernetes.io/last-applied-configuration": `{"data":{"code":"c2VjcmV0"}}`},
			ManagedFields: []metav1.ManagedFieldsEntry{{Manager: "kubectl"}}},
	}
	out, err := secretNameOnly(in)
	if err != nil {
		t.Fatal(err)
	}
	m := out.(*metav1.PartialObjectMetadata)
	want := metav1.ObjectMeta{Name: "acme-code", Namespace: "keys", UID: "u1", ResourceVersion: "7"}
	if m.TypeMeta != in.TypeMeta || m.Name != want.Name || m.Namespace != want.Namespace || m.UID != want.UID ||
		m.ResourceVersion != want.ResourceVersion || m.Labels != nil || m.Annotations != nil || m.ManagedFields != nil {
		t.Errorf("secretNameOnly kept %+v, want only %+v", m, want)
	}
}
