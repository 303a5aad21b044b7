package store_test

import (
	"context"
	"errors"
	"fmt"
	"strings"
	"sync"
	"testing"
	"time"

	dto "github.com/prometheus/client_model/go"

	"trustee.dev/trustee/server/audit"
	"trustee.dev/trustee/server/keyring"
	"trustee.dev/trustee/server/openpgp"
	"trustee.dev/trustee/server/openpgp/openpgptest"
	"trustee.dev/trustee/server/store"
)

func dbFailures() float64 {
	var m dto.Metric
	audit.Failures.WithLabelValues(audit.ChainDB).Write(&m)
	return m.GetCounter().GetValue()
}

// records reads the database chain.
func records(t *testing.T, s *store.Store) []audit.Record {
	t.Helper()
	var out []audit.Record
	if err := s.AuditRecords(context.Background(), 1, func(r audit.Record) error { out = append(out, r); return nil }); err != nil {
		t.Fatal(err)
	}
	return out
}

// verifyDB verifies the database chain with the test key and anchor.
func verifyDB(t *testing.T, s *store.Store, anchor *audit.Anchor) (audit.Summary, error) {
	t.Helper()
	return store.VerifyAudit(context.Background(), s.Pool(), &audit.Verifier{Key: openpgptest.Key(t, 0).Public()}, anchor)
}

func exec(t *testing.T, s *store.Store, sql string, args ...any) {
	t.Helper()
	if _, err := s.Pool().Exec(context.Background(), sql, args...); err != nil {
		t.Fatalf("%s: %v", sql, err)
	}
}

var admin = audit.Actor{ID: "os:alice", Source: "local:kts01", Details: map[string]any{"tool": "kts org"}}

// Every change the store makes is recorded in its transaction, as made by
// the context's actor; what it refuses changes nothing and records nothing.
func TestChangesAreRecordedWithTheirActor(t *testing.T) {
	s := open(t)
	ctx := audit.WithActor(context.Background(), admin)
	if _, _, err := s.AddOrganization(ctx, "acme", []string{"a@example.com"}, "argon2id$hash"); err != nil {
		t.Fatal(err)
	}
	if err := s.SetAuthHash(ctx, "acme", "argon2id$other"); err != nil {
		t.Fatal(err)
	}
	if err := s.SetAuthHash(ctx, "nosuch", "x"); !errors.Is(err, store.ErrNotFound) {
		t.Fatal(err)
	}
	fp := "0123456789ABCDEF0123456789ABCDEF01234567"
	client := audit.WithActor(context.Background(), audit.Actor{ID: audit.ClientActor(fp), Source: "192.0.2.7"})
	c := store.Client{Fingerprint: fp, OrgName: "acme", KeyID: "255E/" + fp, PublicKey: []byte("k"), State: store.StatePending}
	if err := s.RegisterClient(client, c); err != nil {
		t.Fatal(err)
	}
	if _, err := s.SetClientState(ctx, fp, store.StateActive); err != nil {
		t.Fatal(err)
	}
	secret := keyring.Sealed{KeyID: "k1", WrappedKey: []byte("WRAPPED-KEY-BYTES"), Ciphertext: []byte("SEALED-DEPOSIT-BYTES")}
	if _, err := s.PutDeposit(client, fp, "d1", secret, 20); err != nil {
		t.Fatal(err)
	}
	if _, err := s.PutDeposit(client, fp, "d1", secret, 20); !errors.Is(err, store.ErrExists) {
		t.Fatal(err)
	}
	// Batched puts record each inserted deposit, as made by its own client.
	b := store.NewBatcher(ctx, s, 1, 64)
	var wg sync.WaitGroup
	for i := range 8 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			if _, err := b.PutDeposit(client, fp, fmt.Sprintf("b%d", i), secret, 20); err != nil {
				t.Error(err)
			}
		}()
	}
	wg.Wait()
	if err := s.DeleteDeposit(client, fp, "d1"); err != nil {
		t.Fatal(err)
	}
	if err := s.ExpireOrganization(ctx, "acme", time.Now()); err != nil {
		t.Fatal(err)
	}
	if err := s.MakeCurrentKEK(ctx, "hsm:kts-kek-1"); err != nil {
		t.Fatal(err)
	}
	// Unaudited (the benchmark's listener): nothing recorded.
	if _, err := s.PutDeposit(audit.Unaudited(client), fp, "quiet", secret, 20); err != nil {
		t.Fatal(err)
	}

	rs := records(t, s)
	if _, err := verifyDB(t, s, nil); err != nil {
		t.Fatal(err)
	}
	var got []string
	for _, r := range rs {
		got = append(got, r.Action+" "+r.Outcome+" "+r.Actor)
		for _, secret := range []string{"argon2id", "WRAPPED-KEY-BYTES", "SEALED-DEPOSIT-BYTES", "quiet"} {
			if strings.Contains(fmt.Sprint(r), secret) {
				t.Errorf("record %d holds %q: %+v", r.Seq, secret, r)
			}
		}
	}
	want := []string{
		"org.create ok os:alice", "org.auth_code ok os:alice", "client.register pending client:" + fp,
		"client.state ok os:alice", "deposit.create ok client:" + fp,
	}
	for range 8 {
		want = append(want, "deposit.create ok client:"+fp)
	}
	want = append(want, "deposit.delete ok client:"+fp, "org.retire ok os:alice", "hsm.key current os:alice")
	if strings.Join(got, "\n") != strings.Join(want, "\n") {
		t.Fatalf("records:\n%s\nwant:\n%s", strings.Join(got, "\n"), strings.Join(want, "\n"))
	}
	if r := rs[0]; r.Source != "local:kts01" || !strings.Contains(r.Details, `"tool":"kts org"`) || !strings.Contains(r.Details, `"auth_code":"set"`) {
		t.Fatalf("org.create: %+v", r)
	}
	if r := rs[2]; r.Source != "192.0.2.7" || r.Object != "client:"+fp || !strings.Contains(r.Details, `"org":"acme"`) {
		t.Fatalf("client.register: %+v", r)
	}
	if r := rs[3]; !strings.Contains(r.Details, `"from":"pending"`) || !strings.Contains(r.Details, `"to":"active"`) {
		t.Fatalf("client.state: %+v", r)
	}
	if r := rs[4]; r.Object != "deposit:"+fp+"/d1" {
		t.Fatalf("deposit.create: %+v", r)
	}
}

