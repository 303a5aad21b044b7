package gnupg

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"os/exec"
	"strings"
	"time"

	"github.com/ProtonMail/go-crypto/openpgp"
	"github.com/ProtonMail/go-crypto/openpgp/armor"
	"github.com/ProtonMail/go-crypto/openpgp/packet"
)

// maxKeyFileSize bounds the key files and keyring exports read into memory.
const maxKeyFileSize = 64 << 20

// PublicKeys returns the public keys to look recipients up in: those of the
// key file when keyFile is not "" (armored or binary, one or more keys), else
// the keys of the calling account's GnuPG keyring, exported with
// `gpg --batch --export` (GNUPGHOME and HOME respected, as gpg does). A
// missing gpg binary or an empty keyring gives an error that says how to
// import a key or to pass a key file.
func PublicKeys(ctx context.Context, keyFile string) (openpgp.EntityList, error) {
	if keyFile != "" {
		data, err := readFile(keyFile, "key file")
		if err != nil {
			return nil, err
		}
		keys, err := readKeys(data)
		if err != nil {
			return nil, fmt.Errorf("gnupg: key file %s: %w; export the recipient's key with gpg --export FPR > FILE", keyFile, err)
		}
		// A secret key export holds the public keys too; keep only those.
		for _, e := range keys {
			e.PrivateKey = nil
			for i := range e.Subkeys {
				e.Subkeys[i].PrivateKey = nil
			}
		}
		return keys, nil
	}

	gpg, err := gpgPath("pass the recipient's public key file")
	if err != nil {
		return nil, err
	}
	cmd := exec.CommandContext(ctx, gpg, "--batch", "--export")
	stdout := &limitedBuffer{max: maxKeyFileSize}
	stderr := &tailBuffer{max: 4 << 10}
	cmd.Stdout, cmd.Stderr = stdout, stderr
	if err := cmd.Run(); err != nil {
		if stdout.full {
			return nil, fmt.Errorf("gnupg: the GnuPG keyring in %s exports more than %d MiB; pass the recipient's public key file instead", gnupgHome(), maxKeyFileSize>>20)
		}
		return nil, fmt.Errorf("gnupg: gpg --export failed (%v): %s; check the GnuPG keyring in %s, or pass the recipient's public key file", err, stderr.summary(), gnupgHome())
	}
	if stdout.Len() == 0 {
		return nil, fmt.Errorf("gnupg: the GnuPG keyring in %s has no public keys; %s", gnupgHome(), importHint)
	}
	keys, err := openpgp.ReadKeyRing(bytes.NewReader(stdout.Bytes()))
	if err != nil {
		return nil, fmt.Errorf("gnupg: cannot read the keys of the GnuPG keyring in %s: %v; pass the recipient's public key file instead", gnupgHome(), err)
	}
	return keys, nil
}

// limitedBuffer is a bytes.Buffer that refuses to grow beyond max bytes.
type limitedBuffer struct {
	bytes.Buffer
	max  int
	full bool
}

func (b *limitedBuffer) Write(p []byte) (int, error) {
	if b.Len()+len(p) > b.max {
		b.full = true
		return 0, errors.New("output too large")
	}
	return b.Buffer.Write(p)
}

// readFile reads a key or passphrase file of at most maxKeyFileSize bytes.
// what names the file in errors.
func readFile(name, what string) ([]byte, error) {
	f, err := os.Open(name)
	if err != nil {
		return nil, fmt.Errorf("gnupg: cannot open the %s: %w", what, err)
	}
	defer f.Close()
	data, err := io.ReadAll(io.LimitReader(f, maxKeyFileSize+1))
	if err != nil {
		return nil, fmt.Errorf("gnupg: cannot read the %s %s: %w", what, name, err)
	}
	if len(data) > maxKeyFileSize {
		return nil, fmt.Errorf("gnupg: the %s %s is larger than %d MiB", what, name, maxKeyFileSize>>20)
	}
	return data, nil
}

