package httpclient_test

import (
	"context"
	"net/http"
	"net/http/httptest"
	"testing"
	"time"

	"go.opentelemetry.io/otel"
	"go.opentelemetry.io/otel/codes"
	"go.opentelemetry.io/otel/trace"

	"github.com/order-system/order-system/pkg/httpclient"
	"github.com/order-system/order-system/pkg/tracing/tracingtest"
)

// TestCallsCarryTheirClientSpan calls a server from within a span: the call gets a client
// span, the span's child, and the server receives the client span's context as traceparent.
func TestCallsCarryTheirClientSpan(t *testing.T) {
	tracingtest.Recorder()
	received := make(chan string, 1)
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		received <- r.Header.Get("traceparent")
		w.WriteHeader(http.StatusServiceUnavailable)
	}))
	defer srv.Close()

	ctx, parent := otel.Tracer("test").Start(context.Background(), "request")
	status, _, err := httpclient.DoJSON(ctx, httpclient.New(time.Second), http.MethodPost, srv.URL+"/internal/payments", "", map[string]int{"a": 1})
	parent.End()
	if err != nil || status != http.StatusServiceUnavailable {
		t.Fatalf("DoJSON = %d, %v", status, err)
	}
	spans := tracingtest.Spans(parent.SpanContext().TraceID())
	if len(spans) != 2 {
		t.Fatalf("%d spans in the trace, want the client span and its parent", len(spans))
	}
	client := spans[0]
	if client.Name() != "POST" || client.SpanKind() != trace.SpanKindClient || client.Status().Code != codes.Error {
		t.Errorf("client span %q kind %v status %v, want POST, client, error (a 503)", client.Name(), client.SpanKind(), client.Status().Code)
	}
	if client.Parent().SpanID() != parent.SpanContext().SpanID() {
		t.Errorf("client span's parent %s, want the request's span %s", client.Parent().SpanID(), parent.SpanContext().SpanID())
	}
	want := "00-" + client.SpanContext().TraceID().String() + "-" + client.SpanContext().SpanID().String() + "-01"
	if got := <-received; got != want {
		t.Errorf("server received traceparent %q, want the client span's %q", got, want)
	}
}