// chainWithCheckpoints makes a chain of n changes with a checkpoint every
// 5, signed by key, and returns the anchor of the last checkpoint.
func chainWithCheckpoints(t *testing.T, s *store.Store, n int, key *openpgp.PrivateKey) *audit.Anchor {
	t.Helper()
	ctx := audit.WithActor(context.Background(), admin)
	var anchor *audit.Anchor
	cp := &audit.Checkpointer{Chain: store.AuditChain{Store: s}, Name: audit.ChainDB, Key: key, Done: func(h audit.Head) {
		anchor = &audit.Anchor{Seq: h.Seq, Hash: h.Hash.String(), Time: time.Now().UTC().Format(time.RFC3339)}
	}}
	for i := 1; i <= n; i++ {
		if _, _, err := s.AddOrganization(ctx, fmt.Sprintf("org%d", i), []string{"a@example.com"}, ""); err != nil {
			t.Fatal(err)
		}
		if i%5 == 0 && !cp.Once(ctx, true) {
			t.Fatal("no checkpoint")
		}
	}
	return anchor
}

func TestTamperingIsDetected(t *testing.T) {
	key := openpgptest.Key(t, 0)
	// The chain: 12 org.create records with checkpoints after records 5
	// (record 6) and 11 (record 12), then records 13 and 14; the anchor
	// names record 11.
	build := func(t *testing.T) (*store.Store, *audit.Anchor) {
		s := open(t)
		anchor := chainWithCheckpoints(t, s, 12, key)
		s2, err := verifyDB(t, s, anchor)
		if err != nil || s2.Last.Seq != 14 || s2.Checkpoints != 2 || s2.Signed.Seq != 11 || anchor.Seq != 11 {
			t.Fatalf("%+v %v %+v", s2, err, anchor)
		}
		return s, anchor
	}
	wantBreak := func(t *testing.T, err error, seq int64, reason string) {
		t.Helper()
		var b *audit.Break
		if !errors.As(err, &b) || b.Seq != seq || !strings.Contains(b.Reason, reason) {
			t.Fatalf("got %v, want a break at record %d: ...%s...", err, seq, reason)
		}
	}
	t.Run("edit a field", func(t *testing.T) {
		s, anchor := build(t)
		exec(t, s, `UPDATE audit_log SET actor = 'os:mallory' WHERE seq = 3`)
		_, err := verifyDB(t, s, anchor)
		wantBreak(t, err, 3, "hash does not match its contents")
	})
	t.Run("edit a field and its hash", func(t *testing.T) {
		s, anchor := build(t)
		// Recomputing the hash needs the record; doing it in SQL is as
		// easy for an attacker, so the test does it in Go.
		r := records(t, s)[2]
		r.Actor = "os:mallory"
		h := r.ComputeHash()
		exec(t, s, `UPDATE audit_log SET actor = $1, hash = $2 WHERE seq = 3`, r.Actor, h[:])
		_, err := verifyDB(t, s, anchor)
		wantBreak(t, err, 4, "previous hash does not match record 3")
	})
	t.Run("delete a record", func(t *testing.T) {
		s, anchor := build(t)
		exec(t, s, `DELETE FROM audit_log WHERE seq = 4`)
		_, err := verifyDB(t, s, anchor)
		wantBreak(t, err, 5, "record 4 is missing")
	})
	t.Run("insert a record", func(t *testing.T) {
		s, anchor := build(t)
		// Make room after record 4 and plant a well-formed record there.
		exec(t, s, `UPDATE audit_log SET seq = seq + 1000 WHERE seq > 4`)
		exec(t, s, `UPDATE audit_log SET seq = seq - 999 WHERE seq > 1000`)
		r := records(t, s)[3]
		r.Seq, r.PrevHash, r.Object = 5, r.Hash, "org:planted"
		r.Hash = r.ComputeHash()
		exec(t, s, `INSERT INTO audit_log VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10)`,
			r.Seq, r.Time, r.Actor, r.Source, r.Action, r.Object, r.Outcome, r.Details, r.PrevHash[:], r.Hash[:])
		_, err := verifyDB(t, s, anchor)
		wantBreak(t, err, 6, "previous hash does not match record 5")
	})
	t.Run("append a record behind the head", func(t *testing.T) {
		s, anchor := build(t)
		rs := records(t, s)
		r := rs[len(rs)-1]
		r.Seq, r.PrevHash, r.Object = r.Seq+1, r.Hash, "org:planted"
		r.Hash = r.ComputeHash()
		exec(t, s, `INSERT INTO audit_log VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10)`,
			r.Seq, r.Time, r.Actor, r.Source, r.Action, r.Object, r.Outcome, r.Details, r.PrevHash[:], r.Hash[:])
		_, err := verifyDB(t, s, anchor)
		wantBreak(t, err, 15, "records up to 15 follow it")
	})
	t.Run("reorder", func(t *testing.T) {
		s, anchor := build(t)
		exec(t, s, `UPDATE audit_log SET seq = CASE seq WHEN 7 THEN 1008 ELSE 1007 END WHERE seq IN (7, 8)`)
		exec(t, s, `UPDATE audit_log SET seq = seq - 1000 WHERE seq > 1000`)
		_, err := verifyDB(t, s, anchor)
		wantBreak(t, err, 7, "previous hash does not match record 6")
	})
	t.Run("truncate after a checkpoint", func(t *testing.T) {
		s, anchor := build(t)
		// Cut the chain back to record 8 and make the head agree: the
		// chain alone holds together, the anchor does not.
		rs := records(t, s)
		exec(t, s, `DELETE FROM audit_log WHERE seq > 8`)
		exec(t, s, `UPDATE audit_head SET seq = 8, hash = $1`, rs[7].Hash[:])
		sum, err := verifyDB(t, s, nil)
		if err != nil || sum.Last.Seq != 8 {
			t.Fatalf("the cut chain alone: %+v %v", sum, err)
		}
		_, err = verifyDB(t, s, anchor)
		wantBreak(t, err, 9, "cut short")
		// Cut without fixing the head: seen without the anchor too.
		s2, _ := build(t)
		exec(t, s2, `DELETE FROM audit_log WHERE seq > 8`)
		_, err = verifyDB(t, s2, nil)
		wantBreak(t, err, 9, "records were removed from its end")
	})
	t.Run("forged signature", func(t *testing.T) {
		s, anchor := build(t)
		// Re-sign the first checkpoint with another key, claiming the
		// server's, and rewrite the hashes after it.
		rs := records(t, s)
		cp, err := audit.NewCheckpoint(openpgptest.Key(t, 1), audit.Head{Seq: 5, Hash: rs[4].Hash})
		if err != nil {
			t.Fatal(err)
		}
		cp.Details["key"] = key.Public().Fingerprint()
		d, _ := audit.EncodeDetails(cp.Details)
		rs[5].Details = d
		rewrite(t, s, rs, 5)
		_, err = verifyDB(t, s, anchor)
		wantBreak(t, err, 6, "bad signature")
	})
	t.Run("rewrite the whole chain", func(t *testing.T) {
		s, anchor := build(t)
		// Someone without the server's key rewrites the chain from its
		// start, dropping the checkpoints it cannot make.
		rs := records(t, s)
		var kept []audit.Record
		for _, r := range rs {
			if !r.IsCheckpoint() {
				kept = append(kept, r)
			}
		}
		kept[0].Actor = "os:mallory"
		exec(t, s, `DELETE FROM audit_log`)
		head := audit.Head{}
		for i := range kept {
			r := &kept[i]
			r.Seq, r.PrevHash = head.Seq+1, head.Hash
			r.Hash = r.ComputeHash()
			head = audit.Head{Seq: r.Seq, Hash: r.Hash}
			exec(t, s, `INSERT INTO audit_log VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10)`,
				r.Seq, r.Time, r.Actor, r.Source, r.Action, r.Object, r.Outcome, r.Details, r.PrevHash[:], r.Hash[:])
		}
		exec(t, s, `UPDATE audit_head SET seq = $1, hash = $2`, head.Seq, head.Hash[:])
		sum, err := verifyDB(t, s, nil)
		if err != nil || sum.Checkpoints != 0 || sum.Unsigned != 12 {
			t.Fatalf("the rewritten chain alone: %+v %v", sum, err)
		}
		_, err = verifyDB(t, s, anchor)
		wantBreak(t, err, 11, "no checkpoint of the chain signs it")
	})
}

