package httpx

import (
	"net"
	"net/http"
	"strconv"

	"github.com/labstack/echo/v5"
	"go.opentelemetry.io/otel"
	"go.opentelemetry.io/otel/attribute"
	"go.opentelemetry.io/otel/codes"
	"go.opentelemetry.io/otel/propagation"
	semconv "go.opentelemetry.io/otel/semconv/v1.43.0"
	"go.opentelemetry.io/otel/trace"
)

// tracerName names the instrumentation scope of the server spans.
const tracerName = "github.com/order-system/order-system/pkg/httpx"

// traceRequests starts a server span for each request: it continues the trace of the
// caller's W3C traceparent, or starts one, and puts the span in the request context, so that
// the request's log lines, its calls to other services and its outbox events carry the
// trace. It is OpenTelemetry's otelhttp server span, written for echo v5 (the contrib
// package targets echo v4). Probes and metrics scrapes get none: they would drown the traces.
func traceRequests(next echo.HandlerFunc) echo.HandlerFunc {
	tracer := otel.Tracer(tracerName)
	return func(c *echo.Context) error {
		route := c.Path()
		if operational(route) {
			return next(c)
		}
		req := c.Request()
		ctx := otel.GetTextMapPropagator().Extract(req.Context(), propagation.HeaderCarrier(req.Header))
		ctx, span := tracer.Start(ctx, spanName(req.Method, route),
			trace.WithSpanKind(trace.SpanKindServer), trace.WithAttributes(serverAttributes(c, route)...))
		defer span.End()
		c.SetRequest(req.WithContext(ctx))

		err := next(c)
		if err != nil {
			// Let the error handler write the response now so the status is known.
			c.Echo().HTTPErrorHandler(c, err)
		}
		_, status := echo.ResolveResponseStatus(c.Response(), nil)
		span.SetAttributes(semconv.HTTPResponseStatusCode(status))
		if status >= http.StatusInternalServerError {
			// A 4xx is the client's mistake, not a failure of the server's span.
			span.SetStatus(codes.Error, strconv.Itoa(status))
		}
		return nil
	}
}

// spanName is "METHOD /route/{template}", the route as registered so that every order's
// requests share one name; a request no route matched has the method alone.
func spanName(method, route string) string {
	if route == "" {
		return method
	}
	return method + " " + route
}

func serverAttributes(c *echo.Context, route string) []attribute.KeyValue {
	req := c.Request()
	attrs := []attribute.KeyValue{
		semconv.HTTPRequestMethodKey.String(req.Method),
		semconv.URLPath(req.URL.Path),
		semconv.URLScheme(c.Scheme()),
		semconv.NetworkProtocolVersion(strconv.Itoa(req.ProtoMajor) + "." + strconv.Itoa(req.ProtoMinor)),
	}
	if route != "" {
		attrs = append(attrs, semconv.HTTPRoute(route))
	}
	if host, port, err := net.SplitHostPort(req.Host); err == nil {
		attrs = append(attrs, semconv.ServerAddress(host))
		if p, err := strconv.Atoi(port); err == nil {
			attrs = append(attrs, semconv.ServerPort(p))
		}
	} else if req.Host != "" {
		attrs = append(attrs, semconv.ServerAddress(req.Host))
	}
	if host, _, err := net.SplitHostPort(req.RemoteAddr); err == nil {
		attrs = append(attrs, semconv.NetworkPeerAddress(host))
	}
	if ua := req.UserAgent(); ua != "" {
		attrs = append(attrs, semconv.UserAgentOriginal(ua))
	}
	return attrs
}
