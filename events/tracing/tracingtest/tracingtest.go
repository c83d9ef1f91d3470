// Package tracingtest turns tracing on for a test and keeps the spans that
// end meanwhile in memory.
package tracingtest

import (
	"context"
	"sync"
	"sync/atomic"
	"testing"

	sdktrace "go.opentelemetry.io/otel/sdk/trace"
	"go.opentelemetry.io/otel/sdk/trace/tracetest"

	"github.com/customerbus/customerbus/events/tracing"
)

// recorder keeps the spans while a test records.
type recorder struct {
	on  atomic.Bool
	mem *tracetest.InMemoryExporter
}

func (r *recorder) ExportSpans(ctx context.Context, spans []sdktrace.ReadOnlySpan) error {
	if !r.on.Load() {
		return nil // a span of something built while a test recorded, ending after it
	}
	return r.mem.ExportSpans(ctx, spans)
}

func (r *recorder) Shutdown(context.Context) error { return nil }

var (
	rec      = &recorder{mem: tracetest.NewInMemoryExporter()}
	provider = sync.OnceValue(func() *sdktrace.TracerProvider {
		// Synchronous: a span is in memory once it ended.
		return sdktrace.NewTracerProvider(sdktrace.WithSyncer(rec))
	})
)

// Record turns tracing on until t ends, and returns where the spans ended
// meanwhile are. Tracing is on for the whole process: a test that records
// must not run in parallel with others, which would trace too, and build
// what it traces (the database pool, the services) after Record.
func Record(t testing.TB) *tracetest.InMemoryExporter {
	off := tracing.Use(provider())
	rec.mem.Reset()
	rec.on.Store(true)
	t.Cleanup(func() {
		off()
		rec.on.Store(false)
		rec.mem.Reset()
	})
	return rec.mem
}
