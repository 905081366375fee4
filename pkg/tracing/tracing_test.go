package tracing_test

import (
	"testing"

	"github.com/order-system/order-system/pkg/tracing"
)

func TestExportingNeedsAnEndpoint(t *testing.T) {
	tests := []struct {
		name    string
		env     map[string]string
		want    bool
		wantErr bool
	}{
		{"nothing set", nil, false, false},
		{"endpoint", map[string]string{"OTEL_EXPORTER_OTLP_ENDPOINT": "http://collector:4318"}, true, false},
		{"traces endpoint", map[string]string{"OTEL_EXPORTER_OTLP_TRACES_ENDPOINT": "http://collector:4318/v1/traces"}, true, false},
		{"sdk disabled", map[string]string{"OTEL_EXPORTER_OTLP_ENDPOINT": "http://collector:4318", "OTEL_SDK_DISABLED": "true"}, false, false},
		{"exporter none", map[string]string{"OTEL_EXPORTER_OTLP_ENDPOINT": "http://collector:4318", "OTEL_TRACES_EXPORTER": "none"}, false, false},
		{"sdk disabled not a boolean", map[string]string{"OTEL_SDK_DISABLED": "yes please"}, false, true},
		{"unknown exporter", map[string]string{"OTEL_TRACES_EXPORTER": "zipkin"}, false, true},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			for _, name := range []string{"OTEL_EXPORTER_OTLP_ENDPOINT", "OTEL_EXPORTER_OTLP_TRACES_ENDPOINT", "OTEL_SDK_DISABLED", "OTEL_TRACES_EXPORTER"} {
				t.Setenv(name, tt.env[name])
			}
			cfg, err := tracing.LoadConfig()
			if (err != nil) != tt.wantErr {
				t.Fatalf("LoadConfig() error %v, want error %v", err, tt.wantErr)
			}
			if got := cfg.Exporting(); got != tt.want {
				t.Errorf("Exporting() = %v, want %v", got, tt.want)
			}
		})
	}
}
