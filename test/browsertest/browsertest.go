// Package browsertest drives a real headless Chromium from Go tests, so that a
// test can use the server's web pages as a person would: open a page, fill in
// a form, click its button, read what the page shows and take a screenshot.
//
//	b := browsertest.Start(t)
//	p := b.Open(t, srv.URL+"/upload")
//	p.Fill(t, "textarea[name=key]", armoredKey)
//	p.Click(t, "button[type=submit]")
//	if got := p.Text(t, "#result"); got != "..." { ... }
//	csp := p.Header(t, "Content-Security-Policy")
//	p.Screenshot(t, "after-upload")
//
// The browser is Debian's chromium (/usr/bin/chromium), which
// hack/install-test-deps.sh installs. Start fails the test, and does not skip
// it, when Chromium is missing.
//
// Each Browser is a Chromium process of its own, started by the test process
// (never a browser that runs already), with a fresh profile in a temporary
// directory. The browser talks to the test over a pipe, so it opens no
// debugging port. It runs headless without a sandbox and without a GPU, with
// the background networking, component updates, sync, QUIC and the other
// services that call home turned off, and with a host resolver that resolves
// no name but localhost: a page can reach 127.0.0.1 (and localhost) and
// nothing else by name, so a look-up of a Google host fails at once, in the
// browser, without a DNS query. It ignores TLS certificate errors, so that it
// accepts the self-signed certificate of an httptest.NewTLSServer; that holds
// for the browsers of this package only.
//
// Every step is bounded: starting the browser by 30 s, every other action by
// 15 s. A browser that hangs fails the test instead of hanging it. When Start
// or an action fails, the test fails with the reason and, when the test has
// failed, the last output of Chromium is logged at the end of the test.
//
// Screenshots go to the directory that $KTS_TEST_ARTIFACTS names, or, when it
// is empty, to test/artifacts at the root of the module (git-ignored); see
// [Page.Screenshot].
//
// A Page is not safe for concurrent use. Several Pages of one Browser can be
// used from parallel tests.
package browsertest

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/chromedp/cdproto/cdp"
	"github.com/chromedp/cdproto/dom"
	"github.com/chromedp/cdproto/network"
	"github.com/chromedp/cdproto/page"
	"github.com/chromedp/cdproto/runtime"
	"github.com/chromedp/chromedp"
	"trustee.dev/trustee/test/harness"
)

const (
	// chromiumPath is where Debian's chromium package installs the browser.
	chromiumPath = "/usr/bin/chromium"

	// startTimeout bounds the start of the browser, up to its first tab.
	startTimeout = 30 * time.Second

	// navStartGrace is how long Click waits, after it clicked a submit button
	// or a link, for the navigation to start. A form that the browser does
	// not send (a required field is empty, a script handles the submit)
	// starts none.
	navStartGrace = 2 * time.Second

	// stopTimeout bounds the graceful close of the browser in the cleanup.
	// After it, the browser is killed.
	stopTimeout = 10 * time.Second

	// artifactsEnv names the directory for screenshots.
	artifactsEnv = "KTS_TEST_ARTIFACTS"
)

// actionTimeout bounds every other action: opening a tab with its page, a
// query, a fill, a click with the page that it loads, a screenshot. A
// variable, so that a test can shorten it.
var actionTimeout = 15 * time.Second

// chromiumCandidates are the places where Start looks for the browser, in
// order. A variable, so that a test can make the browser missing.
var chromiumCandidates = []string{chromiumPath, "chromium"}

// Browser is a headless Chromium started for a test.
type Browser struct {
	dir         string // the profile, a fresh temporary directory
	allocCancel context.CancelFunc
	ctx         context.Context // the browser's chromedp context
	cancel      context.CancelFunc
	output      *harness.Buffer // the last output of Chromium
}

// Page is a tab of a [Browser], made by [Browser.Open].
type Page struct {
	b      *Browser
	ctx    context.Context // the tab's chromedp context
	cancel context.CancelFunc
	resp   *network.Response // the response of the last main-frame navigation
}

