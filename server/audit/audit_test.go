package audit

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	dto "github.com/prometheus/client_model/go"

	"trustee.dev/trustee/server/openpgp"
	"trustee.dev/trustee/server/openpgp/openpgptest"
)

func testFailures() float64 {
	var m dto.Metric
	Failures.WithLabelValues(ChainJournal).Write(&m)
	return m.GetCounter().GetValue()
}

func events(n int) []Event {
	out := make([]Event, n)
	for i := range out {
		out[i] = Event{Actor: ClientActor("AB12"), Source: "192.0.2.1", Action: ActionDepositRead,
			Object: "deposit:AB12/k" + strings.Repeat("x", i), Outcome: OutcomeOK, Details: map[string]any{"i": i}}
	}
	return out
}

// chain makes n records, with a checkpoint signed by key after each
// every-th record (none when every is 0).
func chain(t *testing.T, n, every int, key Signer) []Record {
	t.Helper()
	var out []Record
	head := Head{}
	now := time.Date(2026, 11, 27, 13, 44, 54, 123456789, time.UTC)
	for i := 0; i < n; i++ {
		rs, h, err := Link(head, events(1), now.Add(time.Duration(i)*time.Millisecond))
		if err != nil {
			t.Fatal(err)
		}
		out, head = append(out, rs...), h
		if every > 0 && (i+1)%every == 0 {
			cp, err := NewCheckpoint(key, head)
			if err != nil {
				t.Fatal(err)
			}
			rs, h, err := Link(head, []Event{cp}, now)
			if err != nil {
				t.Fatal(err)
			}
			out, head = append(out, rs...), h
		}
	}
	return out
}

func verify(key *openpgp.PublicKey, partial bool, rs []Record) (Summary, error) {
	v := &Verifier{Key: key, Partial: partial}
	for _, r := range rs {
		if err := v.Add(r); err != nil {
			return v.Summary(), err
		}
	}
	return v.Summary(), nil
}

func breakAt(t *testing.T, err error, seq int64, reason string) {
	t.Helper()
	var b *Break
	if !errors.As(err, &b) {
		t.Fatalf("got %v, want a break at record %d", err, seq)
	}
	if b.Seq != seq || !strings.Contains(b.Reason, reason) {
		t.Fatalf("got %v, want record %d: ...%s...", err, seq, reason)
	}
}

func TestLinkAndVerify(t *testing.T) {
	key := openpgptest.Key(t, 0)
	rs := chain(t, 25, 10, key)
	if len(rs) != 27 {
		t.Fatalf("%d records", len(rs))
	}
	s, err := verify(key.Public(), false, rs)
	if err != nil {
		t.Fatal(err)
	}
	if s.Records != 27 || s.First.Seq != 1 || s.Last.Seq != 27 || s.Checkpoints != 2 || s.Signed.Seq != 21 || s.Unsigned != 6 {
		t.Fatalf("summary %+v", s)
	}
	if rs[0].Time.Nanosecond()%1000 != 0 || rs[0].Time.Location() != time.UTC {
		t.Fatalf("time not UTC microseconds: %v", rs[0].Time)
	}
	if !s.HasCheckpoint(Head{Seq: 10, Hash: rs[9].Hash}) || s.HasCheckpoint(Head{Seq: 9, Hash: rs[8].Hash}) {
		t.Fatal("HasCheckpoint")
	}
}

// The hash of a fixed record, so that the encoding documented in
// docs/SECURITY.md cannot change unnoticed.
func TestHashIsStable(t *testing.T) {
	r := Record{Seq: 1, Time: time.Date(2026, 11, 27, 13, 44, 54, 123456000, time.UTC), Actor: "client:AB", Source: "192.0.2.1",
		Action: "deposit.read", Object: "deposit:AB/k", Outcome: "ok", Details: "{}"}
	const want = "7568352e62967311d41ee35cc5fdc7679694b801cb7223551b2f23adfe96dd84"
	if got := r.ComputeHash().String(); got != want {
		t.Fatalf("hash %s, want %s", got, want)
	}
}

