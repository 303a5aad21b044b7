package hsmkeys_test

import (
	"context"
	"errors"
	"fmt"
	"regexp"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"trustee.dev/trustee/server/config"
	"trustee.dev/trustee/server/deposit"
	"trustee.dev/trustee/server/hsm"
	"trustee.dev/trustee/server/hsmkeys"
	"trustee.dev/trustee/server/keyring"
	"trustee.dev/trustee/server/pg/pgtest"
	"trustee.dev/trustee/server/store"
)

const owner = "0123456789ABCDEF0123456789ABCDEF01234567"

// depositsDB is a real database with a client that owns deposits.
func depositsDB(t *testing.T) *store.Store {
	t.Helper()
	ctx := context.Background()
	s, err := store.Open(ctx, pgtest.DSN(t), 8)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(s.Close)
	if err := s.Migrate(ctx); err != nil {
		t.Fatal(err)
	}
	if _, _, err := s.AddOrganization(ctx, "acme", []string{"a@example.com"}, ""); err != nil {
		t.Fatal(err)
	}
	if err := s.RegisterClient(ctx, store.Client{Fingerprint: owner, OrgName: "acme", KeyID: "k", PublicKey: []byte("k"), State: store.StateActive}); err != nil {
		t.Fatal(err)
	}
	return s
}

// writer writes deposits as a server does whose keyring wraps with its
// current key.
type writer struct {
	db  *store.Store
	set *keyring.Set
	n   atomic.Int64
}

func newWriter(t *testing.T, db *store.Store, kr *hsmkeys.Keyring, current string) *writer {
	t.Helper()
	set := keyring.NewSet(newFileKeyring(t), kr)
	if err := set.SetCurrent(current); err != nil {
		t.Fatal(err)
	}
	return &writer{db: db, set: set}
}

func (w *writer) put(ctx context.Context, prefix string, n int) error {
	for range n {
		name := fmt.Sprintf("%s-%d", prefix, w.n.Add(1))
		sealed, err := keyring.Seal(ctx, w.set, []byte("value of "+name), deposit.AAD(owner, name))
		if err == nil {
			_, err = w.db.PutDeposit(ctx, owner, name, sealed, 1)
		}
		if err != nil {
			return err
		}
	}
	return nil
}

// readAll opens every deposit with the keys in the token.
func readAll(t *testing.T, db *store.Store, kr *hsmkeys.Keyring) int {
	t.Helper()
	ctx := context.Background()
	set := keyring.NewSet(newFileKeyring(t), kr)
	infos, err := db.ListDeposits(ctx, owner)
	if err != nil {
		t.Fatal(err)
	}
	for _, info := range infos {
		name := info.Name
		d, err := db.GetDeposit(ctx, owner, name)
		if err != nil {
			t.Fatal(err)
		}
		if pt, err := keyring.Open(ctx, set, d, deposit.AAD(owner, name)); err != nil || string(pt) != "value of "+name {
			t.Fatalf("deposit %s (wrapped by %s) opens as %q, %v", name, d.KeyID, pt, err)
		}
	}
	return len(infos)
}

// TestRewrapCountsDepositsWrittenMeanwhile re-wraps while deposits wrapped
// with the old key keep arriving (servers switch to a new key within
// seconds): the progress never says more were re-wrapped than needed it,
// and it is reported as the re-wrap goes, not only at its end.
func TestRewrapCountsDepositsWrittenMeanwhile(t *testing.T) {
	ctx := context.Background()
	tok, _ := openToken(t)
	for _, l := range []string{"kts-kek-1", "kts-kek-2"} {
		if _, err := tok.GenerateKey(l); err != nil {
			t.Fatal(err)
		}
	}
	db := depositsDB(t)
	kr := hsmkeys.NewKeyring(tok, "(test token)")
	old := newWriter(t, db, kr, hsmkeys.ID("kts-kek-1"))
	if err := old.put(ctx, "before", 600); err != nil {
		t.Fatal(err)
	}
	defer hsmkeys.SetProgressEvery(0)()

	// A server still wrapping with the old key, all along.
	stop, wg := make(chan struct{}), sync.WaitGroup{}
	var putErr error
	wg.Add(1)
	go func() {
		defer wg.Done()
		for {
			select {
			case <-stop:
				return
			default:
			}
			if putErr = old.put(ctx, "meanwhile", 1); putErr != nil {
				return
			}
			time.Sleep(2 * time.Millisecond)
		}
	}()
	type report struct{ done, total int64 }
	var reports []report
	rewrapSet := keyring.NewSet(newFileKeyring(t), kr)
	n, err := hsmkeys.Rewrap(ctx, db, rewrapSet, hsmkeys.ID("kts-kek-2"), func(done, total int64) {
		reports = append(reports, report{done, total})
		if len(reports) == 1 {
			// Deposits wrapped with the old key arrive after the count.
			if err := old.put(ctx, "after-count", 300); err != nil {
				t.Error(err)
			}
		}
	})
	close(stop)
	wg.Wait()
	if err != nil || putErr != nil {
		t.Fatalf("Rewrap = %d, %v (puts: %v)", n, err, putErr)
	}
	if len(reports) < 3 {
		t.Fatalf("progress was reported %d times, want one a batch: %v", len(reports), reports)
	}
	for _, r := range reports {
		if r.done > r.total {
			t.Fatalf("progress says re-wrapped %d of %d: %v", r.done, r.total, reports)
		}
	}
	last := reports[len(reports)-1]
	if last.done != n || last.total != n || n < 900 {
		t.Fatalf("Rewrap re-wrapped %d; its last report is %d of %d", n, last.done, last.total)
	}
	readAll(t, db, kr)
}