// Start starts a headless Chromium for the test. It fails the test, with the
// reason, when Chromium is missing or does not start within 30 s. The browser
// is stopped, and its profile directory removed, in t.Cleanup.
func Start(t testing.TB) *Browser {
	t.Helper()
	exe := findChromium()
	if exe == "" {
		t.Fatalf("browsertest: Chromium is not installed: no %s, and no chromium in $PATH; "+
			"install the Debian package chromium (bash hack/install-test-deps.sh)", chromiumPath)
	}
	dir, err := os.MkdirTemp("", "kts-browsertest-")
	if err != nil {
		t.Fatalf("browsertest: creating the profile directory: %v", err)
	}
	b := &Browser{dir: dir, output: &harness.Buffer{Max: 16 << 10}}

	opts := []chromedp.ExecAllocatorOption{
		chromedp.ExecPath(exe),
		chromedp.UserDataDir(dir),
		chromedp.CombinedOutput(b.output),
	}
	for _, f := range chromiumFlags() {
		name, value, ok := strings.Cut(f, "=")
		if ok {
			opts = append(opts, chromedp.Flag(name, value))
		} else {
			opts = append(opts, chromedp.Flag(name, true))
		}
	}
	allocCtx, allocCancel := chromedp.NewExecAllocator(context.Background(), opts...)
	b.allocCancel = allocCancel
	b.ctx, b.cancel = chromedp.NewContext(allocCtx)
	t.Cleanup(func() { b.stop(t) })

	start := time.Now()
	// The first Run starts the browser and binds it to its context, so it
	// must not get a timeout of its own: bound it from outside.
	err = bounded(startTimeout, b.cancel, func() error { return chromedp.Do(b.ctx) })
	if err != nil {
		t.Fatalf("browsertest: starting %s: %v\n%s", exe, err, tail(b.output))
	}
	t.Logf("browsertest: %s started in %v", exe, time.Since(start).Round(time.Millisecond))
	return b
}

// chromiumFlags are the switches of the browser. chromedp adds
// --user-data-dir, --remote-debugging-pipe, and the first page about:blank.
func chromiumFlags() []string {
	return []string{
		"headless",
		"no-sandbox",
		"disable-gpu",
		"disable-quic",
		"no-first-run",
		"no-default-browser-check",
		"disable-background-networking",
		"disable-component-update",
		"disable-sync",
		"disable-default-apps",
		// Nothing else that calls home, or that a test does not need.
		"disable-extensions",
		"disable-component-extensions-with-background-pages",
		"disable-client-side-phishing-detection",
		"disable-domain-reliability",
		"disable-breakpad",
		"disable-field-trial-config",
		"safebrowsing-disable-auto-update",
		"metrics-recording-only",
		"no-pings",
		"disable-features=Translate,OptimizationHints,MediaRouter,DialMediaRouteProvider," +
			"AutofillServerCommunication,CertificateTransparencyComponentUpdater,InterestFeedContentSuggestions",
		"password-store=basic",
		"use-mock-keychain",
		// Resolve no name but localhost, in the browser: the pages of the
		// tests are on 127.0.0.1, and a look-up of any other host (Chromium
		// may try Google's) fails at once without a DNS query.
		"host-resolver-rules=MAP * ~NOTFOUND, EXCLUDE localhost, EXCLUDE 127.0.0.1",
		// Accept the self-signed certificates of the test servers.
		"ignore-certificate-errors",
		// Stable pages and screenshots.
		"disable-dev-shm-usage",
		"hide-scrollbars",
		"mute-audio",
		"force-color-profile=srgb",
		"window-size=1280,800",
		"lang=en-US",
	}
}

// findChromium returns the path of the browser, or "" when it is missing.
func findChromium() string {
	for _, c := range chromiumCandidates {
		if p, err := exec.LookPath(c); err == nil {
			return p
		}
	}
	return ""
}

