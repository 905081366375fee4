package rabbit_test

import (
	"context"
	"io"
	"log/slog"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	amqp "github.com/rabbitmq/amqp091-go"
	"go.opentelemetry.io/otel/trace"

	"github.com/order-system/order-system/pkg/dbtest"
	"github.com/order-system/order-system/pkg/rabbit"
	"github.com/order-system/order-system/pkg/tracing"
	"github.com/order-system/order-system/pkg/tracing/tracingtest"
)

// TestTraceCrossesTheBroker publishes a message that carries a trace context through the real
// broker: the publish span is a child of that context, the consumer's span a child of the
// publish span, and the handler runs within the consumer's span.
func TestTraceCrossesTheBroker(t *testing.T) {
	tracingtest.Recorder()
	q := rabbit.Queue{Name: dbtest.Name(t, "test.traced"), Exchange: dbtest.Name(t, "test.events"), Bindings: []string{"#"}, DeliveryLimit: 2}
	dbtest.RemoveQueue(t, dbtest.Channel(t, dbtest.AMQPURL()), q)

	handled := make(chan trace.SpanContext, 1)
	handler := func(ctx context.Context, d amqp.Delivery) error {
		handled <- trace.SpanContextFromContext(ctx)
		return nil
	}
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	c := rabbit.NewConsumer(dbtest.AMQPURL(), q, rabbit.OneByOne(handler), slog.New(slog.NewTextHandler(io.Discard, nil)), prometheus.NewRegistry())
	go c.Run(ctx)
	dbtest.Eventually(t, 15*time.Second, "consumer", c.Ready)

	const traceID, parentID = "8bf92f3577b34da6a3ce929d0e0e4736", "00f067aa0ba902b7"
	pub := rabbit.NewPublisher(dbtest.AMQPURL(), q.Exchange)
	defer pub.Close()
	msg := rabbit.Message{RoutingKey: "order.completed", MessageID: "m1", Body: []byte("{}"),
		Trace: tracing.Context{TraceParent: "00-" + traceID + "-" + parentID + "-01"}}
	if err := pub.Publish(ctx, []rabbit.Message{msg}); err != nil {
		t.Fatal(err)
	}
	var inHandler trace.SpanContext
	select {
	case inHandler = <-handled:
	case <-time.After(15 * time.Second):
		t.Fatal("message not consumed")
	}
	id, _ := trace.TraceIDFromHex(traceID)
	var spans []string
	var publish, process trace.SpanContext
	var publishParent, processParent trace.SpanID
	dbtest.Eventually(t, 5*time.Second, "publish and process spans", func() bool {
		spans = spans[:0]
		for _, s := range tracingtest.Spans(id) {
			spans = append(spans, s.Name())
			switch s.SpanKind() {
			case trace.SpanKindProducer:
				publish, publishParent = s.SpanContext(), s.Parent().SpanID()
			case trace.SpanKindConsumer:
				process, processParent = s.SpanContext(), s.Parent().SpanID()
			}
		}
		return publish.IsValid() && process.IsValid()
	})
	if publishParent.String() != parentID {
		t.Errorf("publish span's parent %s, want the message's %s (spans %q)", publishParent, parentID, spans)
	}
	if processParent != publish.SpanID() {
		t.Errorf("process span's parent %s, want the publish span %s (spans %q)", processParent, publish.SpanID(), spans)
	}
	if inHandler.SpanID() != process.SpanID() {
		t.Errorf("handler ran in span %s, want the process span %s", inHandler.SpanID(), process.SpanID())
	}
}
