package gnupg

import (
	"bufio"
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"os/exec"
	"slices"
	"strconv"
	"strings"
	"time"

	"github.com/ProtonMail/go-crypto/openpgp"
	"github.com/ProtonMail/go-crypto/openpgp/armor"
	pgperrors "github.com/ProtonMail/go-crypto/openpgp/errors"
	"github.com/ProtonMail/go-crypto/openpgp/packet"
)

// DecryptOptions says how Decrypt finds the secret key.
type DecryptOptions struct {
	// SecretKeyFile is "" to decrypt with GnuPG (`gpg --batch --decrypt`,
	// with the keys of the calling account's keyring and gpg-agent), else a
	// file with the secret key(s) to decrypt with, armored or binary, as
	// `gpg --export-secret-keys` writes it.
	SecretKeyFile string
	// SecretKey holds such keys itself, in place of SecretKeyFile (not
	// passphrase-protected ones). Decrypt leaves it as it is.
	SecretKey []byte
	// PassphraseFile holds the passphrase of a protected key in
	// SecretKeyFile: its first line, without the line ending. It is ignored
	// with GnuPG, whose gpg-agent asks for passphrases itself.
	PassphraseFile string
}

// errIncomplete is returned by Close when the plaintext was not read to its
// end.
var errIncomplete = errors.New("gnupg: decryption stopped before the end of the data; the plaintext read so far is incomplete and unauthenticated")

// useKeyFileHint tells how to decrypt without GnuPG's keyring.
const useKeyFileHint = "decrypt with the secret key file instead (exported with gpg --export-secret-keys FPR > FILE; with its passphrase file if the key is protected)"

// Decrypt returns the plaintext of the OpenPGP message read from r, as a
// stream. The caller reads it to EOF and then calls Close; only a nil error
// from Close means that the plaintext was complete and authentic (its
// modification detection code or AEAD tags verified, and with GnuPG: gpg
// reported a successful decryption and exited 0). A tampered or truncated
// message makes Read or Close fail, and Close after an early stop fails too
// (and stops gpg). Read and Close must not be called concurrently; cancel ctx
// to interrupt a Read.
//
// With opts.SecretKeyFile "", the message is piped to `gpg --batch --decrypt`
// and the plaintext read from its standard output; gpg-agent asks for the
// passphrase of a protected key (through pinentry, which needs GPG_TTY in a
// terminal). Else the message is decrypted here with the secret keys of that
// file. Errors say what to do: which key IDs the message is encrypted to when
// no secret key fits, a wrong passphrase, gpg not installed.
func Decrypt(ctx context.Context, r io.Reader, opts DecryptOptions) (io.ReadCloser, error) {
	if opts.SecretKeyFile == "" && opts.SecretKey == nil {
		return decryptWithGnuPG(ctx, r)
	}
	return decryptWithKeyFile(ctx, r, opts)
}

// gpgDecrypter streams the standard output of `gpg --decrypt`.
type gpgDecrypter struct {
	ctx      context.Context
	cmd      *exec.Cmd
	stdout   io.ReadCloser
	stderr   *tailBuffer
	statusR  *os.File
	status   gpgStatus
	statusOK chan struct{} // closed when status is complete
	done     bool          // gpg has been waited for
	err      error         // the final error, nil after a complete, authentic decryption
}

func decryptWithGnuPG(ctx context.Context, r io.Reader) (io.ReadCloser, error) {
	gpg, err := gpgPath(useKeyFileHint)
	if err != nil {
		return nil, err
	}
	statusR, statusW, err := os.Pipe()
	if err != nil {
		return nil, fmt.Errorf("gnupg: %w", err)
	}
	cmd := exec.CommandContext(ctx, gpg, "--batch", "--status-fd", "3", "--decrypt")
	cmd.Stdin = r
	cmd.ExtraFiles = []*os.File{statusW} // fd 3
	d := &gpgDecrypter{ctx: ctx, cmd: cmd, stderr: &tailBuffer{max: 8 << 10}, statusR: statusR, statusOK: make(chan struct{})}
	cmd.Stderr = d.stderr
	cmd.WaitDelay = 5 * time.Second
	if d.stdout, err = cmd.StdoutPipe(); err == nil {
		err = cmd.Start()
	}
	statusW.Close()
	if err != nil {
		statusR.Close()
		return nil, fmt.Errorf("gnupg: cannot run gpg: %w", err)
	}
	go d.readStatus()
	return d, nil
}