// stop closes the browser, kills what is left of it and removes its profile.
func (b *Browser) stop(t testing.TB) {
	if b.ctx != nil {
		ctx, cancel := context.WithTimeout(b.ctx, stopTimeout)
		_ = chromedp.Cancel(ctx) // a graceful Browser.close; errors do not matter here
		cancel()
		b.cancel()
	}
	b.allocCancel() // kills the browser if it still runs, and waits for it
	killLeftovers(b.dir)
	var err error
	for i := 0; i < 20; i++ {
		// A child process that has just died can still be writing.
		if err = os.RemoveAll(b.dir); err == nil {
			break
		}
		time.Sleep(50 * time.Millisecond)
	}
	if err != nil {
		t.Errorf("browsertest: removing the profile %s: %v", b.dir, err)
	}
	if t.Failed() {
		if out := tail(b.output); out != "" {
			t.Logf("browsertest: the last output of Chromium:\n%s", out)
		}
	}
}

// killLeftovers kills the processes of the browser that outlived it: Chromium
// passes --user-data-dir to its children, and the directory is unique to this
// browser, so the command line names exactly the processes that this test
// started. There are none after a graceful close; this is for the crashes.
func killLeftovers(dir string) {
	want := []byte("--user-data-dir=" + dir)
	for pass := 0; pass < 3; pass++ {
		entries, err := os.ReadDir("/proc")
		if err != nil {
			return // not Linux
		}
		found := false
		for _, e := range entries {
			pid, err := strconv.Atoi(e.Name())
			if err != nil || pid == os.Getpid() {
				continue
			}
			cmdline, err := os.ReadFile("/proc/" + e.Name() + "/cmdline")
			if err != nil {
				continue
			}
			for _, arg := range bytes.Split(cmdline, []byte{0}) {
				if bytes.Equal(arg, want) {
					if p, err := os.FindProcess(pid); err == nil {
						_ = p.Kill()
						found = true
					}
					break
				}
			}
		}
		if !found {
			return
		}
		time.Sleep(20 * time.Millisecond)
	}
}

// Open opens url in a new tab and waits until the page has loaded. It fails
// the test when the page does not load (a refused connection, a bad URL); an
// HTTP error status is no failure, see [Page.Status]. The tab is closed in
// t.Cleanup.
func (b *Browser) Open(t testing.TB, url string) *Page {
	t.Helper()
	p := &Page{b: b}
	p.ctx, p.cancel = chromedp.NewContext(b.ctx)
	t.Cleanup(p.cancel)
	// As in Start: the first Run opens the tab and binds it to its context.
	if err := bounded(actionTimeout, p.cancel, func() error { return chromedp.Do(p.ctx) }); err != nil {
		t.Fatalf("browsertest: opening a tab: %v", err)
	}
	ctx, cancel := p.actionContext()
	defer cancel()
	resp, err := chromedp.Run(ctx, chromedp.NavigateResponse(url))
	if err != nil {
		t.Fatalf("browsertest: Open(%q): %v", url, p.explain(ctx, err))
	}
	p.resp = resp
	return p
}

// Text returns the visible text (innerText) of the first element that the
// CSS selector matches. It waits up to 15 s for such an element to be
// visible.
func (p *Page) Text(t testing.TB, selector string) string {
	t.Helper()
	ctx, cancel := p.actionContext()
	defer cancel()
	s, err := chromedp.Run(ctx, chromedp.Text(chromedp.CSS(selector), chromedp.NodeVisible))
	if err != nil {
		t.Fatalf("browsertest: Text(%q): %v", selector, p.explain(ctx, err))
	}
	return s
}

// HTML returns the HTML of the page as it is now (the serialized DOM of the
// document element, not the bytes that the server sent).
func (p *Page) HTML(t testing.TB) string {
	t.Helper()
	ctx, cancel := p.actionContext()
	defer cancel()
	s, err := chromedp.Run(ctx, chromedp.Evaluate[string](`document.documentElement.outerHTML`))
	if err != nil {
		t.Fatalf("browsertest: HTML: %v", p.explain(ctx, err))
	}
	return s
}

