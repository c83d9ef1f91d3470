package customers_test

import (
	"context"
	"net/http"
	"net/http/httptest"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"go.opentelemetry.io/otel/attribute"
	"go.opentelemetry.io/otel/sdk/trace/tracetest"
	"go.opentelemetry.io/otel/trace"
	"go.uber.org/zap"
	"go.uber.org/zap/zapcore"
	"go.uber.org/zap/zaptest"
	"go.uber.org/zap/zaptest/observer"

	"github.com/customerbus/customerbus/events"
	"github.com/customerbus/customerbus/events/tracing"
	"github.com/customerbus/customerbus/events/tracing/tracingtest"
	"github.com/customerbus/customerbus/services/customers"
	"github.com/customerbus/customerbus/services/webhooks"
)

// The tracing tests turn tracing on for the whole test binary while they
// run, so they are not parallel (tracingtest.Record).

// A registration is one trace, the one the client's traceparent names, from
// the request to its verification email: the request's span, its outbox
// write (with the database statements in it), the relay's publish, the
// notifier's handling and its SMTP send; and the notifier's log line of the
// send carries the trace's id.
func TestRegisterIsOneTraceFromTheRequestToTheVerificationEmail(t *testing.T) {
	spans := tracingtest.Record(t)
	logs, logged := observer.New(zapcore.InfoLevel)
	m := newMailSystemLogging(t, zap.New(logs))
	client := remoteParent(t)

	email := "traced-" + randomSuffix() + "@example.com"
	request(t, m.system, http.MethodPost, "/v1/store/register", map[string]any{
		"email": email, "password": "s3cret-enough", "redirect_url": shopURL, "channel": "web",
	}, map[string]string{"Authorization": "", "traceparent": traceParentOf(client)}).expectStatus(t, http.StatusCreated)
	m.mailTo(1, email) // the SMTP server has it

	tr := waitTrace(t, spans, client.TraceID(), "POST /v1/store/register", "notifier handle", "smtp send")
	req := tr.one(t, "POST /v1/store/register", trace.SpanKindServer, client.SpanID())
	if got := tr.attr(req, "http.route"); got != "/v1/store/register" {
		t.Errorf("request span: http.route %q, want /v1/store/register", got)
	}
	write := tr.one(t, "outbox write", trace.SpanKindInternal, req.SpanContext.SpanID())
	if types := tr.attrs(write, tracing.EventTypes); !slices.Contains(types, events.CustomerVerificationRequested) {
		t.Errorf("outbox write holds %v, want %s among them", types, events.CustomerVerificationRequested)
	}
	if len(tr.childrenWith(write.SpanContext.SpanID(), "db.system.name", "postgresql")) == 0 {
		t.Error("the outbox write has no database statement in it")
	}
	publish := tr.oneWith(t, "relay publish", "messaging.destination.name", events.Subject(events.CustomerVerificationRequested))
	handle := tr.oneWith(t, "notifier handle", "cloudevents.event_type", events.CustomerVerificationRequested)
	for _, s := range []tracetest.SpanStub{publish, handle} {
		if s.Parent.SpanID() != write.SpanContext.SpanID() {
			t.Errorf("%s: parent %s, want the outbox write %s", s.Name, s.Parent.SpanID(), write.SpanContext.SpanID())
		}
	}
	tr.one(t, "smtp send", trace.SpanKindClient, handle.SpanContext.SpanID())

	sent := logged.FilterMessage("notifier: email sent").All()
	if len(sent) != 1 {
		t.Fatalf("%d lines logged that the email was sent, want 1", len(sent))
	}
	if got := sent[0].ContextMap()["trace_id"]; got != client.TraceID().String() {
		t.Errorf("the notifier's line logs trace_id %v, want %s", got, client.TraceID())
	}
}

