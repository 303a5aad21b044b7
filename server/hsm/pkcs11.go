//go:build cgo

package hsm

import (
	"crypto/cipher"
	"crypto/rand"
	"encoding/binary"
	"errors"
	"fmt"
	"os"
	"regexp"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/ThalesGroup/crypto11"
	"github.com/miekg/pkcs11"
)

// stuckAfter is how long operations on a dropped connection may take to
// return before errors say the library may be stuck.
const stuckAfter = time.Minute

// closeWait is how long connect waits for a dropped connection to close
// before failing.
const closeWait = 50 * time.Millisecond

// Tests shorten these (atomics: calls from earlier tests may still run).
var (
	callTimeoutNS   atomic.Int64
	retryIntervalNS atomic.Int64
)

func init() {
	callTimeoutNS.Store(int64(CallTimeout))
	retryIntervalNS.Store(int64(RetryInterval))
}

func callTimeout() time.Duration   { return time.Duration(callTimeoutNS.Load()) }
func retryInterval() time.Duration { return time.Duration(retryIntervalNS.Load()) }

// A Token is an open connection to a PKCS#11 token. Its methods are safe for
// concurrent use. When the token becomes unreachable the Token drops the
// connection and makes a new one on a later call (see the package comment).
type Token struct {
	cfg Config

	mu      sync.Mutex
	cur     *conn         // nil while there is no working connection
	dialing bool          // a caller is making a new connection
	closing chan struct{} // closed once the last dropped connection is closed; nil when none is pending
	dropped time.Time     // when the last connection was dropped
	lastTry time.Time     // when a new connection was last attempted (zero: try at once)
	lastErr error         // why cur is nil
	closed  bool

	genMu sync.Mutex // serialises GenerateKey and DestroyKey within this process
}

// conn is one crypto11 context: a logged-in session plus a pool of sessions.
type conn struct {
	ctx   *crypto11.Context
	epoch atomic.Uint64 // bumped when this process destroys a key: cached handles are looked up again

	rawMu sync.RWMutex
	raw   *pkcs11.Ctx // the same library, for C_GetTokenInfo (crypto11 does not expose it); nil once closed
	slot  uint
}

// A Key is an AES-256 key in the token, named by its label. Its methods are
// safe for concurrent use.
type Key struct {
	t     *Token
	label string

	mu  sync.Mutex // serialises looking the key up
	ref atomic.Pointer[keyRef]
}

// keyRef is a key's object handle on one connection.
type keyRef struct {
	c     *conn
	epoch uint64
	sk    *crypto11.SecretKey
	aead  cipher.AEAD
	stale bool // the token said the handle is invalid
}

// usable reports whether r is a handle to use on c.
func (r *keyRef) usable(c *conn) bool {
	return r != nil && r.c == c && !r.stale && r.epoch == c.epoch.Load()
}

// Open connects to the token c names and logs in. Its errors name the module
// and the token label and say what to check; they never contain the PIN.
func Open(c Config) (*Token, error) {
	switch {
	case c.Module == "":
		return nil, errors.New("hsm: no PKCS#11 module given (the path of the token's PKCS#11 library, e.g. /usr/lib/softhsm/libsofthsm2.so)")
	case c.TokenLabel == "":
		return nil, fmt.Errorf("hsm: no token label given for PKCS#11 module %q", c.Module)
	}
	// (A bare file name is left to dlopen's search.)
	if strings.Contains(c.Module, "/") {
		if _, err := os.Stat(c.Module); err != nil {
			return nil, fmt.Errorf("hsm: PKCS#11 module %q for token %q: %w; check the module path", c.Module, c.TokenLabel, errors.Unwrap(err))
		}
	}
	t := &Token{cfg: c}
	var (
		mu     sync.Mutex
		cn     *conn
		gaveUp bool
	)
	_, err := timed(func() (struct{}, error) {
		nc, err := dial(c)
		if err != nil {
			return struct{}{}, err
		}
		mu.Lock()
		defer mu.Unlock()
		if gaveUp {
			go nc.close()
		}
		cn = nc
		return struct{}{}, nil
	}, func() {
		// Open gives up on the connection: close it if it comes after all.
		mu.Lock()
		defer mu.Unlock()
		gaveUp = true
		if cn != nil {
			go cn.close()
		}
	})
	if errors.Is(err, errTimeout) {
		return nil, fmt.Errorf("hsm: cannot open token %q in PKCS#11 module %s: %w; check that the token is connected and answering", c.TokenLabel, c.Module, err)
	}
	if err != nil {
		return nil, err
	}
	mu.Lock()
	t.cur = cn
	mu.Unlock()
	return t, nil
}

