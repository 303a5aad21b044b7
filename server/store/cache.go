package store

import (
	"context"
	"errors"
	"log/slog"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/jackc/pgx/v5"

	"trustee.dev/trustee/server/keyring"
)

// invalidateChannel is the PostgreSQL notification channel on which
// deposit deletions ("d:<owner>/<name>"; names hold no slash) and client state changes
// ("c:<fingerprint>") are announced, in the transaction that makes them.
const invalidateChannel = "kts_invalidate"

// Cache keeps sealed deposits and client states in memory in front of a
// deposit store, so that a read of a known deposit costs no database round
// trip. Deposits are immutable once written (a name is never overwritten),
// so only deletions and client state changes can make an entry stale; both
// are announced with NOTIFY in the committing transaction, and the cache
// listens. While the listening connection is down, the cache is bypassed
// and emptied, so it never serves what it may have missed.
//
// NOTIFY reaches only sessions on the primary: a server reading from a
// standby must not use a Cache.
type Cache struct {
	next interface {
		PutDeposit(ctx context.Context, owner, name string, d keyring.Sealed, size int) (time.Time, error)
		GetDeposit(ctx context.Context, owner, name string) (keyring.Sealed, error)
	}
	store    *Store
	maxBytes int64
	log      *slog.Logger

	live atomic.Bool   // the listener is connected
	gen  atomic.Uint64 // bumped by every invalidation

	mu       sync.RWMutex
	deposits map[depositKey]keyring.Sealed
	active   map[string]bool // client fingerprint → active
	bytes    int64
}

type depositKey struct{ owner, name string }

// NewCache serves reads of next from memory, holding at most maxBytes of
// sealed deposits, and listens for invalidations until ctx ends.
func NewCache(ctx context.Context, s *Store, next *Batcher, maxBytes int64, log *slog.Logger) *Cache {
	c := &Cache{next: next, store: s, maxBytes: maxBytes, log: log,
		deposits: map[depositKey]keyring.Sealed{}, active: map[string]bool{}}
	go c.listen(ctx)
	return c
}

// Live reports whether the cache is in use: its invalidation listener is
// connected.
func (c *Cache) Live() bool { return c.live.Load() }

// GetDeposit serves from memory when it can.
func (c *Cache) GetDeposit(ctx context.Context, owner, name string) (keyring.Sealed, error) {
	if !c.live.Load() {
		return c.next.GetDeposit(ctx, owner, name)
	}
	k := depositKey{owner, name}
	c.mu.RLock()
	active, known := c.active[owner]
	d, hit := c.deposits[k]
	c.mu.RUnlock()
	switch {
	case known && !active:
		return keyring.Sealed{}, clientState(owner, ptr("pending or disabled"))
	case known && hit:
		return d, nil
	}
	gen := c.gen.Load()
	d, err := c.next.GetDeposit(ctx, owner, name)
	switch {
	case err == nil:
		c.remember(gen, owner, true, &k, d)
	case errors.Is(err, ErrNotFound):
		c.remember(gen, owner, true, nil, d)
	case errors.Is(err, ErrClientNotActive):
		c.remember(gen, owner, false, nil, d)
	}
	return d, err
}

// PutDeposit writes through and keeps the new deposit.
func (c *Cache) PutDeposit(ctx context.Context, owner, name string, d keyring.Sealed, size int) (time.Time, error) {
	gen := c.gen.Load()
	created, err := c.next.PutDeposit(ctx, owner, name, d, size)
	if err != nil {
		return time.Time{}, err
	}
	if c.live.Load() {
		k := depositKey{owner, name}
		c.remember(gen, owner, true, &k, d)
	}
	return created, nil
}

// DeleteDeposit deletes in the database (which announces it) and forgets
// the deposit here at once.
func (c *Cache) DeleteDeposit(ctx context.Context, owner, name string) error {
	err := c.store.DeleteDeposit(ctx, owner, name)
	c.forgetDeposit(owner, name)
	return err
}

// ListDeposits always reads the database.
func (c *Cache) ListDeposits(ctx context.Context, owner string) ([]DepositInfo, error) {
	return c.store.ListDeposits(ctx, owner)
}

// remember stores what a read or write learned, unless an invalidation
// happened since it started (then what it learned may be stale).
func (c *Cache) remember(gen uint64, owner string, active bool, k *depositKey, d keyring.Sealed) {
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.gen.Load() != gen || !c.live.Load() {
		return
	}
	c.active[owner] = active
	if k == nil {
		return
	}
	if _, ok := c.deposits[*k]; ok {
		return
	}
	size := sealedSize(d)
	for c.bytes+size > c.maxBytes && len(c.deposits) > 0 {
		for victim, vd := range c.deposits { // map order is random: random eviction
			delete(c.deposits, victim)
			c.bytes -= sealedSize(vd)
			break
		}
	}
	if size <= c.maxBytes {
		c.deposits[*k] = d
		c.bytes += size
	}
}

func sealedSize(d keyring.Sealed) int64 {
	return int64(len(d.Ciphertext) + len(d.WrappedKey) + len(d.KeyID) + 64)
}

func (c *Cache) forgetDeposit(owner, name string) {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.gen.Add(1)
	k := depositKey{owner, name}
	if d, ok := c.deposits[k]; ok {
		delete(c.deposits, k)
		c.bytes -= sealedSize(d)
	}
}

func (c *Cache) forgetClient(fp string) {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.gen.Add(1)
	delete(c.active, fp)
}

func (c *Cache) forgetAll() {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.gen.Add(1)
	clear(c.deposits)
	clear(c.active)
	c.bytes = 0
}

// listen keeps a connection LISTENing for invalidations. The cache is live
// only while it is connected.
func (c *Cache) listen(ctx context.Context) {
	backoff := 100 * time.Millisecond
	for ctx.Err() == nil {
		err := c.listenOnce(ctx)
		c.live.Store(false)
		c.forgetAll()
		if ctx.Err() != nil {
			return
		}
		c.log.Warn("read cache off: invalidation listener lost; reconnecting", "err", err)
		select {
		case <-ctx.Done():
			return
		case <-time.After(backoff):
		}
		backoff = min(2*backoff, 5*time.Second)
	}
}

func (c *Cache) listenOnce(ctx context.Context) error {
	conn, err := pgx.ConnectConfig(ctx, c.store.pool.Config().ConnConfig.Copy())
	if err != nil {
		return err
	}
	defer conn.Close(context.WithoutCancel(ctx))
	if _, err := conn.Exec(ctx, "LISTEN "+invalidateChannel); err != nil {
		return err
	}
	c.forgetAll()
	c.live.Store(true)
	for {
		n, err := conn.WaitForNotification(ctx)
		if err != nil {
			return err
		}
		switch kind, rest, _ := strings.Cut(n.Payload, ":"); kind {
		case "c":
			c.forgetClient(rest)
		case "d":
			owner, name, _ := strings.Cut(rest, "/")
			c.forgetDeposit(owner, name)
		default:
			c.forgetAll()
		}
	}
}

func ptr[T any](v T) *T { return &v }