// A bus command that carries a traceparent is handled in its trace, and the
// customer.created it causes carries that trace on: its traceparent names
// the outbox write, under the command's handling, and the relay's publish
// of it is in the trace too.
func TestBusCommandTraceGoesOnIntoItsCustomerCreated(t *testing.T) {
	spans := tracingtest.Record(t)
	s := newSystem(t)
	s.runCommands()
	integrator := remoteParent(t)

	msg := commandMsg(t, events.CmdCustomerCreate, map[string]any{"email": "traced-" + randomSuffix() + "@example.com"})
	msg.Header.Set("ce-traceparent", traceParentOf(integrator))
	if _, err := s.js.PublishMsg(t.Context(), msg); err != nil {
		t.Fatal(err)
	}
	evs, _ := s.streamEvents(1)
	created := evs[0]

	tr := waitTrace(t, spans, integrator.TraceID(), "customers command", "relay publish")
	handle := tr.one(t, "customers command", trace.SpanKindConsumer, integrator.SpanID())
	if got := tr.attr(handle, "customerbus.command.outcome"); got != "applied" {
		t.Errorf("command span: outcome %q, want applied", got)
	}
	write := tr.one(t, "outbox write", trace.SpanKindInternal, handle.SpanContext.SpanID())
	if want := traceParentOf(write.SpanContext); ext(created, events.ExtTraceParent) != want {
		t.Errorf("customer.created carries traceparent %q, want the outbox write's %q", ext(created, events.ExtTraceParent), want)
	}
	publish := tr.oneWith(t, "relay publish", "cloudevents.event_id", created.ID())
	if publish.Parent.SpanID() != write.SpanContext.SpanID() {
		t.Errorf("relay publish: parent %s, want the outbox write %s", publish.Parent.SpanID(), write.SpanContext.SpanID())
	}
}

// The order linker and the webhooks fan-out handle an event in the trace of
// the request that caused it: a guest order of a verified customer's email
// is handled by both, and the order.linked the linker writes is published
// in the trace too.
func TestTheOrderLinkerAndTheWebhooksHandleInTheTraceOfTheRequest(t *testing.T) {
	spans := tracingtest.Record(t)
	s := newSystem(t)
	s.runLinker()
	s.runWebhooks(webhooks.Config{})
	shopper := s.newShopper()
	client := remoteParent(t)

	order := orderBody(nil, time.Now())
	order["email"] = shopper.Email
	request(t, s, http.MethodPost, "/v1/orders", order, map[string]string{"traceparent": traceParentOf(client)}).
		expectStatus(t, http.StatusCreated)

	tr := waitTrace(t, spans, client.TraceID(), "POST /v1/orders", "orderlinker handle", "webhooks handle", "relay publish", "relay publish")
	req := tr.one(t, "POST /v1/orders", trace.SpanKindServer, client.SpanID())
	recorded := tr.one(t, "outbox write", trace.SpanKindInternal, req.SpanContext.SpanID())
	linker := tr.one(t, "orderlinker handle", trace.SpanKindConsumer, recorded.SpanContext.SpanID())
	tr.one(t, "webhooks handle", trace.SpanKindConsumer, recorded.SpanContext.SpanID())
	linked := tr.one(t, "outbox write", trace.SpanKindInternal, linker.SpanContext.SpanID())
	publish := tr.oneWith(t, "relay publish", "messaging.destination.name", events.Subject(events.OrderLinked))
	if publish.Parent.SpanID() != linked.SpanContext.SpanID() {
		t.Errorf("order.linked's publish: parent %s, want the linker's outbox write %s", publish.Parent.SpanID(), linked.SpanContext.SpanID())
	}
}

// A webhook delivery is in the trace of the request that caused its event:
// its span is a child of the outbox write, and the endpoint is told that
// span as its parent in the traceparent header.
func TestAWebhookDeliveryCarriesTheTraceOnToTheEndpoint(t *testing.T) {
	spans := tracingtest.Record(t)
	s := newSystemWith(t, func(c *customers.Config) { c.Webhooks.AllowHTTP = true })
	got := make(chan string, 1)
	endpoint := httptest.NewServer(http.HandlerFunc(func(_ http.ResponseWriter, r *http.Request) {
		select {
		case got <- r.Header.Get("traceparent"):
		default:
		}
	}))
	t.Cleanup(endpoint.Close)
	s.createWebhook(map[string]any{"url": endpoint.URL + "/crm", "event_types": []string{events.CustomerCreated}})
	s.runWebhooks(webhooks.Config{AllowPrivateAddresses: true, PollInterval: 20 * time.Millisecond})
	client := remoteParent(t)

	request(t, s, http.MethodPost, "/v1/customers", map[string]any{"email": "traced-" + randomSuffix() + "@example.com"},
		map[string]string{"traceparent": traceParentOf(client)}).expectStatus(t, http.StatusCreated)

	tr := waitTrace(t, spans, client.TraceID(), "POST /v1/customers", "webhooks deliver")
	req := tr.one(t, "POST /v1/customers", trace.SpanKindServer, client.SpanID())
	write := tr.one(t, "outbox write", trace.SpanKindInternal, req.SpanContext.SpanID())
	deliver := tr.one(t, "webhooks deliver", trace.SpanKindClient, write.SpanContext.SpanID())
	if code := tr.attr(deliver, "http.response.status_code"); code != "200" {
		t.Errorf("webhooks deliver: http.response.status_code %q, want 200", code)
	}
	select {
	case header := <-got:
		if want := traceParentOf(deliver.SpanContext); header != want {
			t.Errorf("the endpoint got traceparent %q, want the delivery span's %q", header, want)
		}
	case <-time.After(5 * time.Second):
		t.Fatal("the endpoint got no delivery")
	}
}