// Close closes the connection to the token. It waits up to CallTimeout for
// running operations to finish; past that the connection is closed in the
// background once they do. The Token and its Keys cannot be used afterwards.
func (t *Token) Close() error {
	t.mu.Lock()
	if t.closed {
		t.mu.Unlock()
		return nil
	}
	t.closed = true
	c, pending := t.cur, t.closing
	t.cur = nil
	t.mu.Unlock()

	done := make(chan struct{})
	go func() {
		if c != nil {
			c.close()
		}
		if pending != nil {
			<-pending
		}
		close(done)
	}()
	select {
	case <-done:
		return nil
	case <-time.After(callTimeout()):
		return fmt.Errorf("hsm: token %q: operations still running after %v; closing in the background", t.cfg.TokenLabel, callTimeout())
	}
}

// Key finds the key labelled label; the error wraps ErrNoKey if there is none.
func (t *Token) Key(label string) (*Key, error) {
	if label == "" {
		return nil, errors.New("hsm: empty key label")
	}
	k := &Key{t: t, label: label}
	_, err := call(t, true, func(c *conn) (*keyRef, error) {
		return k.handle(c)
	})
	if err != nil {
		return nil, err
	}
	return k, nil
}

// GenerateKey makes a new AES-256 key inside the token, labelled label:
// CKA_TOKEN (persistent), CKA_PRIVATE, CKA_SENSITIVE, not CKA_EXTRACTABLE, for
// CKA_ENCRYPT and CKA_DECRYPT only. It refuses (ErrKeyExists) if a key with
// that label exists. Two processes generating the same label at the same
// moment are not prevented from both succeeding.
func (t *Token) GenerateKey(label string) (*Key, error) {
	if label == "" {
		return nil, errors.New("hsm: empty key label")
	}
	t.genMu.Lock()
	defer t.genMu.Unlock()
	k := &Key{t: t, label: label}
	_, err := call(t, false, func(c *conn) (struct{}, error) {
		var none struct{}
		_, err := c.find(label)
		if err == nil {
			return none, fmt.Errorf("%w: %q", ErrKeyExists, label)
		}
		if !errors.Is(err, ErrNoKey) {
			return none, err
		}
		id := make([]byte, 16)
		rand.Read(id)
		tmpl, err := crypto11.NewAttributeSetWithIDAndLabel(id, []byte(label))
		if err != nil {
			return none, err
		}
		for typ, v := range map[crypto11.AttributeType]bool{
			crypto11.CkaToken:       true,
			crypto11.CkaPrivate:     true,
			crypto11.CkaSensitive:   true,
			crypto11.CkaExtractable: false,
			crypto11.CkaEncrypt:     true,
			crypto11.CkaDecrypt:     true,
			crypto11.CkaWrap:        false,
			crypto11.CkaUnwrap:      false,
			crypto11.CkaSign:        false,
			crypto11.CkaVerify:      false,
			crypto11.CkaDerive:      false,
		} {
			if err := tmpl.Set(typ, v); err != nil {
				return none, err
			}
		}
		epoch := c.epoch.Load()
		sk, err := c.ctx.GenerateSecretKeyWithAttributes(tmpl, KeyBits, crypto11.CipherAES)
		if err != nil {
			return none, fmt.Errorf("generating key %q: %w", label, err)
		}
		aead, err := sk.NewGCM()
		if err != nil {
			return none, err
		}
		k.ref.Store(&keyRef{c: c, epoch: epoch, sk: sk, aead: aead})
		return none, nil
	})
	if err != nil {
		return nil, err
	}
	return k, nil
}

