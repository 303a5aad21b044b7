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