func (d *gpgDecrypter) Read(p []byte) (int, error) {
	if d.done {
		if d.err != nil {
			return 0, d.err
		}
		return 0, io.EOF
	}
	n, err := d.stdout.Read(p)
	if err == nil {
		return n, nil
	}
	if err != io.EOF {
		d.cmd.Process.Kill()
	}
	d.err = d.wait()
	if d.err == nil && err != io.EOF {
		d.err = fmt.Errorf("gnupg: reading the output of gpg: %w", err)
	}
	if d.err != nil {
		return n, d.err
	}
	return n, io.EOF
}

// Close stops gpg if the plaintext was not read to its end, and returns nil
// only after a complete and authentic decryption.
func (d *gpgDecrypter) Close() error {
	if !d.done {
		d.cmd.Process.Kill()
		d.wait()
		d.err = errIncomplete
	}
	return d.err
}

// wait waits for gpg to exit and returns what went wrong, if anything.
func (d *gpgDecrypter) wait() error {
	d.done = true
	werr := d.cmd.Wait()
	// gpg has exited; its status descriptor reaches EOF unless a process it
	// started inherited it, so do not wait for that forever.
	d.statusR.SetReadDeadline(time.Now().Add(5 * time.Second))
	<-d.statusOK
	d.statusR.Close()
	if err := d.ctx.Err(); err != nil {
		return fmt.Errorf("gnupg: decryption with gpg interrupted: %w", context.Cause(d.ctx))
	}
	if werr == nil && d.status.okay {
		return nil
	}
	return d.failure(werr)
}

// gpgStatus is what gpg reported on its status descriptor
// (doc/DETAILS in GnuPG's sources).
type gpgStatus struct {
	encTo         []string // ENC_TO: key IDs the message is encrypted to
	noSecKey      []string // NO_SECKEY: key IDs without a secret key
	began         bool     // BEGIN_DECRYPTION
	okay          bool     // DECRYPTION_OKAY
	failed        bool     // DECRYPTION_FAILED or BADMDC
	noData        bool     // NODATA: no OpenPGP data found
	badPassphrase bool     // a secret key could not be unlocked with the passphrase given
	noPinentry    bool     // gpg-agent could not ask for a passphrase, or it was cancelled
	keyError      bool     // another failure to decrypt the session key with a secret key
}

// maxStatusIDs bounds the key IDs kept from the status lines.
const maxStatusIDs = 32

// readStatus parses gpg's status lines until EOF, then signals statusOK.
func (d *gpgDecrypter) readStatus() {
	defer close(d.statusOK)
	sc := bufio.NewScanner(d.statusR)
	for sc.Scan() {
		d.status.parse(sc.Text())
	}
	io.Copy(io.Discard, d.statusR) // drain an overlong line, so gpg never blocks
}