// DestroyKey deletes the key labelled label from the token; the error wraps
// ErrNoKey if there is none. Keys for that label stop working.
func (t *Token) DestroyKey(label string) error {
	if label == "" {
		return errors.New("hsm: empty key label")
	}
	t.genMu.Lock()
	defer t.genMu.Unlock()
	_, err := call(t, false, func(c *conn) (struct{}, error) {
		sk, err := c.find(label)
		if err != nil {
			return struct{}{}, err
		}
		if err := sk.Delete(); err != nil {
			return struct{}{}, fmt.Errorf("destroying key %q: %w", label, err)
		}
		c.epoch.Add(1)
		return struct{}{}, nil
	})
	return err
}

// Info asks the token for its description.
func (t *Token) Info() (TokenInfo, error) {
	return call(t, true, func(c *conn) (TokenInfo, error) {
		c.rawMu.RLock()
		defer c.rawMu.RUnlock()
		if c.raw == nil {
			return TokenInfo{}, errConnClosed
		}
		ti, err := c.raw.GetTokenInfo(c.slot)
		if err != nil {
			return TokenInfo{}, fmt.Errorf("C_GetTokenInfo: %w", err)
		}
		return TokenInfo{
			Module:       t.cfg.Module,
			Label:        ti.Label,
			Manufacturer: ti.ManufacturerID,
			Model:        ti.Model,
			Serial:       ti.SerialNumber,
		}, nil
	})
}

// Label returns the key's label.
func (k *Key) Label() string { return k.label }

// Attributes reads the key's protection attributes from the token.
func (k *Key) Attributes() (KeyAttributes, error) {
	return use(k, func(c *conn, r *keyRef) (KeyAttributes, error) {
		set, err := c.ctx.GetAttributes(r.sk, []crypto11.AttributeType{
			crypto11.CkaSensitive, crypto11.CkaExtractable, crypto11.CkaAlwaysSensitive,
			crypto11.CkaNeverExtractable, crypto11.CkaKeyType, crypto11.CkaValueLen,
			crypto11.CkaToken, crypto11.CkaEncrypt, crypto11.CkaDecrypt,
		})
		if err != nil {
			return KeyAttributes{}, fmt.Errorf("C_GetAttributeValue: %w", err)
		}
		flag := func(typ crypto11.AttributeType) bool {
			at := set[typ]
			return at != nil && len(at.Value) > 0 && at.Value[0] != 0
		}
		a := KeyAttributes{
			Sensitive:        flag(crypto11.CkaSensitive),
			Extractable:      flag(crypto11.CkaExtractable),
			AlwaysSensitive:  flag(crypto11.CkaAlwaysSensitive),
			NeverExtractable: flag(crypto11.CkaNeverExtractable),
			Token:            flag(crypto11.CkaToken),
			Encrypt:          flag(crypto11.CkaEncrypt),
			Decrypt:          flag(crypto11.CkaDecrypt),
			KeyType:          "unknown",
		}
		if at := set[crypto11.CkaKeyType]; at != nil {
			if kt, ok := ulong(at.Value); ok {
				a.KeyType = fmt.Sprintf("%#x", kt)
				if kt == pkcs11.CKK_AES {
					a.KeyType = "AES"
				}
			}
		}
		if at := set[crypto11.CkaValueLen]; at != nil {
			if n, ok := ulong(at.Value); ok {
				a.ValueLen = int(n)
			}
		}
		return a, nil
	})
}

// ulong decodes a CK_ULONG attribute value (native byte order).
func ulong(b []byte) (uint64, bool) {
	switch len(b) {
	case 8:
		return binary.NativeEndian.Uint64(b), true
	case 4:
		return uint64(binary.NativeEndian.Uint32(b)), true
	}
	return 0, false
}

// Seal encrypts and authenticates plaintext and authenticates aad with the
// key, inside the token (CKM_AES_GCM), and returns nonce || ciphertext || tag.
func (k *Key) Seal(plaintext, aad []byte) ([]byte, error) {
	nonce := make([]byte, NonceSize)
	rand.Read(nonce)
	return k.sealWithNonce(nonce, plaintext, aad)
}

