// Package mailpittest runs Mailpit, a real SMTP server that keeps what it
// receives and shows it through an HTTP API, for tests of code that sends
// mail.
//
// The mailpit binary comes from $KTS_MAILPIT, else from the cache that
// hack/build-mailpit.sh fills (${XDG_CACHE_HOME:-$HOME/.cache}/trustee/
// mailpit-<version>/), else that script is run (minutes, once). A test
// that cannot have it fails; it does not skip.
//
// Each Server listens on 127.0.0.1 only, on free ports, with its own
// database in the test's temporary directory, and is stopped when the test
// ends. SMTP AUTH (PLAIN, LOGIN) is offered and any user name and password
// are accepted, unless Options.Credentials names the accepted ones; the
// user name a message was sent with is in Message.Username.
package mailpittest

import (
	"bytes"
	"crypto/sha1"
	"crypto/tls"
	"crypto/x509"
	"encoding/base64"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"maps"
	"net"
	"net/http"
	"net/mail"
	"net/url"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"trustee.dev/trustee/test/harness"
)

// TLSMode says how Mailpit's SMTP port uses TLS.
type TLSMode int

const (
	// NoTLS is plain SMTP: no STARTTLS is offered.
	NoTLS TLSMode = iota
	// StartTLS offers STARTTLS; clients may also go on without it.
	StartTLS
	// RequireStartTLS offers STARTTLS and refuses MAIL, RCPT, DATA and AUTH
	// ("530 5.7.0 Must issue a STARTTLS command first") until a client has
	// used it.
	RequireStartTLS
	// ImplicitTLS is SMTPS: TLS from the first byte (as on port 465), no
	// STARTTLS.
	ImplicitTLS
)

func (m TLSMode) String() string {
	switch m {
	case NoTLS:
		return "NoTLS"
	case StartTLS:
		return "StartTLS"
	case RequireStartTLS:
		return "RequireStartTLS"
	case ImplicitTLS:
		return "ImplicitTLS"
	}
	return "TLSMode(" + strconv.Itoa(int(m)) + ")"
}

// Options configure a Server started with StartWith. The zero value is what
// Start uses: plain SMTP, any credentials accepted.
type Options struct {
	// TLS is the SMTP port's use of TLS. With any mode but NoTLS and no
	// CertFile, a self-signed certificate for 127.0.0.1, ::1 and localhost
	// is made; Server.TLSConfig and Server.CertFile give clients what they
	// need to trust it.
	TLS TLSMode
	// CertFile and KeyFile are PEM files of the SMTP server's certificate
	// (and chain) and its key, both or neither. Given with TLS = NoTLS they
	// mean StartTLS.
	CertFile, KeyFile string
	// Credentials, when not empty, are the only user names and passwords
	// that SMTP AUTH accepts, and a client must authenticate before MAIL
	// ("530 5.7.0 Authentication required"). User names must not hold ':'
	// or white space. When empty, AUTH accepts anything, and is optional.
	Credentials map[string]string
}

// Server is a running (or stopped) Mailpit.
type Server struct {
	bin      string
	opts     Options
	dir      string
	logFile  string
	smtpAddr string
	httpAddr string
	certFile string
	roots    *x509.CertPool
	client   *http.Client

	mu   sync.Mutex
	proc *harness.Process // nil when stopped
}

// Start runs Mailpit with the zero Options: plain SMTP, with AUTH that
// accepts any credentials.
func Start(t testing.TB) *Server {
	t.Helper()
	return StartWith(t, Options{})
}

// StartWith runs Mailpit configured by opts, waits until its SMTP and HTTP
// ports answer, and has it stopped when the test ends.
func StartWith(t testing.TB, opts Options) *Server {
	t.Helper()
	bin := Binary(t)
	s := &Server{
		bin:    bin,
		opts:   opts,
		dir:    t.TempDir(),
		client: &http.Client{Timeout: 15 * time.Second},
	}
	s.logFile = filepath.Join(s.dir, "mailpit.log")
	if err := s.prepare(); err != nil {
		t.Fatalf("mailpittest: %v", err)
	}
	t.Cleanup(func() {
		if t.Failed() {
			if b, err := os.ReadFile(s.logFile); err == nil {
				t.Logf("mailpittest: mailpit's log (last lines):\n%s", harness.Tail(string(b), 60))
			}
		}
		if err := s.Stop(); err != nil {
			t.Errorf("mailpittest: %v", err)
		}
	})
	// Another process may take a port between our choosing it and mailpit
	// binding it: choose again then.
	var err error
	for attempt := 0; attempt < 3; attempt++ {
		var ports []int
		if ports, err = harness.FreePorts(2); err != nil {
			break
		}
		s.smtpAddr, s.httpAddr = fmt.Sprintf("127.0.0.1:%d", ports[0]), fmt.Sprintf("127.0.0.1:%d", ports[1])
		if err = s.Start(); err == nil || !strings.Contains(err.Error(), "address already in use") {
			break
		}
	}
	if err != nil {
		t.Fatalf("mailpittest: %v", err)
	}
	return s
}

