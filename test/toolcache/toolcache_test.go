package toolcache_test

import (
	"os"
	"path/filepath"
	"strings"
	"testing"

	"trustee.dev/trustee/test/toolcache"
)

// The tools come from the cache, of the version their wrapper requires
// (built first when they are not there).
func TestToolsFromTheCache(t *testing.T) {
	root, err := toolcache.RepoRoot("hack/lib/tool-cache.sh")
	if err != nil {
		t.Fatal(err)
	}
	for _, tool := range []toolcache.Tool{toolcache.Helm, toolcache.CertManager, toolcache.Promtool} {
		t.Run(tool.Name, func(t *testing.T) {
			t.Setenv(tool.Env, "")
			version, err := toolcache.WrapperVersion(filepath.Join(root, "hack", tool.Wrapper, "go.mod"), tool.Module)
			if err != nil {
				t.Fatal(err)
			}
			dir, err := toolcache.Dir(tool.Name + "-" + version)
			if err != nil {
				t.Fatal(err)
			}
			p, err := tool.Find(t.Logf)
			if err != nil {
				t.Fatal(err)
			}
			if want := filepath.Join(dir, tool.Binary); p != want {
				t.Errorf("%s at %s, want %s", tool.Name, p, want)
			}
			if err := toolcache.IsExecutable(p); err != nil {
				t.Error(err)
			}
		})
	}
}

// The tool's environment variable, when set, names the binary; one that is
// not an executable file is refused.
func TestToolFromTheEnvironment(t *testing.T) {
	tool := toolcache.CertManager
	bin := filepath.Join(t.TempDir(), "controller")
	if err := os.WriteFile(bin, []byte("#!/bin/sh\n"), 0o755); err != nil {
		t.Fatal(err)
	}
	t.Setenv(tool.Env, bin)
	if p, err := tool.Find(nil); err != nil || p != bin {
		t.Errorf("Find with $%s=%s: %q, %v", tool.Env, bin, p, err)
	}
	t.Setenv(tool.Env, filepath.Dir(bin))
	if _, err := tool.Find(nil); err == nil || !strings.Contains(err.Error(), "$"+tool.Env) {
		t.Errorf("Find with $%s a directory: %v, want an error naming the variable", tool.Env, err)
	}
}
