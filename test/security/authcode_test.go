package security

import (
	"fmt"
	"go/ast"
	"go/parser"
	"go/token"
	"io/fs"
	"net/http"
	"path/filepath"
	"regexp"
	"slices"
	"strconv"
	"strings"
	"testing"
	"time"
)

// parseFunc parses a file of the repository and returns the named function
// (a method when recv is set) and the file set.
func parseFunc(t *testing.T, rel, recv, name string) (*ast.FuncDecl, *token.FileSet) {
	t.Helper()
	fset := token.NewFileSet()
	f, err := parser.ParseFile(fset, repoFile(rel), nil, 0)
	if err != nil {
		t.Fatal(err)
	}
	for _, d := range f.Decls {
		fd, ok := d.(*ast.FuncDecl)
		if !ok || fd.Name.Name != name {
			continue
		}
		if recv == "" && fd.Recv == nil {
			return fd, fset
		}
		if recv != "" && fd.Recv != nil && strings.Contains(exprString(fd.Recv.List[0].Type), recv) {
			return fd, fset
		}
	}
	t.Fatalf("%s has no function %s %s", rel, recv, name)
	return nil, nil
}

// exprString renders simple expressions (identifiers, selectors, stars).
func exprString(e ast.Expr) string {
	switch e := e.(type) {
	case *ast.Ident:
		return e.Name
	case *ast.SelectorExpr:
		return exprString(e.X) + "." + e.Sel.Name
	case *ast.StarExpr:
		return "*" + exprString(e.X)
	case *ast.CallExpr:
		return exprString(e.Fun) + "(...)"
	case *ast.ArrayType:
		if e.Len == nil {
			return "[]" + exprString(e.Elt)
		}
	}
	return ""
}