// prepare writes the certificate and password files that opts ask for.
func (s *Server) prepare() error {
	o := &s.opts
	if (o.CertFile == "") != (o.KeyFile == "") {
		return errors.New("Options: CertFile and KeyFile go together")
	}
	if o.CertFile != "" && o.TLS == NoTLS {
		o.TLS = StartTLS
	}
	if o.TLS < NoTLS || o.TLS > ImplicitTLS {
		return fmt.Errorf("Options: unknown TLS mode %d", o.TLS)
	}
	if o.TLS != NoTLS && o.CertFile == "" {
		o.CertFile = filepath.Join(s.dir, "smtp-cert.pem")
		o.KeyFile = filepath.Join(s.dir, "smtp-key.pem")
		if err := writeTestCert(o.CertFile, o.KeyFile); err != nil {
			return fmt.Errorf("test certificate: %w", err)
		}
	}
	if o.CertFile != "" {
		pemCerts, err := os.ReadFile(o.CertFile)
		if err != nil {
			return err
		}
		s.roots = x509.NewCertPool()
		if !s.roots.AppendCertsFromPEM(pemCerts) {
			return fmt.Errorf("%s holds no PEM certificate", o.CertFile)
		}
		s.certFile = o.CertFile
	}
	if len(o.Credentials) > 0 {
		// Mailpit reads an htpasswd file; {SHA} entries keep any password
		// from being taken for a hash.
		var b strings.Builder
		for _, user := range slices.Sorted(maps.Keys(o.Credentials)) {
			if user == "" || strings.ContainsAny(user, ": \t\r\n") {
				return fmt.Errorf("Options.Credentials: unusable user name %q", user)
			}
			sum := sha1.Sum([]byte(o.Credentials[user]))
			fmt.Fprintf(&b, "%s:{SHA}%s\n", user, base64.StdEncoding.EncodeToString(sum[:]))
		}
		if err := os.WriteFile(filepath.Join(s.dir, "smtp-auth"), []byte(b.String()), 0o600); err != nil {
			return err
		}
	}
	return nil
}

// args are mailpit's command line.
func (s *Server) args() []string {
	a := []string{
		"--smtp", s.smtpAddr,
		"--listen", s.httpAddr,
		// Kept across Stop and Start.
		"--database", filepath.Join(s.dir, "mailpit.db"),
		"--max", "0", // keep every message
		"--disable-version-check",
		"--smtp-disable-rdns",
		"--verbose", // the SMTP conversation, in the log shown on failure
	}
	if len(s.opts.Credentials) > 0 {
		a = append(a, "--smtp-auth-file", filepath.Join(s.dir, "smtp-auth"))
	} else {
		a = append(a, "--smtp-auth-accept-any")
	}
	if s.opts.TLS != NoTLS {
		a = append(a, "--smtp-tls-cert", s.opts.CertFile, "--smtp-tls-key", s.opts.KeyFile)
	}
	switch s.opts.TLS {
	case NoTLS, StartTLS:
		// AUTH PLAIN and LOGIN without TLS. Mailpit refuses this flag with
		// the two modes below, and without it refuses AUTH without a
		// certificate, and with a password file requires STARTTLS.
		a = append(a, "--smtp-auth-allow-insecure")
	case RequireStartTLS:
		a = append(a, "--smtp-require-starttls")
	case ImplicitTLS:
		a = append(a, "--smtp-require-tls")
	}
	return a
}

