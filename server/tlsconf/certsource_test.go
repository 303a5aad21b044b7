package tlsconf

import (
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/rsa"
	"crypto/tls"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/asn1"
	"encoding/pem"
	"math/big"
	"os"
	"path/filepath"
	"reflect"
	"strings"
	"sync"
	"testing"
	"time"
)

const passwordScript = "/bin/echo -n " + testPassword

// keyCase describes how to make a key with openssl in a directory: the
// commands write key.pem; certificates are signed with plain.pem, the same
// key unencrypted.
type keyCase struct {
	name     string
	cmds     [][]string
	header   string // expected in key.pem
	script   string
	wantType string
}

func keyCases() []keyCase {
	rsaGen := []string{"genpkey", "-algorithm", "RSA", "-pkeyopt", "rsa_keygen_bits:2048", "-out", "plain.pem"}
	ecGen := []string{"genpkey", "-algorithm", "EC", "-pkeyopt", "ec_paramgen_curve:P-256", "-out", "plain.pem"}
	pass := "pass:" + testPassword
	return []keyCase{
		{"RSA PKCS#1", [][]string{rsaGen, {"rsa", "-in", "plain.pem", "-traditional", "-out", "key.pem"}}, "BEGIN RSA PRIVATE KEY", "", "*rsa.PrivateKey"},
		{"RSA PKCS#8", [][]string{rsaGen, {"pkey", "-in", "plain.pem", "-out", "key.pem"}}, "BEGIN PRIVATE KEY", "", "*rsa.PrivateKey"},
		{"EC SEC1 with parameters", [][]string{{"ecparam", "-name", "prime256v1", "-genkey", "-out", "key.pem"}, {"pkey", "-in", "key.pem", "-out", "plain.pem"}}, "BEGIN EC PARAMETERS", "", "*ecdsa.PrivateKey"},
		{"EC SEC1", [][]string{ecGen, {"ec", "-in", "plain.pem", "-out", "key.pem"}}, "BEGIN EC PRIVATE KEY", "", "*ecdsa.PrivateKey"},
		{"EC PKCS#8", [][]string{ecGen, {"pkey", "-in", "plain.pem", "-out", "key.pem"}}, "BEGIN PRIVATE KEY", "", "*ecdsa.PrivateKey"},
		{"Ed25519 PKCS#8", [][]string{{"genpkey", "-algorithm", "ed25519", "-out", "plain.pem"}, {"pkey", "-in", "plain.pem", "-out", "key.pem"}}, "BEGIN PRIVATE KEY", "", "ed25519.PrivateKey"},
		{"RSA legacy encrypted", [][]string{rsaGen, {"rsa", "-in", "plain.pem", "-aes256", "-traditional", "-passout", pass, "-out", "key.pem"}}, "Proc-Type: 4,ENCRYPTED", passwordScript, "*rsa.PrivateKey"},
		{"EC legacy encrypted", [][]string{ecGen, {"ec", "-in", "plain.pem", "-aes256", "-passout", pass, "-out", "key.pem"}}, "Proc-Type: 4,ENCRYPTED", passwordScript, "*ecdsa.PrivateKey"},
		{"RSA PKCS#8 encrypted", [][]string{{"genpkey", "-algorithm", "RSA", "-pkeyopt", "rsa_keygen_bits:2048", "-aes256", "-pass", pass, "-out", "key.pem"}, {"pkey", "-in", "key.pem", "-passin", pass, "-out", "plain.pem"}}, "BEGIN ENCRYPTED PRIVATE KEY", passwordScript, "*rsa.PrivateKey"},
		{"EC PKCS#8 encrypted", [][]string{ecGen, {"pkcs8", "-topk8", "-v2", "aes256", "-in", "plain.pem", "-passout", pass, "-out", "key.pem"}}, "BEGIN ENCRYPTED PRIVATE KEY", passwordScript, "*ecdsa.PrivateKey"},
		{"password printed with a newline", [][]string{ecGen, {"pkcs8", "-topk8", "-v2", "aes128", "-in", "plain.pem", "-passout", pass, "-out", "key.pem"}}, "BEGIN ENCRYPTED PRIVATE KEY", "/bin/echo " + testPassword, "*ecdsa.PrivateKey"},
		{"password script for a plain key", [][]string{ecGen, {"pkey", "-in", "plain.pem", "-out", "key.pem"}}, "BEGIN PRIVATE KEY", passwordScript, "*ecdsa.PrivateKey"},
	}
}