func TestTampering(t *testing.T) {
	key := openpgptest.Key(t, 0)
	pub := key.Public()
	fresh := func() []Record { return chain(t, 30, 10, key) }
	t.Run("edit a field", func(t *testing.T) {
		rs := fresh()
		rs[4].Outcome = "not_found"
		_, err := verify(pub, false, rs)
		breakAt(t, err, 5, "hash does not match its contents")
	})
	t.Run("edit a field and its hash", func(t *testing.T) {
		rs := fresh()
		rs[4].Actor = "client:SOMEONE"
		rs[4].Hash = rs[4].ComputeHash()
		_, err := verify(pub, false, rs)
		breakAt(t, err, 6, "previous hash does not match record 5")
	})
	t.Run("rewrite everything after an edit", func(t *testing.T) {
		rs := fresh()
		rs[4].Actor = "client:SOMEONE"
		for i := 4; i < len(rs); i++ {
			if i > 0 {
				rs[i].PrevHash = rs[i-1].Hash
			}
			rs[i].Hash = rs[i].ComputeHash()
		}
		_, err := verify(pub, false, rs)
		breakAt(t, err, 11, "signs record 10 with hash") // the first checkpoint after it
	})
	t.Run("delete a record", func(t *testing.T) {
		rs := fresh()
		rs = append(rs[:6:6], rs[7:]...)
		_, err := verify(pub, false, rs)
		breakAt(t, err, 8, "record 7 is missing")
	})
	t.Run("delete records", func(t *testing.T) {
		rs := fresh()
		rs = append(rs[:6:6], rs[9:]...)
		_, err := verify(pub, false, rs)
		breakAt(t, err, 10, "records 7 to 9 are missing")
	})
	t.Run("insert a record", func(t *testing.T) {
		rs := fresh()
		extra := rs[5]
		extra.Object = "deposit:AB12/planted"
		extra.Hash = extra.ComputeHash()
		rs = append(rs[:6:6], append([]Record{extra}, rs[6:]...)...)
		_, err := verify(pub, false, rs)
		breakAt(t, err, 6, "appears twice")
	})
	t.Run("reorder", func(t *testing.T) {
		rs := fresh()
		rs[3], rs[4] = rs[4], rs[3]
		_, err := verify(pub, false, rs)
		breakAt(t, err, 5, "record 4 is missing")
	})
	t.Run("truncate the start", func(t *testing.T) {
		_, err := verify(pub, false, fresh()[3:])
		breakAt(t, err, 4, "not at record 1")
	})
	t.Run("forged signature", func(t *testing.T) {
		rs := chain(t, 30, 10, openpgptest.Key(t, 1)) // signed by another key
		_, err := verify(pub, false, rs)
		breakAt(t, err, 11, "not by the server's key")
	})
	t.Run("forged signature claiming the server's key", func(t *testing.T) {
		rs := fresh()
		other, err := NewCheckpoint(openpgptest.Key(t, 1), Head{Seq: 10, Hash: rs[9].Hash})
		if err != nil {
			t.Fatal(err)
		}
		other.Details["key"] = pub.Fingerprint()
		forged, _, err := Link(Head{Seq: 10, Hash: rs[9].Hash}, []Event{other}, rs[10].Time)
		if err != nil {
			t.Fatal(err)
		}
		rs[10] = forged[0]
		for i := 11; i < len(rs); i++ {
			rs[i].PrevHash = rs[i-1].Hash
			rs[i].Hash = rs[i].ComputeHash()
		}
		_, err = verify(pub, false, rs)
		breakAt(t, err, 11, "bad signature")
	})
	t.Run("rewritten chain without checkpoints", func(t *testing.T) {
		rs := chain(t, 30, 0, nil)
		s, err := verify(pub, false, rs)
		if err != nil || s.Checkpoints != 0 || s.Unsigned != 30 {
			t.Fatalf("%+v %v", s, err)
		}
	})
	t.Run("partial chain", func(t *testing.T) {
		s, err := verify(pub, true, fresh()[12:])
		if err != nil || s.First.Seq != 13 {
			t.Fatalf("%+v %v", s, err)
		}
	})
}

func TestLinkCleansStrings(t *testing.T) {
	rs, _, err := Link(Head{}, []Event{{Actor: "a\x00b", Object: "x\xffy", Details: map[string]any{"k": "<&>"}}}, time.Now())
	if err != nil {
		t.Fatal(err)
	}
	if rs[0].Actor != "a\uFFFDb" || rs[0].Object != "x\uFFFDy" || rs[0].Details != `{"k":"\u003c\u0026\u003e"}` {
		t.Fatalf("%+v", rs[0])
	}
}

