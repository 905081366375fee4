package logger_test

import (
	"bytes"
	"context"
	"encoding/json"
	"log/slog"
	"testing"

	"github.com/google/go-cmp/cmp"
	"go.opentelemetry.io/otel/trace"

	"github.com/order-system/order-system/pkg/logger"
)

// TestContextTagsLines logs with contexts that carry a request id, a span, both and neither:
// each line carries what its context had.
func TestContextTagsLines(t *testing.T) {
	t.Parallel()
	traceID, _ := trace.TraceIDFromHex("4bf92f3577b34da6a3ce929d0e0e4736")
	spanID, _ := trace.SpanIDFromHex("00f067aa0ba902b7")
	span := trace.ContextWithSpanContext(context.Background(), trace.NewSpanContext(trace.SpanContextConfig{TraceID: traceID, SpanID: spanID}))
	tests := []struct {
		name string
		ctx  context.Context
		want map[string]string
	}{
		{"neither", context.Background(), map[string]string{}},
		{"request id", logger.WithRequestID(context.Background(), "r-1"), map[string]string{"request_id": "r-1"}},
		{"span", span, map[string]string{"trace_id": "4bf92f3577b34da6a3ce929d0e0e4736"}},
		{"both", logger.WithRequestID(span, "r-2"), map[string]string{"request_id": "r-2", "trace_id": "4bf92f3577b34da6a3ce929d0e0e4736"}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			var buf bytes.Buffer
			logger.New(&buf, "test", slog.LevelInfo).InfoContext(tt.ctx, "something happened")
			var line map[string]any
			if err := json.Unmarshal(buf.Bytes(), &line); err != nil {
				t.Fatalf("%v: %s", err, buf.Bytes())
			}
			got := map[string]string{}
			for _, key := range []string{"request_id", "trace_id"} {
				if v, ok := line[key].(string); ok {
					got[key] = v
				}
			}
			if diff := cmp.Diff(tt.want, got); diff != "" {
				t.Errorf("ids of the line (-want +got):\n%s", diff)
			}
		})
	}
}
