package auth

import (
	"bytes"
	"context"
	"crypto/sha256"
	"io"
	"net/http"
	"net/http/httptest"
	"net/url"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"sort"
	"strings"
	"testing"
	"time"

	"trustee.dev/trustee/server/openpgp"
)

// queryCases are parameters, as meant, with a space, "+", "%", "=", "&" and
// non-ASCII in names and values, and repeated names.
var queryCases = [][][2]string{
	{{"q", "a b"}},
	{{"sum", "1+1=2"}, {"rate", "100%"}, {"and", "x&y"}},
	{{"name", "Ünïcødé 日本"}, {"é", "e"}, {"a", "z"}},
	{{"k", "2"}, {"k", "1"}, {"k", ""}, {"j b", "~._-"}},
}

func queryValues(params [][2]string) url.Values {
	v := url.Values{}
	for _, p := range params {
		v.Add(p[0], p[1])
	}
	return v
}

// docFunctions returns the bash functions docs/API.md gives for the
// canonical query.
func docFunctions(t *testing.T) string {
	t.Helper()
	doc, err := os.ReadFile("../../docs/API.md")
	if err != nil {
		t.Fatal(err)
	}
	m := regexp.MustCompile("(?s)<!-- canonical-query:begin -->\n```sh\n(.*?)```\n<!-- canonical-query:end -->").FindSubmatch(doc)
	if m == nil {
		t.Fatal("docs/API.md has no canonical-query block")
	}
	return string(m[1])
}

// The query line of the canonical request is the query form-encoded (a
// space as "+", "+" as %2B, "%" as %25, UTF-8 bytes as %XX), sorted by
// name, whichever way the client escaped what it sent; docs/API.md's bash
// functions write the same line, and a request signed over it by gpg and
// sent with curl, or by the Go client, is accepted.
func TestCanonicalQueryIsFormEncoded(t *testing.T) {
	for _, tool := range []string{"bash", "gpg", "curl", "sort"} {
		if _, err := exec.LookPath(tool); err != nil {
			t.Fatalf("%s is not installed (`make test` installs it)", tool)
		}
	}
	funcs := docFunctions(t)
	queryLine := func(rawQuery string) string {
		return strings.Split(string(CanonicalRequest("GET", "/v1/deposits", rawQuery, 1, "n", [32]byte{})), "\n")[3]
	}
	for _, params := range queryCases {
		want := queryValues(params).Encode()
		// Other ways to send the same parameters: a space as %20, lower-case
		// hex, "~" escaped, the parameters in another order.
		pct := strings.ReplaceAll(want, "+", "%20")
		lower := regexp.MustCompile(`%[0-9A-F]{2}`).ReplaceAllStringFunc(want, strings.ToLower)
		tilde := strings.ReplaceAll(want, "~", "%7E")
		var names []string
		for name := range queryValues(params) {
			names = append(names, name)
		}
		sort.Sort(sort.Reverse(sort.StringSlice(names)))
		var pairs []string // names in reverse order; a name's values keep theirs
		for _, name := range names {
			for _, v := range queryValues(params)[name] {
				pairs = append(pairs, url.QueryEscape(name)+"="+url.QueryEscape(v))
			}
		}
		reordered := strings.Join(pairs, "&")
		for _, raw := range []string{want, pct, lower, tilde, reordered} {
			if got := queryLine(raw); got != want {
				t.Errorf("%v sent as %q: query line %q, want %q", params, raw, got, want)
			}
		}
		args := []string{"-c", funcs + "\ncanonical_query \"$@\"", "bash"}
		for _, p := range params {
			args = append(args, p[0]+"="+p[1])
		}
		out, err := exec.Command("bash", args...).Output()
		if err != nil || string(out) != want {
			t.Errorf("docs/API.md's canonical_query %v: %q, %v; want %q", params, out, err, want)
		}
	}
	for raw, want := range map[string]string{"flag": "flag=", "": "", "a=1&b": "a=1&b="} {
		if got := queryLine(raw); got != want {
			t.Errorf("%q: query line %q, want %q", raw, got, want)
		}
	}

	// Signed with gpg over the doc's query line and sent with curl; and
	// by the Go client, with the query escaped its own way.
	home := t.TempDir()
	t.Cleanup(func() { exec.Command("gpgconf", "--homedir", home, "--kill", "all").Run() })
	gpg := func(args ...string) []byte {
		t.Helper()
		cmd := exec.Command("gpg", append([]string{"--homedir", home, "--batch", "--no-tty", "--pinentry-mode", "loopback", "--passphrase", ""}, args...)...)
		out, err := cmd.Output()
		if err != nil {
			t.Fatalf("gpg %v: %v", args, err)
		}
		return out
	}
	gpg("--quick-gen-key", "query test <query@example.org>", "ed25519", "sign", "never")
	armored := gpg("--armor", "--export", "query@example.org")
	key, err := openpgp.ParsePublic(armored)
	if err != nil {
		t.Fatal(err)
	}
	goKey, err := openpgp.Generate(openpgp.Ed25519, "Go client", "")
	if err != nil {
		t.Fatal(err)
	}
	clients := memClients{key.Fingerprint(): {Key: key, Active: true}, goKey.Public().Fingerprint(): {Key: goKey.Public(), Active: true}}
	a := &Authenticator{Clients: clients, Nonces: &memNonces{}}
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		body, _ := io.ReadAll(r.Body)
		if _, err := a.Authenticate(r.Context(), Request{Method: r.Method, EscapedPath: r.URL.EscapedPath(), RawQuery: r.URL.RawQuery,
			Authorization: r.Header.Get("Authorization"), BodySHA256: sha256.Sum256(body)}); err != nil {
			http.Error(w, err.Error(), http.StatusUnauthorized)
			return
		}
		io.WriteString(w, "ok")
	}))
	defer srv.Close()
	work := t.TempDir()
	body := filepath.Join(work, "empty")
	os.WriteFile(body, nil, 0o600)
	script := funcs + `
set -euo pipefail
QUERY=$(canonical_query "$@")
` + clientScript
	for _, params := range queryCases {
		args := []string{"-c", script, "bash"}
		for _, p := range params {
			args = append(args, p[0]+"="+p[1])
		}
		cmd := exec.Command("bash", args...)
		cmd.Env = append(os.Environ(), "GNUPGHOME="+home, "FPR="+key.Fingerprint(), "URL="+srv.URL,
			"METHOD=GET", "REQPATH=/v1/deposits", "BODY="+body, "WORK="+work)
		var stderr bytes.Buffer
		cmd.Stderr = &stderr
		if out, err := cmd.Output(); err != nil || string(out) != "ok" {
			t.Errorf("gpg and curl, %v: %v %q\n%s", params, err, out, stderr.Bytes())
		}

		u := srv.URL + "/v1/deposits?" + strings.ReplaceAll(queryValues(params).Encode(), "+", "%20")
		req, _ := http.NewRequestWithContext(context.Background(), "GET", u, nil)
		if err := SignRequest(goKey, req, nil, time.Now()); err != nil {
			t.Fatal(err)
		}
		resp, err := http.DefaultClient.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		answer, _ := io.ReadAll(resp.Body)
		resp.Body.Close()
		if resp.StatusCode != http.StatusOK {
			t.Errorf("Go client, %v: %s %s", params, resp.Status, answer)
		}
	}
}
