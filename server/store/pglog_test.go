package store_test

import (
	"context"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"trustee.dev/trustee/server/audit"
	"trustee.dev/trustee/server/keyring"
	"trustee.dev/trustee/server/openpgp/openpgptest"
	"trustee.dev/trustee/server/pg"
	"trustee.dev/trustee/server/pg/pgtest"
	"trustee.dev/trustee/server/store"
)

// putResult is one put's answer.
type putResult struct {
	name    string
	created time.Time
	err     error
}

// putAll puts names concurrently through b (so that they form batches) and
// returns each answer.
func putAll(ctx context.Context, b *store.Batcher, owner string, names ...string) []putResult {
	out := make([]putResult, len(names))
	var wg sync.WaitGroup
	for i, n := range names {
		wg.Add(1)
		go func() {
			defer wg.Done()
			created, err := b.PutDeposit(ctx, owner, n, keyring.Sealed{KeyID: "k1", WrappedKey: []byte("w"), Ciphertext: []byte(n)}, 1)
			out[i] = putResult{n, created, err}
		}()
	}
	wg.Wait()
	return out
}

// Normal operation, the deposit paths' refusals and a fingerprint
// registered twice included, provokes no error in PostgreSQL: its log has
// no ERROR line. The batched put's fast
// path and its fall-backs (a name that exists, twice in a batch, a client
// that is pending or unknown, the audit chain's head moved by another
// writer) all take their way without a failed statement.
func TestNormalWorkloadLeavesNoErrorInThePostgreSQLLog(t *testing.T) {
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	inst := pgtest.NewInstance(t)
	const password = "pglog-test"
	if err := inst.Init(ctx, password); err != nil {
		t.Fatal(err)
	}
	if err := inst.Start(ctx); err != nil {
		t.Fatal(err)
	}
	s, err := store.Open(ctx, inst.ConnString(pg.DefaultDatabase, password), 4)
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	if err := s.Migrate(ctx); err != nil {
		t.Fatal(err)
	}
	actx := audit.WithActor(ctx, admin)
	fp := activeClient(t, actx, s)
	pending := "F" + fp[1:]
	if err := s.RegisterClient(actx, store.Client{Fingerprint: pending, OrgName: "acme", KeyID: "k", PublicKey: []byte("k"), State: store.StatePending}); err != nil {
		t.Fatal(err)
	}
	// Registering a fingerprint again, or with an unknown organization.
	if err := s.RegisterClient(actx, store.Client{Fingerprint: pending, OrgName: "acme", KeyID: "k", PublicKey: []byte("k"), State: store.StateActive}); !errors.Is(err, store.ErrExists) {
		t.Fatalf("registering a fingerprint again: %v", err)
	}
	if err := s.RegisterClient(actx, store.Client{Fingerprint: "D" + fp[1:], OrgName: "nobody", KeyID: "k", PublicKey: []byte("k"), State: store.StateActive}); !errors.Is(err, store.ErrNotFound) {
		t.Fatalf("registering with an unknown organization: %v", err)
	}
	unknown := "E" + fp[1:]
	b := store.NewBatcher(ctx, s, 1, 64)

	want := map[string]error{}
	check := func(what string, results []putResult, owner string) {
		t.Helper()
		for _, r := range results {
			if w, refused := want[owner+"/"+r.name]; refused {
				if !errors.Is(r.err, w) {
					t.Fatalf("%s: put %s: %v, want %v", what, r.name, r.err, w)
				}
				continue
			}
			if r.err != nil {
				t.Fatalf("%s: put %s: %v", what, r.name, r.err)
			}
		}
	}
	names := func(prefix string, n int) []string {
		var out []string
		for i := range n {
			out = append(out, fmt.Sprintf("%s-%d", prefix, i))
		}
		return out
	}
	// The first batch learns the head; the next ones take the fast path.
	for round := range 3 {
		check("fresh names", putAll(actx, b, fp, names(fmt.Sprint("r", round), 8)...), fp)
	}
	// A name that exists, in a batch and alone.
	want[fp+"/r0-0"] = store.ErrExists
	check("existing name", putAll(actx, b, fp, append(names("dup", 6), "r0-0")...), fp)
	check("existing name alone", putAll(actx, b, fp, "r0-0"), fp)
	// The same name twice in one batch: one goes in.
	twice := putAll(actx, b, fp, "twice", "twice", "twice-other")
	ok := 0
	for _, r := range twice {
		if r.err == nil {
			ok++
		} else if !errors.Is(r.err, store.ErrExists) {
			t.Fatalf("twice: %v", r.err)
		}
	}
	if ok < 2 {
		t.Fatalf("twice in a batch: %d of 3 went in", ok)
	}
	// Clients that may not deposit.
	want[pending+"/p-0"], want[unknown+"/u-0"] = store.ErrClientNotActive, store.ErrUnknownClient
	check("pending client", putAll(actx, b, pending, "p-0"), pending)
	check("unknown client", putAll(actx, b, unknown, "u-0"), unknown)
	check("after refusals", putAll(actx, b, fp, names("after", 5)...), fp)
	// Another writer moves the audit chain's head.
	if err := s.SetAuthHash(actx, "acme", ""); err != nil {
		t.Fatal(err)
	}
	check("head moved", putAll(actx, b, fp, names("moved", 5)...), fp)
	// The unaudited path, the single-statement put, reads, a list, deletes.
	check("unaudited", putAll(audit.Unaudited(ctx), b, fp, names("quiet", 3)...), fp)
	if _, err := s.PutDeposit(actx, fp, "single", keyring.Sealed{KeyID: "k1", WrappedKey: []byte("w"), Ciphertext: []byte("c")}, 1); err != nil {
		t.Fatal(err)
	}
	if _, err := s.PutDeposit(actx, fp, "single", keyring.Sealed{KeyID: "k1", WrappedKey: []byte("w"), Ciphertext: []byte("c")}, 1); !errors.Is(err, store.ErrExists) {
		t.Fatalf("single put of an existing name: %v", err)
	}
	if _, err := b.GetDeposit(ctx, fp, "r1-1"); err != nil {
		t.Fatal(err)
	}
	if _, err := b.GetDeposit(ctx, fp, "absent"); !errors.Is(err, store.ErrNotFound) {
		t.Fatalf("get of an absent deposit: %v", err)
	}
	if _, err := s.ListDeposits(ctx, fp); err != nil {
		t.Fatal(err)
	}
	if err := s.DeleteDeposit(actx, fp, "r2-2"); err != nil {
		t.Fatal(err)
	}
	if err := s.DeleteDeposit(actx, fp, "r2-2"); !errors.Is(err, store.ErrNotFound) {
		t.Fatalf("delete of an absent deposit: %v", err)
	}
	if _, err := store.VerifyAudit(ctx, s.Pool(), &audit.Verifier{Key: openpgptest.Key(t, 0).Public()}, nil); err != nil {
		t.Fatal(err)
	}

	log, err := os.ReadFile(filepath.Join(inst.DataDir, pg.LogFile))
	if err != nil {
		t.Fatal(err)
	}
	var errs []string
	for _, line := range strings.Split(string(log), "\n") {
		if strings.Contains(line, "ERROR:") {
			errs = append(errs, line)
		}
	}
	if len(errs) > 0 {
		t.Fatalf("PostgreSQL logged %d errors in normal operation, e.g.:\n%s", len(errs), strings.Join(errs[:min(len(errs), 5)], "\n"))
	}
}

