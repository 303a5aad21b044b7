package security

import (
	"bytes"
	"context"
	"os/exec"
	"path/filepath"
	"regexp"
	"strings"
	"testing"
	"time"
)

// sClient runs `openssl s_client` against the server with the given
// options, sending stdin (then holding the input open for a second, so
// that an answer to it can arrive), and returns its output and whether it
// exited 0.
func sClient(t *testing.T, s *server, stdin string, args ...string) (string, bool) {
	t.Helper()
	openssl, err := exec.LookPath("openssl")
	if err != nil {
		t.Fatal("openssl is needed to check TLS from outside (Debian: openssl)")
	}
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	args = append([]string{"s_client", "-connect", s.addr, "-servername", "localhost",
		"-CAfile", filepath.Join(s.dir, ".ssl", "ssl-cert-keytrustee.pem")}, args...)
	cmd := exec.CommandContext(ctx, openssl, args...)
	in, err := cmd.StdinPipe()
	if err != nil {
		t.Fatal(err)
	}
	var out bytes.Buffer
	cmd.Stdout, cmd.Stderr = &out, &out
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	in.Write([]byte(stdin))
	if stdin == "" {
		in.Close()
	}
	done := make(chan error, 1)
	go func() { done <- cmd.Wait() }()
	var werr error
	select {
	case werr = <-done:
	case <-time.After(time.Second):
		in.Close()
		werr = <-done
	}
	if ctx.Err() != nil {
		t.Fatalf("openssl %s did not finish:\n%s", strings.Join(args, " "), out.String())
	}
	return out.String(), werr == nil
}

// TestTLSFromOutside checks the TLS the server offers with OpenSSL 3's
// s_client, as an external client or scanner sees it:
//
//   - TLS 1.0 and 1.1 are refused by the server with a protocol_version
//     alert (the client offers them: its security level is lowered to 0, so
//     that OpenSSL itself does not refuse first); TLS 1.2 and 1.3 are
//     accepted.
//   - SSL_CIPHER_LIST is enforced for TLS 1.2: a suite outside the list,
//     even one Go offers by default, meets a handshake_failure alert; the
//     listed suites are accepted.
//   - Renegotiation is refused. Over TLS 1.2 the server signals secure
//     renegotiation (RFC 5746, as s_client reports), but a renegotiation
//     the client starts (s_client's "R" command) is answered with an
//     unexpected_message alert and the connection ends; TLS 1.3 has no
//     renegotiation, and s_client reports none.
//
// The admin API's listener takes the same settings
// (server/daemon TestAdminTLSConfigFollowsTheAPI).
func TestTLSFromOutside(t *testing.T) {
	s := shared(t)
	alert := func(out, name string) bool { return regexp.MustCompile(`alert ` + name).MatchString(out) }

	t.Run("TLS 1.0 and 1.1 refused", func(t *testing.T) {
		for _, v := range []string{"-tls1", "-tls1_1"} {
			out, ok := sClient(t, s, "", v, "-cipher", "DEFAULT:@SECLEVEL=0")
			if ok || !alert(out, "protocol version") || !strings.Contains(out, "Cipher is (NONE)") {
				t.Errorf("s_client %s: the server did not refuse with a protocol_version alert:\n%s", v, out)
			}
		}
	})
	t.Run("TLS 1.2 and 1.3 accepted", func(t *testing.T) {
		for v, proto := range map[string]string{"-tls1_2": "TLSv1.2", "-tls1_3": "TLSv1.3"} {
			out, ok := sClient(t, s, "", v)
			if !ok || !strings.Contains(out, "Protocol  : "+proto) || !strings.Contains(out, "Verify return code: 0 (ok)") {
				t.Errorf("s_client %s:\n%s", v, out)
			}
		}
	})
	t.Run("cipher list enforced", func(t *testing.T) {
		for _, c := range strings.Split(sharedCipherList, ":") {
			out, ok := sClient(t, s, "", "-tls1_2", "-cipher", c)
			if !ok || !strings.Contains(out, "Cipher is "+c) {
				t.Errorf("s_client -cipher %s (listed): not accepted:\n%s", c, out)
			}
		}
		for _, c := range []string{"ECDHE-ECDSA-AES128-GCM-SHA256", "ECDHE-ECDSA-AES128-SHA", "ECDHE-ECDSA-AES256-SHA"} {
			out, ok := sClient(t, s, "", "-tls1_2", "-cipher", c)
			if ok || !alert(out, "handshake failure") {
				t.Errorf("s_client -cipher %s (not listed): the server did not refuse with a handshake_failure alert:\n%s", c, out)
			}
		}
	})
	t.Run("no renegotiation", func(t *testing.T) {
		for _, extra := range [][]string{nil, {"-legacy_renegotiation"}} {
			out, ok := sClient(t, s, "R\n", append([]string{"-tls1_2"}, extra...)...)
			_, after, started := strings.Cut(out, "RENEGOTIATING")
			if !started {
				t.Fatalf("s_client did not try to renegotiate:\n%s", out)
			}
			if ok || !alert(after, "unexpected message|no renegotiation") || strings.Contains(after, "verify return") {
				t.Errorf("s_client -tls1_2 %v: the renegotiation was not refused:\n%s", extra, out)
			}
		}
		out, ok := sClient(t, s, "", "-tls1_3")
		if !ok || !strings.Contains(out, "Secure Renegotiation IS NOT supported") {
			t.Errorf("s_client -tls1_3:\n%s", out)
		}
	})
}
