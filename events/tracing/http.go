package tracing

import (
	"net/http"
	"strings"

	"go.opentelemetry.io/contrib/instrumentation/net/http/otelhttp"
	semconv "go.opentelemetry.io/otel/semconv/v1.43.0"
	"go.opentelemetry.io/otel/trace"
)

// untraced are the requests of probes and scrapers: a span each would only
// bury the requests worth reading.
var untraced = map[string]bool{"/healthz": true, "/readyz": true, "/metrics": true}

// HTTP gives every request h serves a server span, the child of the
// caller's traceparent header when it sends one. h itself when tracing is
// off.
func HTTP(h http.Handler) http.Handler {
	if !Enabled() {
		return h
	}
	return otelhttp.NewHandler(h, "http", otelhttp.WithFilter(func(r *http.Request) bool { return !untraced[r.URL.Path] }))
}

// Route names the span of each request h serves after its route, pattern
// ("POST /v1/customers/{id}"), as the server span's name and http.route.
// h itself when tracing is off.
func Route(pattern string, h http.Handler) http.Handler {
	if !Enabled() {
		return h
	}
	_, route, _ := strings.Cut(pattern, " ")
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		span := trace.SpanFromContext(r.Context())
		span.SetName(pattern)
		span.SetAttributes(semconv.HTTPRoute(route))
		h.ServeHTTP(w, r)
	})
}