// TestAuthCodeComparedInConstantTime checks, on the source, how a presented
// auth code is compared with the stored one: org.CodeMatches hashes it with
// Argon2id and the salt of the stored hash and compares the two hashes with
// subtle.ConstantTimeCompare, and those hashes are used for nothing else
// (no ==, no bytes.Equal, no early return on a prefix). Outside the org
// package, no code compares an auth code or its hash with anything but the
// empty string, and registration decides with org.CodeMatches. Session
// tokens are checked with hmac.Equal. (The black-box counterpart is
// TestAuthCodeTiming.)
func TestAuthCodeComparedInConstantTime(t *testing.T) {
	fn, fset := parseFunc(t, "server/org/org.go", "", "CodeMatches")
	// The two hashes: the result of argon2.IDKey, and the other argument
	// of subtle.ConstantTimeCompare.
	var computed, stored *ast.Object
	var compares int
	ast.Inspect(fn.Body, func(n ast.Node) bool {
		switch n := n.(type) {
		case *ast.AssignStmt:
			if call, ok := n.Rhs[0].(*ast.CallExpr); ok && exprString(call.Fun) == "argon2.IDKey" && len(n.Lhs) == 1 {
				computed = n.Lhs[0].(*ast.Ident).Obj
				if arg := exprString(call.Args[0]); arg != "[]byte(...)" {
					t.Errorf("argon2.IDKey hashes %q, want []byte(presented)", arg)
				}
			}
		case *ast.CallExpr:
			if exprString(n.Fun) == "subtle.ConstantTimeCompare" {
				compares++
				for _, a := range n.Args {
					if id, ok := a.(*ast.Ident); ok && id.Obj != computed {
						stored = id.Obj
					}
				}
			}
		}
		return true
	})
	if computed == nil || stored == nil || compares != 1 {
		t.Fatalf("CodeMatches (%s) does not hash with argon2.IDKey and compare once with subtle.ConstantTimeCompare", fset.Position(fn.Pos()))
	}
	// Every use of the two hashes: the comparison, len(), and hashing
	// (the stored hash's length is the length to derive).
	var check func(n ast.Node, parents []ast.Node)
	check = func(n ast.Node, parents []ast.Node) {
		if id, ok := n.(*ast.Ident); ok && (id.Obj == computed || id.Obj == stored) && len(parents) > 0 {
			ok := false
			switch p := parents[len(parents)-1].(type) {
			case *ast.CallExpr:
				ok = slices.Contains([]string{"subtle.ConstantTimeCompare", "len"}, exprString(p.Fun))
			case *ast.AssignStmt, *ast.ValueSpec:
				ok = true // where it is defined
			}
			if !ok {
				t.Errorf("%s: the hash %s is used other than by subtle.ConstantTimeCompare", fset.Position(id.Pos()), id.Name)
			}
		}
		ast.Inspect(n, func(c ast.Node) bool {
			if c == n {
				return true
			}
			if c != nil {
				check(c, append(parents, n))
			}
			return false
		})
	}
	check(fn.Body, nil)

	// Elsewhere: codes and hashes are compared with "" only, and
	// registration decides with org.CodeMatches.
	secretName := regexp.MustCompile(`(?i)^(auth_?code|auth_?hash|auth_?secret)$`)
	mentions := func(e ast.Expr) bool {
		found := false
		ast.Inspect(e, func(n ast.Node) bool {
			switch n := n.(type) {
			case *ast.Ident:
				found = found || secretName.MatchString(n.Name)
			}
			return !found
		})
		return found
	}
	emptyOrNil := func(e ast.Expr) bool {
		if l, ok := e.(*ast.BasicLit); ok {
			return l.Value == `""`
		}
		id, ok := e.(*ast.Ident)
		return ok && id.Name == "nil"
	}
	codeMatchesCalls, checkerCalls, checkerWired := 0, 0, 0
	for _, dir := range []string{"server", "cmd"} {
		err := filepath.WalkDir(repoFile(dir), func(path string, d fs.DirEntry, err error) error {
			if err != nil || d.IsDir() || !strings.HasSuffix(path, ".go") || strings.HasSuffix(path, "_test.go") {
				return err
			}
			f, err := parser.ParseFile(fset, path, nil, 0)
			if err != nil {
				return err
			}
			ast.Inspect(f, func(n ast.Node) bool {
				switch n := n.(type) {
				case *ast.BinaryExpr:
					if (n.Op == token.EQL || n.Op == token.NEQ) && (mentions(n.X) || mentions(n.Y)) && !emptyOrNil(n.X) && !emptyOrNil(n.Y) {
						t.Errorf("%s: an auth code or its hash is compared with %s", fset.Position(n.Pos()), n.Op)
					}
				case *ast.CallExpr:
					switch exprString(n.Fun) {
					case "bytes.Equal", "strings.EqualFold", "strings.Compare", "strings.HasPrefix", "bytes.HasPrefix":
						if slices.ContainsFunc(n.Args, mentions) {
							t.Errorf("%s: an auth code or its hash is compared with %s", fset.Position(n.Pos()), exprString(n.Fun))
						}
					case "org.CodeMatches":
						if strings.Contains(path, filepath.Join("server", "httpapi")) {
							codeMatchesCalls++
						}
					case "CodeMatches":
						// The registration handler checks codes through the
						// bounded org.Checker, which calls CodeMatches.
						if strings.HasSuffix(path, filepath.Join("server", "org", "checker.go")) {
							checkerCalls++
						}
					case "s.Codes.Matches":
						// The registration service's Codes: the checker
						// server/httpapi gives it (see checkerWired).
						if strings.Contains(path, filepath.Join("server", "registration")) {
							codeMatchesCalls++
						}
					}
				case *ast.KeyValueExpr:
					// server/httpapi gives the registration service the
					// server's *org.Checker (Options.CodeChecker).
					if k, ok := n.Key.(*ast.Ident); ok && k.Name == "Codes" && exprString(n.Value) == "o.CodeChecker" &&
						strings.Contains(path, filepath.Join("server", "httpapi")) {
						checkerWired++
					}
				}
				return true
			})
			return nil
		})
		if err != nil {
			t.Fatal(err)
		}
	}
	if codeMatchesCalls == 0 || checkerCalls == 0 || checkerWired == 0 {
		t.Error("server/registration never calls org.CodeMatches (through the org.Checker server/httpapi gives it): registration does not check codes the way this test assumes")
	}

	verify, _ := parseFunc(t, "server/auth/token.go", "Tokens", "Verify")
	hmacEqual := false
	ast.Inspect(verify.Body, func(n ast.Node) bool {
		if c, ok := n.(*ast.CallExpr); ok && exprString(c.Fun) == "hmac.Equal" {
			hmacEqual = true
		}
		return true
	})
	if !hmacEqual {
		t.Error("auth.Tokens.Verify does not check the token's MAC with hmac.Equal")
	}
}