// Start starts a stopped Server again on the same ports, with the messages
// it had, and waits until it answers. It is safe to call from any goroutine.
func (s *Server) Start() error {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.proc != nil {
		return errors.New("mailpit is already running")
	}
	logf, err := os.OpenFile(s.logFile, os.O_CREATE|os.O_WRONLY|os.O_APPEND, 0o644)
	if err != nil {
		return err
	}
	defer logf.Close()
	args := s.args()
	fmt.Fprintf(logf, "=== %s mailpit %s\n", time.Now().Format(time.RFC3339Nano), strings.Join(args, " "))
	cmd := exec.Command(s.bin, args...)
	cmd.Dir = s.dir
	cmd.Env = mailpitEnv()
	cmd.Stdout, cmd.Stderr = logf, logf
	cmd.SysProcAttr = procAttr()
	p, err := harness.StartProcess("mailpit", cmd)
	if err != nil {
		return err
	}
	s.proc = p
	if err := s.waitReady(p.Exited(), 30*time.Second); err != nil {
		s.stopLocked()
		b, _ := os.ReadFile(s.logFile)
		return fmt.Errorf("%w\nmailpit's log:\n%s", err, harness.Tail(string(b), 30))
	}
	return nil
}

// mailpitEnv is the environment without Mailpit's MP_* settings, which
// would otherwise change its configuration.
func mailpitEnv() []string {
	var env []string
	for _, kv := range os.Environ() {
		if !strings.HasPrefix(kv, "MP_") {
			env = append(env, kv)
		}
	}
	return env
}

func (s *Server) waitReady(exited <-chan struct{}, timeout time.Duration) error {
	deadline := time.Now().Add(timeout)
	var last error
	for {
		select {
		case <-exited:
			return fmt.Errorf("mailpit exited while starting (smtp %s, http %s)", s.smtpAddr, s.httpAddr)
		default:
		}
		last = s.ready()
		if last == nil {
			return nil
		}
		if time.Now().After(deadline) {
			return fmt.Errorf("mailpit not ready after %v: %v", timeout, last)
		}
		time.Sleep(50 * time.Millisecond)
	}
}

func (s *Server) ready() error {
	c, err := net.DialTimeout("tcp", s.smtpAddr, time.Second)
	if err != nil {
		return err
	}
	c.Close()
	resp, err := s.client.Get(s.URL() + "/readyz")
	if err != nil {
		return err
	}
	resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		return fmt.Errorf("GET /readyz: %s", resp.Status)
	}
	return nil
}

// Stop stops Mailpit (SIGTERM; SIGKILL after 10 s), keeping its messages
// and ports for Start. Stopping a stopped Server does nothing. It is safe to
// call from any goroutine.
func (s *Server) Stop() error {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.stopLocked()
}

func (s *Server) stopLocked() error {
	if s.proc == nil {
		return nil
	}
	p := s.proc
	s.proc = nil
	var ended *harness.EndedError
	if err := p.End(syscall.SIGTERM, 10*time.Second); err != nil && !errors.As(err, &ended) {
		return err
	}
	return nil
}

// SMTPAddr is the SMTP server's address, 127.0.0.1:port.
func (s *Server) SMTPAddr() string { return s.smtpAddr }

// SMTPHost is the SMTP server's host, 127.0.0.1.
func (s *Server) SMTPHost() string {
	h, _, _ := net.SplitHostPort(s.smtpAddr)
	return h
}

// SMTPPort is the SMTP server's port.
func (s *Server) SMTPPort() int {
	_, p, _ := net.SplitHostPort(s.smtpAddr)
	n, _ := strconv.Atoi(p)
	return n
}

// URL is the base URL of Mailpit's web server, http://127.0.0.1:port; its
// API is under /api/v1/ (the web UI's pages are not built in).
func (s *Server) URL() string { return "http://" + s.httpAddr }

// TLS is the SMTP port's TLS mode.
func (s *Server) TLS() TLSMode { return s.opts.TLS }

// CertFile is the PEM file of the SMTP server's certificate (the
// self-signed one made for the test unless Options gave one), or "" with
// NoTLS.
func (s *Server) CertFile() string { return s.certFile }

// TLSConfig is a client configuration that trusts the SMTP server's
// certificate and expects the name 127.0.0.1, for STARTTLS or implicit TLS;
// nil with NoTLS. Each call returns a new one.
func (s *Server) TLSConfig() *tls.Config {
	if s.roots == nil {
		return nil
	}
	return &tls.Config{RootCAs: s.roots, ServerName: s.SMTPHost(), MinVersion: tls.VersionTLS12}
}

