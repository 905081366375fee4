// Package tracingtest records the spans a test's code ends, in memory, for the tests of the
// instrumented packages.
package tracingtest

import (
	"sync"

	"go.opentelemetry.io/otel"
	"go.opentelemetry.io/otel/propagation"
	sdktrace "go.opentelemetry.io/otel/sdk/trace"
	"go.opentelemetry.io/otel/sdk/trace/tracetest"
	"go.opentelemetry.io/otel/trace"
)

var (
	once     sync.Once
	recorder *tracetest.SpanRecorder
)

// Recorder registers, once per test binary, a tracer provider that samples every span and
// records it, and the W3C propagator, as tracing.Setup does for a service. OpenTelemetry's
// registry is process-wide, so parallel tests share the recorder: each picks its own spans
// with Spans.
func Recorder() *tracetest.SpanRecorder {
	once.Do(func() {
		recorder = tracetest.NewSpanRecorder()
		otel.SetTracerProvider(sdktrace.NewTracerProvider(sdktrace.WithSpanProcessor(recorder)))
		otel.SetTextMapPropagator(propagation.TraceContext{})
	})
	return recorder
}

// Spans returns the ended spans of trace id, in the order they ended.
func Spans(id trace.TraceID) []sdktrace.ReadOnlySpan {
	var spans []sdktrace.ReadOnlySpan
	for _, s := range Recorder().Ended() {
		if s.SpanContext().TraceID() == id {
			spans = append(spans, s)
		}
	}
	return spans
}
