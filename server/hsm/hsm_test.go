//go:build cgo

package hsm_test

import (
	"bytes"
	"errors"
	"fmt"
	"log/slog"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"testing"

	"trustee.dev/trustee/server/hsm"
	"trustee.dev/trustee/server/hsm/hsmtest"
)

// open opens a fresh SoftHSM2 token, closed when t ends.
func open(t testing.TB) (*hsm.Token, hsm.Config) {
	t.Helper()
	cfg := hsmtest.NewToken(t)
	tok, err := hsm.Open(cfg)
	if err != nil {
		t.Fatalf("Open: %v", err)
	}
	t.Cleanup(func() {
		if err := tok.Close(); err != nil {
			t.Errorf("Close: %v", err)
		}
	})
	return tok, cfg
}

func TestGenerateFindDestroy(t *testing.T) {
	tok, _ := open(t)

	if _, err := tok.Key("kek-1"); !errors.Is(err, hsm.ErrNoKey) {
		t.Fatalf("Key before GenerateKey = %v, want ErrNoKey", err)
	}
	k, err := tok.GenerateKey("kek-1")
	if err != nil {
		t.Fatal(err)
	}
	if k.Label() != "kek-1" {
		t.Errorf("Label = %q", k.Label())
	}
	sealed, err := k.Seal([]byte("data key"), []byte("aad"))
	if err != nil {
		t.Fatal(err)
	}

	// Found again by label (also by a second Token on the same token), it is the same key.
	found, err := tok.Key("kek-1")
	if err != nil {
		t.Fatal(err)
	}
	if pt, err := found.Open(sealed, []byte("aad")); err != nil || string(pt) != "data key" {
		t.Fatalf("Open with the found key = %q, %v", pt, err)
	}

	// A second key is a different key.
	k2, err := tok.GenerateKey("kek-2")
	if err != nil {
		t.Fatal(err)
	}
	if _, err := k2.Open(sealed, []byte("aad")); !errors.Is(err, hsm.ErrAuth) {
		t.Fatalf("Open with another key = %v, want ErrAuth", err)
	}

	// Duplicate labels are refused, and the existing key survives.
	if _, err := tok.GenerateKey("kek-1"); !errors.Is(err, hsm.ErrKeyExists) {
		t.Fatalf("GenerateKey of an existing label = %v, want ErrKeyExists", err)
	}
	if pt, err := k.Open(sealed, []byte("aad")); err != nil || string(pt) != "data key" {
		t.Fatalf("Open after the refused GenerateKey = %q, %v", pt, err)
	}

	if err := tok.DestroyKey("kek-1"); err != nil {
		t.Fatal(err)
	}
	if _, err := tok.Key("kek-1"); !errors.Is(err, hsm.ErrNoKey) {
		t.Fatalf("Key after DestroyKey = %v, want ErrNoKey", err)
	}
	for name, err := range map[string]error{
		"Seal":       func() error { _, err := k.Seal([]byte("x"), nil); return err }(),
		"Open":       func() error { _, err := found.Open(sealed, []byte("aad")); return err }(),
		"DestroyKey": tok.DestroyKey("kek-1"),
	} {
		if !errors.Is(err, hsm.ErrNoKey) || errors.Is(err, hsm.ErrUnavailable) {
			t.Errorf("%s with a destroyed key = %v, want ErrNoKey only", name, err)
		}
	}
	// The other key is untouched; the label can be used again.
	if _, err := k2.Seal([]byte("x"), nil); err != nil {
		t.Fatal(err)
	}
	if _, err := tok.GenerateKey("kek-1"); err != nil {
		t.Fatalf("GenerateKey after DestroyKey: %v", err)
	}
}

