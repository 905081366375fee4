package rabbit

import (
	"context"
	"errors"

	amqp "github.com/rabbitmq/amqp091-go"
	"go.opentelemetry.io/otel"
	"go.opentelemetry.io/otel/codes"
	semconv "go.opentelemetry.io/otel/semconv/v1.43.0"
	"go.opentelemetry.io/otel/trace"
)

// tracerName names the instrumentation scope of the publish and process spans.
const tracerName = "github.com/order-system/order-system/pkg/rabbit"

// headerCarrier lets the propagator read and write the W3C trace context (traceparent,
// tracestate) in a message's AMQP headers.
type headerCarrier amqp.Table

func (h headerCarrier) Get(key string) string {
	v, _ := h[key].(string)
	return v
}

func (h headerCarrier) Set(key, value string) { h[key] = value }

func (h headerCarrier) Keys() []string {
	keys := make([]string, 0, len(h))
	for k := range h {
		keys = append(keys, k)
	}
	return keys
}

// startPublish starts the producer span of m, a child of the trace context the message
// carries, and returns m's headers with the span's own context added, so that the consumer's
// span becomes the publish span's child.
func startPublish(ctx context.Context, exchange string, m Message) (amqp.Table, trace.Span) {
	ctx, span := otel.Tracer(tracerName).Start(m.Trace.Into(ctx), "publish "+exchange,
		trace.WithSpanKind(trace.SpanKindProducer), trace.WithAttributes(
			semconv.MessagingSystemRabbitMQ,
			semconv.MessagingOperationTypeSend,
			semconv.MessagingOperationName("publish"),
			semconv.MessagingDestinationName(exchange),
			semconv.MessagingRabbitMQDestinationRoutingKey(m.RoutingKey),
			semconv.MessagingMessageID(m.MessageID),
		))
	headers := make(amqp.Table, len(m.Headers)+2)
	for k, v := range m.Headers {
		headers[k] = v
	}
	otel.GetTextMapPropagator().Inject(ctx, headerCarrier(headers))
	return headers, span
}

// endPublish ends the publish spans of a batch: failed for every message when the batch
// failed, else only for the messages the broker returned unroutable.
func endPublish(spans []trace.Span, msgs []Message, err error) {
	returned := map[string]bool{}
	var unroutable *UnroutableError
	if errors.As(err, &unroutable) {
		for _, id := range unroutable.MessageIDs {
			returned[id] = true
		}
	}
	for i, span := range spans {
		switch {
		case unroutable != nil && returned[msgs[i].MessageID]:
			span.SetStatus(codes.Error, ErrUnroutable.Error())
		case unroutable == nil && err != nil:
			span.SetStatus(codes.Error, err.Error())
		}
		span.End()
	}
}

// startProcess starts a consumer span for each delivery of a batch, each the child of the
// publish span whose context the delivery carries. A batch of one, the usual case, hands its
// span to the handler in the returned context, so that the handler's log lines carry the
// trace; the spans of a larger batch all cover its one transaction.
func startProcess(ctx context.Context, queue string, batch []amqp.Delivery) (context.Context, []trace.Span) {
	tracer := otel.Tracer(tracerName)
	spans := make([]trace.Span, len(batch))
	handlerCtx := ctx
	for i, d := range batch {
		parent := otel.GetTextMapPropagator().Extract(ctx, headerCarrier(d.Headers))
		spanCtx, span := tracer.Start(parent, "process "+queue,
			trace.WithSpanKind(trace.SpanKindConsumer), trace.WithAttributes(
				semconv.MessagingSystemRabbitMQ,
				semconv.MessagingOperationTypeProcess,
				semconv.MessagingOperationName("process"),
				semconv.MessagingDestinationName(queue),
				semconv.MessagingRabbitMQDestinationRoutingKey(d.RoutingKey),
				semconv.MessagingMessageID(d.MessageId),
			))
		if len(batch) > 1 {
			span.SetAttributes(semconv.MessagingBatchMessageCount(len(batch)))
		}
		spans[i] = span
		if len(batch) == 1 {
			handlerCtx = spanCtx
		}
	}
	return handlerCtx, spans
}

// endProcess ends the consumer spans of a batch: failed for the poison messages (errs, when
// the batch was handled) or for all of them when the batch was given up (err).
func endProcess(spans []trace.Span, errs []error, err error) {
	for i, span := range spans {
		switch {
		case err != nil:
			span.SetStatus(codes.Error, err.Error())
		case errs != nil && errs[i] != nil:
			span.SetStatus(codes.Error, errs[i].Error())
		}
		span.End()
	}
}
