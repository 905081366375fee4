package tracing_test

import (
	"context"
	"io"
	"log/slog"
	"strings"
	"testing"

	"go.opentelemetry.io/otel"
	"go.opentelemetry.io/otel/trace"

	"github.com/order-system/order-system/pkg/tracing"
)

func TestExportingNeedsAnEndpoint(t *testing.T) {
	tests := []struct {
		name     string
		env      map[string]string
		want     bool
		warnings int
	}{
		{"nothing set", nil, false, 0},
		{"endpoint", map[string]string{"OTEL_EXPORTER_OTLP_ENDPOINT": "http://collector:4318"}, true, 0},
		{"traces endpoint", map[string]string{"OTEL_EXPORTER_OTLP_TRACES_ENDPOINT": "http://collector:4318/v1/traces"}, true, 0},
		{"sdk disabled", map[string]string{"OTEL_EXPORTER_OTLP_ENDPOINT": "http://collector:4318", "OTEL_SDK_DISABLED": "TRUE"}, false, 0},
		{"exporter none", map[string]string{"OTEL_EXPORTER_OTLP_ENDPOINT": "http://collector:4318", "OTEL_TRACES_EXPORTER": "none"}, false, 0},
		// Values that cannot be used are ignored with a warning, never a failure to start.
		{"sdk disabled not true", map[string]string{"OTEL_EXPORTER_OTLP_ENDPOINT": "http://collector:4318", "OTEL_SDK_DISABLED": "yes"}, true, 1},
		{"unknown exporter", map[string]string{"OTEL_EXPORTER_OTLP_ENDPOINT": "http://collector:4318", "OTEL_TRACES_EXPORTER": "zipkin"}, true, 1},
		{"otlp and an unknown exporter", map[string]string{"OTEL_EXPORTER_OTLP_ENDPOINT": "http://collector:4318", "OTEL_TRACES_EXPORTER": "otlp, console"}, true, 1},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			for _, name := range []string{"OTEL_EXPORTER_OTLP_ENDPOINT", "OTEL_EXPORTER_OTLP_TRACES_ENDPOINT", "OTEL_SDK_DISABLED", "OTEL_TRACES_EXPORTER"} {
				t.Setenv(name, tt.env[name])
			}
			cfg, warnings := tracing.LoadConfig()
			if len(warnings) != tt.warnings {
				t.Errorf("LoadConfig() warnings %q, want %d", warnings, tt.warnings)
			}
			if got := cfg.Exporting(); got != tt.want {
				t.Errorf("Exporting() = %v, want %v", got, tt.want)
			}
		})
	}
}

// TestBadSettingsDoNotStopSetup: a malformed resource or exporter setting is warned about, and
// the service starts with tracing as far as the rest of its settings allow.
func TestBadSettingsDoNotStopSetup(t *testing.T) {
	t.Setenv("OTEL_EXPORTER_OTLP_ENDPOINT", "http://127.0.0.1:1")
	t.Setenv("OTEL_EXPORTER_OTLP_TRACES_ENDPOINT", "")
	t.Setenv("OTEL_RESOURCE_ATTRIBUTES", "foo")
	t.Setenv("OTEL_TRACES_EXPORTER", "otlp,console")
	t.Setenv("OTEL_SDK_DISABLED", "yes")
	var logs strings.Builder
	stop, err := tracing.Setup(context.Background(), "test", slog.New(slog.NewTextHandler(&logs, nil)))
	if err != nil {
		t.Fatalf("Setup = %v, want it to start with warnings", err)
	}
	stop()
	for _, want := range []string{"OTEL_SDK_DISABLED", "console", "trace resource incomplete"} {
		if !strings.Contains(logs.String(), want) {
			t.Errorf("logs lack a warning about %s:\n%s", want, logs.String())
		}
	}
}

// TestWithoutEndpointContextStillFlows sets up tracing with no endpoint: a request of its own
// records nothing yet has a trace context to pass on, and a request whose caller sampled its
// trace continues it, sampled, under a span id of its own.
func TestWithoutEndpointContextStillFlows(t *testing.T) {
	for _, name := range []string{"OTEL_EXPORTER_OTLP_ENDPOINT", "OTEL_EXPORTER_OTLP_TRACES_ENDPOINT", "OTEL_SDK_DISABLED", "OTEL_TRACES_EXPORTER"} {
		t.Setenv(name, "")
	}
	stop, err := tracing.Setup(context.Background(), "test", slog.New(slog.NewTextHandler(io.Discard, nil)))
	if err != nil {
		t.Fatal(err)
	}
	defer stop()
	tracer := otel.Tracer("test")

	_, root := tracer.Start(context.Background(), "request")
	root.End()
	if root.IsRecording() || !root.SpanContext().IsValid() {
		t.Errorf("a trace of its own: recording %v, valid context %v; want not recording, valid", root.IsRecording(), root.SpanContext().IsValid())
	}
	if got := tracing.ContextOf(trace.ContextWithSpan(context.Background(), root)).TraceParent; !strings.HasSuffix(got, "-00") {
		t.Errorf("a trace of its own is passed on as %q, want it marked not sampled", got)
	}

	const caller = "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01"
	_, child := tracer.Start(tracing.Context{TraceParent: caller}.Into(context.Background()), "request")
	child.End()
	sc := child.SpanContext()
	if sc.TraceID().String() != "4bf92f3577b34da6a3ce929d0e0e4736" || !sc.IsSampled() || sc.SpanID().String() == "00f067aa0ba902b7" {
		t.Errorf("caller's sampled trace continued as %s/%s sampled %v; want its trace id, a new span id, sampled", sc.TraceID(), sc.SpanID(), sc.IsSampled())
	}
}
