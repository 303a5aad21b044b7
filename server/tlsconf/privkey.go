package tlsconf

import (
	"bytes"
	"context"
	"crypto"
	"crypto/ecdsa"
	"crypto/ed25519"
	"crypto/rsa"
	"crypto/x509"
	"encoding/pem"
	"errors"
	"fmt"
	"os/exec"
	"strings"
	"time"

	"github.com/youmark/pkcs8"
)

// passwordScriptTimeout bounds SSL_PRIVATE_KEY_PASSWORD_SCRIPT.
var passwordScriptTimeout = 10 * time.Second

const (
	maxPasswordBytes = 64 << 10
	maxStderrExcerpt = 200
)

// runPasswordScript runs SSL_PRIVATE_KEY_PASSWORD_SCRIPT.
func runPasswordScript(script string) ([]byte, error) {
	return RunSecretScript("SSL_PRIVATE_KEY_PASSWORD_SCRIPT", "the key password", script)
}

// RunSecretScript runs script, the setting key of keytrustee.conf (a
// program and its arguments, split on spaces, without a shell), and returns
// what it printed on stdout, minus one trailing newline: what, such as
// "the key password". Errors never contain the output or the arguments,
// which may hold the secret.
func RunSecretScript(key, what, script string) ([]byte, error) {
	args := strings.Fields(script)
	if len(args) == 0 {
		return nil, errors.New(key + " is empty; set it to a program that prints " + what)
	}
	prog := args[0]
	ctx, cancel := context.WithTimeout(context.Background(), passwordScriptTimeout)
	defer cancel()
	cmd := exec.CommandContext(ctx, prog, args[1:]...)
	stdout := &cappedBuffer{max: maxPasswordBytes, buf: make([]byte, 0, 1024)}
	stderr := &cappedBuffer{max: 4 << 10}
	cmd.Stdout, cmd.Stderr = stdout, stderr
	// Do not wait forever for children that keep the output pipes open.
	cmd.WaitDelay = time.Second
	err := cmd.Run()
	out := stdout.buf
	if ctx.Err() != nil {
		clear(out)
		return nil, fmt.Errorf("%s: script %q did not finish within %s; make sure it prints %s and exits without waiting for input", key, prog, passwordScriptTimeout, what)
	}
	if err != nil {
		detail := stderrExcerpt(stderr.buf, trimNewline(out))
		clear(out)
		var exitErr *exec.ExitError
		if errors.As(err, &exitErr) {
			status := fmt.Sprintf("exited with status %d", exitErr.ExitCode())
			if exitErr.ExitCode() < 0 {
				status = "was terminated (" + exitErr.ProcessState.String() + ")"
			}
			return nil, fmt.Errorf("%s: script %q %s%s; check the script prints %s on stdout", key, prog, status, detail, what)
		}
		return nil, fmt.Errorf("%s: cannot run %q: %v; set it to the absolute path of an executable program, followed by its arguments", key, prog, err)
	}
	if stdout.truncated {
		clear(out)
		return nil, fmt.Errorf("%s: script %q printed more than %d bytes; it must print only %s", key, prog, maxPasswordBytes, what)
	}
	pw := trimNewline(out)
	if len(pw) == 0 {
		return nil, fmt.Errorf("%s: script %q printed nothing on stdout; it must print %s", key, prog, what)
	}
	return pw, nil
}

func trimNewline(b []byte) []byte {
	b = bytes.TrimSuffix(b, []byte("\n"))
	return bytes.TrimSuffix(b, []byte("\r"))
}

// stderrExcerpt formats the start of a failed script's stderr, with any
// occurrence of what it printed on stdout masked.
func stderrExcerpt(stderr, stdout []byte) string {
	msg := bytes.TrimSpace(stderr)
	if len(stdout) > 0 {
		msg = bytes.ReplaceAll(msg, stdout, []byte("[redacted]"))
	}
	if len(msg) == 0 {
		return ""
	}
	if len(msg) > maxStderrExcerpt {
		msg = append(msg[:maxStderrExcerpt:maxStderrExcerpt], "..."...)
	}
	return fmt.Sprintf(" (stderr: %q)", msg)
}

// cappedBuffer keeps the first max bytes written to it.
type cappedBuffer struct {
	buf       []byte
	max       int
	truncated bool
}

// Write keeps what fits and discards the rest, reporting success so that
// the writer is not stopped by a broken pipe.
func (c *cappedBuffer) Write(p []byte) (int, error) {
	n := len(p)
	if room := c.max - len(c.buf); n > room {
		c.truncated = true
		p = p[:max(room, 0)]
	}
	c.buf = append(c.buf, p...)
	return n, nil
}

