package daemon

import (
	"encoding/pem"
	"io"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"trustee.dev/trustee/server/confdir"
	"trustee.dev/trustee/server/config"
)

// A passive's forwarded write that never reached the active is refused
// (nothing stored); one the active stopped answering mid-way has an
// unknown outcome, and says so.
func TestForwardFailuresSayWhetherTheWriteMayHaveHappened(t *testing.T) {
	for _, c := range []struct {
		name   string
		active func(w http.ResponseWriter, r *http.Request)
		closed bool
		status int
		code   string
	}{
		{"the active does not answer at all", nil, true, http.StatusServiceUnavailable, `"active_unavailable"`},
		{"the active drops the connection after reading the write", func(w http.ResponseWriter, r *http.Request) {
			io.Copy(io.Discard, r.Body)
			conn, _, err := w.(http.Hijacker).Hijack()
			if err == nil {
				conn.Close()
			}
		}, false, http.StatusBadGateway, `"forward_failed"`},
		{"the active answers", func(w http.ResponseWriter, r *http.Request) { w.WriteHeader(http.StatusCreated) }, false, http.StatusCreated, ""},
	} {
		t.Run(c.name, func(t *testing.T) {
			active := httptest.NewTLSServer(http.HandlerFunc(c.active))
			defer active.Close()
			dir := t.TempDir()
			ca := pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: active.Certificate().Raw})
			if err := os.WriteFile(filepath.Join(dir, "active-ca.pem"), ca, 0o600); err != nil {
				t.Fatal(err)
			}
			cfg := config.Default("passive")
			cfg.ActiveURL, cfg.ActiveCA = active.URL, "active-ca.pem"
			fwd, err := forwarder(&confdir.State{Dir: dir, Config: cfg}, slog.New(slog.DiscardHandler))
			if err != nil {
				t.Fatal(err)
			}
			if c.closed {
				active.Close()
			}
			rec := httptest.NewRecorder()
			fwd.ServeHTTP(rec, httptest.NewRequest(http.MethodPut, "/v1/deposits/disk-1", strings.NewReader("key")))
			if rec.Code != c.status || !strings.Contains(rec.Body.String(), c.code) {
				t.Fatalf("got %d %s; want %d %s", rec.Code, rec.Body.String(), c.status, c.code)
			}
		})
	}
}