// A put answers the deposit's creation time exactly as stored (PostgreSQL
// keeps microseconds), whichever path took it: the lone statement, the
// batch's first (two round trips), its fast path, and the unaudited insert.
func TestPutAnswersTheStoredCreationTime(t *testing.T) {
	s := open(t)
	ctx := audit.WithActor(context.Background(), admin)
	fp := activeClient(t, ctx, s)
	b := store.NewBatcher(ctx, s, 1, 64)
	answered := map[string]time.Time{}
	created, err := s.PutDeposit(ctx, fp, "single", keyring.Sealed{KeyID: "k1", WrappedKey: []byte("w"), Ciphertext: []byte("c")}, 1)
	if err != nil {
		t.Fatal(err)
	}
	answered["single"] = created
	for _, batch := range [][]string{{"first-0", "first-1"}, {"fast-0", "fast-1", "fast-2"}, {"fast-3"}} {
		for _, r := range putAll(ctx, b, fp, batch...) {
			if r.err != nil {
				t.Fatal(r.err)
			}
			answered[r.name] = r.created
		}
	}
	for _, r := range putAll(audit.Unaudited(ctx), b, fp, "quiet-0", "quiet-1") {
		if r.err != nil {
			t.Fatal(r.err)
		}
		answered[r.name] = r.created
	}
	list, err := s.ListDeposits(ctx, fp)
	if err != nil {
		t.Fatal(err)
	}
	if len(list) != len(answered) {
		t.Fatalf("%d deposits listed, %d put", len(list), len(answered))
	}
	for _, d := range list {
		if got := answered[d.Name]; !got.Equal(d.Created) {
			t.Errorf("%s: the put answered created %s, the database holds %s", d.Name, got.Format(time.RFC3339Nano), d.Created.Format(time.RFC3339Nano))
		}
	}
}
