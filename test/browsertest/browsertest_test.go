package browsertest

import (
	"bytes"
	"crypto/rand"
	"fmt"
	"html"
	"image/png"
	"net"
	"net/http"
	"net/http/httptest"
	"os"
	"runtime"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/ProtonMail/go-crypto/openpgp/armor"
)

const testCSP = "default-src 'none'; style-src 'self'; form-action 'self'; frame-ancestors 'none'; base-uri 'none'"

// formServer is a TLS server on 127.0.0.1 with a self-signed certificate. Its
// page / has a form with a textarea that posts to itself, and shows the posted
// text back: in <pre id="echo"> as HTML, and in <code id="quoted"> as the Go
// quoted bytes that the server got. The page /other has a button that submits
// nothing and a form that the browser does not send (a required field).
func formServer(t *testing.T) *httptest.Server {
	t.Helper()
	srv := httptest.NewTLSServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Content-Security-Policy", testCSP)
		w.Header().Set("Content-Type", "text/html; charset=utf-8")
		switch {
		case r.URL.Path == "/style.css":
			w.Header().Set("Content-Type", "text/css")
			fmt.Fprint(w, "body { font-family: sans-serif; margin: 2em; }\n"+
				"code { white-space: pre-wrap; word-break: break-all; }\n")
		case r.URL.Path == "/" && r.Method == http.MethodGet:
			fmt.Fprint(w, `<!doctype html><html><head><title>Upload a key</title><link rel="stylesheet" href="/style.css"></head><body>
<h1>Upload a key</h1>
<form method="post" action="/">
<textarea id="key" name="key" rows="20" cols="70"></textarea>
<p><button id="submit" type="submit">Upload</button></p>
</form></body></html>`)
		case r.URL.Path == "/" && r.Method == http.MethodPost:
			key := r.PostFormValue("key")
			// The newline after <pre> is dropped by the HTML parser, so
			// that the text of the element is exactly key.
			fmt.Fprintf(w, `<!doctype html><html><head><title>Uploaded</title><link rel="stylesheet" href="/style.css"></head><body>
<h1 id="method">%s</h1>
<p>The server got <span id="len">%d</span> bytes:</p>
<pre id="echo">
%s</pre>
<p><code id="quoted">%s</code></p>
</body></html>`, r.Method, len(key), html.EscapeString(key), html.EscapeString(strconv.Quote(key)))
		case r.URL.Path == "/other":
			fmt.Fprint(w, `<!doctype html><html><body>
<p id="p">other</p>
<button id="noop" type="button">Nothing</button>
<form method="post" action="/"><textarea name="key" required></textarea>
<button id="blocked" type="submit">Send</button></form>
</body></html>`)
		default:
			http.NotFound(w, r)
		}
	}))
	t.Cleanup(srv.Close)
	if !strings.HasPrefix(srv.URL, "https://127.0.0.1:") {
		t.Fatalf("the test server is on %s, not on 127.0.0.1", srv.URL)
	}
	return srv
}

// armoredKey returns an armored OpenPGP block of about 5.5 KB (random bytes,
// not a real key), with LF line ends and a trailing newline.
func armoredKey(t *testing.T) string {
	t.Helper()
	body := make([]byte, 4096)
	if _, err := rand.Read(body); err != nil {
		t.Fatal(err)
	}
	var buf bytes.Buffer
	w, err := armor.Encode(&buf, "PGP PUBLIC KEY BLOCK", map[string]string{"Comment": "browsertest"})
	if err != nil {
		t.Fatal(err)
	}
	if _, err := w.Write(body); err != nil {
		t.Fatal(err)
	}
	if err := w.Close(); err != nil {
		t.Fatal(err)
	}
	buf.WriteByte('\n')
	return buf.String()
}

func TestFormRoundTrip(t *testing.T) {
	srv := formServer(t)
	start := time.Now()
	b := Start(t)
	t.Logf("browser start: %v", time.Since(start).Round(time.Millisecond))

	p := b.Open(t, srv.URL+"/")
	if got := p.Status(t); got != http.StatusOK {
		t.Errorf("Status after Open = %d, want 200", got)
	}
	if got := p.Header(t, "content-security-policy"); got != testCSP {
		t.Errorf("CSP after Open = %q, want %q", got, testCSP)
	}
	if got := p.Text(t, "h1"); got != "Upload a key" {
		t.Errorf("Text(h1) = %q", got)
	}

	key := armoredKey(t)
	if !strings.HasSuffix(key, "-----\n") || strings.Count(key, "\n") < 70 {
		t.Fatalf("the test key is not multi-line with a trailing newline: %q", key)
	}
	p.Fill(t, "#key", key)
	p.Screenshot(t, "filled")
	p.Click(t, "#submit")

	if got := p.Status(t); got != http.StatusOK {
		t.Errorf("Status after submit = %d, want 200", got)
	}
	if got := p.Header(t, "Content-Security-Policy"); got != testCSP {
		t.Errorf("CSP after submit = %q, want %q", got, testCSP)
	}
	if got := p.Text(t, "#method"); got != "POST" {
		t.Errorf("the page after submit shows method %q, want POST", got)
	}
	if got := p.Text(t, "#echo"); got != key {
		t.Errorf("echoed text differs from the filled text:\n got %q\nwant %q", got, key)
	}
	// A browser sends the line breaks of a textarea as CRLF.
	sent := strings.ReplaceAll(key, "\n", "\r\n")
	if got := p.Text(t, "#quoted"); got != strconv.Quote(sent) {
		t.Errorf("the server got %s, want %s", got, strconv.Quote(sent))
	}
	if got := p.Text(t, "#len"); got != strconv.Itoa(len(sent)) {
		t.Errorf("the server got %s bytes, want %d", got, len(sent))
	}
	if h := p.HTML(t); !strings.Contains(h, `<pre id="echo">`) || !strings.Contains(h, "-----BEGIN PGP PUBLIC KEY BLOCK-----") {
		t.Errorf("HTML lacks the echo: %.300s", h)
	}

	path := p.Screenshot(t, "submitted")
	data, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	if len(data) == 0 {
		t.Fatalf("screenshot %s is empty", path)
	}
	img, err := png.Decode(bytes.NewReader(data))
	if err != nil {
		t.Fatalf("screenshot %s is no PNG: %v", path, err)
	}
	bounds := img.Bounds()
	if bounds.Dx() < 100 || bounds.Dy() < 100 {
		t.Errorf("screenshot %s is only %v", path, bounds)
	}
	// The key is about 80 lines: the full-page screenshot is longer than
	// the 800 pixels of the window.
	if bounds.Dy() <= 800 {
		t.Errorf("screenshot %s is %v, not the full page", path, bounds)
	}
	t.Logf("screenshot %s: %d bytes, %dx%d", path, len(data), bounds.Dx(), bounds.Dy())
}