func TestSealOpen(t *testing.T) {
	tok, _ := open(t)
	k, err := tok.GenerateKey("kek")
	if err != nil {
		t.Fatal(err)
	}
	for _, n := range []int{0, 1, 16, 32, 1000, 65536} {
		pt := bytes.Repeat([]byte{byte(n)}, n)
		for _, aad := range [][]byte{nil, []byte("org/key-id")} {
			sealed, err := k.Seal(pt, aad)
			if err != nil {
				t.Fatalf("Seal(%d bytes): %v", n, err)
			}
			if len(sealed) != n+hsm.Overhead {
				t.Fatalf("Seal(%d bytes) made %d bytes, want %d", n, len(sealed), n+hsm.Overhead)
			}
			got, err := k.Open(sealed, aad)
			if err != nil {
				t.Fatalf("Open(%d bytes): %v", n, err)
			}
			if !bytes.Equal(got, pt) || got == nil {
				t.Fatalf("Open(%d bytes) = %d bytes %x...", n, len(got), got[:min(len(got), 8)])
			}
		}
	}

	// Each Seal has its own IV.
	a, _ := k.Seal([]byte("same"), nil)
	b, _ := k.Seal([]byte("same"), nil)
	if bytes.Equal(a[:hsm.NonceSize], b[:hsm.NonceSize]) || bytes.Equal(a, b) {
		t.Fatal("two Seals of the same plaintext share an IV")
	}
}

// The token encrypts with the IV this package gives it (it does not make
// its own): the same IV gives the same ciphertext, and Open uses the IV at
// the start of the message.
func TestTokenUsesGivenIV(t *testing.T) {
	tok, _ := open(t)
	k, err := tok.GenerateKey("kek")
	if err != nil {
		t.Fatal(err)
	}
	nonce := bytes.Repeat([]byte{7}, hsm.NonceSize)
	a, err := k.SealWithNonce(nonce, []byte("plaintext"), []byte("aad"))
	if err != nil {
		t.Fatal(err)
	}
	b, err := k.SealWithNonce(nonce, []byte("plaintext"), []byte("aad"))
	if err != nil {
		t.Fatal(err)
	}
	if !bytes.Equal(a, b) || !bytes.Equal(a[:hsm.NonceSize], nonce) {
		t.Fatalf("same IV, different output:\n%x\n%x", a, b)
	}
	nonce[0] = 8
	c, _ := k.SealWithNonce(nonce, []byte("plaintext"), []byte("aad"))
	if bytes.Equal(a[hsm.NonceSize:], c[hsm.NonceSize:]) {
		t.Fatal("a different IV gave the same ciphertext: the token ignores the IV")
	}
	if pt, err := k.Open(c, []byte("aad")); err != nil || string(pt) != "plaintext" {
		t.Fatalf("Open = %q, %v", pt, err)
	}
}

func TestOpenRejectsTampering(t *testing.T) {
	tok, _ := open(t)
	k, err := tok.GenerateKey("kek")
	if err != nil {
		t.Fatal(err)
	}
	aad := []byte("org-1/key-7")
	sealed, err := k.Seal([]byte("a 32-byte data encryption key!!!"), aad)
	if err != nil {
		t.Fatal(err)
	}
	flip := func(i int) []byte {
		b := bytes.Clone(sealed)
		b[i] ^= 0x01
		return b
	}
	cases := map[string]struct{ sealed, aad []byte }{
		"wrong aad":         {sealed, []byte("org-1/key-8")},
		"no aad":            {sealed, nil},
		"flipped IV byte":   {flip(0), aad},
		"flipped ct byte":   {flip(hsm.NonceSize + 3), aad},
		"flipped tag byte":  {flip(len(sealed) - 1), aad},
		"truncated":         {sealed[:len(sealed)-1], aad},
		"extended":          {append(bytes.Clone(sealed), 0), aad},
		"shorter than tag":  {sealed[:hsm.Overhead-1], aad},
		"empty":             {nil, aad},
		"only IV and tag":   {sealed[:hsm.Overhead], aad},
		"IV of another msg": {append(bytes.Repeat([]byte{1}, hsm.NonceSize), sealed[hsm.NonceSize:]...), aad},
	}
	for name, c := range cases {
		pt, err := k.Open(c.sealed, c.aad)
		if !errors.Is(err, hsm.ErrAuth) || errors.Is(err, hsm.ErrUnavailable) || pt != nil {
			t.Errorf("%s: Open = %q, %v; want ErrAuth only", name, pt, err)
		}
	}
	// The key still works after the failures.
	if pt, err := k.Open(sealed, aad); err != nil || len(pt) != 32 {
		t.Fatalf("Open after the failures = %q, %v", pt, err)
	}
}

