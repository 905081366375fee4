package rabbit_test

import (
	"context"
	"errors"
	"io"
	"log/slog"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	amqp "github.com/rabbitmq/amqp091-go"

	"github.com/order-system/order-system/pkg/dbtest"
	"github.com/order-system/order-system/pkg/rabbit"
)

// deadNode is a broker URL nobody answers at: a cluster node that has not booted yet.
const deadNode = "amqp://guest:guest@127.0.0.1:1/"

// A consumer given two nodes, one of which never answers, does not declare its queue while
// the queue is new: declared now, a quorum queue would have no member on the missing node.
// Once the queue exists (declared by a consumer that saw every node), it subscribes at once.
func TestNewQueueWaitsForEveryNode(t *testing.T) {
	vhostURL := dbtest.NewVhost(t)
	q := rabbit.Queue{Name: "test.members", Exchange: "test.events", Bindings: []string{"#"}}
	c, stop := runConsumer(t, vhostURL+","+deadNode, q, time.Hour)
	defer stop()

	time.Sleep(3 * time.Second)
	if c.Ready() {
		t.Fatal("the consumer subscribed to a new queue while a node was missing")
	}
	if queueExists(t, vhostURL, q.Name) || queueExists(t, vhostURL, q.DeadLetterQueue()) {
		t.Fatal("a queue was declared while a node was missing")
	}

	if err := rabbit.Declare(dbtest.Channel(t, vhostURL), q); err != nil {
		t.Fatal(err)
	}
	waitReady(t, c, 20*time.Second, "once the queue existed")
}

// Past its wait for every node, a consumer declares the new queue on the nodes there are, so
// that a node that never comes back does not keep a service from consuming for good.
func TestNewQueueDeclaredAfterTheWait(t *testing.T) {
	vhostURL := dbtest.NewVhost(t)
	q := rabbit.Queue{Name: "test.members.late", Exchange: "test.events", Bindings: []string{"#"}}
	c, stop := runConsumer(t, vhostURL+","+deadNode, q, 500*time.Millisecond)
	defer stop()
	waitReady(t, c, 20*time.Second, "after the wait for every node")
	if !queueExists(t, vhostURL, q.Name) {
		t.Error("the consumer is ready but its queue does not exist")
	}
}

func runConsumer(t *testing.T, url string, q rabbit.Queue, membersWait time.Duration) (*rabbit.Consumer, func()) {
	t.Helper()
	handler := func(context.Context, []amqp.Delivery) ([]error, error) { return nil, nil }
	c := rabbit.NewConsumer(url, q, handler, slog.New(slog.NewTextHandler(io.Discard, nil)), prometheus.NewRegistry())
	rabbit.SetMembersWait(c, membersWait)
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan struct{})
	go func() { _ = c.Run(ctx); close(done) }()
	return c, func() { cancel(); <-done }
}

func waitReady(t *testing.T, c *rabbit.Consumer, within time.Duration, when string) {
	t.Helper()
	deadline := time.Now().Add(within)
	for !c.Ready() {
		if time.Now().After(deadline) {
			t.Fatalf("the consumer did not subscribe within %s %s", within, when)
		}
		time.Sleep(50 * time.Millisecond)
	}
}

// queueExists looks name up by a passive declaration on a connection of its own (a refused
// one closes the channel it was made on).
func queueExists(t *testing.T, url, name string) bool {
	t.Helper()
	_, err := dbtest.Channel(t, url).QueueDeclarePassive(name, true, false, false, false, nil)
	if amqpErr, ok := errors.AsType[*amqp.Error](err); ok && amqpErr.Code == amqp.NotFound {
		return false
	}
	if err != nil {
		t.Fatal(err)
	}
	return true
}
