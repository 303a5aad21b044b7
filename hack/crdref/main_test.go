package main

import (
	"bytes"
	"os"
	"testing"
)

// The committed reference is what the committed CRDs give: regenerate with
// `make manifests` after changing api/.
func TestReferenceIsUpToDate(t *testing.T) {
	want, err := reference("../../config/crd/bases")
	if err != nil {
		t.Fatal(err)
	}
	got, err := os.ReadFile("../../docs/CRD-REFERENCE.md")
	if err != nil {
		t.Fatal(err)
	}
	if !bytes.Equal(got, want) {
		t.Fatal("docs/CRD-REFERENCE.md is out of date: run make manifests")
	}
	for _, field := range []string{"`spec.tls.issuerRef.name`", "`spec.schedule`", "`spec.authCodeSecretRef.name`", "`status.conditions[].type`"} {
		if !bytes.Contains(want, []byte(field)) {
			t.Errorf("the reference lacks %s", field)
		}
	}
}
