package rabbit_test

import (
	"context"
	"fmt"
	"slices"
	"strings"
	"testing"
	"time"

	amqp "github.com/rabbitmq/amqp091-go"

	"github.com/order-system/order-system/pkg/dbtest"
	"github.com/order-system/order-system/pkg/rabbit"
)

// TestQuorumQueueCountsEveryReturn records how RabbitMQ 3.10 counts deliveries against a
// quorum queue's x-delivery-limit, the fact the consumer's republishing is built on: a
// message returned because its consumer's channel or connection closed counts exactly like
// one nacked with requeue, so repeated disconnects alone dead-letter a message nobody ever
// rejected. With limit L the message is delivered L+1 times, carrying x-delivery-count
// absent, 1, ..., L, and its (L+1)th return dead-letters it with reason delivery_limit.
// RabbitMQ 4.0 and later count differently (x-acquired-count, unlimited returns in 4.3),
// so the test records 3.x only.
func TestQuorumQueueCountsEveryReturn(t *testing.T) {
	vhostURL := dbtest.NewVhost(t)
	admin := dbtest.Channel(t, vhostURL)
	probe, err := amqp.Dial(vhostURL)
	if err != nil {
		t.Fatal(err)
	}
	version, _ := probe.Properties["version"].(string)
	probe.Close()
	if !strings.HasPrefix(version, "3.") {
		t.Skipf("records RabbitMQ 3.x; the broker is %q", version)
	}
	const limit = 2
	cases := []struct {
		name string
		// give returns the unacked delivery d of conn's channel ch to the queue.
		give func(conn *amqp.Connection, ch *amqp.Channel, d amqp.Delivery) error
	}{
		{"channel closed", func(_ *amqp.Connection, ch *amqp.Channel, _ amqp.Delivery) error { return ch.Close() }},
		{"connection closed", func(conn *amqp.Connection, _ *amqp.Channel, _ amqp.Delivery) error { return conn.Close() }},
		{"nack with requeue", func(_ *amqp.Connection, ch *amqp.Channel, d amqp.Delivery) error {
			// Cancelled first, so that the requeued message is not delivered again to this
			// consumer before its channel closes, which would be a second return.
			if err := ch.Cancel(d.ConsumerTag, false); err != nil {
				return fmt.Errorf("cancel: %w", err)
			}
			return d.Nack(false, true)
		}},
	}
	for i, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			q := rabbit.Queue{Name: fmt.Sprintf("test.counting.%d", i), Exchange: "test.events", Bindings: []string{"#"}, DeliveryLimit: limit}
			if err := rabbit.Declare(admin, q); err != nil {
				t.Fatal(err)
			}
			if err := admin.PublishWithContext(context.Background(), q.Exchange, "k", false, false, amqp.Publishing{MessageId: "m1", Body: []byte("m1")}); err != nil {
				t.Fatal(err)
			}
			// Each round takes the message on a fresh connection and returns it unacked,
			// until it no longer comes back.
			var counts []int64
			for range limit + 3 {
				count, ok := takeAndReturn(t, vhostURL, q.Name, tc.give)
				if !ok {
					break
				}
				counts = append(counts, count)
			}
			var want []int64 // 0: the header is absent on the first delivery
			for n := range int64(limit + 1) {
				want = append(want, n)
			}
			if !slices.Equal(counts, want) {
				t.Errorf("x-delivery-count of the successive deliveries = %v, want %v", counts, want)
			}
			var dead amqp.Delivery
			dbtest.Eventually(t, 5*time.Second, "the message in the dead-letter queue", func() bool {
				var ok bool
				dead, ok, err = admin.Get(q.DeadLetterQueue(), true)
				if err != nil {
					t.Fatal(err)
				}
				return ok
			})
			if reason := dead.Headers["x-first-death-reason"]; reason != "delivery_limit" {
				t.Errorf("dead-lettered with reason %v, want delivery_limit", reason)
			}
			t.Logf("%s: delivered %d times with x-delivery-count %v, then dead-lettered (%v)", tc.name, len(counts), counts, dead.Headers["x-first-death-reason"])
		})
	}
}

// takeAndReturn consumes the queue's one message on a connection of its own, returns it
// unacked with give and closes the connection. It reports the delivery's x-delivery-count
// (0 when absent), or false when no message arrived within 2 s.
func takeAndReturn(t *testing.T, url, queue string, give func(*amqp.Connection, *amqp.Channel, amqp.Delivery) error) (int64, bool) {
	t.Helper()
	conn, err := amqp.Dial(url)
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close()
	ch, err := conn.Channel()
	if err != nil {
		t.Fatal(err)
	}
	if err := ch.Qos(1, 0, false); err != nil {
		t.Fatal(err)
	}
	ds, err := ch.Consume(queue, "", false, false, false, false, nil)
	if err != nil {
		t.Fatal(err)
	}
	var d amqp.Delivery
	select {
	case d = <-ds:
	case <-time.After(2 * time.Second):
		return 0, false
	}
	if err := give(conn, ch, d); err != nil {
		t.Fatal(err)
	}
	var count int64
	switch n := d.Headers["x-delivery-count"].(type) {
	case int64:
		count = n
	case int32:
		count = int64(n)
	case nil:
	default:
		t.Fatalf("x-delivery-count is a %T", n)
	}
	return count, true
}