// rewrite stores rs from index i on with their hashes recomputed, as
// someone who edits record i+1 and covers it up does.
func rewrite(t *testing.T, s *store.Store, rs []audit.Record, i int) {
	t.Helper()
	for ; i < len(rs); i++ {
		if i > 0 {
			rs[i].PrevHash = rs[i-1].Hash
		}
		rs[i].Hash = rs[i].ComputeHash()
		exec(t, s, `UPDATE audit_log SET details = $2, prev_hash = $3, hash = $4 WHERE seq = $1`, rs[i].Seq, rs[i].Details, rs[i].PrevHash[:], rs[i].Hash[:])
	}
	last := rs[len(rs)-1]
	exec(t, s, `UPDATE audit_head SET seq = $1, hash = $2`, last.Seq, last.Hash[:])
}

// failAuditInserts makes every insert into audit_log fail, as a full disk
// or a broken table would.
func failAuditInserts(t *testing.T, s *store.Store) {
	t.Helper()
	exec(t, s, `CREATE FUNCTION kts_test_refuse() RETURNS trigger LANGUAGE plpgsql AS $$
		BEGIN RAISE EXCEPTION 'audit_log refuses writes (test)'; END $$`)
	exec(t, s, `CREATE TRIGGER kts_test_refuse BEFORE INSERT ON audit_log FOR EACH ROW EXECUTE FUNCTION kts_test_refuse()`)
}

