package httpclient

import (
	"net"
	"net/http"
	"strconv"

	"go.opentelemetry.io/otel"
	"go.opentelemetry.io/otel/attribute"
	"go.opentelemetry.io/otel/codes"
	"go.opentelemetry.io/otel/propagation"
	semconv "go.opentelemetry.io/otel/semconv/v1.43.0"
	"go.opentelemetry.io/otel/trace"
)

// tracerName names the instrumentation scope of the client spans.
const tracerName = "github.com/order-system/order-system/pkg/httpclient"

// tracingTransport wraps each call in a client span, a child of the span in the request's
// context (the server span of the request being served), and sends the span's trace context
// as traceparent/tracestate, so the callee's server span becomes the client span's child.
// The span ends when the answer's headers arrive: the bodies DoJSON reads after that are a
// few hundred bytes, not worth a wrapper around every body to time them.
type tracingTransport struct{ next http.RoundTripper }

func (t tracingTransport) RoundTrip(req *http.Request) (*http.Response, error) {
	// Named by the method alone: the URL's path holds ids (/internal/accounts/{id}), and a
	// span name must not grow with them.
	ctx, span := otel.Tracer(tracerName).Start(req.Context(), req.Method,
		trace.WithSpanKind(trace.SpanKindClient), trace.WithAttributes(clientAttributes(req)...))
	defer span.End()
	req = req.Clone(ctx) // a RoundTripper must not change the caller's request
	otel.GetTextMapPropagator().Inject(ctx, propagation.HeaderCarrier(req.Header))
	resp, err := t.next.RoundTrip(req)
	if err != nil {
		span.SetStatus(codes.Error, err.Error())
		span.SetAttributes(semconv.ErrorType(err))
		return nil, err
	}
	span.SetAttributes(semconv.HTTPResponseStatusCode(resp.StatusCode))
	if resp.StatusCode >= http.StatusBadRequest {
		span.SetStatus(codes.Error, strconv.Itoa(resp.StatusCode))
	}
	return resp, nil
}

func clientAttributes(req *http.Request) []attribute.KeyValue {
	u := *req.URL
	u.User = nil // credentials never go into a span
	attrs := []attribute.KeyValue{semconv.HTTPRequestMethodKey.String(req.Method), semconv.URLFull(u.String())}
	host, port, err := net.SplitHostPort(req.URL.Host)
	if err != nil {
		return append(attrs, semconv.ServerAddress(req.URL.Host))
	}
	attrs = append(attrs, semconv.ServerAddress(host))
	if p, err := strconv.Atoi(port); err == nil {
		attrs = append(attrs, semconv.ServerPort(p))
	}
	return attrs
}
