package auth

import (
	"bytes"
	"context"
	"crypto/sha256"
	"io"
	"net/http"
	"net/http/httptest"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"trustee.dev/trustee/server/openpgp"
)

// clientScript is a client made of bash, printf, sha256sum, gpg, base64 and
// curl, as the package documentation describes. It prints the server's
// answer.
const clientScript = `set -euo pipefail
ts=$(date +%s)
nonce=$(head -c 24 /dev/urandom | base64 | tr '+/' '-_')
hash=$(sha256sum < "$BODY" | cut -d' ' -f1)
printf 'KTS-PGP-V1\n%s\n%s\n%s\n%s\n%s\n%s' "$METHOD" "$REQPATH" "$QUERY" "$ts" "$nonce" "$hash" |
    gpg --batch --no-tty --pinentry-mode loopback --passphrase '' --local-user "$FPR" --detach-sign > "$WORK/req.sig"
url="$URL$REQPATH"
if [ -n "$QUERY" ]; then url="$url?$QUERY"; fi
curl -sS --fail-with-body -X "$METHOD" --data-binary @"$BODY" \
    -H "Authorization: KTS-PGP fingerprint=$FPR, timestamp=$ts, nonce=$nonce, signature=$(base64 -w0 "$WORK/req.sig")" \
    "$url"
`

// TestShellClient signs requests with printf, sha256sum, gpg and base64 and
// sends them with curl to a server that calls Authenticate.
func TestShellClient(t *testing.T) {
	for _, tool := range []string{"bash", "gpg", "curl", "sha256sum", "base64"} {
		if _, err := exec.LookPath(tool); err != nil {
			t.Fatalf("%s is not installed (`make test` installs it)", tool)
		}
	}
	home, err := os.MkdirTemp("", "kts-gpg-")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		exec.Command("gpgconf", "--homedir", home, "--kill", "all").Run()
		os.RemoveAll(home)
	})
	gpg := func(args ...string) []byte {
		t.Helper()
		cmd := exec.Command("gpg", append([]string{"--homedir", home, "--batch", "--no-tty", "--pinentry-mode", "loopback", "--passphrase", ""}, args...)...)
		var stderr bytes.Buffer
		cmd.Stderr = &stderr
		out, err := cmd.Output()
		if err != nil {
			t.Fatalf("gpg %v: %v\n%s", args, err, stderr.Bytes())
		}
		return out
	}

	clients := memClients{}
	keys := map[string]string{} // name -> fingerprint
	for name, algo := range map[string][]string{
		"ed25519":        {"ed25519", "sign", "never"},
		"gnupg-default":  nil, // rsa3072 with an encryption subkey
		"signing-subkey": {"ed25519", "cert", "never"},
	} {
		uid := name + " <" + name + "@example.org>"
		gpg(append([]string{"--quick-gen-key", uid}, algo...)...)
		fpr := ""
		for _, line := range strings.Split(string(gpg("--with-colons", "--list-keys", "="+uid)), "\n") {
			if f := strings.Split(line, ":"); f[0] == "fpr" && fpr == "" {
				fpr = f[9]
			}
		}
		if name == "signing-subkey" {
			gpg("--quick-add-key", fpr, "ed25519", "sign", "never")
		}
		key, err := openpgp.ParsePublic(gpg("--armor", "--export", fpr))
		if err != nil {
			t.Fatalf("%s: %v", name, err)
		}
		clients[fpr] = ClientKey{Key: key, Active: true}
		keys[name] = fpr
	}

	nonces := &memNonces{}
	a := &Authenticator{Clients: clients, Nonces: nonces}
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		body, _ := io.ReadAll(r.Body)
		id, err := a.Authenticate(r.Context(), Request{
			Method:        r.Method,
			EscapedPath:   r.URL.EscapedPath(),
			RawQuery:      r.URL.RawQuery,
			Authorization: r.Header.Get("Authorization"),
			BodySHA256:    sha256.Sum256(body),
		})
		if err != nil {
			http.Error(w, err.Error(), http.StatusUnauthorized)
			return
		}
		io.WriteString(w, "hello "+id.Fingerprint)
	}))
	defer srv.Close()

	work := t.TempDir()
	bodyFile := filepath.Join(work, "body")
	for _, tc := range []struct {
		key, method, path, query, body string
	}{
		{"ed25519", "GET", "/v1/deposits", "", ""},
		{"ed25519", "PUT", "/v1/deposits/my%20db", "version=3", `{"secret":"c2VjcmV0"}` + "\n"},
		{"ed25519", "POST", "/v1/session", "a=1&b=x%2Fy", "binary\x00\xff body"},
		{"gnupg-default", "DELETE", "/v1/deposits/old", "", ""},
		{"signing-subkey", "PUT", "/v1/deposits/k", "", "v"},
	} {
		t.Run(tc.key+" "+tc.method, func(t *testing.T) {
			if err := os.WriteFile(bodyFile, []byte(tc.body), 0o600); err != nil {
				t.Fatal(err)
			}
			cmd := exec.Command("bash", "-c", clientScript)
			cmd.Env = append(os.Environ(), "GNUPGHOME="+home, "FPR="+keys[tc.key], "URL="+srv.URL,
				"METHOD="+tc.method, "REQPATH="+tc.path, "QUERY="+tc.query, "BODY="+bodyFile, "WORK="+work)
			var stderr bytes.Buffer
			cmd.Stderr = &stderr
			out, err := cmd.Output()
			if err != nil {
				t.Fatalf("client script: %v\nanswer: %s\n%s", err, out, stderr.Bytes())
			}
			if want := "hello " + keys[tc.key]; string(out) != want {
				t.Fatalf("answer %q, want %q", out, want)
			}
		})
	}

	// The same script with a tampered body is refused.
	os.WriteFile(bodyFile, []byte("x"), 0o600)
	script := strings.Replace(clientScript, `--data-binary @"$BODY"`, `--data-binary y`, 1)
	cmd := exec.Command("bash", "-c", script)
	cmd.Env = append(os.Environ(), "GNUPGHOME="+home, "FPR="+keys["ed25519"], "URL="+srv.URL,
		"METHOD=PUT", "REQPATH=/v1/deposits/x", "QUERY=", "BODY="+bodyFile, "WORK="+work)
	out, err := cmd.Output()
	if err == nil || !strings.Contains(string(out), ErrBadSignature.Error()) {
		t.Fatalf("tampered body: %v, answer %q", err, out)
	}

	// And the Go client talks to the same server.
	req, _ := http.NewRequestWithContext(context.Background(), "PUT", srv.URL+"/v1/deposits/go?z=1&a=2", strings.NewReader("go body"))
	goKey, err := openpgp.Generate(openpgp.Ed25519, "Go client", "")
	if err != nil {
		t.Fatal(err)
	}
	clients[goKey.Public().Fingerprint()] = ClientKey{Key: goKey.Public(), Active: true}
	if err := SignRequest(goKey, req, []byte("go body"), time.Now()); err != nil {
		t.Fatal(err)
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	answer, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		t.Fatalf("Go client: %s: %s", resp.Status, answer)
	}
}
