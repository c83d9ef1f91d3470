package tracing_test

import (
	"context"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"testing"
	"time"

	"github.com/caarlos0/env/v11"
	"go.opentelemetry.io/otel/trace"
	collector "go.opentelemetry.io/proto/otlp/collector/trace/v1"
	"go.uber.org/zap/zaptest"
	"google.golang.org/protobuf/proto"

	"github.com/customerbus/customerbus/events/tracing"
)

// Tracing is off unless OTEL_TRACES_EXPORTER asks for otlp (and
// OTEL_SDK_DISABLED does not say no); what it cannot do is refused at
// start. With otlp, spans go over OTLP/HTTP to where the exporter's own
// variable (OTEL_EXPORTER_OTLP_ENDPOINT) says, named after the service.
// Off must come first: once on, tracing stays on in this test binary.
func TestSetupIsOffByDefaultAndExportsOverOTLPWhereTheEnvironmentSays(t *testing.T) {
	ctx := context.Background()
	log := zaptest.NewLogger(t)
	for _, vars := range []map[string]string{
		{},
		{"OTEL_TRACES_EXPORTER": "none"},
		{"OTEL_TRACES_EXPORTER": "otlp", "OTEL_SDK_DISABLED": "true"},
	} {
		t.Run(fmt.Sprint(vars), func(t *testing.T) {
			if _, err := tracing.Setup(ctx, configFrom(t, vars), "customerbus-test", log); err != nil || tracing.Enabled() {
				t.Fatalf("tracing on %v, error %v; want off", tracing.Enabled(), err)
			}
			if _, span := tracing.Start(ctx, "off", trace.SpanKindInternal); span.IsRecording() {
				t.Error("a span records")
			}
		})
	}
	for _, vars := range []map[string]string{
		{"OTEL_TRACES_EXPORTER": "zipkin"},
		{"OTEL_TRACES_EXPORTER": "otlp", "OTEL_EXPORTER_OTLP_PROTOCOL": "http/json"},
		{"OTEL_TRACES_EXPORTER": "otlp", "OTEL_EXPORTER_OTLP_TRACES_PROTOCOL": "http/json"},
	} {
		t.Run(fmt.Sprint(vars), func(t *testing.T) {
			if _, err := tracing.Setup(ctx, configFrom(t, vars), "customerbus-test", log); err == nil || tracing.Enabled() {
				t.Errorf("tracing on %v, error %v; want it refused", tracing.Enabled(), err)
			}
		})
	}

	exported := make(chan *collector.ExportTraceServiceRequest, 10)
	collectorSrv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		body, err := io.ReadAll(r.Body)
		req := &collector.ExportTraceServiceRequest{}
		if err == nil {
			err = proto.Unmarshal(body, req)
		}
		if r.URL.Path != "/v1/traces" || err != nil {
			t.Errorf("the collector got %s %s: %v", r.Method, r.URL.Path, err)
		}
		exported <- req
	}))
	defer collectorSrv.Close()
	cfg := configFrom(t, map[string]string{"OTEL_TRACES_EXPORTER": "otlp", "OTEL_EXPORTER_OTLP_ENDPOINT": collectorSrv.URL})
	shutdown, err := tracing.Setup(ctx, cfg, "customerbus-test", log)
	if err != nil || !tracing.Enabled() {
		t.Fatalf("tracing on %v, error %v; want on", tracing.Enabled(), err)
	}
	_, span := tracing.Start(ctx, "probe", trace.SpanKindInternal)
	span.End()
	if err := shutdown(ctx); err != nil { // exports what is buffered
		t.Fatal(err)
	}
	select {
	case req := <-exported:
		rs := req.GetResourceSpans()
		if len(rs) != 1 || len(rs[0].GetScopeSpans()) != 1 || len(rs[0].GetScopeSpans()[0].GetSpans()) != 1 {
			t.Fatalf("exported %v, want the one span", req)
		}
		if name := rs[0].GetScopeSpans()[0].GetSpans()[0].GetName(); name != "probe" {
			t.Errorf("exported span %q, want probe", name)
		}
		service := ""
		for _, a := range rs[0].GetResource().GetAttributes() {
			if a.GetKey() == "service.name" {
				service = a.GetValue().GetStringValue()
			}
		}
		if service != "customerbus-test" {
			t.Errorf("service.name %q, want customerbus-test", service)
		}
	case <-time.After(10 * time.Second):
		t.Fatal("the collector got no spans")
	}
}

// configFrom sets vars in the environment until t ends (the exporter reads
// its own there) and reads the configuration as the binary does.
func configFrom(t *testing.T, vars map[string]string) tracing.Config {
	t.Helper()
	for k, v := range vars {
		t.Setenv(k, v)
	}
	cfg, err := env.ParseAs[tracing.Config]()
	if err != nil {
		t.Fatal(err)
	}
	return cfg
}