// Message is a message Mailpit received. Messages and WaitFor fill the
// summary fields; Message fills all but Snippet.
type Message struct {
	// ID is Mailpit's ID of the message, for Message and Raw.
	ID string
	// MessageID is the Message-ID header without <> (Mailpit makes one up
	// when a message has none).
	MessageID string
	// From is the address of the From header.
	From string
	// To, Cc, Bcc and ReplyTo are the addresses of those headers. Bcc also
	// has the envelope recipients that no To or Cc header names.
	To, Cc, Bcc, ReplyTo []string
	// Subject is the decoded Subject header.
	Subject string
	// Date is the Date header; in summaries, when Mailpit received the
	// message.
	Date time.Time
	// Username is the SMTP AUTH user name the message came with, if any.
	Username string
	// Size is the size of the raw message in bytes.
	Size uint64
	// Snippet is the start of the text (summaries only).
	Snippet string

	// ReturnPath is the envelope sender (MAIL FROM).
	ReturnPath string
	// Text and HTML are the text/plain and text/html bodies, decoded.
	Text, HTML string
	// Headers are all the headers, by canonical name.
	Headers map[string][]string
	// Attachments and Inline are the parts Mailpit shows as attachments
	// (in a multipart/signed or multipart/encrypted message, the signature
	// and the encrypted data) and as inline parts.
	Attachments, Inline []Attachment
}

// Recipients are To, Cc and Bcc together: every envelope recipient.
func (m Message) Recipients() []string {
	return slices.Concat(m.To, m.Cc, m.Bcc)
}

// Attachment is a MIME part of a message.
type Attachment struct {
	PartID      string
	FileName    string
	ContentType string
	ContentID   string
	Size        uint64
}

// apiAddress, apiSummary and apiMessage are Mailpit's JSON.
type apiAddress = mail.Address

type apiSummary struct {
	ID        string
	MessageID string
	From      *apiAddress
	To        []*apiAddress
	Cc        []*apiAddress
	Bcc       []*apiAddress
	ReplyTo   []*apiAddress
	Subject   string
	Created   time.Time
	Username  string
	Size      uint64
	Snippet   string
}

type apiMessage struct {
	ID          string
	MessageID   string
	From        *apiAddress
	To          []*apiAddress
	Cc          []*apiAddress
	Bcc         []*apiAddress
	ReplyTo     []*apiAddress
	ReturnPath  string
	Subject     string
	Date        time.Time
	Username    string
	Text        string
	HTML        string
	Size        uint64
	Inline      []Attachment
	Attachments []Attachment
}

func addrs(list []*apiAddress) []string {
	var out []string
	for _, a := range list {
		if a != nil {
			out = append(out, a.Address)
		}
	}
	return out
}

func addr(a *apiAddress) string {
	if a == nil {
		return ""
	}
	return a.Address
}

// do sends an API request and returns the body of a 200 answer.
func (s *Server) do(method, path string) ([]byte, error) {
	req, err := http.NewRequest(method, s.URL()+path, nil)
	if err != nil {
		return nil, err
	}
	resp, err := s.client.Do(req)
	if err != nil {
		return nil, err
	}
	defer resp.Body.Close()
	body, err := io.ReadAll(resp.Body)
	if err != nil {
		return nil, fmt.Errorf("%s %s: %w", method, path, err)
	}
	if resp.StatusCode != http.StatusOK {
		return nil, fmt.Errorf("%s %s: %s: %s", method, path, resp.Status, bytes.TrimSpace(body))
	}
	return body, nil
}

// List returns the summaries of all messages, oldest first.
func (s *Server) List() ([]Message, error) {
	body, err := s.do(http.MethodGet, "/api/v1/messages?limit=0")
	if err != nil {
		return nil, err
	}
	var res struct {
		Messages []apiSummary `json:"messages"`
	}
	if err := json.Unmarshal(body, &res); err != nil {
		return nil, fmt.Errorf("GET /api/v1/messages: %w", err)
	}
	out := make([]Message, 0, len(res.Messages))
	// Mailpit lists the newest first.
	for _, m := range slices.Backward(res.Messages) {
		out = append(out, Message{
			ID:        m.ID,
			MessageID: m.MessageID,
			From:      addr(m.From),
			To:        addrs(m.To),
			Cc:        addrs(m.Cc),
			Bcc:       addrs(m.Bcc),
			ReplyTo:   addrs(m.ReplyTo),
			Subject:   m.Subject,
			Date:      m.Created,
			Username:  m.Username,
			Size:      m.Size,
			Snippet:   m.Snippet,
		})
	}
	slices.SortStableFunc(out, func(a, b Message) int { return a.Date.Compare(b.Date) })
	return out, nil
}

