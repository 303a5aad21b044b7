package security

import (
	"bufio"
	"bytes"
	"io/fs"
	"os"
	"path/filepath"
	"regexp"
	"strconv"
	"strings"
	"testing"

	"sigs.k8s.io/yaml"
)

// requirement is a module a go.mod requires.
type requirement struct{ path, version string }

// goMod is what a go.mod requires: its require lines, its tools, and its
// replacements (old path, or "path version", to new path and version; a
// new version of "" is a local directory).
type goMod struct {
	requires []requirement
	tools    []string
	replaces map[string]requirement
}

// readGoMod reads the require, tool and replace directives of a go.mod
// (single lines and blocks).
func readGoMod(t *testing.T, file string) goMod {
	t.Helper()
	f, err := os.Open(file)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	m := goMod{replaces: map[string]requirement{}}
	block := ""
	sc := bufio.NewScanner(f)
	for sc.Scan() {
		line, _, _ := strings.Cut(sc.Text(), "//")
		fields := strings.Fields(line)
		switch {
		case len(fields) == 0:
			continue
		case block != "" && fields[0] == ")":
			block = ""
			continue
		case len(fields) == 2 && fields[1] == "(":
			block = fields[0]
			continue
		}
		directive := block
		if directive == "" {
			directive, fields = fields[0], fields[1:]
		}
		switch directive {
		case "require":
			if len(fields) != 2 {
				t.Fatalf("%s: cannot read %q", file, sc.Text())
			}
			m.requires = append(m.requires, requirement{fields[0], fields[1]})
		case "tool":
			m.tools = append(m.tools, fields[0])
		case "replace":
			old, repl, ok := strings.Cut(strings.Join(fields, " "), "=>")
			to := strings.Fields(repl)
			if !ok || len(to) == 0 || len(to) > 2 {
				t.Fatalf("%s: cannot read %q", file, sc.Text())
			}
			r := requirement{path: to[0]}
			if len(to) == 2 {
				r.version = to[1]
			}
			m.replaces[strings.Join(strings.Fields(old), " ")] = r
		}
	}
	return m
}

// resolve returns what a requirement is built from, after replacements.
func (m goMod) resolve(r requirement) requirement {
	if to, ok := m.replaces[r.path+" "+r.version]; ok {
		return to
	}
	if to, ok := m.replaces[r.path]; ok {
		return to
	}
	return r
}

// exactVersion is a release or pseudo-version: go.mod has no ranges, but
// it must not name anything a later download could resolve differently.
var exactVersion = regexp.MustCompile(`^v\d+\.\d+\.\d+(-[0-9A-Za-z.-]+)?(\+incompatible)?$`)

