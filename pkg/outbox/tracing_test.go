package outbox_test

import (
	"context"
	"testing"
	"time"

	amqp "github.com/rabbitmq/amqp091-go"
	"go.opentelemetry.io/otel"
	"go.opentelemetry.io/otel/trace"

	"github.com/order-system/order-system/pkg/dbtest"
	"github.com/order-system/order-system/pkg/outbox"
	"github.com/order-system/order-system/pkg/tracing/tracingtest"
)

// TestEventsKeepTheTraceOfTheirWriter writes an event within a span and relays it: the
// message arrives with the trace context of the relay's publish span, whose parent is the
// writer's span, though the writer's process could have died in between.
func TestEventsKeepTheTraceOfTheirWriter(t *testing.T) {
	tracingtest.Recorder()
	f := newFixture(t)
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()

	headers := make(chan amqp.Table, 1)
	c := f.consume(ctx, func(ctx context.Context, d amqp.Delivery) error {
		headers <- d.Headers
		return nil
	})
	dbtest.Eventually(t, 15*time.Second, "consumer", c.Ready)

	writeCtx, writer := otel.Tracer("test").Start(ctx, "request")
	e, err := newTestEvent("order.completed", map[string]int{})
	if err != nil {
		t.Fatal(err)
	}
	tx := f.db.MustBegin()
	if err := outbox.Write(writeCtx, tx, e); err != nil {
		t.Fatal(err)
	}
	if err := tx.Commit(); err != nil {
		t.Fatal(err)
	}
	writer.End()
	f.relay(ctx, 50*time.Millisecond)

	var h amqp.Table
	select {
	case h = <-headers:
	case <-time.After(15 * time.Second):
		t.Fatal("event not relayed")
	}
	var publish trace.SpanContext
	var publishParent trace.SpanID
	dbtest.Eventually(t, 5*time.Second, "the publish span", func() bool {
		for _, s := range tracingtest.Spans(writer.SpanContext().TraceID()) {
			if s.SpanKind() == trace.SpanKindProducer {
				publish, publishParent = s.SpanContext(), s.Parent().SpanID()
			}
		}
		return publish.IsValid()
	})
	if publishParent != writer.SpanContext().SpanID() {
		t.Errorf("publish span's parent %s, want the writer's span %s", publishParent, writer.SpanContext().SpanID())
	}
	want := "00-" + publish.TraceID().String() + "-" + publish.SpanID().String() + "-01"
	if got, _ := h["traceparent"].(string); got != want {
		t.Errorf("message traceparent %q, want the publish span's %q", got, want)
	}
}