func TestClickWithoutNavigation(t *testing.T) {
	srv := formServer(t)
	b := Start(t)
	p := b.Open(t, srv.URL+"/other")

	start := time.Now()
	p.Click(t, "#noop") // a plain button: returns at once
	if d := time.Since(start); d >= navStartGrace {
		t.Errorf("Click on a plain button took %v", d)
	}

	// A required field is empty: the browser does not send the form.
	p.Click(t, "#blocked")
	if got := p.Text(t, "#p"); got != "other" {
		t.Errorf("after a blocked submit the page shows %q", got)
	}

	// Two tabs of one browser are independent.
	q := b.Open(t, srv.URL+"/nope")
	if got := q.Status(t); got != http.StatusNotFound {
		t.Errorf("Status of /nope = %d, want 404", got)
	}
	if got := p.Status(t); got != http.StatusOK {
		t.Errorf("Status of the first tab = %d, want 200", got)
	}
}

// recorder is a testing.TB that records the failures of the code under test
// instead of failing the test, and stops its goroutine as Fatal does.
type recorder struct {
	testing.TB
	mu      sync.Mutex
	fatals  []string
	skipped bool
}

func (r *recorder) Helper() {}

func (r *recorder) Fatalf(format string, args ...any) {
	r.mu.Lock()
	r.fatals = append(r.fatals, fmt.Sprintf(format, args...))
	r.mu.Unlock()
	runtime.Goexit()
}

func (r *recorder) Fatal(args ...any) { r.Fatalf("%s", fmt.Sprint(args...)) }
func (r *recorder) FailNow()          { r.Fatalf("FailNow") }

func (r *recorder) Skipf(format string, args ...any) {
	r.mu.Lock()
	r.skipped = true
	r.mu.Unlock()
	runtime.Goexit()
}

func (r *recorder) Skip(args ...any) { r.Skipf("") }
func (r *recorder) SkipNow()         { r.Skipf("") }

// run runs f with a recorder on a goroutine of its own, and waits for it.
func run(t *testing.T, f func(tb testing.TB)) *recorder {
	r := &recorder{TB: t}
	done := make(chan struct{})
	go func() {
		defer close(done)
		f(r)
	}()
	<-done
	return r
}

func TestStartFailsWithoutChromium(t *testing.T) {
	saved := chromiumCandidates
	chromiumCandidates = []string{"/nonexistent/chromium"}
	t.Cleanup(func() { chromiumCandidates = saved })

	r := run(t, func(tb testing.TB) { Start(tb) })
	if r.skipped {
		t.Fatal("Start skipped the test; it must fail it")
	}
	if len(r.fatals) != 1 || !strings.Contains(r.fatals[0], "Chromium is not installed") ||
		!strings.Contains(r.fatals[0], "install-test-deps.sh") {
		t.Fatalf("Start failed with %q, want the reason and the fix", r.fatals)
	}
	t.Log(r.fatals[0])
}

func TestActionsAreBounded(t *testing.T) {
	srv := formServer(t)
	b := Start(t)
	p := b.Open(t, srv.URL+"/other")

	saved := actionTimeout
	actionTimeout = 500 * time.Millisecond
	t.Cleanup(func() { actionTimeout = saved })

	start := time.Now()
	r := run(t, func(tb testing.TB) { p.Text(tb, "#missing") })
	if d := time.Since(start); d > 5*time.Second {
		t.Errorf("Text of a missing element took %v", d)
	}
	if len(r.fatals) != 1 || !strings.Contains(r.fatals[0], "timed out") {
		t.Errorf("Text of a missing element failed with %q, want a time-out", r.fatals)
	}
	t.Log(r.fatals)
	actionTimeout = saved

	// A refused connection fails Open with the reason.
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	closed := "https://" + l.Addr().String() + "/"
	l.Close()
	r = run(t, func(tb testing.TB) { b.Open(tb, closed) })
	if len(r.fatals) != 1 || !strings.Contains(r.fatals[0], "ERR_CONNECTION_REFUSED") {
		t.Errorf("Open of a closed port failed with %q", r.fatals)
	}
	t.Log(r.fatals)

	// The page still works after the failures.
	if got := p.Text(t, "#p"); got != "other" {
		t.Errorf("Text(#p) = %q", got)
	}
}