func TestKeyAttributes(t *testing.T) {
	tok, cfg := open(t)
	k, err := tok.GenerateKey("kek-attrs")
	if err != nil {
		t.Fatal(err)
	}
	a, err := k.Attributes()
	if err != nil {
		t.Fatal(err)
	}
	want := hsm.KeyAttributes{
		Sensitive: true, Extractable: false, AlwaysSensitive: true, NeverExtractable: true,
		Token: true, Encrypt: true, Decrypt: true, KeyType: "AES", ValueLen: 32,
	}
	if a != want {
		t.Errorf("Attributes = %+v\nwant %+v", a, want)
	}
	if err := a.Check(); err != nil {
		t.Error(err)
	}
	bad := a
	bad.Extractable, bad.ValueLen = true, 16
	if err := bad.Check(); err == nil || !strings.Contains(err.Error(), "extractable") || !strings.Contains(err.Error(), "16-byte") {
		t.Errorf("Check of an extractable 128-bit key = %v", err)
	}

	// The same seen from outside, by OpenSC's pkcs11-tool.
	if _, err := exec.LookPath("pkcs11-tool"); err != nil {
		if os.Getenv(hsmtest.RequireEnv) != "" {
			t.Fatal("pkcs11-tool is not installed (Debian package opensc)")
		}
		t.Skip("pkcs11-tool is not installed (Debian package opensc): skipping the outside view")
	}
	tool := func(args ...string) (string, error) {
		cmd := exec.Command("pkcs11-tool", append([]string{"--module", cfg.Module,
			"--token-label", cfg.TokenLabel, "--login", "--pin", cfg.PIN}, args...)...)
		cmd.Env = append(os.Environ(), hsmtest.Env(cfg)...)
		out, err := cmd.CombinedOutput()
		return string(out), err
	}
	out, err := tool("--list-objects", "--type", "secrkey")
	if err != nil {
		t.Fatalf("pkcs11-tool --list-objects: %v\n%s", err, out)
	}
	obj := pkcs11ToolObject(out, "kek-attrs")
	if obj == nil {
		t.Fatalf("pkcs11-tool does not list key kek-attrs:\n%s", out)
	}
	if obj["type"] != "Secret Key Object; AES length 32" {
		t.Errorf("pkcs11-tool: %q, want an AES key of 32 bytes\n%s", obj["type"], out)
	}
	access := set(obj["Access"])
	for _, w := range []string{"sensitive", "always sensitive", "never extractable"} {
		if !access[w] {
			t.Errorf("pkcs11-tool Access %q lacks %q\n%s", obj["Access"], w, out)
		}
	}
	if access["extractable"] {
		t.Errorf("pkcs11-tool says the key is extractable: %q", obj["Access"])
	}
	usage := set(obj["Usage"])
	if !usage["encrypt"] || !usage["decrypt"] || usage["wrap"] || usage["unwrap"] || usage["sign"] || usage["derive"] {
		t.Errorf("pkcs11-tool Usage %q, want encrypt and decrypt only", obj["Usage"])
	}

	// Nor can the key's value be read.
	out, err = tool("--read-object", "--type", "secrkey", "--label", "kek-attrs")
	if err == nil {
		t.Fatalf("pkcs11-tool --read-object of the key's value succeeded:\n%x", out)
	}
	if !strings.Contains(out, "CKR_ATTRIBUTE_SENSITIVE") && !strings.Contains(out, "get CKA_VALUE failed") {
		t.Errorf("pkcs11-tool --read-object failed, but not because the key is sensitive:\n%s", out)
	}
}