func TestNewCertSourceKeyFormats(t *testing.T) {
	requireOpenSSL(t)
	for _, tc := range keyCases() {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			dir := t.TempDir()
			for _, cmd := range tc.cmds {
				openssl(t, dir, cmd...)
			}
			if key := readFile(t, filepath.Join(dir, "key.pem")); !strings.Contains(key, tc.header) {
				t.Fatalf("key.pem does not contain %q:\n%s", tc.header, key)
			}
			selfSign(t, dir, "plain.pem", "cert.pem")
			log, logs := newTestLogger(t)
			src, err := NewCertSource(filepath.Join(dir, "cert.pem"), "", filepath.Join(dir, "key.pem"), tc.script, log)
			if err != nil {
				t.Fatalf("NewCertSource: %v", err)
			}
			cert := src.Certificate()
			if got := reflect.TypeOf(cert.PrivateKey).String(); got != tc.wantType {
				t.Errorf("key type = %s, want %s", got, tc.wantType)
			}
			if cert.Leaf == nil || cert.Leaf.Subject.CommonName != "localhost" || len(cert.Certificate) != 1 {
				t.Errorf("unexpected certificate: leaf %v, chain length %d", cert.Leaf, len(cert.Certificate))
			}
			if tc.name == "password script for a plain key" && !strings.Contains(logs.String(), "not encrypted") {
				t.Errorf("no note that the password script is unused; log:\n%s", logs)
			}
			// The key really signs: complete a handshake with it.
			cfg, _, err := ServerConfig("", "", src)
			if err != nil {
				t.Fatal(err)
			}
			pool := x509.NewCertPool()
			pool.AddCert(cert.Leaf)
			if _, err := handshake(serve(t, cfg), &tls.Config{RootCAs: pool, ServerName: "localhost"}); err != nil {
				t.Fatalf("handshake: %v", err)
			}
		})
	}
}

