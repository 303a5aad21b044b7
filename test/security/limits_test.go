package security

import (
	"bufio"
	"bytes"
	"crypto/tls"
	"fmt"
	"io"
	"net/http"
	"os"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"
)

// rssKiB reads a process's resident set size (VmRSS) in KiB.
func rssKiB(t testing.TB, pid int) int {
	t.Helper()
	b, err := os.ReadFile(fmt.Sprintf("/proc/%d/status", pid))
	if err != nil {
		t.Fatal(err)
	}
	for _, line := range strings.Split(string(b), "\n") {
		if f := strings.Fields(line); len(f) >= 2 && f[0] == "VmRSS:" {
			n, err := strconv.Atoi(f[1])
			if err != nil {
				t.Fatal(err)
			}
			return n
		}
	}
	t.Fatalf("no VmRSS in /proc/%d/status", pid)
	return 0
}

// oversized sends a request whose headers announce a body of length bytes
// (chunked, when length is -1) and then streams up to offer bytes of it
// while reading the answer. It returns the answer and how many body bytes
// the server let it send before answering and closing.
func oversized(t testing.TB, s *server, method, target string, length, offer int64) (answer, int64) {
	t.Helper()
	conn, err := tls.Dial("tcp", s.addr, s.tlsConfig)
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close()
	conn.SetDeadline(time.Now().Add(60 * time.Second))
	head := fmt.Sprintf("%s %s HTTP/1.1\r\nHost: %s\r\nAuthorization: KTS-Session x\r\n", method, target, s.addr)
	if length >= 0 {
		head += fmt.Sprintf("Content-Length: %d\r\n\r\n", length)
	} else {
		head += "Transfer-Encoding: chunked\r\n\r\n"
	}
	if _, err := io.WriteString(conn, head); err != nil {
		t.Fatal(err)
	}
	var sent atomic.Int64
	stop := make(chan struct{})
	go func() {
		chunk := bytes.Repeat([]byte("x"), 64<<10)
		frame := chunk
		if length < 0 {
			frame = append([]byte(fmt.Sprintf("%x\r\n", len(chunk))), append(chunk, "\r\n"...)...)
		}
		for sent.Load() < offer {
			select {
			case <-stop:
				return
			default:
			}
			if _, err := conn.Write(frame); err != nil {
				return
			}
			sent.Add(int64(len(chunk)))
		}
	}()
	resp, err := http.ReadResponse(bufio.NewReader(conn), nil)
	close(stop)
	if err != nil {
		t.Fatalf("%s %s with a body of %d bytes: no answer: %v", method, target, length, err)
	}
	body, _ := io.ReadAll(io.LimitReader(resp.Body, 1<<20))
	resp.Body.Close()
	return answer{resp.StatusCode, resp.Header, body}, sent.Load()
}

// TestOversizedBodiesRefusedUnread: a body larger than a route takes
// (deposits: MAX_DEPOSIT_BYTES, 1 MiB; registration 128 KiB; session 4 KiB;
// none for reads and deletes) is refused as soon as its length is known,
// before the client has sent it; a body sent without a length (chunked) is
// refused unread (411 length_required). Headers are limited to 64 KiB.
func TestOversizedBodiesRefusedUnread(t *testing.T) {
	s := shared(t)
	const huge = 1 << 30
	for _, r := range []struct {
		method, target string
		status         int
		code           string
	}{
		{"PUT", "/v1/deposits/big", 413, "too_large"},
		{"POST", "/v1/register", 413, "too_large"},
		{"POST", "/v1/session", 413, "too_large"},
		{"GET", "/v1/deposits/big", 400, "unexpected_body"},
		{"DELETE", "/v1/deposits/big", 400, "unexpected_body"},
		{"GET", "/v1/deposits", 400, "unexpected_body"},
	} {
		// A length of 1 GiB, and no byte of the body sent.
		a, _ := oversized(t, s, r.method, r.target, huge, 0)
		want(t, fmt.Sprintf("%s %s announcing 1 GiB", r.method, r.target), a, r.status, r.code)
	}
	for _, r := range [][2]string{{"PUT", "/v1/deposits/big"}, {"POST", "/v1/register"}, {"POST", "/v1/session"}} {
		// 256 MiB offered without a length: the server reads none of it;
		// what the client got to send sat in socket buffers.
		a, sent := oversized(t, s, r[0], r[1], -1, 256<<20)
		want(t, "chunked "+r[0]+" "+r[1], a, 411, "length_required")
		if sent > 32<<20 {
			t.Errorf("chunked %s %s: %d MiB were taken before the refusal", r[0], r[1], sent>>20)
		}
	}
	big := strings.Repeat("a", 100<<10)
	a := s.send(t, "GET", "/healthz", "KTS-Session "+big, nil)
	want(t, "a 100 KiB header", a, http.StatusRequestHeaderFieldsTooLarge, "header_too_large")
}

