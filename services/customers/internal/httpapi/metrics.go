package httpapi

import (
	"errors"
	"net/http"
	"strconv"
	"time"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/customerbus/customerbus/services/customers/internal/customer"
)

type metrics struct {
	requests *prometheus.CounterVec
	duration *prometheus.HistogramVec
	// loginFailures counts the logins refused, by loginFailure's reasons.
	loginFailures *prometheus.CounterVec
}

// loginFailureReasons are the values of loginFailures' reason label.
var loginFailureReasons = []string{"bad_credentials", "rate_limited", "inactive", "unverified"}

// loginFailure is why a login was refused, or "" for a login that was not
// (it succeeded, or failed on the server's side or on its input).
func loginFailure(err error) string {
	var limited *customer.RateLimitedError
	switch {
	case errors.Is(err, customer.ErrBadCredentials):
		return "bad_credentials"
	case errors.As(err, &limited):
		return "rate_limited"
	case errors.Is(err, customer.ErrInactive):
		return "inactive"
	case errors.Is(err, customer.ErrUnverified):
		return "unverified"
	}
	return ""
}

// countLogin counts a login's failure, if it is one.
func (m *metrics) countLogin(err error) {
	if reason := loginFailure(err); reason != "" {
		m.loginFailures.WithLabelValues(reason).Inc()
	}
}

func newMetrics(reg prometheus.Registerer) *metrics {
	m := &metrics{
		requests: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "customerbus_http_requests_total", Help: "HTTP requests by route and status.",
		}, []string{"route", "status"}),
		duration: prometheus.NewHistogramVec(prometheus.HistogramOpts{
			Name: "customerbus_http_request_duration_seconds", Help: "HTTP request latency by route.",
			Buckets: []float64{.001, .0025, .005, .01, .02, .05, .1, .25, .5, 1, 2.5},
		}, []string{"route"}),
		loginFailures: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "customerbus_login_failures_total",
			Help: "Customer logins refused, by reason: bad_credentials, rate_limited (too many failures: LOGIN_FAILURES_PER_*), inactive, unverified.",
		}, []string{"reason"}),
	}
	for _, r := range loginFailureReasons {
		m.loginFailures.WithLabelValues(r) // shown as 0 before the first one
	}
	if reg != nil {
		reg.MustRegister(m.requests, m.duration, m.loginFailures)
	}
	return m
}

type statusRecorder struct {
	http.ResponseWriter
	status int
}

// Unwrap lets http.ResponseController reach the connection (an export
// flushes and moves its write deadline).
func (s *statusRecorder) Unwrap() http.ResponseWriter { return s.ResponseWriter }

func (s *statusRecorder) WriteHeader(code int) {
	s.status = code
	s.ResponseWriter.WriteHeader(code)
}

func (m *metrics) instrument(route string, next http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		start := time.Now()
		rec := &statusRecorder{ResponseWriter: w, status: http.StatusOK}
		// Deferred, so that an answer cut on purpose (an export failing
		// mid-stream aborts the handler) is counted too.
		defer func() {
			m.requests.WithLabelValues(route, strconv.Itoa(rec.status)).Inc()
			m.duration.WithLabelValues(route).Observe(time.Since(start).Seconds())
		}()
		next.ServeHTTP(rec, r)
	})
}