// pkcs11ToolObject parses pkcs11-tool --list-objects output and returns the
// object labelled label: its header line under "type" and its indented
// "Name: value" lines.
func pkcs11ToolObject(out, label string) map[string]string {
	var cur map[string]string
	for _, line := range strings.Split(out, "\n") {
		if line == "" {
			continue
		}
		if !strings.HasPrefix(line, " ") {
			if cur != nil && cur["label"] == label {
				return cur
			}
			cur = map[string]string{"type": strings.TrimSpace(line)}
			continue
		}
		if cur == nil {
			continue
		}
		name, value, ok := strings.Cut(strings.TrimSpace(line), ":")
		if ok {
			cur[name] = strings.TrimSpace(value)
		}
	}
	if cur != nil && cur["label"] == label {
		return cur
	}
	return nil
}

func set(list string) map[string]bool {
	m := map[string]bool{}
	for _, s := range strings.Split(list, ",") {
		m[strings.TrimSpace(s)] = true
	}
	return m
}

func TestOpenErrors(t *testing.T) {
	cfg := hsmtest.NewToken(t)
	notLib := filepath.Join(t.TempDir(), "not-a-library.so")
	os.WriteFile(notLib, []byte("not a shared object"), 0o600)

	cases := []struct {
		name string
		cfg  hsm.Config
		want []string
	}{
		{"wrong PIN", hsm.Config{Module: cfg.Module, TokenLabel: cfg.TokenLabel, PIN: "wrong-pin-4711"},
			[]string{"wrong PIN", "check the PIN", cfg.TokenLabel, cfg.Module}},
		{"unknown token", hsm.Config{Module: cfg.Module, TokenLabel: "no-such-token", PIN: cfg.PIN},
			[]string{"no token labelled \"no-such-token\"", "check the token label", cfg.Module}},
		{"missing module", hsm.Config{Module: "/nonexistent/libpkcs11.so", TokenLabel: cfg.TokenLabel, PIN: cfg.PIN},
			[]string{"/nonexistent/libpkcs11.so", "check the module path", cfg.TokenLabel}},
		{"not a library", hsm.Config{Module: notLib, TokenLabel: cfg.TokenLabel, PIN: cfg.PIN},
			[]string{notLib, "check the module path", cfg.TokenLabel}},
		{"no module", hsm.Config{TokenLabel: cfg.TokenLabel, PIN: cfg.PIN}, []string{"no PKCS#11 module"}},
		{"no label", hsm.Config{Module: cfg.Module, PIN: cfg.PIN}, []string{"no token label", cfg.Module}},
	}
	for _, c := range cases {
		tok, err := hsm.Open(c.cfg)
		if err == nil {
			tok.Close()
			t.Errorf("%s: Open succeeded", c.name)
			continue
		}
		msg := err.Error()
		for _, w := range c.want {
			if !strings.Contains(msg, w) {
				t.Errorf("%s: error %q does not contain %q", c.name, msg, w)
			}
		}
		for _, pin := range []string{c.cfg.PIN, cfg.PIN} {
			if pin != "" && strings.Contains(msg, pin) {
				t.Errorf("%s: error contains the PIN: %q", c.name, msg)
			}
		}
		if errors.Is(err, hsm.ErrUnavailable) {
			t.Errorf("%s: error wraps ErrUnavailable: %v", c.name, err)
		}
		t.Logf("%s: %v", c.name, err)
	}

	// The right PIN still works after a wrong one.
	tok, err := hsm.Open(cfg)
	if err != nil {
		t.Fatal(err)
	}
	tok.Close()
}