// TestModulesPinned: the project's module and every wrapper module under
// hack/ (the tools built from the Go module proxy) require exact versions,
// have a go.sum with the hash of every required module's go.mod, replace
// nothing with a local directory, and require the module of every tool they
// build; the scripts and the Makefile install nothing "@latest" and the
// build scripts take their versions from the wrapper modules.
func TestModulesPinned(t *testing.T) {
	var mods []string
	err := filepath.WalkDir(repoFile("."), func(path string, d fs.DirEntry, err error) error {
		if err != nil {
			return err
		}
		if d.IsDir() && (d.Name() == ".git" || d.Name() == "testdata" || d.Name() == "node_modules" || strings.HasPrefix(d.Name(), ".kts")) {
			return fs.SkipDir
		}
		if d.Name() == "go.mod" {
			mods = append(mods, path)
		}
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	hack := 0
	for _, mod := range mods {
		rel, _ := filepath.Rel(repoFile("."), mod)
		if strings.HasPrefix(rel, "hack"+string(filepath.Separator)) {
			hack++
		}
		m := readGoMod(t, mod)
		sum, err := os.ReadFile(filepath.Join(filepath.Dir(mod), "go.sum"))
		if err != nil && len(m.requires) > 0 {
			t.Errorf("%s requires modules but has no go.sum: %v", rel, err)
			continue
		}
		required := map[string]bool{}
		for _, r := range m.requires {
			required[r.path] = true
			built := m.resolve(r)
			if built.version == "" {
				t.Errorf("%s: %s is replaced by the local directory %s, which go.sum does not check", rel, r.path, built.path)
				continue
			}
			if !exactVersion.MatchString(built.version) {
				t.Errorf("%s: %s %s is not an exact version", rel, built.path, built.version)
			}
			if !bytes.Contains(sum, []byte(built.path+" "+built.version+"/go.mod h1:")) {
				t.Errorf("%s: go.sum has no hash of %s %s", rel, built.path, built.version)
			}
		}
		for _, tool := range m.tools {
			ok := false
			for p := range required {
				if tool == p || strings.HasPrefix(tool, p+"/") {
					ok = true
				}
			}
			if !ok {
				t.Errorf("%s: tool %s is not from a required module", rel, tool)
			}
		}
	}
	if hack < 5 {
		t.Fatalf("found %d wrapper modules under hack/; the walk is wrong", hack)
	}

	scripts, _ := filepath.Glob(repoFile("hack/*.sh"))
	scripts = append(scripts, repoFile("Makefile"), repoFile("Dockerfile"))
	for _, f := range scripts {
		b, err := os.ReadFile(f)
		if err != nil {
			t.Fatal(err)
		}
		if regexp.MustCompile(`@(latest|master|main)\b`).Match(b) {
			t.Errorf("%s installs a moving version (@latest, @master or @main)", f)
		}
		if strings.HasPrefix(filepath.Base(f), "build-") && bytes.Contains(b, []byte("go build")) && !bytes.Contains(b, []byte("module_version")) {
			t.Errorf("%s builds a tool without taking its version from a wrapper module", f)
		}
	}
}

// dockerfileFinalStage returns the instructions of the Dockerfile's last
// stage, one per line (continuations joined), without comments.
func dockerfileFinalStage(t *testing.T) []string {
	t.Helper()
	b, err := os.ReadFile(repoFile("Dockerfile"))
	if err != nil {
		t.Fatal(err)
	}
	var lines []string
	cur := ""
	for _, line := range strings.Split(string(b), "\n") {
		if strings.HasPrefix(strings.TrimSpace(line), "#") {
			continue
		}
		if strings.HasSuffix(line, "\\") {
			cur += strings.TrimSuffix(line, "\\") + " "
			continue
		}
		cur += line
		if strings.TrimSpace(cur) != "" {
			lines = append(lines, strings.TrimSpace(cur))
		}
		cur = ""
	}
	last := 0
	for i, l := range lines {
		if strings.HasPrefix(strings.ToUpper(l), "FROM ") {
			last = i
		}
	}
	return lines[last:]
}

// TestImageRunsAsNonRoot: the image's final stage switches to the
// unprivileged account it creates (numeric, so that Kubernetes can check
// runAsNonRoot), and nothing switches back; the operator's pods run as the
// same user (TestOperatorPodsHardened).
func TestImageRunsAsNonRoot(t *testing.T) {
	stage := dockerfileFinalStage(t)
	var user string
	var created []string
	for _, l := range stage {
		upper := strings.ToUpper(l)
		if strings.HasPrefix(upper, "USER ") {
			user = strings.TrimSpace(l[5:])
		}
		if m := regexp.MustCompile(`useradd .*--uid (\d+)`).FindStringSubmatch(l); m != nil {
			created = append(created, m[1])
		}
	}
	uid, _, _ := strings.Cut(user, ":")
	n, err := strconv.Atoi(uid)
	if err != nil || n == 0 {
		t.Fatalf("the image's final USER is %q; want a numeric, non-root uid", user)
	}
	if len(created) != 1 || created[0] != uid {
		t.Errorf("the image runs as uid %s but creates the account(s) %v", uid, created)
	}
	for _, v := range podSecurityValues(t, "runAsUser") {
		if v != uid {
			t.Errorf("an operator pod runs as uid %s, the image as %s", v, uid)
		}
	}
}

// yamlDocuments decodes every document of a YAML file.
func yamlDocuments(t *testing.T, file string) []any {
	t.Helper()
	b, err := os.ReadFile(file)
	if err != nil {
		t.Fatal(err)
	}
	var docs []any
	for _, doc := range regexp.MustCompile(`(?m)^---\s*$`).Split(string(b), -1) {
		if strings.TrimSpace(doc) == "" {
			continue
		}
		var v any
		if err := yaml.Unmarshal([]byte(doc), &v); err != nil {
			t.Fatalf("%s: %v", file, err)
		}
		docs = append(docs, v)
	}
	return docs
}

// podSpecs returns every pod spec (a map with "containers") in v.
func podSpecs(v any) []map[string]any {
	var out []map[string]any
	switch v := v.(type) {
	case map[string]any:
		if _, ok := v["containers"]; ok {
			out = append(out, v)
		}
		for _, e := range v {
			out = append(out, podSpecs(e)...)
		}
	case []any:
		for _, e := range v {
			out = append(out, podSpecs(e)...)
		}
	}
	return out
}

// operatorManifests are the pods the operator builds (its golden files,
// which controllers/ TestGoldenServerObjects and TestGoldenBackupObjects
// keep equal to the builders' output) and the operator's own Deployment.
func operatorManifests(t *testing.T) []string {
	files, err := filepath.Glob(repoFile("controllers/testdata/golden/*.yaml"))
	if err != nil || len(files) == 0 {
		t.Fatalf("no golden files of the operator's objects: %v", err)
	}
	return append(files, repoFile("config/manager/manager.yaml"))
}

// podSecurityValues returns the values of a pod-level securityContext field
// across the operator's pods.
func podSecurityValues(t *testing.T, field string) []string {
	var out []string
	for _, f := range operatorManifests(t) {
		for _, doc := range yamlDocuments(t, f) {
			for _, spec := range podSpecs(doc) {
				if sc, ok := spec["securityContext"].(map[string]any); ok && sc[field] != nil {
					out = append(out, stringOf(sc[field]))
				}
			}
		}
	}
	return out
}

func stringOf(v any) string {
	switch v := v.(type) {
	case float64:
		return strconv.FormatFloat(v, 'f', -1, 64)
	case string:
		return v
	}
	return ""
}

// TestOperatorPodsHardened: every pod the operator creates (server members,
// backup jobs) and the operator's own runs as a non-root user with the
// runtime's default seccomp profile, and every container, init containers
// included, has a read-only root filesystem, no privilege escalation and
// no capabilities.
func TestOperatorPodsHardened(t *testing.T) {
	pods := 0
	for _, f := range operatorManifests(t) {
		rel, _ := filepath.Rel(repoFile("."), f)
		for _, doc := range yamlDocuments(t, f) {
			for _, spec := range podSpecs(doc) {
				pods++
				sc, _ := spec["securityContext"].(map[string]any)
				if sc["runAsNonRoot"] != true {
					t.Errorf("%s: a pod without runAsNonRoot: true (%v)", rel, sc)
				}
				if u, ok := sc["runAsUser"].(float64); ok && u == 0 {
					t.Errorf("%s: a pod runs as root", rel)
				}
				if seccomp, _ := sc["seccompProfile"].(map[string]any); seccomp["type"] != "RuntimeDefault" {
					t.Errorf("%s: a pod without the RuntimeDefault seccomp profile (%v)", rel, sc)
				}
				var containers []any
				for _, k := range []string{"initContainers", "containers"} {
					c, _ := spec[k].([]any)
					containers = append(containers, c...)
				}
				for _, c := range containers {
					c := c.(map[string]any)
					csc, _ := c["securityContext"].(map[string]any)
					caps, _ := csc["capabilities"].(map[string]any)
					drop, _ := caps["drop"].([]any)
					if csc["readOnlyRootFilesystem"] != true || csc["allowPrivilegeEscalation"] != false || len(drop) != 1 || drop[0] != "ALL" || caps["add"] != nil {
						t.Errorf("%s: container %v: securityContext %v; want readOnlyRootFilesystem, no privilege escalation, capabilities dropped", rel, c["name"], csc)
					}
				}
			}
		}
	}
	if pods < 6 {
		t.Fatalf("found %d pod specs; the golden files changed shape", pods)
	}
}

// TestThreatModelNamesRealTests: every test the threat model in
// docs/SECURITY.md names exists (a func TestX in a _test.go file of the
// package it names).
func TestThreatModelNamesRealTests(t *testing.T) {
	doc, err := os.ReadFile(repoFile("docs/SECURITY.md"))
	if err != nil {
		t.Fatal(err)
	}
	_, section, ok := strings.Cut(string(doc), "\n## Threat model\n")
	if !ok {
		t.Fatal(`docs/SECURITY.md has no "## Threat model" section`)
	}
	if i := strings.Index(section, "\n## "); i >= 0 {
		section = section[:i]
	}
	// `path/to/pkg` TestName, or `TestName` alone for test/security.
	refs := regexp.MustCompile("(?:`([a-z0-9_/.-]+)` )?`(Test[A-Za-z0-9_]+)`").FindAllStringSubmatch(section, -1)
	if len(refs) < 20 {
		t.Fatalf("the threat model names %d tests; the pattern is wrong", len(refs))
	}
	defined := map[string]bool{}
	funcs := regexp.MustCompile(`(?m)^func (Test[A-Za-z0-9_]+)\(`)
	for _, ref := range refs {
		pkg := ref[1]
		if pkg == "" {
			pkg = "test/security"
		}
		key := pkg + " " + ref[2]
		if _, seen := defined[key]; seen {
			continue
		}
		files, _ := filepath.Glob(filepath.Join(repoFile(pkg), "*_test.go"))
		found := false
		for _, f := range files {
			b, _ := os.ReadFile(f)
			for _, m := range funcs.FindAllSubmatch(b, -1) {
				if string(m[1]) == ref[2] {
					found = true
				}
			}
		}
		defined[key] = found
		if !found {
			t.Errorf("docs/SECURITY.md names %s %s, which does not exist", pkg, ref[2])
		}
	}
}
