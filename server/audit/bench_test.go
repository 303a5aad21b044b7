package audit

import (
	"context"
	"testing"
	"time"
)

// BenchmarkJournalRecord records from parallel goroutines, as a server's
// handlers do.
func BenchmarkJournalRecord(b *testing.B) {
	for _, mode := range []string{SyncWrite, SyncFlush} {
		b.Run(mode, func(b *testing.B) {
			j, err := OpenJournal(b.TempDir(), JournalOptions{Sync: mode})
			if err != nil {
				b.Fatal(err)
			}
			defer j.Close()
			e := Event{Actor: ClientActor("4EDC46882386C827E20DEEA2D850ACA33BEDB0D1"), Source: "127.0.0.1", Action: ActionDepositRead,
				Object: "deposit:4EDC46882386C827E20DEEA2D850ACA33BEDB0D1/p-42", Outcome: OutcomeOK}
			b.SetParallelism(8)
			b.ReportAllocs()
			b.ResetTimer()
			b.RunParallel(func(pb *testing.PB) {
				for pb.Next() {
					if err := j.Record(context.Background(), e); err != nil {
						b.Error(err)
						return
					}
				}
			})
		})
	}
}

// BenchmarkLink is the CPU a record costs: linking and encoding.
func BenchmarkLink(b *testing.B) {
	e := []Event{{Actor: ClientActor("4EDC46882386C827E20DEEA2D850ACA33BEDB0D1"), Source: "127.0.0.1", Action: ActionDepositRead,
		Object: "deposit:4EDC46882386C827E20DEEA2D850ACA33BEDB0D1/p-42", Outcome: OutcomeOK}}
	var buf []byte
	b.ReportAllocs()
	for b.Loop() {
		rs, _, _ := Link(Head{}, e, timeNow())
		buf = AppendLine(buf[:0], ChainJournal, &rs[0])
	}
}

var timeNow = func() (t time.Time) { return time.Now() }
