// Package tracing records what the services do for a request or a command
// as the spans of one OpenTelemetry trace, across the bus: the trace
// context travels in each event's traceparent (W3C trace context), from the
// HTTP request or bus command through the outbox write and the relay's
// publish to every consumer's handling of the event (docs/tracing.md).
//
// It is the one place that sets OpenTelemetry up. Tracing is off unless
// Setup (or Use, in tests) turned it on: then no span is recorded, the HTTP
// and pgx instrumentation is not even installed, and the helpers here
// return at once.
package tracing

import (
	"cmp"
	"context"
	"fmt"
	"sync/atomic"

	cloudevents "github.com/cloudevents/sdk-go/v2"
	"go.opentelemetry.io/otel"
	"go.opentelemetry.io/otel/attribute"
	"go.opentelemetry.io/otel/codes"
	"go.opentelemetry.io/otel/exporters/otlp/otlptrace/otlptracegrpc"
	"go.opentelemetry.io/otel/exporters/otlp/otlptrace/otlptracehttp"
	"go.opentelemetry.io/otel/propagation"
	"go.opentelemetry.io/otel/sdk/resource"
	sdktrace "go.opentelemetry.io/otel/sdk/trace"
	semconv "go.opentelemetry.io/otel/semconv/v1.43.0"
	"go.opentelemetry.io/otel/trace"
	"go.opentelemetry.io/otel/trace/noop"
	"go.uber.org/zap"

	"github.com/customerbus/customerbus/events"
)

// Config turns tracing on. Its variables are OpenTelemetry's standard ones;
// the OTLP exporter reads the rest (OTEL_EXPORTER_OTLP_ENDPOINT, _HEADERS,
// _TIMEOUT, …) itself, and the SDK its sampler (OTEL_TRACES_SAMPLER) and
// resource (OTEL_SERVICE_NAME, OTEL_RESOURCE_ATTRIBUTES).
type Config struct {
	// Exporter is where spans go: "otlp" exports them over OTLP; "none", the
	// default, records none.
	Exporter string `env:"OTEL_TRACES_EXPORTER" envDefault:"none"`
	// Protocol is the OTLP exporter's: "http/protobuf" (the specification's
	// default) or "grpc". TracesProtocol, when set, overrides it.
	Protocol       string `env:"OTEL_EXPORTER_OTLP_PROTOCOL" envDefault:"http/protobuf"`
	TracesProtocol string `env:"OTEL_EXPORTER_OTLP_TRACES_PROTOCOL"`
	// Disabled records nothing, whatever Exporter says.
	Disabled bool `env:"OTEL_SDK_DISABLED" envDefault:"false"`
}

// Setup turns tracing on when cfg asks for it, for the process of service
// (its service.name unless OTEL_SERVICE_NAME says otherwise); what goes
// wrong exporting is logged to log. It must run before the services are
// built: they install their instrumentation only when tracing is on.
// shutdown exports the spans still buffered.
func Setup(ctx context.Context, cfg Config, service string, log *zap.Logger) (shutdown func(context.Context) error, err error) {
	off := func(context.Context) error { return nil }
	switch {
	case cfg.Disabled, cfg.Exporter == "none", cfg.Exporter == "":
		return off, nil
	case cfg.Exporter != "otlp":
		return nil, fmt.Errorf("OTEL_TRACES_EXPORTER: %q is not supported: otlp or none", cfg.Exporter)
	}
	var exp sdktrace.SpanExporter
	switch protocol := cmp.Or(cfg.TracesProtocol, cfg.Protocol, "http/protobuf"); protocol {
	case "http/protobuf":
		exp, err = otlptracehttp.New(ctx)
	case "grpc":
		exp, err = otlptracegrpc.New(ctx)
	default:
		return nil, fmt.Errorf("OTEL_EXPORTER_OTLP_(TRACES_)PROTOCOL: %q is not supported: http/protobuf or grpc", protocol)
	}
	if err != nil {
		return nil, fmt.Errorf("tracing: exporter: %w", err)
	}
	// Later options win: the environment names the service over our default.
	res, err := resource.New(ctx, resource.WithAttributes(semconv.ServiceName(service)),
		resource.WithFromEnv(), resource.WithTelemetrySDK())
	if err != nil {
		return nil, fmt.Errorf("tracing: resource: %w", err)
	}
	tp := sdktrace.NewTracerProvider(sdktrace.WithBatcher(exp), sdktrace.WithResource(res))
	otel.SetErrorHandler(otel.ErrorHandlerFunc(func(err error) { log.Warn("tracing", zap.Error(err)) }))
	Use(tp)
	return tp.Shutdown, nil
}

// enabled is whether Use was called.
var enabled atomic.Bool

// Enabled reports whether spans are recorded.
func Enabled() bool { return enabled.Load() }