// Messages returns the summaries of all messages, oldest first. Text, HTML,
// Headers and attachments are not in them: see Message.
func (s *Server) Messages(t testing.TB) []Message {
	t.Helper()
	ms, err := s.List()
	if err != nil {
		t.Fatalf("mailpittest: %v", err)
	}
	return ms
}

// Get returns message id in full ("latest" is the newest message).
func (s *Server) Get(id string) (Message, error) {
	p := "/api/v1/message/" + url.PathEscape(id)
	body, err := s.do(http.MethodGet, p)
	if err != nil {
		return Message{}, err
	}
	var m apiMessage
	if err := json.Unmarshal(body, &m); err != nil {
		return Message{}, fmt.Errorf("GET %s: %w", p, err)
	}
	body, err = s.do(http.MethodGet, p+"/headers")
	if err != nil {
		return Message{}, err
	}
	var headers map[string][]string
	if err := json.Unmarshal(body, &headers); err != nil {
		return Message{}, fmt.Errorf("GET %s/headers: %w", p, err)
	}
	return Message{
		ID:          m.ID,
		MessageID:   m.MessageID,
		From:        addr(m.From),
		To:          addrs(m.To),
		Cc:          addrs(m.Cc),
		Bcc:         addrs(m.Bcc),
		ReplyTo:     addrs(m.ReplyTo),
		ReturnPath:  m.ReturnPath,
		Subject:     m.Subject,
		Date:        m.Date,
		Username:    m.Username,
		Size:        m.Size,
		Text:        m.Text,
		HTML:        m.HTML,
		Headers:     headers,
		Attachments: m.Attachments,
		Inline:      m.Inline,
	}, nil
}

// Message returns message id in full: headers, text and HTML bodies,
// attachments.
func (s *Server) Message(t testing.TB, id string) Message {
	t.Helper()
	m, err := s.Get(id)
	if err != nil {
		t.Fatalf("mailpittest: %v", err)
	}
	return m
}

// Raw returns the MIME source of message id. The body is byte for byte what
// the client sent in DATA (dot-unstuffed); in the header Mailpit sets
// Return-Path to the envelope sender, adds a Message-ID when there is none,
// and a Bcc header naming envelope recipients that no To or Cc header does.
func (s *Server) Raw(t testing.TB, id string) []byte {
	t.Helper()
	b, err := s.do(http.MethodGet, "/api/v1/message/"+url.PathEscape(id)+"/raw")
	if err != nil {
		t.Fatalf("mailpittest: %v", err)
	}
	return b
}

// WaitFor waits until Mailpit holds at least n messages and returns the
// summaries of all it holds, oldest first; it fails the test after timeout.
// Mailpit not answering (stopped, or starting again) only means waiting on.
func (s *Server) WaitFor(t testing.TB, n int, timeout time.Duration) []Message {
	t.Helper()
	deadline := time.Now().Add(timeout)
	var (
		ms   []Message
		last error
	)
	for {
		got, err := s.List()
		if err == nil {
			ms = got
			if len(ms) >= n {
				return ms
			}
		} else {
			last = err
		}
		if time.Now().After(deadline) {
			break
		}
		time.Sleep(50 * time.Millisecond)
	}
	var subjects []string
	for _, m := range ms {
		subjects = append(subjects, strconv.Quote(m.Subject))
	}
	msg := fmt.Sprintf("mailpittest: %d message(s) after %v, want %d; subjects: [%s]",
		len(ms), timeout, n, strings.Join(subjects, ", "))
	if last != nil {
		msg += fmt.Sprintf("; last API error: %v", last)
	}
	t.Fatal(msg)
	return nil
}

// DeleteAll deletes every message.
func (s *Server) DeleteAll(t testing.TB) {
	t.Helper()
	if _, err := s.do(http.MethodDelete, "/api/v1/messages"); err != nil {
		t.Fatalf("mailpittest: %v", err)
	}
}