// fillJS sets the value of a form field as one edit, and tells the page about
// it as typing would (input and change events). It returns the value that the
// field then holds.
const fillJS = `function(v) {
	if (!('value' in this)) {
		throw new Error('<' + this.localName + '> has no value');
	}
	if (this.disabled || this.readOnly) {
		throw new Error('<' + this.localName + '> is disabled or read-only');
	}
	this.focus();
	this.value = v;
	this.dispatchEvent(new Event('input', {bubbles: true}));
	this.dispatchEvent(new Event('change', {bubbles: true}));
	return this.value;
}`

// Fill sets the value of the first visible textarea, input or select that the
// CSS selector matches, replacing what it held, in one step: a multi-line
// value, such as an armored OpenPGP key, keeps its line breaks. It fails the
// test when the field does not keep the value as given (an <input> drops line
// breaks; a <textarea> keeps them, with CRLF read as LF). Note that a browser
// sends the line breaks of a textarea as CRLF when it submits the form.
func (p *Page) Fill(t testing.TB, selector, value string) {
	t.Helper()
	ctx, cancel := p.actionContext()
	defer cancel()
	n, err := p.node(ctx, selector)
	if err != nil {
		t.Fatalf("browsertest: Fill(%q): %v", selector, p.explain(ctx, err))
	}
	got, err := callOnNode[string](ctx, n, fillJS, value)
	if err != nil {
		t.Fatalf("browsertest: Fill(%q): %v", selector, p.explain(ctx, err))
	}
	if n.NodeName == "TEXTAREA" {
		value = strings.ReplaceAll(value, "\r\n", "\n")
	}
	if got != value {
		t.Fatalf("browsertest: Fill(%q): the <%s> holds %d bytes %.60q..., not the %d bytes given %.60q...",
			selector, strings.ToLower(n.NodeName), len(got), got, len(value), value)
	}
}

// navigatesJS tells whether a click on the element loads a page in the same
// tab: a submit button of a form, or a link.
const navigatesJS = `function() {
	const a = this.closest('a[href], area[href]');
	if (a) {
		const href = a.getAttribute('href');
		return !href.startsWith('#') && !/^\s*javascript:/i.test(href) &&
			(!a.target || a.target === '_self');
	}
	const b = this.closest('button, input');
	if (!b || b.disabled || !b.form || (b.type !== 'submit' && b.type !== 'image')) {
		return false;
	}
	const target = b.formTarget || b.form.target;
	const method = (b.hasAttribute('formmethod') ? b.formMethod : b.form.method);
	return (!target || target === '_self') && method !== 'dialog';
}`