// TestAuthCodeTiming measures, from outside, how long the server takes to
// answer registrations with the right code, with wrong codes of the same
// length that differ in their first or in their last character, and with no
// code. A comparison that stopped at the first wrong character, or skipped
// the hashing for a wrong code, would show there.
//
// The bounds are generous so that the test does not flake: what it can see
// is a difference of the size of the Argon2id hashing (tens of
// milliseconds), not of a byte comparison (nanoseconds, far below the
// network's noise) — that part is TestAuthCodeComparedInConstantTime's.
// Each class is measured by its fastest answer: noise only ever adds time,
// so the minimum of interleaved samples is the class's cost. A measurement
// that breaks a bound is made once more, and only a second failure counts.
// Every attempt uses a key that is already registered, so every answer is
// 409 already_exists, after the code has been checked (the answer itself
// tells nothing about the code). The rate limit (10 attempts per
// organization and address) is why the samples come from several
// organizations.
func TestAuthCodeTiming(t *testing.T) {
	s := shared(t)
	code := secretText("auth code", "timing-code-")
	var problems []string
	for attempt := 1; attempt <= 2; attempt++ {
		problems = measureAuthCodeTiming(t, s, code)
		if len(problems) == 0 {
			return
		}
		t.Logf("measurement %d: %s", attempt, strings.Join(problems, "; "))
	}
	for _, p := range problems {
		t.Error(p)
	}
}

// measureAuthCodeTiming makes one measurement of TestAuthCodeTiming and
// returns the bounds it breaks.
func measureAuthCodeTiming(t *testing.T, s *server, code string) []string {
	wrongFirst := "X" + code[1:]
	wrongLast := code[:len(code)-1] + "X"
	classes := []struct{ name, code string }{{"right code", code}, {"wrong first character", wrongFirst}, {"wrong last character", wrongLast}, {"no code", ""}}
	fastest := make([]time.Duration, len(classes))
	for round := 0; round < 5; round++ {
		org := s.newOrg(t, code)
		id := newIdentity(t)
		// Registered (pending) first; this also opens the connection.
		want(t, "the first registration", s.register(t, id, org, "not-the-code"), http.StatusCreated, "")
		for rep := 0; rep < 2; rep++ {
			for i, c := range classes {
				start := time.Now()
				a := s.register(t, id, org, c.code)
				took := time.Since(start)
				if a.status != http.StatusConflict {
					t.Fatalf("%s: %s; want 409 already_exists", c.name, a)
				}
				if fastest[i] == 0 || took < fastest[i] {
					fastest[i] = took
				}
			}
		}
	}
	right, first, last, none := fastest[0], fastest[1], fastest[2], fastest[3]
	t.Logf("fastest answers: right code %v, wrong first character %v, wrong last character %v, no code %v", right, first, last, none)
	var problems []string
	// The measurement resolves the hashing: no code means no hashing.
	if none >= right/2 {
		problems = append(problems, fmt.Sprintf("a registration without a code (%v) is not clearly faster than one with the right code (%v): the hashing cannot be seen here, and the measurement proves nothing", none, right))
	}
	for _, w := range []struct {
		name string
		d    time.Duration
	}{{"wrong first character", first}, {"wrong last character", last}} {
		if w.d < right/2 || w.d > 2*right {
			problems = append(problems, fmt.Sprintf("a %s takes %v against %v for the right code: a wrong code is not checked like the right one", w.name, w.d, right))
		}
	}
	if diff := (first - last).Abs(); diff > right/4 {
		problems = append(problems, fmt.Sprintf("codes differing first (%v) and last (%v) take %v apart: the comparison depends on where the codes differ", first, last, diff))
	}
	return problems
}

// TestAuthCodeBruteForceRateLimited: guessing an organization's auth code
// from one address meets 429 rate_limited with Retry-After after the burst
// of 10 attempts — and the right code, once limited, is refused the same
// way and activates nothing. The limit is per organization: another
// organization still answers.
func TestAuthCodeBruteForceRateLimited(t *testing.T) {
	s := shared(t)
	code := secretText("auth code", "code-")
	org, other := s.newOrg(t, code), s.newOrg(t, code)
	id := newIdentity(t)
	for i := 1; i <= 10; i++ {
		a := s.register(t, id, org, secretText("auth code", "guess-"))
		if a.status == http.StatusTooManyRequests {
			t.Fatalf("guess %d was rate-limited; the burst is 10", i)
		}
	}
	for _, guess := range []string{code, secretText("auth code", "guess-")} {
		a := s.register(t, id, org, guess)
		want(t, "a guess after the burst", a, http.StatusTooManyRequests, "rate_limited")
		if n, err := strconv.Atoi(a.header.Get("Retry-After")); err != nil || n < 1 {
			t.Errorf("Retry-After %q", a.header.Get("Retry-After"))
		}
	}
	if snap := s.snapshot(t, id.fpr); !strings.Contains(snap, " pending") {
		t.Errorf("the guessing client is not pending:\n%s", snap)
	}
	want(t, "another organization", s.register(t, newIdentity(t), other, code), http.StatusCreated, "")
}