func (k *Key) sealWithNonce(nonce, plaintext, aad []byte) ([]byte, error) {
	sealed, err := use(k, func(c *conn, r *keyRef) (sealed []byte, err error) {
		// crypto11's AEAD panics when the token fails: turn that back into an error.
		defer func() {
			if p := recover(); p != nil {
				if e, ok := p.(error); ok {
					err = e
				} else {
					err = fmt.Errorf("C_Encrypt: %v", p)
				}
			}
		}()
		out := make([]byte, NonceSize, NonceSize+len(plaintext)+TagSize)
		copy(out, nonce)
		out = r.aead.Seal(out, nonce, plaintext, aad)
		if len(out) != NonceSize+len(plaintext)+TagSize {
			return nil, fmt.Errorf("C_Encrypt returned %d bytes for %d bytes of plaintext", len(out)-NonceSize, len(plaintext))
		}
		return out, nil
	})
	if err != nil {
		return nil, mechanismHint(err)
	}
	return sealed, nil
}

// Open checks and decrypts a message Seal made with this key and the same
// aad, inside the token. If the message or aad is not what was sealed the
// error wraps ErrAuth; if the token cannot be reached it wraps ErrUnavailable.
func (k *Key) Open(sealed, aad []byte) ([]byte, error) {
	if len(sealed) < NonceSize+TagSize {
		return nil, fmt.Errorf("%w: key %q: sealed message of %d bytes is shorter than its %d-byte IV and tag", ErrAuth, k.label, len(sealed), NonceSize+TagSize)
	}
	nonce, ct := sealed[:NonceSize], sealed[NonceSize:]
	plaintext, err := use(k, func(c *conn, r *keyRef) ([]byte, error) {
		pt, err := r.aead.Open(nil, nonce, ct, aad)
		if err == nil {
			if pt == nil {
				pt = []byte{}
			}
			return pt, nil
		}
		code, _ := ckr(err)
		switch code {
		case pkcs11.CKR_ENCRYPTED_DATA_INVALID, pkcs11.CKR_ENCRYPTED_DATA_LEN_RANGE:
			return nil, fmt.Errorf("%w: key %q", ErrAuth, k.label)
		case pkcs11.CKR_GENERAL_ERROR, pkcs11.CKR_FUNCTION_FAILED:
			// SoftHSM2 reports a tag mismatch as CKR_GENERAL_ERROR. Tell it
			// from token trouble: if the token still answers about this key,
			// it was the message.
			if _, perr := c.ctx.GetAttribute(r.sk, crypto11.CkaKeyType); perr != nil {
				return nil, fmt.Errorf("%v; then C_GetAttributeValue: %w", err, perr)
			}
			return nil, fmt.Errorf("%w: key %q", ErrAuth, k.label)
		}
		return nil, err
	})
	if err != nil {
		return nil, mechanismHint(err)
	}
	return plaintext, nil
}

// mechanismHint says what CKR_MECHANISM_INVALID means here.
func mechanismHint(err error) error {
	if code, ok := ckr(err); ok && code == pkcs11.CKR_MECHANISM_INVALID {
		return fmt.Errorf("%w (this token or PKCS#11 module does not offer AES-GCM, CKM_AES_GCM)", err)
	}
	return err
}

// handle returns the key's handle on c, looking it up by label if needed.
func (k *Key) handle(c *conn) (*keyRef, error) {
	if r := k.ref.Load(); r.usable(c) {
		return r, nil
	}
	k.mu.Lock()
	defer k.mu.Unlock()
	prev := k.ref.Load()
	if prev.usable(c) {
		return prev, nil
	}
	epoch := c.epoch.Load()
	sk, err := c.find(k.label)
	if errors.Is(err, ErrNoKey) && prev != nil && prev.stale && prev.c == c && prev.epoch == epoch {
		// It was there a moment ago on this connection, and this process
		// did not destroy it.
		return nil, &vanishedError{label: k.label, cause: err}
	}
	if err != nil {
		return nil, err
	}
	aead, err := sk.NewGCM()
	if err != nil {
		return nil, err
	}
	r := &keyRef{c: c, epoch: epoch, sk: sk, aead: aead}
	k.ref.Store(r)
	return r, nil
}