// Click clicks, with the mouse, the first visible element that the CSS
// selector matches. When that is a submit button of a form, or a link, Click
// also waits until the page that it loads has loaded; [Page.Status] and
// [Page.Header] then describe that page's response. If no navigation starts
// within 2 s of the click (the browser did not send the form, because a
// required field is empty, or a script handled it), Click returns without
// one, and logs it.
func (p *Page) Click(t testing.TB, selector string) {
	t.Helper()
	ctx, cancel := p.actionContext()
	defer cancel()
	n, err := p.node(ctx, selector)
	if err != nil {
		t.Fatalf("browsertest: Click(%q): %v", selector, p.explain(ctx, err))
	}
	navigates, err := callOnNode[bool](ctx, n, navigatesJS)
	if err != nil {
		t.Fatalf("browsertest: Click(%q): %v", selector, p.explain(ctx, err))
	}
	click := chromedp.MouseClickNode(n)
	if !navigates {
		if _, err := chromedp.Run(ctx, click); err != nil {
			t.Fatalf("browsertest: Click(%q): %v", selector, p.explain(ctx, err))
		}
		return
	}

	root, err := chromedp.Call(ctx, page.GetFrameTree, cdp.Empty{})
	if err != nil {
		t.Fatalf("browsertest: Click(%q): %v", selector, p.explain(ctx, err))
	}
	mainFrame := root.FrameTree.Frame.ID
	started := make(chan struct{})
	var once sync.Once
	lctx, lcancel := context.WithCancel(ctx)
	defer lcancel()
	err = chromedp.Listen(lctx, func(ev any) {
		var frame cdp.FrameID
		switch ev := ev.(type) {
		case *page.EventFrameRequestedNavigation:
			frame = ev.FrameID
		case *page.EventFrameStartedNavigating:
			frame = ev.FrameID
		case *page.EventFrameStartedLoading:
			frame = ev.FrameID
		default:
			return
		}
		if frame == mainFrame {
			once.Do(func() { close(started) })
		}
	})
	if err != nil {
		t.Fatalf("browsertest: Click(%q): %v", selector, p.explain(ctx, err))
	}

	type result struct {
		resp *network.Response
		err  error
	}
	rctx, rcancel := context.WithCancel(ctx)
	defer rcancel()
	done := make(chan result, 1)
	go func() {
		resp, err := chromedp.RunResponse(rctx, click)
		done <- result{resp, err}
	}()
	var r result
	select {
	case r = <-done:
	case <-started:
		r = <-done // bounded by ctx
	case <-time.After(navStartGrace):
		select {
		case <-started:
			r = <-done
		default:
			rcancel()
			<-done
			t.Logf("browsertest: Click(%q): the click started no navigation within %v", selector, navStartGrace)
			return
		}
	}
	if r.err != nil {
		t.Fatalf("browsertest: Click(%q): waiting for the page that it loads: %v", selector, p.explain(ctx, r.err))
	}
	if r.resp != nil {
		p.resp = r.resp
	}
}

// Screenshot takes a PNG screenshot of the whole page (beyond the window, if
// the page is longer) and writes it as a test artifact, name.png (".png" is
// added when name lacks it), in a directory for the test: $KTS_TEST_ARTIFACTS/
// <test name>/ when the variable is set, else <module root>/test/artifacts/
// <test name>/ (git-ignored), else, outside the module, t.TempDir(). A
// screenshot of a later run replaces the one of the same name. It returns the
// path of the file.
func (p *Page) Screenshot(t testing.TB, name string) string {
	t.Helper()
	ctx, cancel := p.actionContext()
	defer cancel()
	png, err := chromedp.Run(ctx, chromedp.FullScreenshot(100))
	if err != nil {
		t.Fatalf("browsertest: Screenshot(%q): %v", name, p.explain(ctx, err))
	}
	if !strings.HasSuffix(name, ".png") {
		name += ".png"
	}
	dir := filepath.Join(artifactsDir(t), sanitize(t.Name()))
	if err := os.MkdirAll(dir, 0o755); err != nil {
		t.Fatalf("browsertest: Screenshot(%q): %v", name, err)
	}
	path := filepath.Join(dir, sanitize(name))
	if err := os.WriteFile(path, png, 0o644); err != nil {
		t.Fatalf("browsertest: Screenshot(%q): %v", name, err)
	}
	t.Logf("browsertest: screenshot %s", path)
	return path
}

// Header returns a response header of the last main-frame navigation that
// Open or Click made, or "" when the response had none. The name is case
// insensitive; several values of one header come joined by "\n", as Chromium
// reports them.
func (p *Page) Header(t testing.TB, name string) string {
	t.Helper()
	resp := p.lastResponse(t, "Header")
	for k, v := range resp.Headers {
		if strings.EqualFold(k, name) {
			if s, ok := v.(string); ok {
				return s
			}
			return fmt.Sprint(v)
		}
	}
	return ""
}

// Status returns the HTTP status of the last main-frame navigation that Open
// or Click made.
func (p *Page) Status(t testing.TB) int {
	t.Helper()
	return int(p.lastResponse(t, "Status").Status)
}

