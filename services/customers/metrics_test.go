package customers_test

import (
	"context"
	"fmt"
	"net/http"
	"strings"
	"testing"

	"github.com/nats-io/nats.go"

	"github.com/customerbus/customerbus/events"
	"github.com/customerbus/customerbus/ops/opstest"
	"github.com/customerbus/customerbus/services/customers"
)

// scrape reads the service's metrics as Prometheus does.
func (s *system) scrape() opstest.Metrics {
	s.t.Helper()
	return opstest.Scrape(s.t, s.api.URL+"/metrics")
}

// expectMetric fails unless the series of name with labels has the value want.
func expectMetric(t *testing.T, m opstest.Metrics, want float64, name string, labels ...string) {
	t.Helper()
	if v, ok := m.Value(name, labels...); !ok || v != want {
		t.Errorf("%s%v = %v (found: %v), want %v", name, labels, v, ok, want)
	}
}

// Refused logins are counted by reason, and the requests by route pattern
// and status: a wrong password, then the rate limit.
func TestRefusedLoginsAreCountedByReason(t *testing.T) {
	t.Parallel()
	s := newSystemWith(t, func(c *customers.Config) { c.Accounts.LoginFailuresPerEmail = 2 })
	sh := s.newShopper()
	m := s.scrape()
	expectMetric(t, m, 0, "customerbus_login_failures_total", "method", "password", "reason", "bad_credentials")
	expectMetric(t, m, 0, "customerbus_login_failures_total", "method", "password", "reason", "rate_limited")

	for range 2 {
		s.public(http.MethodPost, "/v1/store/token", map[string]any{"email": sh.Email, "password": "not the password"}).
			expectStatus(t, http.StatusUnauthorized)
	}
	s.public(http.MethodPost, "/v1/store/token", map[string]any{"email": sh.Email, "password": sh.Password}).
		expectStatus(t, http.StatusTooManyRequests)

	m = s.scrape()
	expectMetric(t, m, 2, "customerbus_login_failures_total", "method", "password", "reason", "bad_credentials")
	expectMetric(t, m, 1, "customerbus_login_failures_total", "method", "password", "reason", "rate_limited")
	const route = "POST /v1/store/token"
	expectMetric(t, m, 1, "customerbus_http_requests_total", "route", route, "status", "200") // newShopper's
	expectMetric(t, m, 2, "customerbus_http_requests_total", "route", route, "status", "401")
	expectMetric(t, m, 1, "customerbus_http_requests_total", "route", route, "status", "429")
	expectMetric(t, m, 4, "customerbus_http_request_duration_seconds", "route", route)
}

// A request is counted under its route's pattern, never its path: one
// series for every customer's GET.
func TestHTTPMetricsLabelTheRoutePatternNotThePath(t *testing.T) {
	t.Parallel()
	s := newSystem(t)
	a, b := s.createCustomer(map[string]any{"email": "a-" + randomSuffix() + "@example.com"}), s.createCustomer(map[string]any{"email": "b-" + randomSuffix() + "@example.com"})
	for _, id := range []string{a.ID, b.ID, a.ID} {
		s.do(http.MethodGet, "/v1/customers/"+id, nil, nil).Body.Close()
	}
	m := s.scrape()
	expectMetric(t, m, 3, "customerbus_http_requests_total", "route", "GET /v1/customers/{id}", "status", "200")
	expectMetric(t, m, 2, "customerbus_http_requests_total", "route", "POST /v1/customers", "status", "201")
	expectMetric(t, m, 3, "customerbus_http_request_duration_seconds", "route", "GET /v1/customers/{id}")
	for _, f := range []string{"customerbus_http_requests_total", "customerbus_http_request_duration_seconds"} {
		for _, series := range m[f].GetMetric() {
			for _, l := range series.GetLabel() {
				if strings.Contains(l.GetValue(), a.ID) || strings.Contains(l.GetValue(), b.ID) {
					t.Errorf("%s has a label with a customer's id: %s=%q", f, l.GetName(), l.GetValue())
				}
			}
		}
	}
}

// The API's /readyz names what it checked.
func TestAPIReadyzNamesTheDatabase(t *testing.T) {
	t.Parallel()
	s := newSystem(t)
	s.public(http.MethodGet, "/readyz", nil).expectStatus(t, http.StatusOK) // as the OpenAPI document says
	if r := opstest.Readyz(t, s.api.URL); r.Code != http.StatusOK || r.Status != "ready" || len(r.Checks) != 1 || r.Checks["database"] != "ok" {
		t.Errorf("/readyz %+v, want ready with the database ok", r)
	}
}

// Dead-lettered bus commands are counted by reason.
func TestDeadLetteredCommandsAreCounted(t *testing.T) {
	t.Parallel()
	s := newSystem(t)
	s.runCommands()
	retry(t, func() error { // until the service has made the stream
		_, err := s.js.Stream(context.Background(), events.CommandsStream)
		return err
	})
	expectMetric(t, s.scrape(), 0, "customerbus_commands_deadlettered_total", "reason", "invalid")
	msg := nats.NewMsg(events.CommandSubject(events.CmdCustomerCreate))
	msg.Data = []byte("not a CloudEvent")
	if _, err := s.js.PublishMsg(context.Background(), msg); err != nil {
		t.Fatal(err)
	}
	s.deadLetters(1)
	// Counted once JetStream acked the dead letter: maybe just after the
	// stream shows it.
	retry(t, func() error {
		if v, _ := s.scrape().Value("customerbus_commands_deadlettered_total", "reason", "invalid"); v != 1 {
			return fmt.Errorf("customerbus_commands_deadlettered_total{reason=invalid} = %v, want 1", v)
		}
		return nil
	})
	expectMetric(t, s.scrape(), 0, "customerbus_commands_deadlettered_total", "reason", "refused")
}
