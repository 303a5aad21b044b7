package cmd

import (
	"slices"
	"testing"
)

// TestKubectlPluginName: kubectl runs the plugin as kubectl-trustee with
// the words after `kubectl trustee`; they reach the kubectl command.
func TestKubectlPluginName(t *testing.T) {
	for _, tc := range []struct {
		args []string
		want []string
	}{
		{[]string{"/home/me/bin/kubectl-trustee", "status", "kts", "-n", "keys"}, []string{"trustee", "status", "kts", "-n", "keys"}},
		{[]string{"kts", "kubectl", "drill", "nightly"}, []string{"kubectl", "drill", "nightly"}},
	} {
		got := commandArgs(tc.args)
		if !slices.Equal(got, tc.want) {
			t.Fatalf("commandArgs(%q) = %q, want %q", tc.args, got, tc.want)
		}
		c, rest, err := newRootCommand().Find(got)
		if err != nil || c.Parent() == nil || c.Parent().Name() != "kubectl" || !slices.Equal(rest, tc.want[2:]) {
			t.Fatalf("%q finds %v %q %v", got, c, rest, err)
		}
	}
}
