package httpapi_test

import (
	"net/http"
	"net/http/httptest"
	"testing"

	"trustee.dev/trustee/server/audit"
	"trustee.dev/trustee/server/openpgp/openpgptest"
)

// BenchmarkHandlerGet measures the server's own work for a deposit GET with
// a session token, served from the read cache: no TLS, no network; audited
// (as served) and recording nothing (the difference is what the audit
// journal costs a read), from one goroutine and from 16.
func BenchmarkHandlerGet(b *testing.B) {
	e := newEnv(b)
	k := openpgptest.Key(b, 1)
	e.register(1, "acme", acmeCode)
	token := "KTS-Session " + e.session(k)
	if a := e.do("PUT", "/v1/deposits/key1", make([]byte, 256), nil, token); a.status != http.StatusCreated {
		b.Fatalf("put: %d", a.status)
	}
	h := e.srv.Config.Handler
	request := func(unaudited bool) *http.Request {
		req := httptest.NewRequest("GET", "/v1/deposits/key1", nil)
		if unaudited {
			req = req.WithContext(audit.Unaudited(req.Context()))
		}
		req.Header.Set("Authorization", token)
		return req
	}
	get := func(b *testing.B, req *http.Request) bool {
		w := httptest.NewRecorder()
		h.ServeHTTP(w, req)
		if w.Code != http.StatusOK {
			b.Errorf("status %d: %s", w.Code, w.Body)
			return false
		}
		return true
	}
	for _, unaudited := range []bool{false, true} {
		name := "audited"
		if unaudited {
			name = "unaudited"
		}
		b.Run(name, func(b *testing.B) {
			req := request(unaudited)
			b.ReportAllocs()
			for b.Loop() {
				if !get(b, req) {
					return
				}
			}
		})
		b.Run(name+"-parallel", func(b *testing.B) {
			b.SetParallelism(8)
			b.ReportAllocs()
			b.RunParallel(func(pb *testing.PB) {
				req := request(unaudited)
				for pb.Next() {
					if !get(b, req) {
						return
					}
				}
			})
		})
	}
}
