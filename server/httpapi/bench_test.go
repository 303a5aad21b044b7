package httpapi_test

import (
	"net/http"
	"net/http/httptest"
	"testing"
)

// BenchmarkHandlerGet measures the server's own work for a deposit GET with
// a session token, served from the read cache: no TLS, no network.
func BenchmarkHandlerGet(b *testing.B) {
	e := newEnv(b)
	k := testKey(b, 1)
	e.register(1, "acme", acmeCode)
	token := "KTS-Session " + e.session(k)
	if a := e.do("PUT", "/v1/deposits/key1", make([]byte, 256), nil, token); a.status != http.StatusCreated {
		b.Fatalf("put: %d", a.status)
	}
	h := e.srv.Config.Handler
	req := httptest.NewRequest("GET", "/v1/deposits/key1", nil)
	req.Header.Set("Authorization", token)
	b.ReportAllocs()
	for b.Loop() {
		w := httptest.NewRecorder()
		h.ServeHTTP(w, req)
		if w.Code != http.StatusOK {
			b.Fatalf("status %d: %s", w.Code, w.Body)
		}
	}
}