// parsePrivateKey decodes the first PEM private key in data: PKCS#1, SEC1 or
// PKCS#8, possibly encrypted (legacy PEM encryption or PKCS#8), in which case
// password is called to obtain the password; encrypted reports whether it
// was.
func parsePrivateKey(data []byte, keyFile string, password func() ([]byte, error)) (signer crypto.Signer, encrypted bool, err error) {
	var block *pem.Block
	for rest := data; ; {
		block, rest = pem.Decode(rest)
		if block == nil {
			return nil, false, fmt.Errorf("SSL_PRIVATE_KEY %s: no PEM private key found; the key must be PEM-encoded PKCS#1, SEC1 or PKCS#8 (convert DER with: openssl pkey -inform der -in KEY -out KEY.pem)", keyFile)
		}
		if strings.HasSuffix(block.Type, "PRIVATE KEY") {
			break
		}
	}
	var key any
	switch {
	case block.Type == "ENCRYPTED PRIVATE KEY":
		encrypted = true
		key, err = decryptPKCS8(block.Bytes, keyFile, password)
	case x509.IsEncryptedPEMBlock(block):
		// Legacy "Proc-Type: 4,ENCRYPTED" PEM, as written by
		// openssl rsa -aes256 -traditional. Deprecated in Go because
		// the format is weak, but still found on servers.
		encrypted = true
		key, err = decryptLegacyPEM(block, keyFile, password)
	default:
		key, err = parseKeyDER(block.Type, block.Bytes)
		if err != nil {
			err = fmt.Errorf("SSL_PRIVATE_KEY %s: %w", keyFile, err)
		}
	}
	if err != nil {
		return nil, encrypted, err
	}
	switch k := key.(type) {
	case *rsa.PrivateKey, *ecdsa.PrivateKey, ed25519.PrivateKey:
		return k.(crypto.Signer), encrypted, nil
	default:
		return nil, encrypted, fmt.Errorf("SSL_PRIVATE_KEY %s: unsupported key type %T; use an RSA, ECDSA or Ed25519 key", keyFile, key)
	}
}

func parseKeyDER(pemType string, der []byte) (any, error) {
	switch pemType {
	case "RSA PRIVATE KEY":
		return x509.ParsePKCS1PrivateKey(der)
	case "EC PRIVATE KEY":
		return x509.ParseECPrivateKey(der)
	case "PRIVATE KEY":
		return x509.ParsePKCS8PrivateKey(der)
	default:
		return nil, fmt.Errorf("unsupported PEM block %q; use an RSA, ECDSA or Ed25519 key in PKCS#1 (RSA PRIVATE KEY), SEC1 (EC PRIVATE KEY) or PKCS#8 (PRIVATE KEY) form", pemType)
	}
}

func errNoPasswordScript(keyFile string) error {
	return fmt.Errorf("SSL_PRIVATE_KEY %s is encrypted but SSL_PRIVATE_KEY_PASSWORD_SCRIPT is not set; set it to a program that prints the key password (e.g. \"/usr/local/bin/kts-key-password\"), or store the key unencrypted with mode 0600", keyFile)
}

func errWrongPassword(keyFile string) error {
	return fmt.Errorf("SSL_PRIVATE_KEY %s: cannot decrypt the key: wrong password; check that SSL_PRIVATE_KEY_PASSWORD_SCRIPT prints the key's password", keyFile)
}

func decryptLegacyPEM(block *pem.Block, keyFile string, password func() ([]byte, error)) (any, error) {
	if password == nil {
		return nil, errNoPasswordScript(keyFile)
	}
	pw, err := password()
	if err != nil {
		return nil, err
	}
	defer clear(pw)
	der, err := x509.DecryptPEMBlock(block, pw)
	if errors.Is(err, x509.IncorrectPasswordError) {
		return nil, errWrongPassword(keyFile)
	}
	if err != nil {
		return nil, fmt.Errorf("SSL_PRIVATE_KEY %s: cannot decrypt the key: %v; re-encrypt it with: openssl pkcs8 -topk8 -v2 aes256 -in KEY -out NEW-KEY", keyFile, err)
	}
	defer clear(der)
	key, err := parseKeyDER(block.Type, der)
	if err != nil {
		// The padding check passes for about 1 in 256 wrong passwords.
		return nil, errWrongPassword(keyFile)
	}
	return key, nil
}

func decryptPKCS8(der []byte, keyFile string, password func() ([]byte, error)) (key any, err error) {
	if password == nil {
		return nil, errNoPasswordScript(keyFile)
	}
	pw, err := password()
	if err != nil {
		return nil, err
	}
	defer clear(pw)
	// The pkcs8 package panics on some malformed inputs (bad IV length,
	// ciphertext not a multiple of the block size).
	defer func() {
		if recover() != nil {
			key, err = nil, fmt.Errorf("SSL_PRIVATE_KEY %s: malformed encrypted PKCS#8 key; export the key again", keyFile)
		}
	}()
	key, err = pkcs8.ParsePKCS8PrivateKey(der, pw)
	if err != nil {
		msg := err.Error()
		if strings.Contains(msg, "incorrect password") || strings.Contains(msg, "authentication failed") {
			return nil, errWrongPassword(keyFile)
		}
		return nil, fmt.Errorf("SSL_PRIVATE_KEY %s: cannot decrypt the key: %v; re-encrypt it with: openssl pkcs8 -topk8 -v2 aes256 -in KEY -out NEW-KEY", keyFile, err)
	}
	return key, nil
}
