package httpapi

import (
	"log/slog"
	"net/http"
	"strconv"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/promhttp"
)

type metrics struct {
	requests *prometheus.CounterVec
	latency  *prometheus.HistogramVec
}

// Labels are the route pattern (never the raw path, which holds deposit
// names), the method and the status code: nothing secret, bounded in number.
func newMetrics(reg prometheus.Registerer) *metrics {
	m := &metrics{
		requests: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "kts_http_requests_total", Help: "HTTP requests by route and status.",
		}, []string{"route", "method", "status"}),
		latency: prometheus.NewHistogramVec(prometheus.HistogramOpts{
			Name:    "kts_http_request_duration_seconds",
			Help:    "HTTP request latency by route and status.",
			Buckets: []float64{.0005, .001, .0025, .005, .01, .025, .05, .1, .25, .5, 1, 2.5},
		}, []string{"route", "method", "status"}),
	}
	reg.MustRegister(m.requests, m.latency)
	return m
}

func (s *Server) metricsHandler() http.Handler {
	return promhttp.HandlerFor(s.gatherer, promhttp.HandlerOpts{})
}

type statusRecorder struct {
	http.ResponseWriter
	status int
}

func (r *statusRecorder) WriteHeader(code int) {
	if r.status == 0 {
		r.status = code
	}
	r.ResponseWriter.WriteHeader(code)
}

func (r *statusRecorder) Write(b []byte) (int, error) {
	if r.status == 0 {
		r.status = http.StatusOK
	}
	return r.ResponseWriter.Write(b)
}

// Unwrap lets http.ResponseController reach the connection (read deadlines).
func (r *statusRecorder) Unwrap() http.ResponseWriter { return r.ResponseWriter }

// instrument counts and times every request and logs it. The log line holds
// the route pattern, status and timing; never headers, bodies or the raw
// query (which could carry secrets).
func (s *Server) instrument(next http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		start := time.Now()
		rec := &statusRecorder{ResponseWriter: w}
		w.Header().Set("Strict-Transport-Security", "max-age=31536000")
		next.ServeHTTP(rec, r)
		if rec.status == 0 {
			rec.status = http.StatusOK
		}
		route := r.Pattern
		if route == "" || route == "/" {
			route = "unmatched"
		}
		status := strconv.Itoa(rec.status)
		elapsed := time.Since(start)
		s.metrics.requests.WithLabelValues(route, r.Method, status).Inc()
		s.metrics.latency.WithLabelValues(route, r.Method, status).Observe(elapsed.Seconds())
		if s.log.Enabled(r.Context(), slog.LevelDebug) || rec.status >= 400 {
			s.log.LogAttrs(r.Context(), levelFor(rec.status), "request",
				slog.String("route", route), slog.String("method", r.Method), slog.Int("status", rec.status),
				slog.Duration("duration", elapsed), slog.String("remote", sourceAddr(r)))
		}
	})
}

// levelFor is the access log's level for a status: an error for the
// server's failures, info for the client's (501 included: an operation the
// client asked for that is not offered).
func levelFor(status int) slog.Level {
	switch {
	case status >= 500 && status != http.StatusNotImplemented:
		return slog.LevelError
	case status >= 400:
		return slog.LevelInfo
	}
	return slog.LevelDebug
}