// Use records every span with tp from now on, and reads and writes trace
// contexts as W3C traceparent; off turns tracing off again for what is
// built after (tests that trace run beside tests that expect it off). Use
// one provider per process, set before the services are built: the tracer
// of this package delegates to the first provider set.
func Use(tp trace.TracerProvider) (off func()) {
	otel.SetTracerProvider(tp)
	otel.SetTextMapPropagator(propagation.TraceContext{})
	enabled.Store(true)
	return func() { enabled.Store(false) }
}

// The attributes of this module's own: the events an outbox write holds,
// and where JetStream keeps a published event.
const (
	EventIDs       = attribute.Key("customerbus.event_ids")
	EventTypes     = attribute.Key("customerbus.event_types")
	Stream         = attribute.Key("customerbus.stream")
	StreamSequence = attribute.Key("customerbus.stream_seq")
)

// tracer makes the spans of this module.
var tracer = otel.Tracer("github.com/customerbus/customerbus")

// Start starts a span as a child of ctx's (the root of a new trace when ctx
// has none).
func Start(ctx context.Context, name string, kind trace.SpanKind, attrs ...attribute.KeyValue) (context.Context, trace.Span) {
	if !Enabled() {
		return ctx, noop.Span{}
	}
	return tracer.Start(ctx, name, trace.WithSpanKind(kind), trace.WithAttributes(attrs...))
}

// End ends span, marking it failed with err when err is not nil.
func End(span trace.Span, err error) {
	if err != nil {
		span.RecordError(err)
		span.SetStatus(codes.Error, err.Error())
	}
	span.End()
}

// Handling starts a consumer's span for handling event e (an event or a
// command): a child of the span its traceparent names, so the handling is
// in the trace of what caused the event. An event without a valid
// traceparent gets the one its id derives (events.TraceParentFor), so every
// delivery of it is in one trace.
func Handling(ctx context.Context, name string, e cloudevents.Event) (context.Context, trace.Span) {
	if !Enabled() {
		return ctx, noop.Span{}
	}
	tp, _ := e.Extensions()[events.ExtTraceParent].(string)
	return Start(WithTraceParent(ctx, events.TraceParentFor(tp, e.ID())), name, trace.SpanKindConsumer,
		semconv.MessagingSystemKey.String("nats"), semconv.MessagingOperationTypeProcess,
		semconv.CloudEventsEventID(e.ID()), semconv.CloudEventsEventType(e.Type()),
		semconv.CloudEventsEventSource(e.Source()), semconv.CloudEventsEventSubject(e.Subject()))
}

// Publishing starts the relay's span for publishing a stored event (the
// outbox's JSON) as message id on subject: a child of the span its
// traceparent names, the outbox write's.
func Publishing(ctx context.Context, stored []byte, subject, id string) (context.Context, trace.Span) {
	if !Enabled() {
		return ctx, noop.Span{}
	}
	return Start(WithTraceParent(ctx, events.StoredTraceParent(stored)), "relay publish", trace.SpanKindProducer,
		semconv.MessagingSystemKey.String("nats"), semconv.MessagingOperationTypeSend,
		semconv.MessagingDestinationName(subject), semconv.MessagingMessageID(id), semconv.CloudEventsEventID(id))
}

// Delivering starts the webhooks' span for one HTTP delivery of a stored
// event (the outbox's JSON) to an endpoint on host: a child of the span its
// traceparent names, so the receiver's work joins the trace of what caused
// the event.
func Delivering(ctx context.Context, stored []byte, eventID, host string) (context.Context, trace.Span) {
	if !Enabled() {
		return ctx, noop.Span{}
	}
	return Start(WithTraceParent(ctx, events.StoredTraceParent(stored)), "webhooks deliver", trace.SpanKindClient,
		semconv.HTTPRequestMethodPost, semconv.ServerAddress(host), semconv.CloudEventsEventID(eventID))
}

// WithTraceParent is ctx with the span traceParent names as its remote
// parent; ctx itself when traceParent is not a valid one.
func WithTraceParent(ctx context.Context, traceParent string) context.Context {
	if traceParent == "" {
		return ctx
	}
	return propagation.TraceContext{}.Extract(ctx, propagation.MapCarrier{"traceparent": traceParent})
}

// TraceParent is the W3C traceparent of ctx's span, "" when it has none.
func TraceParent(ctx context.Context) string {
	sc := trace.SpanContextFromContext(ctx)
	if !sc.IsValid() {
		return ""
	}
	return "00-" + sc.TraceID().String() + "-" + sc.SpanID().String() + "-" + sc.TraceFlags().String()
}

// Logger is log with the trace_id and span_id of ctx's span, so that a log
// line can be found from its trace and the other way round; log itself when
// ctx has no span.
func Logger(ctx context.Context, log *zap.Logger) *zap.Logger {
	sc := trace.SpanContextFromContext(ctx)
	if !sc.IsValid() {
		return log
	}
	return log.With(zap.Stringer("trace_id", sc.TraceID()), zap.Stringer("span_id", sc.SpanID()))
}