// A change whose record cannot be written is not made (fail closed), with
// an error that says so, and counted.
func TestAuditFailsClosed(t *testing.T) {
	s := open(t)
	ctx := audit.WithActor(context.Background(), admin)
	fp := activeClient(t, ctx, s)
	before := len(records(t, s))
	failAuditInserts(t, s)
	failures := dbFailures()
	sealed := keyring.Sealed{KeyID: "k1", WrappedKey: []byte("w"), Ciphertext: []byte("c")}
	b := store.NewBatcher(ctx, s, 1, 64)
	var wg sync.WaitGroup
	errs := make(chan error, 10)
	for i := range 6 {
		wg.Add(1)
		go func() { defer wg.Done(); errs <- errOf(b.PutDeposit(ctx, fp, fmt.Sprintf("b%d", i), sealed, 1)) }()
	}
	wg.Wait()
	errs <- errOf(s.PutDeposit(ctx, fp, "single", sealed, 1))
	errs <- s.SetAuthHash(ctx, "acme", "x")
	_, err := s.SetClientState(ctx, fp, store.StateDisabled)
	errs <- err
	errs <- s.RegisterClient(ctx, store.Client{Fingerprint: "F" + fp[1:], OrgName: "acme", KeyID: "k", PublicKey: []byte("k"), State: store.StateActive})
	close(errs)
	for err := range errs {
		if !errors.Is(err, audit.ErrUnavailable) || !strings.Contains(err.Error(), "audit log could not record") {
			t.Errorf("change without its record: %v", err)
		}
	}
	if n, _ := s.ListDeposits(context.Background(), fp); len(n) != 0 {
		t.Fatalf("deposits stored without their records: %v", n)
	}
	if c, _ := s.Client(context.Background(), fp); c.State != store.StateActive {
		t.Fatalf("client state changed without its record: %v", c.State)
	}
	if got := dbFailures() - failures; got < 10 {
		t.Fatalf("kts_audit_failures_total{chain=db} grew by %v, want ≥ 10", got)
	}
	if after := len(records(t, s)); after != before {
		t.Fatalf("%d records, want %d", after, before)
	}
	if _, err := verifyDB(t, s, nil); err != nil {
		t.Fatal(err)
	}
}

