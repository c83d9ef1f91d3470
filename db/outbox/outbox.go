// Package outbox writes events to the transactional outbox: in the caller's
// transaction, so that they exist exactly when the change they describe
// does. The relay publishes them.
package outbox

import (
	"context"
	"fmt"

	cloudevents "github.com/cloudevents/sdk-go/v2"
	"github.com/google/uuid"
	semconv "go.opentelemetry.io/otel/semconv/v1.43.0"
	"go.opentelemetry.io/otel/trace"
	"go.opentelemetry.io/otel/trace/noop"

	"github.com/customerbus/customerbus/db/gen"
	"github.com/customerbus/customerbus/events"
	"github.com/customerbus/customerbus/events/tracing"
)

// Write appends the events to the outbox, in order.
func Write(ctx context.Context, q *gen.Queries, evs []cloudevents.Event) (err error) {
	if len(evs) == 0 {
		return nil
	}
	ctx, span := Start(ctx, evs)
	defer func() { tracing.End(span, err) }()
	p, err := Rows(evs)
	if err != nil {
		return err
	}
	if err := q.InsertOutboxEvents(ctx, p); err != nil {
		return fmt.Errorf("outbox: write: %w", err)
	}
	return nil
}

// Start begins the span of writing evs to the outbox when ctx is in a span
// (a request's, or the handling of a command or event): its child. Each
// event's traceparent becomes the write's span, so the relay's publish and
// every consumer's handling continue the trace from here. Events written
// outside any span (an import's, in the background) keep the traceparent
// they were made with. End the span with tracing.End once they are written.
func Start(ctx context.Context, evs []cloudevents.Event) (context.Context, trace.Span) {
	if !trace.SpanContextFromContext(ctx).IsValid() {
		return ctx, noop.Span{}
	}
	ctx, span := tracing.Start(ctx, "outbox write", trace.SpanKindInternal, semconv.MessagingBatchMessageCount(len(evs)))
	if tp := tracing.TraceParent(ctx); tp != "" {
		for i := range evs {
			evs[i].SetExtension(events.ExtTraceParent, tp)
		}
	}
	if span.IsRecording() {
		ids, types := make([]string, len(evs)), make([]string, len(evs))
		for i, e := range evs {
			ids[i], types[i] = e.ID(), e.Type()
		}
		span.SetAttributes(tracing.EventIDs.StringSlice(ids), tracing.EventTypes.StringSlice(types))
	}
	return ctx, span
}

// Rows turns events into the column arrays that outbox inserts take, for
// statements that write a row and its events at once.
func Rows(evs []cloudevents.Event) (gen.InsertOutboxEventsParams, error) {
	var p gen.InsertOutboxEventsParams
	for _, e := range evs {
		b, err := events.Marshal(e)
		if err != nil {
			return p, fmt.Errorf("outbox: encode event: %w", err)
		}
		id, err := uuid.Parse(e.ID())
		if err != nil {
			return p, fmt.Errorf("outbox: event id: %w", err)
		}
		key, _ := e.Extensions()[events.ExtPartitionKey].(string)
		p.EventIds = append(p.EventIds, id)
		p.NatsSubjects = append(p.NatsSubjects, events.Subject(e.Type()))
		p.PartitionKeys = append(p.PartitionKeys, key)
		p.Events = append(p.Events, b)
	}
	return p, nil
}