func TestConfigHidesPIN(t *testing.T) {
	cfg := hsm.Config{Module: "/usr/lib/softhsm/libsofthsm2.so", TokenLabel: "kts", PIN: "s3cret-PIN-0815"}
	var logged bytes.Buffer
	slog.New(slog.NewJSONHandler(&logged, nil)).Info("opening", "hsm", cfg)
	slog.New(slog.NewTextHandler(&logged, nil)).Info("opening", "hsm", cfg)
	outs := []string{
		fmt.Sprint(cfg), fmt.Sprintf("%v %+v %#v %s %q", cfg, cfg, cfg, cfg, cfg),
		fmt.Sprintf("%v %+v %#v", &cfg, &cfg, &cfg),
		fmt.Sprintf("%+v", struct{ HSM hsm.Config }{cfg}),
		cfg.String(), cfg.GoString(), logged.String(),
	}
	for _, s := range outs {
		if strings.Contains(s, cfg.PIN) {
			t.Errorf("PIN shown: %s", s)
		}
		if !strings.Contains(s, "kts") {
			t.Errorf("token label not shown: %s", s)
		}
	}
	t.Log(outs[1])
}

func TestInfo(t *testing.T) {
	tok, cfg := open(t)
	info, err := tok.Info()
	if err != nil {
		t.Fatal(err)
	}
	if info.Module != cfg.Module || info.Label != cfg.TokenLabel || info.Manufacturer != "SoftHSM project" ||
		info.Model != "SoftHSM v2" || info.Serial == "" {
		t.Errorf("Info = %+v", info)
	}
	t.Logf("%+v", info)
}

func TestConcurrentSealOpen(t *testing.T) {
	tok, _ := open(t)
	keys := make([]*hsm.Key, 2)
	for i := range keys {
		k, err := tok.GenerateKey(fmt.Sprintf("kek-%d", i))
		if err != nil {
			t.Fatal(err)
		}
		keys[i] = k
	}
	const workers, rounds = 16, 150
	var wg sync.WaitGroup
	errs := make(chan error, workers)
	for w := range workers {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for i := range rounds {
				k := keys[(w+i)%len(keys)]
				pt := []byte(fmt.Sprintf("worker %d round %d", w, i))
				aad := []byte(fmt.Sprintf("aad %d", w))
				sealed, err := k.Seal(pt, aad)
				if err != nil {
					errs <- err
					return
				}
				got, err := k.Open(sealed, aad)
				if err != nil || !bytes.Equal(got, pt) {
					errs <- fmt.Errorf("worker %d round %d: Open = %q, %v", w, i, got, err)
					return
				}
				if i%10 == 0 { // authentication failures in between
					if _, err := k.Open(sealed, []byte("other")); !errors.Is(err, hsm.ErrAuth) {
						errs <- fmt.Errorf("worker %d round %d: Open with wrong aad = %v", w, i, err)
						return
					}
				}
			}
		}()
	}
	wg.Wait()
	close(errs)
	for err := range errs {
		t.Error(err)
	}
}

func BenchmarkSeal(b *testing.B) {
	tok, _ := open(b)
	k, err := tok.GenerateKey("kek")
	if err != nil {
		b.Fatal(err)
	}
	pt, aad := bytes.Repeat([]byte{1}, 32), []byte("org/key-id")
	b.ReportAllocs()
	b.RunParallel(func(pb *testing.PB) {
		for pb.Next() {
			if _, err := k.Seal(pt, aad); err != nil {
				b.Error(err)
				return
			}
		}
	})
}