// use runs op with the key's handle on the current connection. A handle the
// token no longer knows is looked up again; a key that vanished from under a
// valid handle makes the Token reconnect once, since that is what a token
// that lost its storage, or was replaced, looks like.
func use[T any](k *Key, op func(c *conn, r *keyRef) (T, error)) (T, error) {
	return call(k.t, true, func(c *conn) (T, error) {
		var zero T
		r, err := k.handle(c)
		if err != nil {
			return zero, err
		}
		v, err := op(c, r)
		if !isStale(err) {
			return v, err
		}
		stale := *r
		stale.stale = true
		k.ref.CompareAndSwap(r, &stale)
		if r, err = k.handle(c); err != nil {
			return zero, err
		}
		return op(c, r)
	})
}

// find looks up the one AES key labelled label.
func (c *conn) find(label string) (*crypto11.SecretKey, error) {
	sks, err := c.ctx.FindKeys(nil, []byte(label))
	if err != nil {
		return nil, fmt.Errorf("finding key %q: %w", label, err)
	}
	switch len(sks) {
	case 0:
		return nil, fmt.Errorf("%w: %q", ErrNoKey, label)
	case 1:
	default:
		return nil, fmt.Errorf("hsm: %d keys are labelled %q; key labels must be unique", len(sks), label)
	}
	if sks[0].Cipher != crypto11.CipherAES {
		return nil, fmt.Errorf("hsm: key %q is not an AES key", label)
	}
	return sks[0], nil
}

// call runs op on the current connection, making one first if there is
// none, and waits at most callTimeout for it. A failure that means the token
// is unreachable drops the connection; if retry is set, op is then tried once
// more on a new connection (so a token that came back is used at once). op's
// value reaches the caller only if op finishes in time.
func call[T any](t *Token, retry bool, op func(c *conn) (T, error)) (T, error) {
	var zero T
	for attempt := 0; ; attempt++ {
		var used *conn
		var usedMu sync.Mutex
		v, err := timed(func() (T, error) {
			c, err := t.connect()
			if err != nil {
				return zero, err
			}
			usedMu.Lock()
			used = c
			usedMu.Unlock()
			return op(c)
		}, func() {
			// No answer in time: stop sending callers to this connection.
			usedMu.Lock()
			c := used
			usedMu.Unlock()
			if c != nil {
				t.drop(c, errTimeout)
			}
		})
		if err == nil {
			return v, nil
		}
		if errors.Is(err, errTimeout) || !unavailable(err) {
			return zero, t.wrap(err)
		}
		usedMu.Lock()
		c := used
		usedMu.Unlock()
		if c == nil {
			// Making the connection failed; connect already recorded why.
			return zero, t.wrap(err)
		}
		t.drop(c, err)
		if !retry || attempt > 0 {
			return zero, t.wrap(err)
		}
	}
}

// wrap adds the token's name to err and makes it wrap ErrUnavailable when it
// means the token is unreachable.
func (t *Token) wrap(err error) error {
	name := fmt.Sprintf("hsm: token %q (module %s)", t.cfg.TokenLabel, t.cfg.Module)
	if errors.Is(err, ErrUnavailable) {
		return redact(fmt.Errorf("%s: %w", name, err), t.cfg.PIN)
	}
	if unavailable(err) {
		return redact(fmt.Errorf("%s: %w: %w", name, ErrUnavailable, err), t.cfg.PIN)
	}
	return redact(fmt.Errorf("%s: %w", name, err), t.cfg.PIN)
}

var (
	errTimeout    = errors.New("no answer from the token in time")
	errConnClosed = fmt.Errorf("%w: connection closed", ErrUnavailable)
	errClosed     = errors.New("token closed")
)