func TestNewCertSourceErrors(t *testing.T) {
	requireOpenSSL(t)
	dir := t.TempDir()
	pass := "pass:" + testPassword
	openssl(t, dir, "genpkey", "-algorithm", "EC", "-pkeyopt", "ec_paramgen_curve:P-256", "-out", "key.pem")
	openssl(t, dir, "genpkey", "-algorithm", "EC", "-pkeyopt", "ec_paramgen_curve:P-256", "-out", "other-key.pem")
	openssl(t, dir, "pkcs8", "-topk8", "-v2", "aes256", "-in", "key.pem", "-passout", pass, "-out", "key-pkcs8-enc.pem")
	openssl(t, dir, "ec", "-in", "key.pem", "-aes256", "-passout", pass, "-out", "key-legacy-enc.pem")
	openssl(t, dir, "genpkey", "-algorithm", "X25519", "-out", "x25519.pem")
	selfSign(t, dir, "key.pem", "cert.pem")
	writeFile(t, filepath.Join(dir, "garbage.pem"), "not a PEM file\n")
	writeFile(t, filepath.Join(dir, "dsa.pem"), string(pem.EncodeToMemory(&pem.Block{Type: "DSA PRIVATE KEY", Bytes: []byte{1, 2, 3}})))
	writeFile(t, filepath.Join(dir, "bad-cert.pem"), string(pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: []byte{1, 2, 3}})))
	failing := filepath.Join(dir, "failing.sh")
	writeFile(t, failing, "#!/bin/sh\necho "+testPassword+"\necho \"oops, the vault said no to "+testPassword+"\" >&2\nexit 3\n")
	if err := os.Chmod(failing, 0o700); err != nil {
		t.Fatal(err)
	}
	p := func(name string) string { return filepath.Join(dir, name) }
	writeFile(t, p("key-pkcs8-corrupt.pem"), corruptPKCS8(t, readFile(t, p("key-pkcs8-enc.pem"))))

	tests := []struct {
		name             string
		cert, chain, key string
		script           string
		timeout          time.Duration
		want             []string
	}{
		{"missing certificate", p("nope.pem"), "", p("key.pem"), "", 0, []string{"SSL_CERTIFICATE:", "nope.pem", "no such file"}},
		{"missing key", p("cert.pem"), "", p("nope.pem"), "", 0, []string{"SSL_PRIVATE_KEY:", "nope.pem", "no such file"}},
		{"missing chain", p("cert.pem"), p("nope.pem"), p("key.pem"), "", 0, []string{"SSL_CERTIFICATE_CHAIN:", "nope.pem"}},
		{"empty certificate name", "", "", p("key.pem"), "", 0, []string{"SSL_CERTIFICATE is not set"}},
		{"empty key name", p("cert.pem"), "", "", "", 0, []string{"SSL_PRIVATE_KEY is not set"}},
		{"certificate not PEM", p("garbage.pem"), "", p("key.pem"), "", 0, []string{"no PEM CERTIFICATE found", "openssl x509 -inform der"}},
		{"certificate and key swapped", p("key.pem"), "", p("cert.pem"), "", 0, []string{"SSL_CERTIFICATE", "not swapped"}},
		{"corrupt certificate", p("bad-cert.pem"), "", p("key.pem"), "", 0, []string{"SSL_CERTIFICATE", "certificate 1"}},
		{"chain without certificates", p("cert.pem"), p("garbage.pem"), p("key.pem"), "", 0, []string{"SSL_CERTIFICATE_CHAIN", "no PEM CERTIFICATE"}},
		{"key not PEM", p("cert.pem"), "", p("garbage.pem"), "", 0, []string{"SSL_PRIVATE_KEY", "no PEM private key"}},
		{"unsupported key block", p("cert.pem"), "", p("dsa.pem"), "", 0, []string{"unsupported PEM block \"DSA PRIVATE KEY\""}},
		{"key cannot sign", p("cert.pem"), "", p("x25519.pem"), "", 0, []string{"unsupported key type"}},
		{"key does not match certificate", p("cert.pem"), "", p("other-key.pem"), "", 0, []string{"does not match the certificate"}},
		{"PKCS#8 encrypted without script", p("cert.pem"), "", p("key-pkcs8-enc.pem"), "", 0, []string{"is encrypted but SSL_PRIVATE_KEY_PASSWORD_SCRIPT is not set"}},
		{"legacy encrypted without script", p("cert.pem"), "", p("key-legacy-enc.pem"), "", 0, []string{"is encrypted but SSL_PRIVATE_KEY_PASSWORD_SCRIPT is not set"}},
		{"PKCS#8 wrong password", p("cert.pem"), "", p("key-pkcs8-enc.pem"), "/bin/echo -n wrong", 0, []string{"wrong password"}},
		{"legacy wrong password", p("cert.pem"), "", p("key-legacy-enc.pem"), "/bin/echo -n wrong", 0, []string{"wrong password"}},
		{"script fails", p("cert.pem"), "", p("key-pkcs8-enc.pem"), "/bin/false " + testPassword, 0, []string{`script "/bin/false" exited with status 1`, "prints the key password on stdout"}},
		{"script fails with stderr", p("cert.pem"), "", p("key-pkcs8-enc.pem"), failing, 0, []string{"exited with status 3", "oops, the vault said no to [redacted]"}},
		{"script missing", p("cert.pem"), "", p("key-pkcs8-enc.pem"), "/nonexistent/kts-password " + testPassword, 0, []string{`cannot run "/nonexistent/kts-password"`}},
		{"script prints nothing", p("cert.pem"), "", p("key-pkcs8-enc.pem"), "/bin/true", 0, []string{"printed nothing on stdout"}},
		{"script prints too much", p("cert.pem"), "", p("key-pkcs8-enc.pem"), "/usr/bin/head -c 70000 /dev/zero", 0, []string{"printed more than 65536 bytes"}},
		{"corrupt encrypted PKCS#8", p("cert.pem"), "", p("key-pkcs8-corrupt.pem"), passwordScript, 0, []string{"SSL_PRIVATE_KEY", "malformed encrypted PKCS#8 key"}},
		{"script hangs", p("cert.pem"), "", p("key-pkcs8-enc.pem"), "/bin/sleep 30", 300 * time.Millisecond, []string{"did not finish within 300ms"}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if tt.timeout != 0 {
				old := passwordScriptTimeout
				passwordScriptTimeout = tt.timeout
				t.Cleanup(func() { passwordScriptTimeout = old })
			}
			log, _ := newTestLogger(t)
			src, err := NewCertSource(tt.cert, tt.chain, tt.key, tt.script, log)
			if err == nil {
				t.Fatalf("NewCertSource succeeded (%v); want an error", src.Certificate().Leaf.Subject)
			}
			t.Log(err)
			for _, w := range tt.want {
				if !strings.Contains(err.Error(), w) {
					t.Errorf("error %q does not contain %q", err, w)
				}
			}
			if strings.Contains(err.Error(), testPassword) {
				t.Errorf("error %q reveals the password", err)
			}
		})
	}
}