// Details encode as json.Marshal encodes them, whichever way.
func TestEncodeDetailsIsJSONMarshal(t *testing.T) {
	for _, d := range []map[string]any{
		{"size": 256}, {"size": int64(-3)}, {"org": "acme"}, {"reason": "unknown_org"}, {"k": "a<b"}, {"k": "é"},
		{"a": 1, "b": "x"}, {"x y": "1/2"}, {"k": true}, {"k": []string{"a"}}, {"k": ""},
	} {
		got, err := EncodeDetails(d)
		want, _ := json.Marshal(d)
		if err != nil || got != string(want) {
			t.Errorf("%v: %s, want %s", d, got, want)
		}
	}
}

func TestLineRoundTrip(t *testing.T) {
	key := openpgptest.Key(t, 0)
	rs := chain(t, 5, 2, key)
	odd := rs[0]
	odd.Actor, odd.Details = "quote\" back\\ nl\n tab\t ctl\x01 ü €", `not json`
	odd.Hash = odd.ComputeHash()
	for _, r := range append(rs, odd) {
		b := AppendLine(nil, ChainDB, &r)
		if bytes.Count(b, []byte("\n")) != 1 || b[len(b)-1] != '\n' {
			t.Fatalf("not one line: %q", b)
		}
		chain, got, err := ParseLine(b)
		if err != nil {
			t.Fatalf("%s: %v", b, err)
		}
		if chain != ChainDB || got != r {
			t.Fatalf("round trip:\n got %+v\nwant %+v", got, r)
		}
	}
	for _, bad := range []string{``, `{}`, `[1]`, `{"chain":"db","seq":1}`, `{"chain":"db","seq":1,"time":"2026-11-27T13:44:54Z","actor":"","source":"","action":"","object":"","outcome":"","details":{},"prev_hash":"00","hash":"00"}`} {
		if _, _, err := ParseLine([]byte(bad)); err == nil {
			t.Errorf("ParseLine(%q) accepted it", bad)
		}
	}
}

func FuzzParseLine(f *testing.F) {
	key, err := openpgp.Generate(openpgp.Ed25519, "fuzz", "")
	if err != nil {
		f.Fatal(err)
	}
	rs, _, _ := Link(Head{}, events(2), time.Now())
	cp, _ := NewCheckpoint(key, Head{Seq: 2, Hash: rs[1].Hash})
	more, _, _ := Link(Head{Seq: 2, Hash: rs[1].Hash}, []Event{cp}, time.Now())
	for _, r := range append(rs, more...) {
		f.Add(AppendLine(nil, ChainJournal, &r))
	}
	f.Add([]byte(`{"chain":"db","seq":1,"time":"2026-11-27T13:44:54.000000Z","actor":"","source":"","action":"","object":"","outcome":"","details":"x","prev_hash":"` + strings.Repeat("0", 64) + `","hash":"` + strings.Repeat("0", 64) + `"}`))
	f.Fuzz(func(t *testing.T, b []byte) {
		chain, r, err := ParseLine(b)
		if err != nil {
			return
		}
		// What parses writes back the same, and parses to the same.
		out := AppendLine(nil, chain, &r)
		chain2, r2, err := ParseLine(out)
		if err != nil || chain2 != chain || r2 != r {
			t.Fatalf("%q → %+v → %q → %+v %v", b, r, out, r2, err)
		}
		v := &Verifier{Key: key.Public(), Partial: true}
		v.Add(r) // never panics
		if r.IsCheckpoint() {
			r.SignedHead()
		}
	})
}

func TestScannerSkipsAPartialLastLine(t *testing.T) {
	rs := chain(t, 3, 0, nil)
	var b []byte
	for i := range rs {
		b = AppendLine(b, ChainJournal, &rs[i])
	}
	partial := append(bytes.Clone(b), `{"chain":"journal","seq":4,`...)
	sc := NewScanner(bytes.NewReader(partial))
	sc.CompleteLines = true
	n := 0
	for sc.Scan() {
		n++
	}
	if sc.Err() != nil || n != 3 {
		t.Fatalf("%d records, %v", n, sc.Err())
	}
	sc = NewScanner(bytes.NewReader(partial))
	for sc.Scan() {
	}
	if sc.Err() == nil || !strings.Contains(sc.Err().Error(), "line 4") {
		t.Fatalf("a cut line was not reported: %v", sc.Err())
	}
}