// connect returns the current connection or makes a new one. While another
// caller is connecting, or a dropped connection is still closing, or the
// last attempt failed less than retryInterval ago, it fails at once.
func (t *Token) connect() (*conn, error) {
	t.mu.Lock()
	for {
		if t.closed {
			t.mu.Unlock()
			return nil, errClosed
		}
		if c := t.cur; c != nil {
			t.mu.Unlock()
			return c, nil
		}
		if t.dialing {
			err := t.lastErr
			t.mu.Unlock()
			return nil, fmt.Errorf("%w: reconnecting (after: %v)", ErrUnavailable, cause(err))
		}
		if t.closing == nil {
			break
		}
		closing := t.closing
		select {
		case <-closing:
			t.closing = nil
			continue
		default:
		}
		wait := closeWait - time.Since(t.dropped)
		if wait <= 0 {
			err := t.lastErr
			t.mu.Unlock()
			hint := ""
			if since := time.Since(t.dropped); since > stuckAfter {
				hint = "; the PKCS#11 library may be stuck: if this goes on, restart the process"
			}
			return nil, fmt.Errorf("%w: operations on the lost connection have not returned for %v (after: %v)%s", ErrUnavailable, time.Since(t.dropped).Round(time.Millisecond), cause(err), hint)
		}
		// The connection was dropped a moment ago: closing it is usually
		// quick, so give it a little time before failing.
		t.mu.Unlock()
		timer := time.NewTimer(wait)
		select {
		case <-closing:
		case <-timer.C:
		}
		timer.Stop()
		t.mu.Lock()
	}
	if !t.lastTry.IsZero() && time.Since(t.lastTry) < retryInterval() {
		err := t.lastErr
		t.mu.Unlock()
		return nil, fmt.Errorf("%w: %v", ErrUnavailable, cause(err))
	}
	t.dialing = true
	t.lastTry = time.Now()
	t.mu.Unlock()

	c, err := dial(t.cfg)

	t.mu.Lock()
	defer t.mu.Unlock()
	t.dialing = false
	if err != nil {
		// The token was there before: whatever stops us now is an outage.
		if errors.Is(err, errTokenNotFound) {
			err = fmt.Errorf("%w: reconnecting: PKCS#11 module %s shows no token labelled %q", ErrUnavailable, t.cfg.Module, t.cfg.TokenLabel)
		} else {
			err = fmt.Errorf("%w: reconnecting: %v", ErrUnavailable, cause(err))
		}
		t.lastErr = err
		return nil, err
	}
	if t.closed {
		go c.close()
		return nil, errClosed
	}
	t.cur = c
	return c, nil
}

// drop stops using c (if it is still current) because of cause, and closes
// it in the background once the operations running on it return.
func (t *Token) drop(c *conn, cause error) {
	t.mu.Lock()
	if t.cur != c {
		t.mu.Unlock()
		return
	}
	t.cur = nil
	t.lastErr = cause
	t.lastTry = time.Time{} // the first reconnect may come at once
	t.dropped = time.Now()
	done := make(chan struct{})
	prev := t.closing
	t.closing = done
	t.mu.Unlock()
	go func() {
		if prev != nil {
			<-prev
		}
		c.close()
		close(done)
	}()
}

// dial opens a crypto11 context on the token and logs in.
func dial(cfg Config) (*conn, error) {
	ctx, err := crypto11.Configure(&crypto11.Config{
		Path:            cfg.Module,
		TokenLabel:      cfg.TokenLabel,
		Pin:             cfg.PIN,
		MaxSessions:     MaxSessions,
		PoolWaitTimeout: callTimeout(),
		GCMIVLength:     NonceSize,
	})
	if err != nil {
		return nil, explainOpen(cfg, err)
	}
	c := &conn{ctx: ctx}
	raw := pkcs11.New(cfg.Module)
	if raw == nil {
		ctx.Close()
		return nil, fmt.Errorf("hsm: PKCS#11 module %q could not be loaded a second time", cfg.Module)
	}
	// crypto11 has initialized the library; a second C_Initialize only says so.
	if err := raw.Initialize(); err != nil && !errors.Is(err, pkcs11.Error(pkcs11.CKR_CRYPTOKI_ALREADY_INITIALIZED)) {
		raw.Destroy()
		ctx.Close()
		return nil, explainOpen(cfg, fmt.Errorf("C_Initialize: %w", err))
	}
	c.raw = raw
	slot, err := findSlot(raw, cfg.TokenLabel)
	if err != nil {
		c.close()
		return nil, explainOpen(cfg, err)
	}
	c.slot = slot
	return c, nil
}

func findSlot(raw *pkcs11.Ctx, label string) (uint, error) {
	slots, err := raw.GetSlotList(true)
	if err != nil {
		return 0, fmt.Errorf("C_GetSlotList: %w", err)
	}
	for _, s := range slots {
		ti, err := raw.GetTokenInfo(s)
		if err != nil {
			return 0, fmt.Errorf("C_GetTokenInfo: %w", err)
		}
		if ti.Label == label {
			return s, nil
		}
	}
	return 0, errTokenNotFound
}