// readKeys parses the keys, public or secret, of a key file: binary packets,
// or one or more armored blocks (as `gpg --armor --export` and
// `gpg --armor --export-secret-keys` write them, possibly concatenated).
func readKeys(data []byte) (openpgp.EntityList, error) {
	if len(bytes.TrimSpace(data)) == 0 {
		return nil, errors.New("the file is empty")
	}
	if data[0]&0x80 != 0 { // binary OpenPGP: every packet header has the top bit set
		keys, err := openpgp.ReadKeyRing(bytes.NewReader(data))
		if err != nil {
			return nil, fmt.Errorf("no readable OpenPGP key: %v", err)
		}
		return keys, nil
	}
	const begin = "-----BEGIN PGP "
	if !bytes.Contains(data, []byte(begin)) {
		return nil, errors.New("neither an armored (-----BEGIN PGP PUBLIC KEY BLOCK-----) nor a binary OpenPGP key")
	}
	var keys openpgp.EntityList
	blocks := bytes.Split(data, []byte(begin))
	for _, b := range blocks[1:] {
		block, err := armor.Decode(io.MultiReader(strings.NewReader(begin), bytes.NewReader(b)))
		if err != nil {
			return nil, fmt.Errorf("cannot decode the armor: %v", err)
		}
		if block.Type != openpgp.PublicKeyType && block.Type != openpgp.PrivateKeyType {
			return nil, fmt.Errorf("expected a %s, got a %s", openpgp.PublicKeyType, block.Type)
		}
		el, err := openpgp.ReadKeyRing(block.Body)
		if err != nil {
			return nil, fmt.Errorf("no readable OpenPGP key in the %s: %v", block.Type, err)
		}
		keys = append(keys, el...)
	}
	return keys, nil
}

// FindRecipient picks the one key query names, as `gpg -r` does: a
// fingerprint (40 hex digits, or 64 for a v6 key; spaces allowed, optional
// 0x), a long (16 hex digits) or short (8) key ID of the primary key or a
// subkey, an e-mail address (with or without <>, case-insensitive, exact
// match on the address of a user ID), "=" followed by a whole user ID, else
// a case-insensitive substring of a user ID. Keys that are revoked, expired or
// have no usable encryption (sub)key at now are skipped, as are revoked user
// IDs.
//
// No usable match gives an error wrapping ErrNoRecipient that names the query
// and says why matching keys were skipped or how to import the key; more than
// one gives an error listing the candidates and asking for the fingerprint.
func FindRecipient(keys openpgp.EntityList, query string, now time.Time) (*openpgp.Entity, error) {
	match, ok := parseQuery(query)
	if !ok {
		return nil, fmt.Errorf("gnupg: %w: the recipient is empty; name the key by fingerprint, key ID, e-mail address or name", ErrNoRecipient)
	}
	var found []*openpgp.Entity
	var skipped []string
	seen := make(map[string]bool)
	for _, e := range keys {
		if e == nil || e.PrimaryKey == nil || !match(e, now) {
			continue
		}
		fpr := fingerprint(e.PrimaryKey.Fingerprint)
		if seen[fpr] {
			continue
		}
		seen[fpr] = true
		if why := unusable(e, now); why != "" {
			skipped = append(skipped, Describe(e)+": "+why)
			continue
		}
		found = append(found, e)
	}

	switch {
	case len(found) == 1:
		return found[0], nil
	case len(found) > 1:
		names := make([]string, len(found))
		for i, e := range found {
			names[i] = Describe(e)
		}
		return nil, fmt.Errorf("gnupg: recipient %q is ambiguous, it matches %d keys: %s; name the key by its fingerprint",
			query, len(found), strings.Join(names, "; "))
	case len(skipped) > 0:
		return nil, fmt.Errorf("gnupg: %w: the keys matching %q cannot encrypt: %s", ErrNoRecipient, query, strings.Join(skipped, "; "))
	}
	return nil, fmt.Errorf("gnupg: %w: no key matches %q among %d keys; %s", ErrNoRecipient, query, len(keys), importHint)
}

// matcher reports whether a key matches a recipient query at a time.
type matcher func(e *openpgp.Entity, now time.Time) bool

// parseQuery classifies a recipient query as gpg does and returns its
// matcher; ok is false for an empty query.
func parseQuery(query string) (match matcher, ok bool) {
	q := strings.TrimSpace(query)
	if q == "" {
		return nil, false
	}

	// Fingerprint or key ID: hex digits, optionally prefixed with 0x and,
	// as gpg allows, suffixed with "!". Only fingerprints may hold spaces.
	h := strings.TrimSuffix(q, "!")
	if len(h) > 2 && (h[:2] == "0x" || h[:2] == "0X") {
		h = h[2:]
	}
	if compact := strings.Join(strings.Fields(h), ""); isHex(compact) {
		switch {
		case len(compact) == 40 || len(compact) == 64:
			return func(e *openpgp.Entity, _ time.Time) bool {
				return anyKey(e, func(fpr []byte, _ uint64) bool { return strings.EqualFold(fingerprint(fpr), compact) })
			}, true
		case compact == h && len(h) == 16:
			return func(e *openpgp.Entity, _ time.Time) bool {
				return anyKey(e, func(_ []byte, id uint64) bool { return strings.EqualFold(keyID(id), h) })
			}, true
		case compact == h && len(h) == 8:
			return func(e *openpgp.Entity, _ time.Time) bool {
				return anyKey(e, func(_ []byte, id uint64) bool { return strings.EqualFold(keyID(id)[8:], h) })
			}, true
		}
	}

	switch {
	case strings.HasPrefix(q, "="): // exact user ID
		uid := q[1:]
		return userIDMatcher(func(id string) bool { return id == uid }), true
	case len(q) > 2 && strings.HasPrefix(q, "<") && strings.HasSuffix(q, ">"): // exact address
		addr := q[1 : len(q)-1]
		return userIDMatcher(func(id string) bool { return strings.EqualFold(address(id), addr) }), true
	case isAddress(q):
		return userIDMatcher(func(id string) bool { return strings.EqualFold(address(id), q) }), true
	}
	lower := strings.ToLower(q)
	return userIDMatcher(func(id string) bool { return strings.Contains(strings.ToLower(id), lower) }), true
}