func readAll(t *testing.T, dir string) []Record {
	t.Helper()
	var out []Record
	if err := ReadJournal(dir, func(r Record) error { out = append(out, r); return nil }); err != nil {
		t.Fatal(err)
	}
	return out
}

func TestJournal(t *testing.T) {
	key := openpgptest.Key(t, 0)
	dir := filepath.Join(t.TempDir(), "audit")
	for _, mode := range []string{SyncWrite, SyncFlush} {
		t.Run(mode, func(t *testing.T) {
			dir := filepath.Join(dir, mode)
			j, err := OpenJournal(dir, JournalOptions{Sync: mode, MaxFileBytes: 4 << 10})
			if err != nil {
				t.Fatal(err)
			}
			if _, err := OpenJournal(dir, JournalOptions{}); err == nil || !strings.Contains(err.Error(), "in use") {
				t.Fatalf("a second writer of the journal: %v", err)
			}
			ctx := context.Background()
			var wg sync.WaitGroup
			for i := range 40 {
				wg.Add(1)
				go func() {
					defer wg.Done()
					e := events(1)[0]
					e.Details = map[string]any{"i": i}
					if err := j.Record(ctx, e); err != nil {
						t.Error(err)
					}
				}()
			}
			wg.Wait()
			cp := &Checkpointer{Chain: JournalChain{j}, Name: ChainJournal, Key: key}
			if !cp.Once(ctx, true) || cp.Once(ctx, true) {
				t.Fatal("checkpoint: want one, then none while the head is a checkpoint")
			}
			head, isCP := j.Head()
			if err := j.Close(); err != nil {
				t.Fatal(err)
			}
			files, _ := JournalFiles(dir)
			if len(files) < 2 {
				t.Fatalf("no rotation: %v", files)
			}
			rs := readAll(t, dir)
			s, err := verify(key.Public(), false, rs)
			if err != nil || s.Last != head || !isCP || s.Checkpoints != 1 || rs[0].Action != ActionJournalOpened {
				t.Fatalf("%+v %v", s, err)
			}
			for _, f := range files {
				fi, _ := os.Stat(f)
				if fi.Mode().Perm() != 0o600 {
					t.Errorf("%s: mode %v", f, fi.Mode())
				}
			}

			// A write cut short by a crash: the partial line goes, the
			// chain goes on from the last whole record, and says so.
			last := files[len(files)-1]
			f, _ := os.OpenFile(last, os.O_WRONLY|os.O_APPEND, 0)
			f.WriteString(`{"chain":"journal","seq":`)
			f.Close()
			j, err = OpenJournal(dir, JournalOptions{Sync: mode})
			if err != nil {
				t.Fatal(err)
			}
			if err := j.Record(ctx, events(1)[0]); err != nil {
				t.Fatal(err)
			}
			j.Close()
			rs = readAll(t, dir)
			if _, err := verify(key.Public(), false, rs); err != nil {
				t.Fatal(err)
			}
			reopened := rs[len(rs)-2]
			if reopened.Action != ActionJournalOpened || !strings.Contains(reopened.Details, `"removed_partial_bytes":25`) || reopened.Seq != head.Seq+1 {
				t.Fatalf("reopened: %+v", reopened)
			}
		})
	}
}

// A journal whose file cannot be flushed fails every record from then on.
func TestJournalFailsClosed(t *testing.T) {
	j, err := OpenJournal(t.TempDir(), JournalOptions{})
	if err != nil {
		t.Fatal(err)
	}
	defer j.Close()
	before := testFailures()
	j.acquire(context.Background())
	j.f.Close() // the disk went away
	j.release()
	ctx := context.Background()
	deadline := time.Now().Add(5 * time.Second)
	for j.Record(ctx, events(1)[0]) == nil { // written, until the next flush fails
		if time.Now().After(deadline) {
			t.Fatal("records still succeed after the file went away")
		}
		time.Sleep(5 * time.Millisecond)
	}
	if err := j.Record(ctx, events(1)[0]); !errors.Is(err, ErrUnavailable) {
		t.Fatalf("record after a failed flush: %v", err)
	}
	if got := testFailures() - before; got < 2 {
		t.Fatalf("kts_audit_failures_total grew by %v", got)
	}
}