var errTokenNotFound = errors.New("could not find PKCS#11 token")

// close releases the connection, waiting for operations running on it.
func (c *conn) close() {
	c.rawMu.Lock()
	if c.raw != nil {
		c.raw.Destroy() // dlclose only: crypto11 finalizes the library
		c.raw = nil
	}
	c.rawMu.Unlock()
	c.ctx.Close()
}

// explainOpen turns crypto11's error for a failed Configure into one that
// says what to check.
func explainOpen(cfg Config, err error) error {
	what := fmt.Sprintf("token %q in PKCS#11 module %s", cfg.TokenLabel, cfg.Module)
	msg := err.Error()
	code, hasCode := ckr(err)
	var out error
	switch {
	case strings.Contains(msg, "failed to open module"):
		out = fmt.Errorf("hsm: cannot load PKCS#11 module %s (for token %q): check the module path and that it is a PKCS#11 library", cfg.Module, cfg.TokenLabel)
	case strings.Contains(msg, errTokenNotFound.Error()):
		out = &notFoundError{fmt.Sprintf("hsm: no token labelled %q in PKCS#11 module %s: check the token label, and that the token is connected (pkcs11-tool --module %s --list-token-slots lists the tokens)", cfg.TokenLabel, cfg.Module, cfg.Module)}
	case hasCode && code == pkcs11.CKR_PIN_INCORRECT:
		out = fmt.Errorf("hsm: cannot log in to %s: wrong PIN (CKR_PIN_INCORRECT): check the PIN", what)
	case hasCode && (code == pkcs11.CKR_PIN_LOCKED || code == pkcs11.CKR_PIN_EXPIRED || code == pkcs11.CKR_PIN_LEN_RANGE || code == pkcs11.CKR_PIN_INVALID):
		out = fmt.Errorf("hsm: cannot log in to %s: %s: check the PIN", what, ckrName(code))
	case unavailable(err):
		out = fmt.Errorf("hsm: cannot open %s: %w: %v; check that the token is connected and answering", what, ErrUnavailable, err)
	default:
		out = fmt.Errorf("hsm: cannot open %s: %v; check the module path, token label and PIN", what, err)
	}
	return redact(out, cfg.PIN)
}

// notFoundError is explainOpen's error for a missing token.
type notFoundError struct{ msg string }

func (e *notFoundError) Error() string        { return e.msg }
func (e *notFoundError) Is(target error) bool { return target == errTokenNotFound }

// cause strips the "token unavailable: " that err's text starts with, if
// any, for use in the text of a new error that wraps ErrUnavailable itself.
func cause(err error) string {
	if err == nil {
		return "unknown error"
	}
	s := err.Error()
	for strings.HasPrefix(s, ErrUnavailable.Error()+": ") {
		s = strings.TrimPrefix(s, ErrUnavailable.Error()+": ")
	}
	return s
}

// redact makes sure err's text does not contain pin.
func redact(err error, pin string) error {
	if err == nil || len(pin) < 4 || !strings.Contains(err.Error(), pin) {
		return err
	}
	return &redacted{msg: strings.ReplaceAll(err.Error(), pin, "<PIN>"), err: err}
}

type redacted struct {
	msg string
	err error
}

func (r *redacted) Error() string { return r.msg }
func (r *redacted) Unwrap() error { return r.err }

// vanishedError is a key that disappeared from under a handle that worked:
// treated as an outage (the Token reconnects and looks again; if the key is
// still missing then, the caller gets ErrNoKey).
type vanishedError struct {
	label string
	cause error
}

func (e *vanishedError) Error() string {
	return fmt.Sprintf("key %q disappeared from the token: its handle became invalid, and %v", e.label, e.cause)
}
func (e *vanishedError) Unwrap() error { return e.cause }

// ckrPattern finds the return value in errors crypto11 formats with %v.
var ckrPattern = regexp.MustCompile(`pkcs11: 0x([0-9A-Fa-f]+):`)

// ckr returns the PKCS#11 return value err carries, if any.
func ckr(err error) (uint, bool) {
	if err == nil {
		return 0, false
	}
	var pe pkcs11.Error
	if errors.As(err, &pe) {
		return uint(pe), true
	}
	if m := ckrPattern.FindStringSubmatch(err.Error()); m != nil {
		if v, perr := strconv.ParseUint(m[1], 16, 64); perr == nil {
			return uint(v), true
		}
	}
	return 0, false
}

