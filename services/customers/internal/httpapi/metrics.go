package httpapi

import (
	"errors"
	"net/http"
	"strconv"
	"time"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/customerbus/customerbus/services/customers/internal/customer"
	"github.com/customerbus/customerbus/services/customers/internal/idp"
)

type metrics struct {
	requests *prometheus.CounterVec
	duration *prometheus.HistogramVec
	// loginFailures counts the sign-ins refused, by method and by the
	// method's reasons (signInFailures).
	loginFailures *prometheus.CounterVec
}

// Values of loginFailures' method label: a password login (POST
// /v1/store/token: the series the metric had alone before the label) and
// an identity provider's sign-in.
const (
	methodPassword = "password"
	methodOIDC     = "oidc"
)

// signInFailures are each method's values of the reason label, and the
// function naming the reason of a refusal ("" for a sign-in that was not
// refused: it succeeded, or failed on the server's side or on its input).
var signInFailures = map[string]struct {
	reasons []string
	reason  func(error) string
}{
	methodPassword: {[]string{"bad_credentials", "rate_limited", "inactive", "unverified"}, loginFailure},
	methodOIDC:     {[]string{"invalid_state", "code_rejected", "invalid_token", "email_not_verified", "rate_limited", "inactive"}, oidcFailure},
}

// oidcFailure is why an identity provider's sign-in (authorize, callback
// or token exchange) was refused.
func oidcFailure(err error) string {
	var limited *customer.RateLimitedError
	var token *idp.TokenError
	switch {
	case errors.Is(err, idp.ErrStateInvalid):
		return "invalid_state"
	case errors.Is(err, idp.ErrCodeRejected):
		return "code_rejected"
	case errors.As(err, &token):
		return "invalid_token"
	case errors.Is(err, customer.ErrEmailNotVerified):
		return "email_not_verified"
	case errors.As(err, &limited):
		return "rate_limited"
	case errors.Is(err, customer.ErrInactive):
		return "inactive"
	}
	return ""
}

// loginFailure is why a password login was refused.
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

// countSignIn counts a sign-in's refusal, if it is one.
func (m *metrics) countSignIn(method string, err error) {
	if reason := signInFailures[method].reason(err); reason != "" {
		m.loginFailures.WithLabelValues(method, reason).Inc()
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
			Help: "Customer sign-ins refused, by method and reason: password (bad_credentials, rate_limited: too many failures, " +
				"LOGIN_FAILURES_PER_*, inactive, unverified); oidc (invalid_state, code_rejected, invalid_token, email_not_verified, " +
				"rate_limited: LOGIN_FAILURES_PER_ADDRESS or OIDC_AUTHORIZE_*, inactive).",
		}, []string{"method", "reason"}),
	}
	for method, f := range signInFailures {
		for _, r := range f.reasons {
			m.loginFailures.WithLabelValues(method, r) // shown as 0 before the first one
		}
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
