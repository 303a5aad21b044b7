// Package hsm keeps the server's key-encryption keys in a PKCS#11 token (an
// HSM) and uses them there: AES-256 keys are generated inside the token
// (sensitive, never extractable, persistent), found again by label, and used
// for AES-GCM by the token itself. It is the only package that talks
// PKCS#11 (through github.com/ThalesGroup/crypto11); the rest of the server
// sees Open, Token, Key, Seal and Open.
//
// # Sealed format
//
// Key.Seal returns nonce || ciphertext || tag: a 12-byte IV (NonceSize) that
// this package draws from crypto/rand and hands to the token in
// CK_GCM_PARAMS, the ciphertext, and a 16-byte tag (TagSize). Tokens that
// ignore the caller's IV and make their own (AWS CloudHSM) are not supported.
// With random 96-bit IVs one key should seal at most 2^32 messages (NIST SP
// 800-38D, 8.3); rotate keys well before that.
//
// # Errors
//
// Failures that mean "the token cannot be reached right now" wrap
// ErrUnavailable (try again later; the Token reconnects by itself). A missing
// key wraps ErrNoKey, a ciphertext that fails authentication wraps ErrAuth.
//
// # Concurrency and HSM loss
//
// A Token and its Keys are safe for concurrent use. Every operation takes a
// PKCS#11 session from crypto11's pool (at most MaxSessions-1 besides the
// logged-in one; callers beyond that wait for a free session) and runs on a
// goroutine of its own, so that its caller waits at most CallTimeout for it
// (twice that when a call that failed at once is retried on a new
// connection): a PKCS#11 call cannot be interrupted, so one that hangs is
// left behind. When the token reports a device or session error, or does not
// answer in time, the Token drops the connection (closing it in the
// background once the calls running on it return) and the next call logs in
// again, at once and then no more than once every RetryInterval while the
// token stays unreachable; meanwhile calls fail at once. A key whose handle
// stops working and whose label then finds nothing also makes the Token
// reconnect once before the caller gets ErrNoKey.
//
// Reconnecting finalizes and re-initializes the PKCS#11 library only when
// this Token is the process's only user of the module (crypto11 shares one
// library context between Tokens opened on the same module); some modules
// (p11-kit's client, SoftHSM2 after its token directory vanished) need that
// to recover. A library that never returns from calls on the lost connection
// cannot be re-initialized: calls keep failing with ErrUnavailable and the
// process has to be restarted.
//
// The Token keeps the PIN in memory to log in again.
//
// A build without cgo has the same API, but Open returns ErrNoPKCS11.
package hsm

import (
	"errors"
	"fmt"
	"log/slog"
	"time"
)

const (
	// NonceSize is the length of the AES-GCM IV at the start of a sealed message.
	NonceSize = 12
	// TagSize is the length of the AES-GCM tag at the end of a sealed message.
	TagSize = 16
	// Overhead is how much longer a sealed message is than its plaintext.
	Overhead = NonceSize + TagSize

	// KeyBits is the size of the keys GenerateKey makes.
	KeyBits = 256

	// MaxSessions is the most PKCS#11 sessions a Token keeps open (one of them
	// stays logged in for the Token's life; the others form the pool that
	// operations take turns on).
	MaxSessions = 64
	// CallTimeout is the longest a caller waits for one token operation.
	CallTimeout = 5 * time.Second
	// RetryInterval is the least time between two attempts to reconnect to a
	// token that stays unreachable.
	RetryInterval = time.Second
)

var (
	// ErrUnavailable is wrapped by errors that mean the token cannot be
	// reached right now (module, session or device errors, a token that does
	// not answer in time), as opposed to a wrong ciphertext or a missing key.
	ErrUnavailable = errors.New("token unavailable")

	// ErrNoKey is wrapped by errors for a label that names no key on the token.
	ErrNoKey = errors.New("no key with that label")

	// ErrKeyExists is wrapped by GenerateKey's error when the label is taken.
	ErrKeyExists = errors.New("a key with that label already exists")

	// ErrAuth is wrapped by Key.Open's error when the sealed message (or its
	// additional data) is not what was sealed with that key.
	ErrAuth = errors.New("message authentication failed")

	// ErrNoPKCS11 is returned by Open in a build without cgo.
	ErrNoPKCS11 = errors.New("this kts was built without cgo: PKCS#11 (HSM) support is unavailable; build with CGO_ENABLED=1")
)

// Config names a token: the PKCS#11 library, the token's label and the user
// PIN. Its String and GoString methods (and so fmt's %v, %+v, %#v) and its
// slog form hide the PIN.
type Config struct {
	Module     string // path of the PKCS#11 library
	TokenLabel string
	PIN        string // never logged or printed
}

// String describes c without its PIN.
func (c Config) String() string {
	return fmt.Sprintf("{Module:%s TokenLabel:%s PIN:%s}", c.Module, c.TokenLabel, c.pinMark())
}

// GoString describes c without its PIN.
func (c Config) GoString() string {
	return fmt.Sprintf("hsm.Config{Module:%q, TokenLabel:%q, PIN:%q}", c.Module, c.TokenLabel, c.pinMark())
}

// LogValue makes slog log c without its PIN.
func (c Config) LogValue() slog.Value {
	return slog.GroupValue(
		slog.String("module", c.Module),
		slog.String("token_label", c.TokenLabel),
		slog.String("pin", c.pinMark()),
	)
}

func (c Config) pinMark() string {
	if c.PIN == "" {
		return "(none)"
	}
	return "(hidden)"
}

// TokenInfo describes the token a Token is connected to.
type TokenInfo struct {
	Module       string // path of the PKCS#11 library
	Label        string
	Manufacturer string
	Model        string
	Serial       string
}

// KeyAttributes are a key's protection attributes as the token reports them.
type KeyAttributes struct {
	Sensitive        bool   // CKA_SENSITIVE
	Extractable      bool   // CKA_EXTRACTABLE
	AlwaysSensitive  bool   // CKA_ALWAYS_SENSITIVE
	NeverExtractable bool   // CKA_NEVER_EXTRACTABLE
	Token            bool   // CKA_TOKEN: stored in the token, not a session object
	Encrypt          bool   // CKA_ENCRYPT
	Decrypt          bool   // CKA_DECRYPT
	KeyType          string // CKA_KEY_TYPE: "AES", or the number in hex
	ValueLen         int    // CKA_VALUE_LEN, in bytes
}

// Check says what, if anything, makes a the attributes of something other
// than a protected, persistent AES-256 encryption key.
func (a KeyAttributes) Check() error {
	var bad []string
	if a.KeyType != "AES" {
		bad = append(bad, "key type "+a.KeyType+", not AES")
	}
	if a.ValueLen != KeyBits/8 {
		bad = append(bad, fmt.Sprintf("%d-byte key, not %d", a.ValueLen, KeyBits/8))
	}
	for _, f := range []struct {
		ok   bool
		what string
	}{
		{a.Sensitive, "not sensitive"},
		{!a.Extractable, "extractable"},
		{a.AlwaysSensitive, "not always sensitive"},
		{a.NeverExtractable, "has been extractable"},
		{a.Token, "not a token object"},
		{a.Encrypt && a.Decrypt, "not usable for both encryption and decryption"},
	} {
		if !f.ok {
			bad = append(bad, f.what)
		}
	}
	if len(bad) == 0 {
		return nil
	}
	return fmt.Errorf("hsm: key attributes: %v", bad)
}