// TestBodyFloodKeepsMemoryBounded floods the server with unauthenticated
// deposit writes, 32 at a time, each offering 64 MiB (8 GiB in all) with
// and without a length, and samples the server's resident memory: it must
// grow by far less than what was offered (a server reading bodies whole
// would need gigabytes), and the server must serve normally afterwards.
// The bound per request is MAX_DEPOSIT_BYTES; the number of connections
// is the client's here (docs/SECURITY.md: the server does not cap it).
// After the other tests, the server's heap may have room to spare, so the
// growth measured is a bound, not the flood's cost: a server that read the
// bodies whole would need 2 GiB at once.
func TestBodyFloodKeepsMemoryBounded(t *testing.T) {
	s := shared(t)
	pid := s.pid()
	base := rssKiB(t, pid)
	peak := base
	var mu sync.Mutex
	stopSampling := make(chan struct{})
	sampled := make(chan struct{})
	go func() {
		defer close(sampled)
		for {
			select {
			case <-stopSampling:
				return
			case <-time.After(20 * time.Millisecond):
			}
			if b, err := os.ReadFile(fmt.Sprintf("/proc/%d/status", pid)); err == nil {
				for _, line := range strings.Split(string(b), "\n") {
					if f := strings.Fields(line); len(f) >= 2 && f[0] == "VmRSS:" {
						n, _ := strconv.Atoi(f[1])
						mu.Lock()
						peak = max(peak, n)
						mu.Unlock()
					}
				}
			}
		}
	}()
	const workers, perWorker = 32, 4
	const offer = 64 << 20
	var wg sync.WaitGroup
	var refused, sentTotal atomic.Int64
	start := time.Now()
	for w := 0; w < workers; w++ {
		wg.Add(1)
		go func(w int) {
			defer wg.Done()
			for i := 0; i < perWorker; i++ {
				length := int64(-1)
				if i%2 == 1 {
					length = offer
				}
				a, sent := oversized(t, s, "PUT", fmt.Sprintf("/v1/deposits/flood-%d-%d", w, i), length, offer)
				sentTotal.Add(sent)
				if a.status == http.StatusRequestEntityTooLarge || length < 0 && a.status == http.StatusLengthRequired {
					refused.Add(1)
				}
			}
		}(w)
	}
	wg.Wait()
	close(stopSampling)
	<-sampled
	took := time.Since(start)
	growth := peak - base
	t.Logf("%d requests offering %d GiB in %v: %d refused with 413 (411 without a length), %d MiB sent in all; resident memory %d MiB before, peak %d MiB (+%d MiB)",
		workers*perWorker, workers*perWorker*offer>>30, took.Round(time.Millisecond), refused.Load(), sentTotal.Load()>>20, base>>10, peak>>10, growth>>10)
	if refused.Load() != workers*perWorker {
		t.Errorf("%d of %d oversized requests were answered 413 (411 without a length)", refused.Load(), workers*perWorker)
	}
	if growth > 256<<10 {
		t.Errorf("the server's resident memory grew by %d MiB under the flood; want less than 256 MiB", growth>>10)
	}
	if a := s.send(t, "GET", "/healthz", "", nil); a.status != http.StatusOK {
		t.Errorf("after the flood: %s", a)
	}
}

// TestRegistrationFloodRateLimited sends 200 registrations for one
// organization from one address, 32 at a time, each with a key of its own
// and a valid signature: no more are admitted than the limit allows (a
// burst of 10, then one per 6 s), the rest get 429 with Retry-After, and
// the organization holds exactly the admitted clients.
func TestRegistrationFloodRateLimited(t *testing.T) {
	s := shared(t)
	code := secretText("auth code", "code-")
	org := s.newOrg(t, code)
	const total, workers = 200, 32
	ids := make([]*identity, total)
	bodies := make([][]byte, total)
	for i := range ids {
		ids[i] = newIdentity(t)
		bodies[i] = registerBody(org, code, ids[i].public)
	}
	var admitted, limited atomic.Int64
	var others sync.Map
	var wg sync.WaitGroup
	next := atomic.Int64{}
	start := time.Now()
	for w := 0; w < workers; w++ {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for {
				i := next.Add(1) - 1
				if i >= total {
					return
				}
				a := s.signed(t, ids[i], "POST", "/v1/register", bodies[i])
				switch {
				case a.status == http.StatusCreated:
					admitted.Add(1)
				case a.status == http.StatusTooManyRequests && a.code() == "rate_limited" && a.header.Get("Retry-After") != "":
					limited.Add(1)
				default:
					others.Store(i, a.String())
				}
			}
		}()
	}
	wg.Wait()
	elapsed := time.Since(start)
	others.Range(func(k, v any) bool {
		t.Errorf("registration %v: %v", k, v)
		return true
	})
	allowed := int64(10 + elapsed/(6*time.Second) + 1)
	t.Logf("%d registrations in %v: %d admitted, %d refused with 429", total, elapsed.Round(time.Millisecond), admitted.Load(), limited.Load())
	if admitted.Load() > allowed || admitted.Load() < 10 {
		t.Errorf("%d registrations admitted in %v; the limit allows %d", admitted.Load(), elapsed, allowed)
	}
	var n int64
	if err := s.db(t).QueryRow(t.Context(), `SELECT count(*) FROM clients c JOIN organizations o ON o.uuid = c.org_uuid WHERE o.name = $1`, org).Scan(&n); err != nil {
		t.Fatal(err)
	}
	if n != admitted.Load() {
		t.Errorf("the organization has %d clients; %d were admitted", n, admitted.Load())
	}
}
