package consumer_test

import (
	"context"
	"encoding/json"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"
	"github.com/google/go-cmp/cmp/cmpopts"
	"github.com/google/uuid"
	"github.com/prometheus/client_golang/prometheus"
	amqp "github.com/rabbitmq/amqp091-go"

	"github.com/order-system/order-system/api/events"
	"github.com/order-system/order-system/pkg/dbtest"
	"github.com/order-system/order-system/pkg/rabbit"
	"github.com/order-system/order-system/services/notification/internal/consumer"
	"github.com/order-system/order-system/services/notification/internal/notification"
)

// TestConsumerWithRabbitMQ runs the consumer as main does against the real broker: a good
// event published twice is stored once, a poison message goes to the dead-letter queue.
func TestConsumerWithRabbitMQ(t *testing.T) {
	t.Parallel()
	store, db := newStore(t)
	amqpURL := dbtest.NewVhost(t)

	q := consumer.Queue()
	c := rabbit.NewConsumer(amqpURL, q, consumer.Handler(store, "ru", discard), discard, prometheus.NewRegistry())
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- c.Run(ctx) }()
	t.Cleanup(func() {
		cancel()
		select {
		case err := <-done:
			if err != nil {
				t.Errorf("consumer Run = %v after its context ended, want nil", err)
			}
		case <-time.After(10 * time.Second):
			t.Error("consumer did not stop within 10s of its context ending")
		}
	})
	dbtest.Eventually(t, 10*time.Second, "the consumer is not subscribed", c.Ready)

	ch := dbtest.Channel(t, amqpURL)
	if err := ch.Confirm(false); err != nil {
		t.Fatal(err)
	}
	returns := ch.NotifyReturn(make(chan amqp.Return, 3))
	publish := func(key string, p amqp.Publishing) {
		t.Helper()
		p.DeliveryMode = amqp.Persistent
		p.ContentType = "application/json"
		dc, err := ch.PublishWithDeferredConfirmWithContext(context.Background(), events.Exchange, key, true, false, p)
		if err != nil {
			t.Fatal(err)
		}
		ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		defer cancel()
		if ok, err := dc.WaitContext(ctx); !ok || err != nil {
			t.Fatalf("broker did not confirm the %s message: ok=%v err=%v", key, ok, err)
		}
	}

	user := uuid.New()
	data := events.OrderFinishedData{OrderID: uuid.NewString(), UserID: user.String(), Email: "buyer@example.com", Price: 500_00, Status: "completed"}
	ev := orderEvent(t, events.OrderCompleted, data)
	body, err := json.Marshal(ev)
	if err != nil {
		t.Fatal(err)
	}
	good := amqp.Publishing{MessageId: ev.ID, Body: body, Headers: amqp.Table{"x-request-id": "req-rabbit"}}
	poison := []byte(`{"specversion":"1.0","id":"not-a-uuid","type":"order.completed","data":{}}`)
	publish(events.OrderCompleted, good)
	publish(events.OrderCompleted, good) // the relay may publish an event twice
	publish(events.OrderCompleted, amqp.Publishing{MessageId: "poison-1", Body: poison})
	select {
	case r := <-returns:
		t.Fatalf("broker returned a message as unroutable: %s %s", r.RoutingKey, r.Body)
	default:
	}

	dlq := q.DeadLetterQueue()
	dbtest.Eventually(t, 10*time.Second, dlq+" did not receive the poison message", func() bool {
		state, err := ch.QueueDeclarePassive(dlq, true, false, false, false, nil)
		if err != nil {
			t.Fatalf("inspect %s: %v", dlq, err)
		}
		return state.Messages >= 1
	})
	// The consumer handles deliveries in order, so both copies of the good event were
	// handled before the poison message reached the dead-letter queue.
	ns := list(t, store, user)
	if len(ns) != 1 {
		t.Fatalf("user has %d notifications, want 1: %+v", len(ns), ns)
	}
	want := notification.Notification{EventID: uuid.MustParse(ev.ID), UserID: user, OrderID: uuid.MustParse(data.OrderID), Email: data.Email, Type: notification.Success}
	if diff := cmp.Diff(want, ns[0], cmpopts.IgnoreFields(notification.Notification{}, "ID", "Message", "CreatedAt")); diff != "" {
		t.Errorf("stored notification (-want +got):\n%s", diff)
	}
	if n := count(t, db); n != 1 {
		t.Errorf("notifications in the database = %d, want 1", n)
	}

	dead, ok, err := ch.Get(dlq, true)
	if err != nil || !ok {
		t.Fatalf("get from %s: ok=%v err=%v", dlq, ok, err)
	}
	if string(dead.Body) != string(poison) {
		t.Errorf("dead letter body = %s, want the poison message %s", dead.Body, poison)
	}
	// Rejected at once, not redelivered until the delivery limit gave up on it.
	if reason := dead.Headers["x-first-death-reason"]; reason != "rejected" {
		t.Errorf("dead letter reason = %v, want rejected (headers %v)", reason, dead.Headers)
	}
	if state, err := ch.QueueDeclarePassive(dlq, true, false, false, false, nil); err != nil || state.Messages != 0 {
		t.Errorf("%s after taking the poison message: %d messages (err %v), want 0", dlq, state.Messages, err)
	}
	if state, err := ch.QueueDeclarePassive(q.Name, true, false, false, false, nil); err != nil || state.Messages != 0 {
		t.Errorf("%s: %d messages ready (err %v), want 0", q.Name, state.Messages, err)
	}
}