// corruptPKCS8 cuts one byte off the ciphertext of an encrypted PKCS#8 key,
// so that it is no longer a whole number of cipher blocks.
func corruptPKCS8(t *testing.T, keyPEM string) string {
	t.Helper()
	block, _ := pem.Decode([]byte(keyPEM))
	var info struct {
		Algo pkix.AlgorithmIdentifier
		Data []byte
	}
	if _, err := asn1.Unmarshal(block.Bytes, &info); err != nil {
		t.Fatal(err)
	}
	info.Data = info.Data[:len(info.Data)-1]
	der, err := asn1.Marshal(info)
	if err != nil {
		t.Fatal(err)
	}
	return string(pem.EncodeToMemory(&pem.Block{Type: block.Type, Bytes: der}))
}

func TestCertSourceConcurrentRotation(t *testing.T) {
	dir := t.TempDir()
	certFile, keyFile := filepath.Join(dir, "cert.pem"), filepath.Join(dir, "key.pem")
	if err := GenerateSelfSigned([]string{"localhost"}, certFile, keyFile, time.Hour); err != nil {
		t.Fatal(err)
	}
	next := t.TempDir()
	if err := GenerateSelfSigned([]string{"localhost"}, filepath.Join(next, "cert.pem"), filepath.Join(next, "key.pem"), time.Hour); err != nil {
		t.Fatal(err)
	}
	log, _ := newTestLogger(t)
	src, err := NewCertSource(certFile, "", keyFile, "", log)
	if err != nil {
		t.Fatal(err)
	}
	oldSerial := src.Certificate().Leaf.SerialNumber

	var wg sync.WaitGroup
	stop := time.Now().Add(checkInterval + 500*time.Millisecond)
	for range 8 {
		wg.Go(func() {
			for time.Now().Before(stop) {
				c, err := src.GetCertificate(nil)
				if err != nil || c == nil || c.Leaf == nil {
					t.Errorf("GetCertificate = %v, %v", c, err)
					return
				}
			}
		})
	}
	replaceFile(t, keyFile, readFile(t, filepath.Join(next, "key.pem")))
	replaceFile(t, certFile, readFile(t, filepath.Join(next, "cert.pem")))
	wg.Wait()
	if src.Certificate().Leaf.SerialNumber.Cmp(oldSerial) == 0 {
		t.Error("the replaced certificate was not picked up")
	}
}

