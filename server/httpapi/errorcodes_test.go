package httpapi_test

import (
	"go/ast"
	"go/parser"
	"go/token"
	"os"
	"path/filepath"
	"regexp"
	"sort"
	"strconv"
	"strings"
	"testing"
)

var (
	codeShape = regexp.MustCompile(`^[a-z][a-z0-9]*(_[a-z0-9]+)*$`)
	jsonError = regexp.MustCompile(`"error":\s*"([a-z0-9_]+)"`)
)

// inspectDir calls inspect on every node of the Go files of dir, tests left
// out.
func inspectDir(t *testing.T, fset *token.FileSet, dir string, inspect func(ast.Node) bool) {
	t.Helper()
	files, err := filepath.Glob(filepath.Join(dir, "*.go"))
	if err != nil || len(files) == 0 {
		t.Fatalf("no Go files in %s: %v", dir, err)
	}
	for _, file := range files {
		if strings.HasSuffix(file, "_test.go") {
			continue
		}
		f, err := parser.ParseFile(fset, file, nil, 0)
		if err != nil {
			t.Fatal(err)
		}
		ast.Inspect(f, inspect)
	}
}

// failureCodes reads the codes package apierror gives the infrastructure
// failures: each entry Failure: {status, "code", ...} of its table, by the
// Failure's name. An API sends such a code where it names the Failure
// (apierror.Timeout).
func failureCodes(t *testing.T) map[string]string {
	t.Helper()
	out := map[string]string{}
	inspectDir(t, token.NewFileSet(), "../apierror", func(n ast.Node) bool {
		kv, ok := n.(*ast.KeyValueExpr)
		if !ok {
			return true
		}
		name, ok := kv.Key.(*ast.Ident)
		lit, isLit := kv.Value.(*ast.CompositeLit)
		if !ok || !isLit {
			return true
		}
		for _, e := range lit.Elts {
			if b, ok := e.(*ast.BasicLit); ok && b.Kind == token.STRING {
				if s, err := strconv.Unquote(b.Value); err == nil && codeShape.MatchString(s) {
					out[name.Name] = s
					break
				}
			}
		}
		return true
	})
	if len(out) < 5 {
		t.Fatalf("found only %d failure codes in ../apierror: the scan has stopped seeing them", len(out))
	}
	return out
}

// sentCodes scans the Go source of dirs (tests left out) for the error codes
// answers can carry: the code given to a function whose name holds "Error"
// (writeError and the like; not the loggers' Error) or to apierror.New, the
// Error field of a composite literal (errorBody{Error: ...}), "error" in
// JSON written as a string, and the code of each infrastructure failure
// named (apierror.Timeout; see failureCodes). It returns each code with
// where it was seen.
func sentCodes(t *testing.T, dirs ...string) map[string]string {
	t.Helper()
	out := map[string]string{}
	failures := failureCodes(t)
	fset := token.NewFileSet()
	add := func(lit ast.Expr, pos token.Pos) {
		b, ok := lit.(*ast.BasicLit)
		if !ok || b.Kind != token.STRING {
			return
		}
		s, err := strconv.Unquote(b.Value)
		if err == nil && codeShape.MatchString(s) {
			out[s] = fset.Position(pos).String()
		}
	}
	for _, dir := range dirs {
		inspectDir(t, fset, dir, func(n ast.Node) bool {
			switch n := n.(type) {
			case *ast.SelectorExpr:
				if x, ok := n.X.(*ast.Ident); ok && x.Name == "apierror" && failures[n.Sel.Name] != "" {
					out[failures[n.Sel.Name]] = fset.Position(n.Pos()).String()
				}
			case *ast.CallExpr:
				var name string
				switch fn := n.Fun.(type) {
				case *ast.Ident:
					name = fn.Name
				case *ast.SelectorExpr:
					name = fn.Sel.Name
					if x, ok := fn.X.(*ast.Ident); ok && x.Name == "apierror" && name == "New" {
						name = "apierror.NewError"
					}
				}
				if strings.Contains(name, "Error") && name != "Error" && name != "ErrorContext" && name != "Errorf" {
					for _, a := range n.Args {
						add(a, a.Pos())
					}
				}
			case *ast.KeyValueExpr:
				if k, ok := n.Key.(*ast.Ident); ok && k.Name == "Error" {
					add(n.Value, n.Pos())
				}
			case *ast.BasicLit:
				if n.Kind == token.STRING {
					s, _ := strconv.Unquote(n.Value)
					for _, m := range jsonError.FindAllStringSubmatch(s, -1) {
						out[m[1]] = fset.Position(n.Pos()).String()
					}
				}
			}
			return true
		})
	}
	return out
}

// documentedCodes returns the codes in the second column of the table
// between <!-- NAME:begin --> and <!-- NAME:end --> in docs/API.md.
func documentedCodes(t *testing.T, name string) map[string]bool {
	t.Helper()
	doc, err := os.ReadFile("../../docs/API.md")
	if err != nil {
		t.Fatal(err)
	}
	m := regexp.MustCompile(`(?s)<!-- ` + name + `:begin -->(.*?)<!-- ` + name + `:end -->`).FindSubmatch(doc)
	if m == nil {
		t.Fatalf("docs/API.md has no %s table", name)
	}
	out := map[string]bool{}
	body := false // past the header
	for _, line := range strings.Split(string(m[1]), "\n") {
		cells := strings.Split(line, "|")
		if strings.HasPrefix(line, "|---") {
			body = true
		}
		if !body || len(cells) < 4 {
			continue
		}
		for _, c := range regexp.MustCompile("`([^`]*)`").FindAllStringSubmatch(cells[2], -1) {
			if codeShape.MatchString(c[1]) {
				out[c[1]] = true
			}
		}
	}
	return out
}

// docs/API.md lists every error code the client API and the admin API can
// answer, and no other: the lists are compared with the codes found in the
// code, so a new code fails this test until it is documented.
func TestAPIDocListsEveryErrorCode(t *testing.T) {
	// The client API's codes may come from any package of the server but
	// the admin API's (the daemon's forwarder answers for the passive, and
	// what answers below the handlers may live in a package of its own).
	// The infrastructure failures of package apierror count for the API
	// that names them.
	var clientDirs []string
	dirs, err := filepath.Glob("../*")
	if err != nil {
		t.Fatal(err)
	}
	for _, d := range dirs {
		if goFiles, _ := filepath.Glob(filepath.Join(d, "*.go")); len(goFiles) > 0 && filepath.Base(d) != "adminapi" && filepath.Base(d) != "apierror" {
			clientDirs = append(clientDirs, d)
		}
	}
	for _, c := range []struct {
		table string
		dirs  []string
	}{
		{"client-errors", clientDirs},
		{"admin-errors", []string{"../adminapi"}},
	} {
		sent, documented := sentCodes(t, c.dirs...), documentedCodes(t, c.table)
		var missing, stale []string
		for code, where := range sent {
			if !documented[code] {
				missing = append(missing, code+" ("+where+")")
			}
		}
		for code := range documented {
			if _, ok := sent[code]; !ok {
				stale = append(stale, code)
			}
		}
		sort.Strings(missing)
		sort.Strings(stale)
		if len(missing) > 0 {
			t.Errorf("docs/API.md's %s table does not list: %s", c.table, strings.Join(missing, ", "))
		}
		if len(stale) > 0 {
			t.Errorf("docs/API.md's %s table lists codes the code never sends: %s", c.table, strings.Join(stale, ", "))
		}
		if len(sent) < 10 {
			t.Errorf("found only %d codes for %s: the scan has stopped seeing them", len(sent), c.table)
		}
	}
}
