//go:build !benchunaudited

package daemon

import (
	"reflect"
	"strings"
	"testing"
)

// A server built without the tag benchunaudited cannot be asked to serve
// the client API without audit records.
func TestNoUnauditedListenerOutsideTheBenchmarkBuild(t *testing.T) {
	if n := reflect.TypeFor[BenchOptions]().NumField(); n != 0 {
		t.Errorf("BenchOptions has %d fields: the audit-off listener is for the benchmark build only", n)
	}
	opts := reflect.TypeFor[Options]()
	for i := range opts.NumField() {
		if f := opts.Field(i); strings.Contains(strings.ToLower(f.Name), "unaudited") {
			t.Errorf("Options.%s: the audit-off listener is for the benchmark build only", f.Name)
		}
	}
	srv, closeFn, err := serveUnaudited(t.Context(), BenchOptions{}, unauditedServer{})
	closeFn()
	if srv != nil || err != nil {
		t.Errorf("serveUnaudited = %v, %v: want no listener", srv, err)
	}
}