// TestRotateSkipsLabelsTheTokenHolds is the state after restoring a backup
// taken before a rotation onto the same token: the database records
// kts-kek-1 only, the token holds kts-kek-2 as well. Rotation creates
// kts-kek-3 (never reusing kts-kek-2), re-wraps while deposits arrive,
// retires kts-kek-1, and kts keyhsm check's list holds the retired key.
func TestRotateSkipsLabelsTheTokenHolds(t *testing.T) {
	ctx := context.Background()
	tok, _ := openToken(t)
	for _, l := range []string{"kts-kek-1", "kts-kek-2"} {
		if _, err := tok.GenerateKey(l); err != nil {
			t.Fatal(err)
		}
	}
	db := depositsDB(t)
	if err := db.MakeCurrentKEK(ctx, hsmkeys.ID("kts-kek-1")); err != nil {
		t.Fatal(err)
	}
	kr := hsmkeys.NewKeyring(tok, "(test token)")
	old := newWriter(t, db, kr, hsmkeys.ID("kts-kek-1"))
	if err := old.put(ctx, "before", 700); err != nil {
		t.Fatal(err)
	}
	defer hsmkeys.SetProgressEvery(0)()

	rotate := func(wantLabel string, puts bool) string {
		t.Helper()
		var out strings.Builder
		stop, done := make(chan struct{}), make(chan error)
		go func() {
			if !puts {
				done <- nil
				return
			}
			for {
				select {
				case <-stop:
					done <- nil
					return
				default:
				}
				if err := old.put(ctx, "meanwhile", 1); err != nil {
					done <- err
					return
				}
			}
		}()
		err := hsmkeys.Rotation{DB: db, Token: tok, Keyring: keyring.NewSet(newFileKeyring(t), kr), Wait: 300 * time.Millisecond,
			Out: writerFunc(func(p []byte) {
				if puts && strings.HasPrefix(string(p), "waiting") {
					close(stop) // the servers have switched
					if err := <-done; err != nil {
						t.Error(err)
					}
					puts = false
				}
				out.Write(p)
			})}.Rotate(ctx)
		if puts {
			close(stop)
			<-done
		}
		if err != nil {
			t.Fatalf("Rotate: %v\n%s", err, out.String())
		}
		if !strings.Contains(out.String(), `created "`+wantLabel+`"`) || !strings.Contains(out.String(), "every deposit is wrapped by hsm:"+wantLabel) {
			t.Fatalf("Rotate output, want %s:\n%s", wantLabel, out.String())
		}
		lines := regexp.MustCompile(`re-wrapped (\d+) of (\d+) deposits`).FindAllStringSubmatch(out.String(), -1)
		if len(lines) < 3 {
			t.Fatalf("Rotate printed %d progress lines:\n%s", len(lines), out.String())
		}
		for _, m := range lines {
			d, _ := strconv.Atoi(m[1])
			n, _ := strconv.Atoi(m[2])
			if d > n {
				t.Fatalf("Rotate printed %q:\n%s", m[0], out.String())
			}
		}
		return out.String()
	}
	out := rotate("kts-kek-3", true)
	if !strings.Contains(out, `already holds "kts-kek-2"`) {
		t.Fatalf("Rotate does not say it left kts-kek-2 alone:\n%s", out)
	}
	old = newWriter(t, db, kr, hsmkeys.ID("kts-kek-3"))
	rotate("kts-kek-4", true)

	keks, err := db.KEKs(ctx)
	if err != nil {
		t.Fatal(err)
	}
	states := map[string]string{}
	for _, k := range keks {
		states[k.ID] = k.State
		if k.ID != "hsm:kts-kek-4" && k.Deposits != 0 {
			t.Fatalf("after rotation %s still wraps %d deposits", k.ID, k.Deposits)
		}
	}
	if want := map[string]string{"hsm:kts-kek-1": "retired", "hsm:kts-kek-3": "retired", "hsm:kts-kek-4": "current"}; fmt.Sprint(states) != fmt.Sprint(want) {
		t.Fatalf("key versions %v, want %v", states, want)
	}
	if n := readAll(t, db, kr); n <= 700 {
		t.Fatalf("%d deposits, want the 700 and those written meanwhile", n)
	}
	// The token key left alone is still there, untouched.
	if _, err := tok.Key("kts-kek-2"); err != nil {
		t.Fatal(err)
	}

	// check lists and tests the retired keys too, and says they are.
	checked := hsmkeys.KeysToCheck(config.Config{HSMSealState: false}, keks)
	var got []string
	for _, k := range checked {
		if _, err := hsmkeys.CheckKey(ctx, tok, kr, k.Label); err != nil {
			t.Fatalf("CheckKey(%s): %v", k.Label, err)
		}
		got = append(got, k.Label+" ("+k.Use+")")
	}
	if want := "kts-kek-1 (retired: older backups need it), kts-kek-3 (retired: older backups need it), kts-kek-4 (current)"; strings.Join(got, ", ") != want {
		t.Fatalf("keys checked: %s\nwant %s", strings.Join(got, ", "), want)
	}
	if err := tok.DestroyKey("kts-kek-1"); err != nil {
		t.Fatal(err)
	}
	if _, err := hsmkeys.CheckKey(ctx, tok, kr, "kts-kek-1"); !errors.Is(err, hsm.ErrNoKey) {
		t.Fatalf("CheckKey of a retired key gone from the token = %v", err)
	}
}