// parse records one status line, such as "[GNUPG:] ENC_TO 3C4B7F2D3133F0B4 1 0".
func (s *gpgStatus) parse(line string) {
	f := strings.Fields(strings.TrimPrefix(line, "[GNUPG:] "))
	if len(f) == 0 {
		return
	}
	arg := func(i int) string {
		if i < len(f) {
			return f[i]
		}
		return ""
	}
	switch f[0] {
	case "ENC_TO":
		if len(s.encTo) < maxStatusIDs {
			s.encTo = append(s.encTo, arg(1))
		}
	case "NO_SECKEY":
		if len(s.noSecKey) < maxStatusIDs {
			s.noSecKey = append(s.noSecKey, arg(1))
		}
	case "BEGIN_DECRYPTION":
		s.began = true
	case "DECRYPTION_OKAY":
		s.okay = true
	case "DECRYPTION_FAILED", "BADMDC":
		s.failed = true
	case "NODATA":
		s.noData = true
	case "BAD_PASSPHRASE":
		s.badPassphrase = true
	case "MISSING_PASSPHRASE":
		s.noPinentry = true
	case "ERROR", "FAILURE":
		code, err := strconv.ParseUint(arg(2), 10, 32)
		if err != nil {
			return
		}
		switch code & 0xffff { // libgpg-error codes, without the source
		case 11: // GPG_ERR_BAD_PASSPHRASE
			s.badPassphrase = true
		case 62, 85, 86, 99, 198, 32870: // TIMEOUT, NO_PIN_ENTRY, PIN_ENTRY, CANCELED, FULLY_CANCELED, ENOTTY
			s.noPinentry = true
		default:
			s.keyError = s.keyError || arg(1) == "pkdecrypt_failed"
		}
	}
}

// failure explains why gpg did not decrypt the message; werr is what
// cmd.Wait returned.
func (d *gpgDecrypter) failure(werr error) error {
	s := &d.status
	ids := strings.Join(s.encTo, ", ")
	var what string
	switch {
	case s.badPassphrase:
		what = fmt.Sprintf("wrong passphrase for the secret key of key ID %s; try again, or %s", ids, useKeyFileHint)
	case s.noPinentry:
		what = fmt.Sprintf("gpg could not ask for the passphrase of the secret key of key ID %s: run this in a terminal with GPG_TTY set (export GPG_TTY=$(tty)), or unlock the key in gpg-agent first, or %s", ids, useKeyFileHint)
	case len(s.noSecKey) > 0 && len(s.noSecKey) >= len(s.encTo):
		what = fmt.Sprintf("no secret key in the GnuPG keyring in %s can decrypt this message; it is encrypted to key ID %s; import the secret key (gpg --import SECRET-KEY-FILE) or %s", gnupgHome(), strings.Join(s.noSecKey, ", "), useKeyFileHint)
	case s.keyError:
		what = fmt.Sprintf("gpg could not use the secret key of key ID %s (see gpg's messages); check gpg-agent, or %s", ids, useKeyFileHint)
	case s.began || s.failed || (werr != nil && len(s.encTo) > 0):
		what = "the encrypted data is corrupt, truncated or was tampered with; do not use the data read so far"
	case s.noData:
		what = "the input is not an OpenPGP message, or is truncated (gpg found no valid OpenPGP data)"
	case werr == nil:
		what = "the input is an OpenPGP message that is not encrypted (gpg reported no decryption); refusing data that is not authenticated"
	default:
		what = "gpg --decrypt failed"
	}
	if werr == nil {
		return fmt.Errorf("gnupg: %s", what)
	}
	msg := werr.Error()
	if said := d.stderr.summary(); said != "" {
		msg += ": " + said
	}
	return fmt.Errorf("gnupg: %s (gpg: %s)", what, msg)
}

// keyDecrypter streams the plaintext decrypted with go-crypto.
type keyDecrypter struct {
	ctx  context.Context
	body io.Reader // checks the MDC or AEAD tags when it reaches EOF
	eof  bool
	err  error
}

func (d *keyDecrypter) Read(p []byte) (int, error) {
	if d.err != nil {
		return 0, d.err
	}
	if d.eof {
		return 0, io.EOF
	}
	if err := d.ctx.Err(); err != nil {
		d.err = fmt.Errorf("gnupg: decryption interrupted: %w", context.Cause(d.ctx))
		return 0, d.err
	}
	n, err := d.body.Read(p)
	switch {
	case err == io.EOF:
		d.eof = true
	case err != nil:
		d.err = fmt.Errorf("gnupg: the encrypted data is corrupt, truncated or was tampered with (%v); do not use the data read so far", err)
		return n, d.err
	}
	return n, err
}