// runWebhooks runs the webhooks service on the system until the test ends,
// its fan-out reading the events published from now on.
func (s *system) runWebhooks(cfg webhooks.Config) {
	w := webhooks.New(s.pool, s.js, zaptest.NewLogger(s.t), prometheus.NewRegistry(), cfg)
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- w.Run(ctx) }()
	s.t.Cleanup(func() {
		cancel()
		if err := <-done; err != nil {
			s.t.Errorf("webhooks: %v", err)
		}
	})
	retry(s.t, func() error { _, err := s.js.Consumer(ctx, events.EventsStream, webhooks.ConsumerName); return err })
}

// remoteParent is the span of a caller the system continues: a new
// sampled trace.
func remoteParent(t *testing.T) trace.SpanContext {
	t.Helper()
	sc := trace.SpanContextFromContext(tracing.WithTraceParent(t.Context(), events.NewTraceParent()))
	if !sc.IsValid() {
		t.Fatal("events.NewTraceParent made no valid span context")
	}
	return sc
}

func traceParentOf(sc trace.SpanContext) string {
	return tracing.TraceParent(trace.ContextWithSpanContext(context.Background(), sc))
}

// traced is the ended spans of one trace.
type traced []tracetest.SpanStub

// waitTrace waits until the trace has a span of each of the names (as
// many as a name is given), and returns its spans. Name every span the test
// reads: a span is recorded when it ends, and a parent ends after its
// children (the notifier's handling after its SMTP send).
func waitTrace(t *testing.T, exp *tracetest.InMemoryExporter, id trace.TraceID, names ...string) traced {
	t.Helper()
	for deadline := time.Now().Add(20 * time.Second); ; {
		var tr traced
		for _, s := range exp.GetSpans() {
			if s.SpanContext.TraceID() == id {
				tr = append(tr, s)
			}
		}
		if tr.has(names) {
			return tr
		}
		if time.Now().After(deadline) {
			t.Fatalf("trace %s has not all of %q within 20s; it has %s", id, names, tr.names())
		}
		time.Sleep(20 * time.Millisecond)
	}
}

// has reports whether the trace has a span of each of the names, as many
// as a name is given.
func (tr traced) has(names []string) bool {
	left := slices.Clone(names)
	for _, s := range tr {
		if i := slices.Index(left, s.Name); i >= 0 {
			left = slices.Delete(left, i, i+1)
		}
	}
	return len(left) == 0
}

func (tr traced) names() string {
	names := make([]string, len(tr))
	for i, s := range tr {
		names[i] = s.Name
	}
	return strings.Join(names, ", ")
}

// one is the one span named name, of kind, whose parent is parent.
func (tr traced) one(t *testing.T, name string, kind trace.SpanKind, parent trace.SpanID) tracetest.SpanStub {
	t.Helper()
	var found []tracetest.SpanStub
	for _, s := range tr {
		if s.Name == name && s.SpanKind == kind && s.Parent.SpanID() == parent {
			found = append(found, s)
		}
	}
	if len(found) != 1 {
		t.Fatalf("%d %s spans (%s) under %s, want 1; the trace has %s", len(found), name, kind, parent, tr.names())
	}
	return found[0]
}

// oneWith is the one span named name whose attribute key is value.
func (tr traced) oneWith(t *testing.T, name, key, value string) tracetest.SpanStub {
	t.Helper()
	var found []tracetest.SpanStub
	for _, s := range tr {
		if s.Name == name && tr.attr(s, key) == value {
			found = append(found, s)
		}
	}
	if len(found) != 1 {
		t.Fatalf("%d %s spans with %s %q, want 1; the trace has %s", len(found), name, key, value, tr.names())
	}
	return found[0]
}

// childrenWith are the spans under parent whose attribute key is value.
func (tr traced) childrenWith(parent trace.SpanID, key, value string) []tracetest.SpanStub {
	var found []tracetest.SpanStub
	for _, s := range tr {
		if s.Parent.SpanID() == parent && tr.attr(s, key) == value {
			found = append(found, s)
		}
	}
	return found
}

func (traced) attr(s tracetest.SpanStub, key string) string {
	for _, a := range s.Attributes {
		if string(a.Key) == key {
			return a.Value.Emit()
		}
	}
	return ""
}

func (traced) attrs(s tracetest.SpanStub, key attribute.Key) []string {
	for _, a := range s.Attributes {
		if a.Key == key {
			return a.Value.AsStringSlice()
		}
	}
	return nil
}