// A disk that does not answer fails the records waiting within the
// timeout, and every later one.
func TestJournalStallFailsClosed(t *testing.T) {
	for _, mode := range []string{SyncWrite, SyncFlush} {
		t.Run(mode, func(t *testing.T) {
			j, err := OpenJournal(t.TempDir(), JournalOptions{Sync: mode, Timeout: 200 * time.Millisecond})
			if err != nil {
				t.Fatal(err)
			}
			defer j.Close()
			j.acquire(context.Background()) // held by something that does not come back
			start := time.Now()
			err = j.Record(context.Background(), events(1)[0])
			if !errors.Is(err, ErrUnavailable) || time.Since(start) > 2*time.Second {
				t.Fatalf("record behind a stuck write: %v after %v", err, time.Since(start))
			}
			j.release()
			if err := j.Record(context.Background(), events(1)[0]); !errors.Is(err, ErrUnavailable) {
				t.Fatalf("record after the journal stalled: %v", err)
			}
		})
	}
}

// A damaged last record is not built upon.
func TestJournalRefusesADamagedEnd(t *testing.T) {
	dir := t.TempDir()
	j, err := OpenJournal(dir, JournalOptions{})
	if err != nil {
		t.Fatal(err)
	}
	j.Close()
	files, _ := JournalFiles(dir)
	b, _ := os.ReadFile(files[0])
	os.WriteFile(files[0], bytes.Replace(b, []byte(`"opened"`), []byte(`"closed"`), 1), 0o600)
	if _, err := OpenJournal(dir, JournalOptions{}); err == nil || !strings.Contains(err.Error(), "damaged") {
		t.Fatalf("opened a journal whose last record was changed: %v", err)
	}
}

func TestAnchor(t *testing.T) {
	path := filepath.Join(t.TempDir(), AnchorFile)
	if _, ok, err := ReadAnchor(path); ok || err != nil {
		t.Fatal(ok, err)
	}
	h := Head{Seq: 7, Hash: Hash{1, 2, 3}}
	if err := WriteAnchor(path, h, time.Now()); err != nil {
		t.Fatal(err)
	}
	a, ok, err := ReadAnchor(path)
	if got, _ := a.Head(); !ok || err != nil || got != h {
		t.Fatal(a, ok, err)
	}
}

// A journal whose server died (its file still at full size, NUL bytes
// after the records) is read as far as its records go, and reopened where
// they end.
func TestJournalAfterACrash(t *testing.T) {
	key := openpgptest.Key(t, 0)
	dir := t.TempDir()
	j, err := OpenJournal(dir, JournalOptions{})
	if err != nil {
		t.Fatal(err)
	}
	for range 3 {
		if err := j.Record(context.Background(), events(1)[0]); err != nil {
			t.Fatal(err)
		}
	}
	head, _ := j.Head()
	// The process dies: nothing is cut, unmapped or closed in order.
	j.acquire(context.Background())
	syscall.Munmap(j.mem)
	j.f.Close()
	j.lock.Close()
	files, _ := JournalFiles(dir)
	if fi, _ := os.Stat(files[0]); fi.Size() < 1<<20 {
		t.Fatalf("the file of a running journal is %d bytes", fi.Size())
	}
	rs := readAll(t, dir)
	if s, err := verify(key.Public(), false, rs); err != nil || s.Last != head {
		t.Fatalf("reading the journal of a dead server: %+v %v", s, err)
	}
	j, err = OpenJournal(dir, JournalOptions{})
	if err != nil {
		t.Fatal(err)
	}
	if err := j.Record(context.Background(), events(1)[0]); err != nil {
		t.Fatal(err)
	}
	j.Close()
	rs = readAll(t, dir)
	if s, err := verify(key.Public(), false, rs); err != nil || s.Last.Seq != head.Seq+2 {
		t.Fatalf("after reopening: %+v %v", s, err)
	}
	if fi, _ := os.Stat(files[0]); bytes.IndexByte(must(os.ReadFile(files[0])), 0) >= 0 || fi.Size() > 1<<20 {
		t.Fatalf("a closed journal file keeps its NUL tail (%d bytes)", fi.Size())
	}
}

func must[T any](v T, err error) T {
	if err != nil {
		panic(err)
	}
	return v
}