func TestCertSourceChain(t *testing.T) {
	requireOpenSSL(t)
	dir := t.TempDir()
	ec := []string{"-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:P-256", "-nodes"}
	openssl(t, dir, append([]string{"req", "-x509", "-subj", "/CN=Test Root CA", "-days", "2", "-keyout", "ca-key.pem", "-out", "ca.pem"}, ec...)...)
	openssl(t, dir, append([]string{"req", "-x509", "-subj", "/CN=Unrelated CA", "-days", "2", "-keyout", "other-ca-key.pem", "-out", "other-ca.pem"}, ec...)...)
	openssl(t, dir, append([]string{"req", "-new", "-subj", "/CN=localhost", "-keyout", "key.pem", "-out", "leaf.csr"}, ec...)...)
	writeFile(t, filepath.Join(dir, "ext.cnf"), "subjectAltName=DNS:localhost,IP:127.0.0.1\n")
	openssl(t, dir, "x509", "-req", "-in", "leaf.csr", "-CA", "ca.pem", "-CAkey", "ca-key.pem", "-CAcreateserial",
		"-days", "2", "-extfile", "ext.cnf", "-out", "cert.pem")

	t.Run("chain file", func(t *testing.T) {
		log, logs := newTestLogger(t)
		src, err := NewCertSource(filepath.Join(dir, "cert.pem"), filepath.Join(dir, "ca.pem"), filepath.Join(dir, "key.pem"), "", log)
		if err != nil {
			t.Fatal(err)
		}
		if n := len(src.Certificate().Certificate); n != 2 {
			t.Fatalf("chain length = %d, want 2", n)
		}
		if strings.Contains(logs.String(), "issued the server certificate") {
			t.Errorf("unexpected chain warning:\n%s", logs)
		}
		cfg, _, err := ServerConfig("", "", src)
		if err != nil {
			t.Fatal(err)
		}
		ca, err := x509.ParseCertificate(src.Certificate().Certificate[1])
		if err != nil {
			t.Fatal(err)
		}
		pool := x509.NewCertPool()
		pool.AddCert(ca)
		st, err := handshake(serve(t, cfg), &tls.Config{RootCAs: pool, ServerName: "localhost"})
		if err != nil {
			t.Fatalf("handshake verified against the CA: %v", err)
		}
		if len(st.PeerCertificates) != 2 || st.PeerCertificates[1].Subject.CommonName != "Test Root CA" {
			t.Errorf("server sent %d certificates", len(st.PeerCertificates))
		}
	})
	t.Run("chain in the certificate file", func(t *testing.T) {
		both := filepath.Join(t.TempDir(), "fullchain.pem")
		writeFile(t, both, readFile(t, filepath.Join(dir, "cert.pem"))+readFile(t, filepath.Join(dir, "ca.pem")))
		src, err := NewCertSource(both, "", filepath.Join(dir, "key.pem"), "", nil)
		if err != nil {
			t.Fatal(err)
		}
		if n := len(src.Certificate().Certificate); n != 2 {
			t.Fatalf("chain length = %d, want 2", n)
		}
	})
	t.Run("unrelated chain", func(t *testing.T) {
		log, logs := newTestLogger(t)
		if _, err := NewCertSource(filepath.Join(dir, "cert.pem"), filepath.Join(dir, "other-ca.pem"), filepath.Join(dir, "key.pem"), "", log); err != nil {
			t.Fatal(err)
		}
		if !strings.Contains(logs.String(), "no certificate in the chain issued the server certificate") {
			t.Errorf("no chain warning; log:\n%s", logs)
		}
	})
}

// writeGoCert writes a certificate made with crypto/x509, for validity
// periods openssl req cannot produce.
func writeGoCert(t *testing.T, dir string, notBefore, notAfter time.Time) (certFile, keyFile string) {
	t.Helper()
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	tmpl := &x509.Certificate{
		SerialNumber: big.NewInt(42),
		Subject:      pkix.Name{CommonName: "localhost"},
		DNSNames:     []string{"localhost"},
		NotBefore:    notBefore,
		NotAfter:     notAfter,
	}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, tmpl, key.Public(), key)
	if err != nil {
		t.Fatal(err)
	}
	keyDER, err := x509.MarshalECPrivateKey(key)
	if err != nil {
		t.Fatal(err)
	}
	certFile, keyFile = filepath.Join(dir, "cert.pem"), filepath.Join(dir, "key.pem")
	writeFile(t, certFile, string(pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: der})))
	writeFile(t, keyFile, string(pem.EncodeToMemory(&pem.Block{Type: "EC PRIVATE KEY", Bytes: keyDER})))
	return certFile, keyFile
}

func TestCertSourceValidityWarnings(t *testing.T) {
	now := time.Now()
	tests := []struct {
		name                string
		notBefore, notAfter time.Time
		want                string
	}{
		{"expired", now.Add(-48 * time.Hour), now.Add(-time.Hour), "has expired"},
		{"not yet valid", now.Add(time.Hour), now.Add(48 * time.Hour), "not valid yet"},
		{"expires soon", now.Add(-time.Hour), now.Add(24 * time.Hour), "expires soon"},
		{"valid", now.Add(-time.Hour), now.Add(365 * 24 * time.Hour), ""},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			certFile, keyFile := writeGoCert(t, t.TempDir(), tt.notBefore, tt.notAfter)
			log, logs := newTestLogger(t)
			if _, err := NewCertSource(certFile, "", keyFile, "", log); err != nil {
				t.Fatalf("NewCertSource: %v", err)
			}
			if tt.want == "" {
				if strings.Contains(logs.String(), "level=WARN") {
					t.Errorf("unexpected warning:\n%s", logs)
				}
			} else if !strings.Contains(logs.String(), tt.want) {
				t.Errorf("log does not contain %q:\n%s", tt.want, logs)
			}
		})
	}
}