// Close returns nil only after a complete and authentic decryption.
func (d *keyDecrypter) Close() error {
	if d.err == nil && !d.eof {
		d.err = errIncomplete
	}
	return d.err
}

func decryptWithKeyFile(ctx context.Context, r io.Reader, opts DecryptOptions) (io.ReadCloser, error) {
	file := opts.SecretKeyFile
	var data []byte
	var err error
	if opts.SecretKey != nil {
		file, data = "the given key", slices.Clone(opts.SecretKey)
	} else if data, err = readFile(file, "secret key file"); err != nil {
		return nil, err
	}
	defer clear(data) // parsed keys do not refer to it
	keys, err := readKeys(data)
	if err != nil {
		return nil, fmt.Errorf("gnupg: secret key file %s: %w; export the key with gpg --export-secret-keys FPR > FILE", file, err)
	}
	if !hasSecret(keys) {
		return nil, fmt.Errorf("gnupg: the secret key file %s holds no secret key, only public ones; export the key with gpg --export-secret-keys FPR > FILE", file)
	}
	var pass []byte
	if opts.PassphraseFile != "" {
		if pass, err = readPassphrase(opts.PassphraseFile); err != nil {
			return nil, err
		}
		defer clear(pass[:cap(pass)])
	}
	if err := ctx.Err(); err != nil {
		return nil, fmt.Errorf("gnupg: decryption interrupted: %w", context.Cause(ctx))
	}

	in, err := dearmorMessage(r)
	if err != nil {
		return nil, err
	}
	head := &headRecorder{r: in, max: 64 << 10}
	var promptErr error
	prompted := false
	prompt := func(cands []openpgp.Key, _ bool) ([]byte, error) {
		if prompted {
			promptErr = fmt.Errorf("gnupg: the secret keys in %s do not decrypt this message's session key; the message or the key is damaged", file)
		} else {
			prompted = true
			promptErr = unlock(cands, pass, file, opts.PassphraseFile)
		}
		return nil, promptErr
	}
	md, err := openpgp.ReadMessage(head, keys, prompt, nil)
	head.max = 0
	switch {
	case promptErr != nil:
		return nil, promptErr
	case errors.Is(err, pgperrors.ErrKeyIncorrect):
		return nil, fmt.Errorf("gnupg: none of the secret keys in %s (%s) can decrypt this message; it is encrypted to key ID %s; export the secret key of that key ID (gpg --export-secret-keys KEYID > FILE)",
			file, describeSecret(keys), recipientIDs(head.buf))
	case err == io.EOF:
		return nil, errors.New("gnupg: the input is empty, not an OpenPGP message")
	case err != nil:
		return nil, fmt.Errorf("gnupg: the input is not a readable encrypted OpenPGP message, or is truncated: %v", err)
	case !md.IsEncrypted:
		return nil, errors.New("gnupg: the input is an OpenPGP message that is not encrypted; refusing data that is not authenticated")
	}
	return &keyDecrypter{ctx: ctx, body: md.UnverifiedBody}, nil
}

// unlock decrypts the candidate secret keys with the passphrase. It succeeds
// when at least one of them unlocks.
func unlock(cands []openpgp.Key, pass []byte, keyFile, passFile string) error {
	if len(cands) == 0 {
		return errors.New("gnupg: the message is encrypted with a passphrase (gpg --symmetric), not to a key; decrypt it with GnuPG")
	}
	name := func(k openpgp.Key) string {
		return fmt.Sprintf("key ID %s of %s", keyID(k.PublicKey.KeyId), Describe(k.Entity))
	}
	if pass == nil {
		return fmt.Errorf("gnupg: the secret key (%s) in %s is protected by a passphrase; give its passphrase file", name(cands[0]), keyFile)
	}
	var firstErr error
	for _, c := range cands {
		var err error
		if c.PrivateKey.Dummy() {
			err = fmt.Errorf("gnupg: the secret part of key ID %s is not in %s (it is on a smartcard, or was exported without it); export it with gpg --export-secret-keys", keyID(c.PublicKey.KeyId), keyFile)
		} else if err = c.PrivateKey.Decrypt(pass); err != nil {
			var se pgperrors.StructuralError
			var ke pgperrors.KeyInvalidError
			if errors.As(err, &se) || errors.As(err, &ke) {
				err = fmt.Errorf("gnupg: wrong passphrase for the secret key (%s) in %s; check the passphrase file %s", name(c), keyFile, passFile)
			} else {
				err = fmt.Errorf("gnupg: cannot unlock the secret key (%s) in %s: %v", name(c), keyFile, err)
			}
		}
		if err == nil {
			return nil
		}
		if firstErr == nil {
			firstErr = err
		}
	}
	return firstErr
}