func (p *Page) lastResponse(t testing.TB, what string) *network.Response {
	t.Helper()
	if p.resp == nil {
		t.Fatalf("browsertest: %s: the page has no response of a navigation", what)
	}
	return p.resp
}

// actionContext bounds one action of the page.
func (p *Page) actionContext() (context.Context, context.CancelFunc) {
	return context.WithTimeout(p.ctx, actionTimeout)
}

// explain adds to err that the action ran out of time.
func (p *Page) explain(ctx context.Context, err error) error {
	if errors.Is(err, context.DeadlineExceeded) || errors.Is(ctx.Err(), context.DeadlineExceeded) {
		return fmt.Errorf("timed out after %v (no visible element matches, or the page does not load?): %w", actionTimeout, err)
	}
	return err
}

// node waits for the first element that selector matches to be visible.
func (p *Page) node(ctx context.Context, selector string) (*chromedp.Node, error) {
	nodes, err := chromedp.Run(ctx, chromedp.Nodes(chromedp.CSS(selector), chromedp.NodeVisible))
	if err != nil {
		return nil, err
	}
	if len(nodes) == 0 {
		return nil, fmt.Errorf("no element matches")
	}
	return nodes[0], nil
}

// callOnNode calls the JavaScript function fn with the node as this.
func callOnNode[T any](ctx context.Context, n *chromedp.Node, fn string, args ...any) (T, error) {
	var zero T
	r, err := chromedp.Call(ctx, dom.ResolveNode, dom.ResolveNodeParams{NodeID: n.NodeID})
	if err != nil {
		return zero, err
	}
	defer func() {
		// Fails when the click navigated; that does not matter.
		_, _ = chromedp.Call(ctx, runtime.ReleaseObject, runtime.ReleaseObjectParams{ObjectID: r.Object.ObjectID})
	}()
	return chromedp.Run(ctx, chromedp.CallFunctionOn[T](fn, func(p *runtime.CallFunctionOnParams) {
		p.ObjectID = r.Object.ObjectID
	}, args...))
}

// bounded runs f and waits at most d for it. When d passes first, it calls
// abort, which must make f return, waits for f, and returns an error.
func bounded(d time.Duration, abort func(), f func() error) error {
	done := make(chan error, 1)
	go func() { done <- f() }()
	timer := time.NewTimer(d)
	defer timer.Stop()
	select {
	case err := <-done:
		return err
	case <-timer.C:
		abort()
		err := <-done
		return fmt.Errorf("timed out after %v (%v)", d, err)
	}
}

// artifactsDir is the directory of the test artifacts; see Screenshot.
func artifactsDir(t testing.TB) string {
	if dir := os.Getenv(artifactsEnv); dir != "" {
		return dir
	}
	if root := moduleRoot(); root != "" {
		return filepath.Join(root, "test", "artifacts")
	}
	return t.TempDir()
}

// moduleRoot returns the directory of the nearest go.mod above the working
// directory of the test (its package directory), or "".
func moduleRoot() string {
	dir, err := os.Getwd()
	if err != nil {
		return ""
	}
	for {
		if _, err := os.Stat(filepath.Join(dir, "go.mod")); err == nil {
			return dir
		}
		parent := filepath.Dir(dir)
		if parent == dir {
			return ""
		}
		dir = parent
	}
}

// sanitize makes s a safe file name.
func sanitize(s string) string {
	return strings.Map(func(r rune) rune {
		switch {
		case 'a' <= r && r <= 'z', 'A' <= r && r <= 'Z', '0' <= r && r <= '9', r == '-', r == '_', r == '.':
			return r
		}
		return '_'
	}, s)
}

// tail returns what Chromium wrote last, without its complaints that it
// finds no D-Bus, which a test machine need not have.
func tail(b *harness.Buffer) string {
	var out []string
	for _, line := range strings.Split(b.String(), "\n") {
		if !strings.Contains(line, "dbus") && strings.TrimSpace(line) != "" {
			out = append(out, line)
		}
	}
	return strings.Join(out, "\n")
}
