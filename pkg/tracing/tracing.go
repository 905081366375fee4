// Package tracing sets up OpenTelemetry traces from the standard OTEL_* environment variables
// and gives the W3C trace context (traceparent, tracestate) a stored form (Context), in which
// the outbox keeps it with an event; httpx, httpclient and rabbit carry it over the wire.
//
// The instrumentation in pkg (httpx, httpclient, rabbit) reaches the provider through
// OpenTelemetry's own registry (otel.Tracer, otel.GetTextMapPropagator), as the API is
// designed to be used: Setup registers the process's provider once, and anything that runs
// without it (a test, a subcommand) gets OpenTelemetry's no-op default.
package tracing

import (
	"context"
	"fmt"
	"log/slog"
	"os"
	"strings"
	"time"

	"go.opentelemetry.io/otel"
	"go.opentelemetry.io/otel/exporters/otlp/otlptrace/otlptracehttp"
	"go.opentelemetry.io/otel/propagation"
	"go.opentelemetry.io/otel/sdk/resource"
	sdktrace "go.opentelemetry.io/otel/sdk/trace"
	semconv "go.opentelemetry.io/otel/semconv/v1.43.0"
)

// flushTimeout bounds the export of the last spans at shutdown: an unreachable collector
// must not hold up a stop beyond the margin that compose and the chart leave past
// SHUTDOWN_TIMEOUT (the outbox flush takes up to 3 s of it too).
const flushTimeout = 2 * time.Second

// Config is what Setup reads from the environment.
type Config struct {
	// Endpoint is OTEL_EXPORTER_OTLP_TRACES_ENDPOINT, else OTEL_EXPORTER_OTLP_ENDPOINT; empty
	// means nothing is exported.
	Endpoint string
	// Disabled is OTEL_SDK_DISABLED=true or OTEL_TRACES_EXPORTER=none: nothing is exported
	// whatever the endpoint.
	Disabled bool
}

// LoadConfig reads the variables that decide whether spans are exported. The exporter, the
// sampler (OTEL_TRACES_SAMPLER), the batching (OTEL_BSP_*) and the resource
// (OTEL_SERVICE_NAME, OTEL_RESOURCE_ATTRIBUTES) read the rest themselves.
//
// A value it cannot use is ignored with a warning, as the OpenTelemetry specification asks:
// a telemetry setting must never keep a service from starting.
func LoadConfig() (cfg Config, warnings []string) {
	cfg.Endpoint = os.Getenv("OTEL_EXPORTER_OTLP_TRACES_ENDPOINT")
	if cfg.Endpoint == "" {
		cfg.Endpoint = os.Getenv("OTEL_EXPORTER_OTLP_ENDPOINT")
	}
	// Only "true" disables the SDK; anything else leaves it on.
	switch v := strings.ToLower(strings.TrimSpace(os.Getenv("OTEL_SDK_DISABLED"))); v {
	case "true":
		cfg.Disabled = true
	case "", "false":
	default:
		warnings = append(warnings, fmt.Sprintf("OTEL_SDK_DISABLED=%q is not true or false: ignored", v))
	}
	// A list; of the exporters it may name, only OTLP over HTTP is built in.
	for _, v := range strings.Split(os.Getenv("OTEL_TRACES_EXPORTER"), ",") {
		switch v = strings.ToLower(strings.TrimSpace(v)); v {
		case "", "otlp":
		case "none":
			cfg.Disabled = true
		default:
			warnings = append(warnings, fmt.Sprintf("OTEL_TRACES_EXPORTER names %q, which is not supported (otlp or none): ignored", v))
		}
	}
	return cfg, warnings
}

// Exporting reports whether spans leave the process.
func (c Config) Exporting() bool { return c.Endpoint != "" && !c.Disabled }

// Setup registers the process's tracer provider and the W3C propagator, and returns stop,
// which exports the spans still buffered and shuts the provider down; call it after the
// service's inputs and workers have stopped.
//
// When nothing is exported, the provider has no processor and its sampler records only what
// a caller's traceparent marked sampled (recorded, then dropped at its end): no exporter, no
// goroutine, a span of a trace of the service's own is not recorded at all, and the trace
// context still flows on with fresh span ids, so a caller that does trace sees its trace
// continue through the services.
func Setup(ctx context.Context, service string, log *slog.Logger) (stop func(), err error) {
	cfg, warnings := LoadConfig()
	for _, w := range warnings {
		log.WarnContext(ctx, "tracing setting ignored", "reason", w)
	}
	otel.SetTextMapPropagator(propagation.TraceContext{})
	if !cfg.Exporting() {
		otel.SetTracerProvider(sdktrace.NewTracerProvider(sdktrace.WithSampler(sdktrace.ParentBased(sdktrace.NeverSample()))))
		log.InfoContext(ctx, "traces not exported: no OTLP endpoint configured")
		return func() {}, nil
	}
	exporter, err := otlptracehttp.New(ctx)
	if err != nil {
		return nil, fmt.Errorf("create trace exporter: %w", err)
	}
	// The service's own name is the default; OTEL_SERVICE_NAME and OTEL_RESOURCE_ATTRIBUTES,
	// detected after it, win.
	res, err := resource.New(ctx, resource.WithTelemetrySDK(), resource.WithHost(),
		resource.WithAttributes(semconv.ServiceName(service)), resource.WithFromEnv())
	if err != nil {
		// A malformed OTEL_RESOURCE_ATTRIBUTES leaves the attributes that could be read.
		log.WarnContext(ctx, "trace resource incomplete", "err", err)
		if res == nil {
			res = resource.NewSchemaless(semconv.ServiceName(service))
		}
	}
	provider := sdktrace.NewTracerProvider(sdktrace.WithBatcher(exporter), sdktrace.WithResource(res))
	otel.SetTracerProvider(provider)
	otel.SetErrorHandler(otel.ErrorHandlerFunc(func(err error) {
		log.Warn("trace export failed", "err", err)
	}))
	log.InfoContext(ctx, "traces exported over OTLP", "endpoint", cfg.Endpoint)
	return func() {
		ctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), flushTimeout)
		defer cancel()
		if err := provider.Shutdown(ctx); err != nil {
			log.Warn("trace flush incomplete", "err", err)
		}
	}, nil
}

// Context is a W3C trace context in its wire form, as an outbox row stores it and a message
// carries it to the relay; the zero value is no trace.
type Context struct {
	TraceParent string
	TraceState  string
}

// ContextOf returns the trace context of the span in ctx, or the zero Context.
func ContextOf(ctx context.Context) Context {
	carrier := propagation.MapCarrier{}
	otel.GetTextMapPropagator().Inject(ctx, carrier)
	return Context{TraceParent: carrier["traceparent"], TraceState: carrier["tracestate"]}
}

// Into returns ctx carrying tc as its remote parent span (ctx unchanged for the zero Context).
func (tc Context) Into(ctx context.Context) context.Context {
	if tc.TraceParent == "" {
		return ctx
	}
	return otel.GetTextMapPropagator().Extract(ctx, propagation.MapCarrier{"traceparent": tc.TraceParent, "tracestate": tc.TraceState})
}