func BenchmarkOpen(b *testing.B) {
	tok, _ := open(b)
	k, err := tok.GenerateKey("kek")
	if err != nil {
		b.Fatal(err)
	}
	aad := []byte("org/key-id")
	sealed, err := k.Seal(bytes.Repeat([]byte{1}, 32), aad)
	if err != nil {
		b.Fatal(err)
	}
	b.ReportAllocs()
	b.RunParallel(func(pb *testing.PB) {
		for pb.Next() {
			if _, err := k.Open(sealed, aad); err != nil {
				b.Error(err)
				return
			}
		}
	})
}

// Two tokens open at once (made before either is opened: see hsmtest) keep
// their keys apart; a closed Token fails cleanly.
func TestTwoTokensAndClose(t *testing.T) {
	c1, c2 := hsmtest.NewToken(t), hsmtest.NewToken(t)
	t1, err := hsm.Open(c1)
	if err != nil {
		t.Fatal(err)
	}
	defer t1.Close()
	t2, err := hsm.Open(c2)
	if err != nil {
		t.Fatal(err)
	}
	defer t2.Close()
	k1, err := t1.GenerateKey("kek")
	if err != nil {
		t.Fatal(err)
	}
	if _, err := t2.Key("kek"); !errors.Is(err, hsm.ErrNoKey) {
		t.Fatalf("the other token's Key = %v, want ErrNoKey", err)
	}
	k2, err := t2.GenerateKey("kek")
	if err != nil {
		t.Fatal(err)
	}
	sealed, err := k1.Seal([]byte("x"), nil)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := k2.Open(sealed, nil); !errors.Is(err, hsm.ErrAuth) {
		t.Fatalf("Open with the other token's key of the same label = %v, want ErrAuth", err)
	}

	if err := t1.Close(); err != nil {
		t.Fatal(err)
	}
	if err := t1.Close(); err != nil {
		t.Fatalf("second Close: %v", err)
	}
	if _, err := k1.Seal([]byte("x"), nil); err == nil || errors.Is(err, hsm.ErrUnavailable) {
		t.Fatalf("Seal after Close = %v, want a plain error", err)
	}
	if _, err := t1.Key("kek"); err == nil {
		t.Fatal("Key after Close succeeded")
	}
	// The other Token is not affected.
	if _, err := k2.Seal([]byte("x"), nil); err != nil {
		t.Fatal(err)
	}
}

// A key deleted by another process: the next use finds its handle invalid,
// reconnects once to make sure, and reports ErrNoKey.
func TestKeyDestroyedElsewhere(t *testing.T) {
	if _, err := exec.LookPath("pkcs11-tool"); err != nil {
		if os.Getenv(hsmtest.RequireEnv) != "" {
			t.Fatal("pkcs11-tool is not installed (Debian package opensc)")
		}
		t.Skip("pkcs11-tool is not installed (Debian package opensc)")
	}
	tok, cfg := open(t)
	k, err := tok.GenerateKey("kek")
	if err != nil {
		t.Fatal(err)
	}
	other, err := tok.GenerateKey("other")
	if err != nil {
		t.Fatal(err)
	}
	if _, err := k.Seal([]byte("x"), nil); err != nil {
		t.Fatal(err)
	}
	cmd := exec.Command("pkcs11-tool", "--module", cfg.Module, "--token-label", cfg.TokenLabel,
		"--login", "--pin", cfg.PIN, "--delete-object", "--type", "secrkey", "--label", "kek")
	cmd.Env = append(os.Environ(), hsmtest.Env(cfg)...)
	if out, err := cmd.CombinedOutput(); err != nil {
		t.Fatalf("pkcs11-tool --delete-object: %v\n%s", err, out)
	}
	for i := range 2 {
		_, err := k.Seal([]byte("x"), nil)
		if !errors.Is(err, hsm.ErrNoKey) || errors.Is(err, hsm.ErrUnavailable) {
			t.Fatalf("Seal %d with the deleted key = %v, want ErrNoKey only", i, err)
		}
	}
	if _, err := other.Seal([]byte("x"), nil); err != nil {
		t.Fatalf("Seal with the other key: %v", err)
	}
}