// anyKey reports whether f holds for the primary key or a subkey of e, given
// the key's fingerprint and key ID.
func anyKey(e *openpgp.Entity, f func(fpr []byte, id uint64) bool) bool {
	if f(e.PrimaryKey.Fingerprint, e.PrimaryKey.KeyId) {
		return true
	}
	for _, sk := range e.Subkeys {
		if sk.PublicKey != nil && f(sk.PublicKey.Fingerprint, sk.PublicKey.KeyId) {
			return true
		}
	}
	return false
}

// userIDMatcher matches keys with a user ID, not revoked at the time, for
// which f holds.
func userIDMatcher(f func(id string) bool) matcher {
	return func(e *openpgp.Entity, now time.Time) bool {
		for _, ident := range e.Identities {
			if ident != nil && !ident.Revoked(now) && f(ident.Name) {
				return true
			}
		}
		return false
	}
}

// address returns the e-mail address of a user ID: the text between its last
// '<' and the following '>', or the whole user ID when it is a bare address.
func address(uid string) string {
	if i := strings.LastIndexByte(uid, '<'); i >= 0 {
		if j := strings.IndexByte(uid[i:], '>'); j > 0 {
			return uid[i+1 : i+j]
		}
		return ""
	}
	if uid = strings.TrimSpace(uid); isAddress(uid) {
		return uid
	}
	return ""
}

// isAddress reports whether s looks like an e-mail address: a local part, an
// '@' and a domain, without spaces or angle brackets.
func isAddress(s string) bool {
	i := strings.LastIndexByte(s, '@')
	return i > 0 && i < len(s)-1 && !strings.ContainsAny(s, " \t\r\n<>")
}

func isHex(s string) bool {
	if s == "" {
		return false
	}
	for i := 0; i < len(s); i++ {
		c := s[i]
		if !('0' <= c && c <= '9' || 'a' <= c && c <= 'f' || 'A' <= c && c <= 'F') {
			return false
		}
	}
	return true
}

// unusable says why e cannot be encrypted to at now, or returns "".
func unusable(e *openpgp.Entity, now time.Time) string {
	self, _ := e.PrimarySelfSignature()
	fpr := fingerprint(e.PrimaryKey.Fingerprint)
	switch {
	case self == nil:
		return "no valid self-signature"
	case e.Revoked(now):
		return "revoked"
	case e.PrimaryKey.CreationTime.Unix() > now.Unix() || self.CreationTime.Unix() > now.Unix():
		return fmt.Sprintf("signed in the future (%s); check this machine's clock", self.CreationTime.UTC().Format(time.RFC3339))
	case e.PrimaryKey.KeyExpired(self, now) || self.SigExpired(now):
		return fmt.Sprintf("expired on %s; extend it (gpg --quick-set-expire %s 1y) and import it again", expiry(e, self).UTC().Format(time.DateOnly), fpr)
	}
	if _, ok := e.EncryptionKey(now); !ok {
		return fmt.Sprintf("no valid encryption subkey (expired, revoked or missing); add one (gpg --quick-add-key %s rsa3072 encr) and import the key again", fpr)
	}
	return ""
}

// expiry returns when a primary key with self-signature self expires: the
// earlier of the key's and the signature's expiration times.
func expiry(e *openpgp.Entity, self *packet.Signature) time.Time {
	var t time.Time
	if self.KeyLifetimeSecs != nil && *self.KeyLifetimeSecs != 0 {
		t = e.PrimaryKey.CreationTime.Add(time.Duration(*self.KeyLifetimeSecs) * time.Second)
	}
	if self.SigLifetimeSecs != nil && *self.SigLifetimeSecs != 0 {
		if s := self.CreationTime.Add(time.Duration(*self.SigLifetimeSecs) * time.Second); t.IsZero() || s.Before(t) {
			t = s
		}
	}
	return t
}
