package daemon

import (
	"context"
	"encoding/json"
	"errors"
	"log/slog"
	"net"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/jackc/pgx/v5/pgproto3"

	"trustee.dev/trustee/server/confdir"
	"trustee.dev/trustee/server/config"
	"trustee.dev/trustee/server/pg/pgtest"
	"trustee.dev/trustee/test/harness"
)

// dbState is a state directory whose database is on 127.0.0.1:port.
func dbState(t *testing.T, port int, password string) *confdir.State {
	cfg := config.Default("localhost")
	cfg.DBHost, cfg.DBPort = "127.0.0.1", port
	return &confdir.State{Dir: t.TempDir(), Config: cfg, DBPassword: password}
}

// waitLine is a log line of the start-up wait.
type waitLine struct {
	Msg     string `json:"msg"`
	DB      string `json:"db"`
	Attempt int    `json:"attempt"`
	Reason  string `json:"reason"`
	Next    string `json:"next_attempt_in"`
}

// waitLines returns the start-up wait's lines of a JSON log.
func waitLines(t *testing.T, logs string) []waitLine {
	t.Helper()
	var out []waitLine
	for _, l := range strings.Split(strings.TrimSpace(logs), "\n") {
		var w waitLine
		if l == "" {
			continue
		}
		if err := json.Unmarshal([]byte(l), &w); err != nil {
			t.Fatalf("log line %q: %v", l, err)
		}
		if w.Msg == "waiting for the database to accept connections" {
			out = append(out, w)
		}
	}
	return out
}

// startingUp answers every connection on ln as PostgreSQL does while it
// starts or while a standby is not yet consistent, until ln is closed; the
// returned function closes it and waits for the answers to end.
func startingUp(t *testing.T, ln net.Listener) (stop func()) {
	var wg sync.WaitGroup
	wg.Add(1)
	go func() {
		defer wg.Done()
		for {
			c, err := ln.Accept()
			if err != nil {
				return
			}
			wg.Add(1)
			go func() {
				defer wg.Done()
				defer c.Close()
				c.SetDeadline(time.Now().Add(5 * time.Second))
				be := pgproto3.NewBackend(c, c)
				if _, err := be.ReceiveStartupMessage(); err != nil {
					return
				}
				be.Send(&pgproto3.ErrorResponse{Severity: "FATAL", SeverityUnlocalized: "FATAL", Code: "57P03",
					Message: "the database system is starting up"})
				be.Flush()
			}()
		}
	}()
	return func() { ln.Close(); wg.Wait() }
}

// eventually polls cond for up to 30 s.
func eventually(t *testing.T, what string, cond func() bool) {
	t.Helper()
	for end := time.Now().Add(30 * time.Second); time.Now().Before(end); time.Sleep(20 * time.Millisecond) {
		if cond() {
			return
		}
	}
	t.Fatalf("timed out waiting for %s", what)
}

// TestOpenStoreWaitsForTheDatabase starts the server's connection before
// its PostgreSQL: refused at first, then answered "starting up", then
// PostgreSQL runs, and the store opens. Every attempt is logged.
func TestOpenStoreWaitsForTheDatabase(t *testing.T) {
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	inst := pgtest.NewInstance(t)
	const password = "wait-for-it"
	if err := inst.Init(ctx, password); err != nil { // leaves it stopped
		t.Fatal(err)
	}
	st := dbState(t, inst.Port, password)
	addr := "127.0.0.1:" + strconv.Itoa(inst.Port)
	var logs harness.Buffer
	type opened struct {
		err error
		at  time.Time
	}
	done := make(chan opened, 1)
	go func() {
		db, err := openStore(ctx, st, time.Minute, slog.New(slog.NewJSONHandler(&logs, nil)))
		if err == nil {
			err = db.Ping(ctx)
			db.Close()
		}
		done <- opened{err, time.Now()}
	}()
	reason := func(r string) func() bool {
		return func() bool {
			for _, w := range waitLines(t, logs.String()) {
				if w.Reason == r {
					return true
				}
			}
			return false
		}
	}
	eventually(t, "an attempt refused", reason("connect: connection refused"))

	ln, err := net.Listen("tcp", addr)
	if err != nil {
		t.Fatal(err)
	}
	stop := startingUp(t, ln)
	eventually(t, "an attempt answered as PostgreSQL starts", reason("the database system is starting up"))
	stop()

	started := time.Now()
	if err := inst.Start(ctx); err != nil {
		t.Fatal(err)
	}
	res := <-done
	if res.err != nil {
		t.Fatalf("openStore: %v\n%s", res.err, logs.String())
	}
	if took := res.at.Sub(started); took > 8*time.Second {
		t.Errorf("opened %v after PostgreSQL started; the back-off is at most %v", took, maxDBRetry)
	}
	lines := waitLines(t, logs.String())
	for i, w := range lines {
		if w.Attempt != i+1 || w.DB != addr || w.Next == "" {
			t.Errorf("log line %d: %+v", i, w)
		}
	}
	t.Logf("%d attempts logged:\n%s", len(lines), logs.String())
}

// TestOpenStoreGivesUp: no wait with 0, a bounded one that says what it
// waited for, none for errors waiting does not mend, and none once the
// server is told to stop.
func TestOpenStoreGivesUp(t *testing.T) {
	ctx := context.Background()
	port := harness.FreePort(t)

	var logs harness.Buffer
	log := slog.New(slog.NewJSONHandler(&logs, nil))
	if _, err := openStore(ctx, dbState(t, port, "pw"), 0, log); err == nil || !strings.Contains(err.Error(), "connection refused") {
		t.Fatalf("wait 0: %v", err)
	}
	if n := len(waitLines(t, logs.String())); n != 0 {
		t.Fatalf("wait 0 logged %d attempts", n)
	}

	begin := time.Now()
	_, err := openStore(ctx, dbState(t, port, "pw"), 1500*time.Millisecond, log)
	want := "PostgreSQL at 127.0.0.1:" + strconv.Itoa(port) + " did not accept connections within 1.5s (--db-wait; "
	if err == nil || !strings.Contains(err.Error(), want) || !strings.Contains(err.Error(), "connection refused") {
		t.Fatalf("bounded wait: %v; want %q", err, want)
	}
	if took := time.Since(begin); took < 1500*time.Millisecond || took > 5*time.Second {
		t.Errorf("bounded wait of 1.5s took %v", took)
	}
	if n := len(waitLines(t, logs.String())); n < 2 {
		t.Errorf("bounded wait logged %d attempts:\n%s", n, logs.String())
	}

	// A wrong password: no wait.
	shared := pgtest.Instance(t)
	begin = time.Now()
	_, err = openStore(ctx, dbState(t, shared.Port, "not-the-password"), time.Minute, log)
	if err == nil || !strings.Contains(err.Error(), "password authentication failed") || time.Since(begin) > 5*time.Second {
		t.Fatalf("wrong password: %v after %v", err, time.Since(begin))
	}

	// Told to stop while it waits.
	cctx, cancel := context.WithCancel(ctx)
	time.AfterFunc(300*time.Millisecond, cancel)
	_, err = openStore(cctx, dbState(t, port, "pw"), time.Minute, log)
	if !errors.Is(err, context.Canceled) || !strings.Contains(err.Error(), "stopped waiting for PostgreSQL") {
		t.Fatalf("cancelled: %v", err)
	}
}
