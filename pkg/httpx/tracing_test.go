package httpx_test

import (
	"errors"
	"io"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"

	"github.com/labstack/echo/v5"
	"github.com/prometheus/client_golang/prometheus"
	"go.opentelemetry.io/otel/attribute"
	"go.opentelemetry.io/otel/codes"
	sdktrace "go.opentelemetry.io/otel/sdk/trace"
	"go.opentelemetry.io/otel/trace"

	"github.com/order-system/order-system/pkg/httpx"
	"github.com/order-system/order-system/pkg/tracing/tracingtest"
)

// TestServerSpans sends requests with a traceparent of their own trace each: the server span
// continues the caller's trace under the route's name, with the status as the response had
// it, and the handler sees the span in its context.
func TestServerSpans(t *testing.T) {
	tracingtest.Recorder()
	e := httpx.New(slog.New(slog.NewTextHandler(io.Discard, nil)), prometheus.NewRegistry())
	e.GET("/things/:id", func(c *echo.Context) error {
		if c.Param("id") == "broken" {
			return errors.New("something broke")
		}
		if sc := trace.SpanContextFromContext(c.Request().Context()); !sc.IsValid() {
			return c.String(http.StatusTeapot, "no span in the handler's context")
		}
		return c.String(http.StatusOK, "ok")
	})
	tests := []struct {
		name, path, traceID string
		status              int
		spanStatus          codes.Code
	}{
		{"ok", "/things/1", "4bf92f3577b34da6a3ce929d0e0e4736", http.StatusOK, codes.Unset},
		{"5xx", "/things/broken", "5bf92f3577b34da6a3ce929d0e0e4736", http.StatusInternalServerError, codes.Error},
		{"4xx is no error", "/nowhere", "6bf92f3577b34da6a3ce929d0e0e4736", http.StatusNotFound, codes.Unset},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			req := httptest.NewRequest(http.MethodGet, tt.path, nil)
			req.Header.Set("traceparent", "00-"+tt.traceID+"-00f067aa0ba902b7-01")
			rec := httptest.NewRecorder()
			e.ServeHTTP(rec, req)
			if rec.Code != tt.status {
				t.Fatalf("status %d, want %d: %s", rec.Code, tt.status, rec.Body)
			}
			id, _ := trace.TraceIDFromHex(tt.traceID)
			spans := tracingtest.Spans(id)
			if len(spans) != 1 {
				t.Fatalf("%d spans in the caller's trace, want 1", len(spans))
			}
			s := spans[0]
			wantName := "GET /things/:id"
			if tt.status == http.StatusNotFound {
				wantName = "GET"
			}
			if s.Name() != wantName || s.SpanKind() != trace.SpanKindServer || s.Status().Code != tt.spanStatus {
				t.Errorf("span %q kind %v status %v, want %q server %v", s.Name(), s.SpanKind(), s.Status().Code, wantName, tt.spanStatus)
			}
			if got := s.Parent().SpanID().String(); got != "00f067aa0ba902b7" {
				t.Errorf("parent span %s, want the caller's 00f067aa0ba902b7", got)
			}
			if got := attr(s, "http.response.status_code"); got.AsInt64() != int64(tt.status) {
				t.Errorf("http.response.status_code %v, want %d", got.Emit(), tt.status)
			}
		})
	}
}

// TestBadTraceparentStartsATrace: a traceparent that is not W3C's is never refused; the
// request starts a trace of its own. A valid one's tracestate goes on with the trace.
func TestBadTraceparentStartsATrace(t *testing.T) {
	tracingtest.Recorder()
	e := httpx.New(slog.New(slog.NewTextHandler(io.Discard, nil)), prometheus.NewRegistry())
	var seen trace.SpanContext // ServeHTTP runs the handler before it returns
	e.GET("/things", func(c *echo.Context) error {
		seen = trace.SpanContextFromContext(c.Request().Context())
		return c.String(http.StatusOK, "ok")
	})
	for _, bad := range []string{
		"garbage",
		"00-00000000000000000000000000000000-00f067aa0ba902b7-01", // all-zero trace id
		"ff-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01", // version ff is invalid
		"00-4bf92f3577b34da6a3ce929d0e0e473-00f067aa0ba902b7-01",  // trace id one digit short
	} {
		req := httptest.NewRequest(http.MethodGet, "/things", nil)
		req.Header.Set("traceparent", bad)
		rec := httptest.NewRecorder()
		e.ServeHTTP(rec, req)
		sc := seen
		if rec.Code != http.StatusOK || !sc.IsValid() || sc.IsRemote() || strings.Contains(bad, sc.TraceID().String()) {
			t.Errorf("traceparent %q: status %d, span context %v; want 200 and a trace of the request's own", bad, rec.Code, sc)
		}
	}

	req := httptest.NewRequest(http.MethodGet, "/things", nil)
	req.Header.Set("traceparent", "00-8bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01")
	req.Header.Set("tracestate", "vendor=opaque,other=1")
	e.ServeHTTP(httptest.NewRecorder(), req)
	if seen.TraceID().String() != "8bf92f3577b34da6a3ce929d0e0e4736" || seen.TraceState().String() != "vendor=opaque,other=1" {
		t.Errorf("continued as %s with tracestate %q, want the caller's trace and tracestate", seen.TraceID(), seen.TraceState().String())
	}
}

// TestProbesAreNotTraced keeps health checks and scrapes out of the traces.
func TestProbesAreNotTraced(t *testing.T) {
	tracingtest.Recorder()
	e := httpx.New(slog.New(slog.NewTextHandler(io.Discard, nil)), prometheus.NewRegistry())
	req := httptest.NewRequest(http.MethodGet, "/metrics", nil)
	const traceID = "7bf92f3577b34da6a3ce929d0e0e4736"
	req.Header.Set("traceparent", "00-"+traceID+"-00f067aa0ba902b7-01")
	e.ServeHTTP(httptest.NewRecorder(), req)
	id, _ := trace.TraceIDFromHex(traceID)
	if spans := tracingtest.Spans(id); len(spans) != 0 {
		t.Fatalf("/metrics made %d spans, want none", len(spans))
	}
}

func attr(s sdktrace.ReadOnlySpan, key attribute.Key) attribute.Value {
	for _, kv := range s.Attributes() {
		if kv.Key == key {
			return kv.Value
		}
	}
	return attribute.Value{}
}