func ckrName(code uint) string {
	s := pkcs11.Error(code).Error() // "pkcs11: 0x..: CKR_..."
	if i := strings.LastIndex(s, ": "); i >= 0 {
		return s[i+2:]
	}
	return s
}

// isStale reports whether err says an object handle is no longer valid.
func isStale(err error) bool {
	code, ok := ckr(err)
	return ok && (code == pkcs11.CKR_OBJECT_HANDLE_INVALID || code == pkcs11.CKR_KEY_HANDLE_INVALID)
}

// unavailable reports whether err means the token (or the connection to
// it) is not working, rather than a problem with the request.
func unavailable(err error) bool {
	if err == nil {
		return false
	}
	if errors.Is(err, ErrUnavailable) {
		return true
	}
	var v *vanishedError
	if errors.As(err, &v) {
		return true
	}
	if code, ok := ckr(err); ok {
		switch code {
		case pkcs11.CKR_GENERAL_ERROR, pkcs11.CKR_FUNCTION_FAILED, pkcs11.CKR_HOST_MEMORY,
			pkcs11.CKR_DEVICE_ERROR, pkcs11.CKR_DEVICE_MEMORY, pkcs11.CKR_DEVICE_REMOVED,
			pkcs11.CKR_SESSION_CLOSED, pkcs11.CKR_SESSION_HANDLE_INVALID, pkcs11.CKR_SESSION_COUNT,
			pkcs11.CKR_TOKEN_NOT_PRESENT, pkcs11.CKR_TOKEN_NOT_RECOGNIZED, pkcs11.CKR_SLOT_ID_INVALID,
			pkcs11.CKR_CRYPTOKI_NOT_INITIALIZED, pkcs11.CKR_USER_NOT_LOGGED_IN,
			pkcs11.CKR_FUNCTION_CANCELED, pkcs11.CKR_CANCEL:
			return true
		}
		return false
	}
	// crypto11's own words for a closed context or an exhausted session pool.
	msg := err.Error()
	for _, s := range []string{"context is closed", "cannot used closed Context", "resource pool timed out", "resource pool is closed"} {
		if strings.Contains(msg, s) {
			return true
		}
	}
	return false
}

// timed runs f and waits at most callTimeout for it. If f is late, late is
// called and the caller gets an error wrapping ErrUnavailable; f goes on in
// the background (a PKCS#11 call cannot be interrupted).
func timed[T any](f func() (T, error), late func()) (T, error) {
	d := callTimeout()
	if d <= 0 {
		return protect(f)
	}
	deadline := time.Now().Add(d)
	type result struct {
		v   T
		err error
	}
	ch := make(chan result, 1)
	go func() {
		v, err := protect(f)
		ch <- result{v, err}
	}()
	for {
		select {
		case r := <-ch:
			return r.v, r.err
		case <-ticks():
			if time.Now().After(deadline) {
				late()
				var zero T
				return zero, fmt.Errorf("%w: %w (%v)", ErrUnavailable, errTimeout, d)
			}
		}
	}
}

// tickEvery is how often waiting callers look at their deadline: one shared
// clock instead of a timer per call, which costs more than it saves.
const tickEvery = 100 * time.Millisecond

var tick struct {
	once sync.Once
	ch   atomic.Pointer[chan struct{}]
}

// ticks returns a channel that is closed at the next tick.
func ticks() <-chan struct{} {
	tick.once.Do(func() {
		c := make(chan struct{})
		tick.ch.Store(&c)
		go func() {
			for {
				time.Sleep(tickEvery)
				next := make(chan struct{})
				close(*tick.ch.Swap(&next))
			}
		}()
	})
	return *tick.ch.Load()
}

// protect turns a panic in f (a PKCS#11 wrapper's) into an error.
func protect[T any](f func() (T, error)) (v T, err error) {
	defer func() {
		if p := recover(); p != nil {
			err = fmt.Errorf("%w: PKCS#11 call panicked: %v", ErrUnavailable, p)
		}
	}()
	return f()
}