// readPassphrase returns the first line of a passphrase file, without its
// line ending. The returned slice's capacity spans the whole file, so that
// the caller can wipe it.
func readPassphrase(name string) ([]byte, error) {
	data, err := readFile(name, "passphrase file")
	if err != nil {
		return nil, err
	}
	line := data
	if i := bytes.IndexByte(line, '\n'); i >= 0 {
		line = line[:i]
	}
	line = bytes.TrimSuffix(line, []byte("\r"))
	if len(line) == 0 {
		clear(data)
		return nil, fmt.Errorf("gnupg: the passphrase file %s is empty; its first line must be the passphrase", name)
	}
	return line, nil
}

// hasSecret reports whether any key holds secret key material.
func hasSecret(keys openpgp.EntityList) bool {
	for _, e := range keys {
		if e.PrivateKey != nil && !e.PrivateKey.Dummy() {
			return true
		}
		for _, sk := range e.Subkeys {
			if sk.PrivateKey != nil && !sk.PrivateKey.Dummy() {
				return true
			}
		}
	}
	return false
}

// describeSecret names the keys with secret key material, for messages.
func describeSecret(keys openpgp.EntityList) string {
	var names []string
	for _, e := range keys {
		if hasSecret(openpgp.EntityList{e}) {
			names = append(names, Describe(e))
		}
	}
	return strings.Join(names, "; ")
}

// dearmorMessage returns the binary message read from r, decoding it if it
// is armored ("-----BEGIN PGP MESSAGE-----", as gpg --armor writes it).
func dearmorMessage(r io.Reader) (io.Reader, error) {
	br := bufio.NewReaderSize(r, 4096)
	peek, _ := br.Peek(512)
	if !bytes.HasPrefix(bytes.TrimLeft(peek, " \t\r\n"), []byte("-----BEGIN PGP ")) {
		return br, nil
	}
	block, err := armor.Decode(br)
	if err != nil {
		return nil, fmt.Errorf("gnupg: cannot decode the armored message: %v", err)
	}
	if block.Type != openpgp.MessageType {
		return nil, fmt.Errorf("gnupg: expected a %s, got a %s", openpgp.MessageType, block.Type)
	}
	return block.Body, nil
}

// headRecorder keeps a copy of the first max bytes read through it.
type headRecorder struct {
	r   io.Reader
	max int
	buf []byte
}

func (h *headRecorder) Read(p []byte) (int, error) {
	n, err := h.r.Read(p)
	if room := h.max - len(h.buf); room > 0 {
		h.buf = append(h.buf, p[:min(n, room)]...)
	}
	return n, err
}

// recipientIDs lists the key IDs of the public-key encrypted session key
// packets at the start of a message.
func recipientIDs(head []byte) string {
	var ids []string
	packets := packet.NewReader(bytes.NewReader(head))
	for len(ids) < maxStatusIDs {
		p, err := packets.Next()
		if err != nil {
			break
		}
		if ek, ok := p.(*packet.EncryptedKey); ok {
			ids = append(ids, keyID(ek.KeyId))
		} else if _, ok := p.(*packet.SymmetricKeyEncrypted); !ok {
			break
		}
	}
	if len(ids) == 0 {
		return "(unknown)"
	}
	return strings.Join(ids, ", ")
}