// Batched puts extend the chain in their own statement while the Batcher
// knows its head, and in two round trips when another writer moved it or
// a deposit of the batch is refused; the chain holds either way, and a
// refused deposit has no record.
func TestBatchedPutsKeepTheChain(t *testing.T) {
	s := open(t)
	ctx := audit.WithActor(context.Background(), admin)
	fp := activeClient(t, ctx, s)
	b := store.NewBatcher(ctx, s, 1, 64)
	sealed := keyring.Sealed{KeyID: "k1", WrappedKey: []byte("w"), Ciphertext: []byte("c")}
	put := func(names ...string) []error {
		errs := make([]error, len(names))
		var wg sync.WaitGroup
		for i, n := range names {
			wg.Add(1)
			go func() { defer wg.Done(); errs[i] = errOf(b.PutDeposit(ctx, fp, n, sealed, 1)) }()
		}
		wg.Wait()
		return errs
	}
	for round := range 5 {
		names := []string{}
		for i := range 6 {
			names = append(names, fmt.Sprintf("r%d-%d", round, i))
		}
		if round == 2 {
			names = append(names, "r0-0") // exists: the batch goes the long way
		}
		if round == 3 {
			// Another writer moves the head.
			if err := s.SetAuthHash(ctx, "acme", ""); err != nil {
				t.Fatal(err)
			}
		}
		for i, err := range put(names...) {
			if names[i] == "r0-0" && round == 2 {
				if !errors.Is(err, store.ErrExists) {
					t.Fatalf("duplicate: %v", err)
				}
				continue
			}
			if err != nil {
				t.Fatalf("round %d %s: %v", round, names[i], err)
			}
		}
	}
	sum, err := verifyDB(t, s, nil)
	if err != nil {
		t.Fatal(err)
	}
	creates := 0
	for _, r := range records(t, s) {
		if r.Action == audit.ActionDepositCreate {
			creates++
		}
	}
	list, _ := s.ListDeposits(context.Background(), fp)
	if creates != 30 || len(list) != 30 || sum.Last.Seq != 33 {
		t.Fatalf("%d records of creation, %d deposits, chain ends at %d", creates, len(list), sum.Last.Seq)
	}
}

// A batch of puts taken before the server stops runs to its end: its
// writers get their answer, not a cancelled commit of unknown outcome.
func TestBatchedPutOutlivesTheStop(t *testing.T) {
	s := open(t)
	ctx := audit.WithActor(context.Background(), admin)
	fp := activeClient(t, ctx, s)
	// Another transaction holds the audit chain's head: the put waits.
	tx, err := s.Pool().Begin(ctx)
	if err != nil {
		t.Fatal(err)
	}
	defer tx.Rollback(ctx)
	if _, err := tx.Exec(ctx, `SELECT * FROM audit_head FOR UPDATE`); err != nil {
		t.Fatal(err)
	}
	serving, stop := context.WithCancel(ctx)
	b := store.NewBatcher(serving, s, 1, 64)
	done := make(chan error, 1)
	go func() {
		done <- errOf(b.PutDeposit(ctx, fp, "d1", keyring.Sealed{KeyID: "k1", WrappedKey: []byte("w"), Ciphertext: []byte("c")}, 1))
	}()
	deadline := time.Now().Add(10 * time.Second)
	for waiting := 0; waiting == 0; {
		if time.Now().After(deadline) {
			t.Fatal("the put never waited for the head")
		}
		if err := s.Pool().QueryRow(ctx, `SELECT count(*) FROM pg_stat_activity WHERE wait_event_type = 'Lock'`).Scan(&waiting); err != nil {
			t.Fatal(err)
		}
		time.Sleep(20 * time.Millisecond)
	}
	stop() // the server stops while the put's batch waits
	time.Sleep(100 * time.Millisecond)
	// A put that comes after is refused: nothing is done.
	if _, err := b.PutDeposit(ctx, fp, "d2", keyring.Sealed{KeyID: "k1", WrappedKey: []byte("w"), Ciphertext: []byte("c")}, 1); !errors.Is(err, store.ErrStopping) {
		t.Fatalf("a put after the stop: %v; want %v", err, store.ErrStopping)
	}
	if err := tx.Rollback(ctx); err != nil {
		t.Fatal(err)
	}
	if err := <-done; err != nil {
		t.Fatalf("a put taken before the stop: %v; want it carried out", err)
	}
	if _, err := s.GetDeposit(ctx, fp, "d1"); err != nil {
		t.Fatalf("the put's deposit: %v", err)
	}
}