type writerFunc func(p []byte)

func (f writerFunc) Write(p []byte) (int, error) { f(p); return len(p), nil }

func TestKeyVersionsAndPlans(t *testing.T) {
	for _, tc := range []struct {
		label string
		v     int
		ok    bool
	}{
		{"kts-kek-1", 1, true}, {"kts-kek-12", 12, true}, {"kts-kek-0", 0, false}, {"kts-kek-01", 0, false},
		{"kts-kek-", 0, false}, {"kts-kek-x", 0, false}, {"kts-state", 0, false}, {"my-key", 0, false}, {"kts-kek--1", 0, false},
	} {
		if v, ok := hsmkeys.KEKVersion(tc.label); v != tc.v || ok != tc.ok {
			t.Errorf("KEKVersion(%q) = %d, %v", tc.label, v, ok)
		}
	}
	for _, tc := range []struct {
		name   string
		keks   []store.KEK
		want   hsmkeys.RotatePlan
		errSub string
	}{
		{"no HSM key yet", []store.KEK{{ID: "file-1", Deposits: 3}}, hsmkeys.RotatePlan{Next: 1}, "run `kts keyhsm init`"},
		{"first rotation", []store.KEK{{ID: "hsm:kts-kek-1", State: "current"}}, hsmkeys.RotatePlan{Current: "hsm:kts-kek-1", Next: 2}, ""},
		{"interrupted rotation", []store.KEK{{ID: "hsm:kts-kek-1", State: "retiring", Deposits: 4}, {ID: "hsm:kts-kek-2", State: "current"}},
			hsmkeys.RotatePlan{Current: "hsm:kts-kek-2", Resume: true, Next: 3}, ""},
		{"after retired versions", []store.KEK{{ID: "hsm:kts-kek-5", State: "retired"}, {ID: "hsm:kts-kek-2", State: "retired"}, {ID: "hsm:kts-kek-6", State: "current"}},
			hsmkeys.RotatePlan{Current: "hsm:kts-kek-6", Next: 7}, ""},
		{"a key only deposits name", []store.KEK{{ID: "hsm:kts-kek-9", Deposits: 1}, {ID: "hsm:kts-kek-3", State: "current"}},
			hsmkeys.RotatePlan{Current: "hsm:kts-kek-3", Next: 10}, ""},
		{"an adopted label", []store.KEK{{ID: "hsm:my-key", State: "current"}}, hsmkeys.RotatePlan{Current: "hsm:my-key", Next: 1}, ""},
	} {
		p, err := hsmkeys.PlanRotation(tc.keks)
		if p != tc.want || (err == nil) != (tc.errSub == "") || (err != nil && !strings.Contains(err.Error(), tc.errSub)) {
			t.Errorf("%s: PlanRotation = %+v, %v; want %+v, %q", tc.name, p, err, tc.want, tc.errSub)
		}
	}
}

func TestKeysToCheckIncludeRetiredOnes(t *testing.T) {
	keks := []store.KEK{{ID: "file-1", Deposits: 2}, {ID: "hsm:kts-kek-1", State: "retired"}, {ID: "hsm:kts-kek-2", State: "retiring", Deposits: 1},
		{ID: "hsm:kts-kek-3", State: "current"}, {ID: "hsm:other", Deposits: 1}}
	for _, tc := range []struct {
		cfg  config.Config
		want string
	}{
		{config.Config{HSMSealState: true, HSMStateKey: "kts-state"}, "[{kts-state state key} {kts-kek-1 retired: older backups need it} {kts-kek-2 retiring} {kts-kek-3 current} {other wraps deposits}]"},
		{config.Config{HSMSealState: false, HSMStateKey: "kts-state"}, "[{kts-kek-1 retired: older backups need it} {kts-kek-2 retiring} {kts-kek-3 current} {other wraps deposits}]"},
	} {
		if got := fmt.Sprint(hsmkeys.KeysToCheck(tc.cfg, keks)); got != tc.want {
			t.Errorf("KeysToCheck(seal %v) = %s\nwant %s", tc.cfg.HSMSealState, got, tc.want)
		}
	}
	if got := hsmkeys.KeysToCheck(config.Config{}, nil); len(got) != 0 {
		t.Errorf("KeysToCheck of nothing = %v", got)
	}
}