func TestCertSourceRotation(t *testing.T) {
	requireOpenSSL(t)
	dir := t.TempDir()
	certFile, keyFile := filepath.Join(dir, "cert.pem"), filepath.Join(dir, "key.pem")
	openssl(t, dir, "genpkey", "-algorithm", "EC", "-pkeyopt", "ec_paramgen_curve:P-256", "-out", "key.pem")
	selfSign(t, dir, "key.pem", "cert.pem", "-set_serial", "1001")
	origCert := readFile(t, certFile)
	// The replacement: a new RSA key, encrypted, and a new certificate.
	openssl(t, dir, "genpkey", "-algorithm", "RSA", "-pkeyopt", "rsa_keygen_bits:2048", "-out", "new-plain.pem")
	openssl(t, dir, "pkcs8", "-topk8", "-v2", "aes256", "-in", "new-plain.pem", "-passout", "pass:"+testPassword, "-out", "new-key.pem")
	selfSign(t, dir, "new-plain.pem", "new-cert.pem", "-set_serial", "2002")

	log, logs := newTestLogger(t)
	src, err := NewCertSource(certFile, "", keyFile, passwordScript, log)
	if err != nil {
		t.Fatal(err)
	}
	cfg, _, err := ServerConfig("tlsv1.2", "", src)
	if err != nil {
		t.Fatal(err)
	}
	addr := serve(t, cfg)
	servedSerial := func() int64 {
		t.Helper()
		st, err := handshake(addr, insecureClient())
		if err != nil {
			t.Fatalf("handshake: %v", err)
		}
		return st.PeerCertificates[0].SerialNumber.Int64()
	}
	if got := servedSerial(); got != 1001 {
		t.Fatalf("served serial %d, want 1001", got)
	}

	replaceFile(t, keyFile, readFile(t, filepath.Join(dir, "new-key.pem")))
	replaceFile(t, certFile, readFile(t, filepath.Join(dir, "new-cert.pem")))
	time.Sleep(checkInterval + 100*time.Millisecond)
	if got := servedSerial(); got != 2002 {
		t.Fatalf("after replacing the files: served serial %d, want 2002; log:\n%s", got, logs)
	}
	if _, ok := src.Certificate().PrivateKey.(*rsa.PrivateKey); !ok {
		t.Errorf("the new key is %T, want RSA", src.Certificate().PrivateKey)
	}

	// A broken certificate file keeps the current certificate in use.
	writeFile(t, certFile, "-----BEGIN CERTIFICATE-----\ngarbage\n")
	time.Sleep(checkInterval + 100*time.Millisecond)
	if got := servedSerial(); got != 2002 {
		t.Fatalf("after corrupting the certificate: served serial %d, want 2002", got)
	}
	if !strings.Contains(logs.String(), "could not be loaded; still serving the previous certificate") {
		t.Errorf("the failed reload was not logged:\n%s", logs)
	}

	// So does a certificate that does not match the key; each broken
	// version is reported once.
	replaceFile(t, certFile, origCert)
	time.Sleep(checkInterval + 100*time.Millisecond)
	if got := servedSerial(); got != 2002 {
		t.Fatalf("after installing a certificate for another key: served serial %d, want 2002", got)
	}
	time.Sleep(checkInterval + 100*time.Millisecond)
	servedSerial()
	if n := strings.Count(logs.String(), "could not be loaded"); n != 2 {
		t.Errorf("%d failed reloads logged, want 2:\n%s", n, logs)
	}
	if !strings.Contains(logs.String(), "does not match the certificate") {
		t.Errorf("the key mismatch was not logged:\n%s", logs)
	}
}
