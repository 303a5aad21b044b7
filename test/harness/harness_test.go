package harness

import (
	"errors"
	"os/exec"
	"strings"
	"syscall"
	"testing"
	"time"
)

func TestBufferKeepsTheLastMaxBytes(t *testing.T) {
	for _, tc := range []struct {
		name   string
		max    int
		writes []string
		want   string
	}{
		{"no max keeps all", 0, []string{"abc", "def"}, "abcdef"},
		{"under max", 10, []string{"abc", "def"}, "abcdef"},
		{"exactly max", 6, []string{"abc", "def"}, "abcdef"},
		{"over max in a later write", 4, []string{"abc", "def"}, "cdef"},
		{"one write over max", 2, []string{"abcdef"}, "ef"},
		{"many writes", 3, []string{"a", "b", "c", "d", "e"}, "cde"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			b := &Buffer{Max: tc.max}
			for _, w := range tc.writes {
				if n, err := b.Write([]byte(w)); n != len(w) || err != nil {
					t.Fatalf("Write(%q) = %d, %v", w, n, err)
				}
			}
			if got := b.String(); got != tc.want {
				t.Fatalf("String() = %q, want %q", got, tc.want)
			}
			if got := string(b.Bytes()); got != tc.want || b.Len() != len(tc.want) {
				t.Fatalf("Bytes() = %q, Len() = %d, want %q", got, b.Len(), tc.want)
			}
		})
	}
}

func TestTail(t *testing.T) {
	for _, tc := range []struct {
		s    string
		n    int
		want string
	}{
		{"a\nb\nc\n", 2, "b\nc"},
		{"a\nb\nc", 5, "a\nb\nc"},
		{"", 3, ""},
		{"one\n", 1, "one"},
	} {
		if got := Tail(tc.s, tc.n); got != tc.want {
			t.Errorf("Tail(%q, %d) = %q, want %q", tc.s, tc.n, got, tc.want)
		}
	}
}

func TestFreePortsAreDistinct(t *testing.T) {
	ports, err := FreePorts(5)
	if err != nil {
		t.Fatal(err)
	}
	seen := map[int]bool{}
	for _, p := range ports {
		if p <= 0 || seen[p] {
			t.Fatalf("ports %v", ports)
		}
		seen[p] = true
	}
	if p := FreePort(t); p <= 0 {
		t.Fatalf("FreePort = %d", p)
	}
}

func TestProcessEnd(t *testing.T) {
	for _, tc := range []struct {
		name   string
		script string
		group  bool
		want   string // in End's error; "" for none
		ended  bool   // an *EndedError
	}{
		{"ends on the signal", "exec sleep 30", false, "", false},
		{"ends on the signal, with its group", "sleep 30 & wait", true, "", false},
		{"ignores the signal: killed", "trap '' TERM; while :; do sleep 0.1; done", true, "still ran 300ms after SIGTERM; killed", false},
		{"had ended by itself", "exit 3", false, "had ended by itself: exit status 3", true},
	} {
		t.Run(tc.name, func(t *testing.T) {
			cmd := exec.Command("sh", "-c", tc.script)
			cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: tc.group}
			p, err := StartProcess("sh", cmd)
			if err != nil {
				t.Fatal(err)
			}
			if tc.ended {
				<-p.Exited()
			} else {
				time.Sleep(100 * time.Millisecond)
			}
			err = p.End(syscall.SIGTERM, 300*time.Millisecond)
			var ended *EndedError
			switch {
			case tc.want == "" && err != nil, tc.want != "" && (err == nil || !strings.Contains(err.Error(), tc.want)):
				t.Fatalf("End: %v, want %q", err, tc.want)
			case errors.As(err, &ended) != tc.ended:
				t.Fatalf("End: %v, an EndedError: %v", err, !tc.ended)
			case p.Running():
				t.Fatal("still running after End")
			}
		})
	}
}

func TestProcessOutputAndWait(t *testing.T) {
	p := Start(t, "sh", "echo", "-c", "echo out; echo err >&2")
	if err := p.Wait(10 * time.Second); err != nil {
		t.Fatal(err)
	}
	if got := p.Output(); !strings.Contains(got, "out\n") || !strings.Contains(got, "err\n") {
		t.Fatalf("Output() = %q", got)
	}
	long := Start(t, "sleep", "sleep", "30")
	if err := long.Wait(50 * time.Millisecond); err == nil || !strings.Contains(err.Error(), "sleep still runs after 50ms") {
		t.Fatalf("Wait: %v", err)
	}
}

func TestLineWatch(t *testing.T) {
	for _, tc := range []struct {
		name   string
		writes []string
		seen   bool
	}{
		{"the line whole", []string{"a\nready\nb\n"}, true},
		{"the line in pieces", []string{"rea", "dy", "\n"}, true},
		{"a longer line", []string{"ready or not\n"}, false},
		{"no newline yet", []string{"ready"}, false},
		{"none", []string{"a\n", "b\n"}, false},
	} {
		t.Run(tc.name, func(t *testing.T) {
			var out Buffer
			w := NewLineWatch(&out, func(line string) bool { return line == "ready" })
			for _, s := range tc.writes {
				if _, err := w.Write([]byte(s)); err != nil {
					t.Fatal(err)
				}
			}
			select {
			case <-w.Seen():
				if !tc.seen {
					t.Fatal("seen")
				}
			default:
				if tc.seen {
					t.Fatal("not seen")
				}
			}
			if got := out.String(); got != strings.Join(tc.writes, "") {
				t.Fatalf("passed on %q", got)
			}
		})
	}
}

func TestRestartable(t *testing.T) {
	for _, tc := range []struct {
		name   string
		script string
		start  string // in Start's error; "" for none
		stop   string // in Stop's error; "" for none
	}{
		{"serves and stops cleanly", "trap 'exit 0' TERM; echo listening here; while :; do sleep 0.05; done", "", ""},
		{"exits before serving", "echo oops >&2; exit 2", "exited before serving (exit status 2)", ""},
		{"never serves", "exec sleep 30", "did not serve within 300ms", ""},
		{"stops uncleanly", "trap 'exit 3' TERM; echo listening here; while :; do sleep 0.05; done", "", "exit status 3"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			r := &Restartable{What: "sh", KeepStdout: true,
				Command:   func() *exec.Cmd { return exec.Command("sh", "-c", tc.script) },
				Announces: func(line string) bool { return strings.HasPrefix(line, "listening ") }}
			err := r.Start(300 * time.Millisecond)
			if tc.start != "" {
				if err == nil || !strings.Contains(err.Error(), tc.start) || r.Process() != nil {
					t.Fatalf("Start: %v, want %q", err, tc.start)
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			if !strings.Contains(r.Logs.String(), "listening here") {
				t.Fatalf("Logs: %q", r.Logs.String())
			}
			err = r.Stop(5 * time.Second)
			if tc.stop == "" && err != nil || tc.stop != "" && (err == nil || !strings.Contains(err.Error(), tc.stop)) {
				t.Fatalf("Stop: %v, want %q", err, tc.stop)
			}
			if r.Process() != nil || r.Stop(time.Second) != nil {
				t.Fatal("Stop again")
			}
		})
	}
}
